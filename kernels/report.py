"""The run report of ``derivekit train``: curves, metrics, update rule, summary, derivation.

Files written into the output folder: ``report.md`` (Markdown with ``$$`` math),
``curves.png`` (loss and accuracy per epoch, matplotlib), ``weights.npz`` (a checkpoint
:meth:`kernels.Model.load` reads back) and ``history.json``.
"""
from __future__ import annotations

import json
import os

from . import optim


def plot_curves(history, path):
    """Loss and accuracy per epoch (train and validation) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, title in ((ax1, "loss", "loss"), (ax2, "accuracy", "accuracy")):
        ax.plot(epochs, [h[key] for h in history], label="train")
        if history and f"val_{key}" in history[0]:
            ax.plot(epochs, [h[f"val_{key}"] for h in history], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _metrics_table(history):
    keys = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
            if history and k in history[0]]
    rows = ["| epoch | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for h in history:
        rows.append(f"| {h['epoch']} | " + " | ".join(f"{h[k]:.4g}" for k in keys) + " |")
    return rows


def _derivation(net):
    try:
        import reports

        return reports.render(net.derive(), "md")
    except Exception as exc:  # noqa: BLE001 - the run's report must not fail on this part
        return f"(the derivation could not be rendered: {type(exc).__name__}: {exc})"


def markdown(model, net, ds, cfg, compiled):
    """The report's Markdown text."""
    final = model.history[-1] if model.history else {}
    rule = model.optimizer.rule
    lines = [f"# Training run: {model.meta['title']}", "",
             f"Data: {ds!r}. Optimizer: `{model.optimizer.name}` (lr {model.optimizer.lr:g}, "
             f"{json.dumps(model.optimizer.hyper)}), schedule `{model.optimizer.schedule.name}`. "
             f"{cfg['epochs']} epochs, batch {cfg['batch_size']}, {cfg['dtype']}, seed "
             f"{cfg['seed']}. Compiled in {compiled:.2f} s.", "",
             "## Final metrics", ""]
    lines += [f"- {k}: {final[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy")
              if k in final]
    lines += ["", "![loss and accuracy](curves.png)", "", "## Per epoch", ""]
    lines += _metrics_table(model.history)
    lines += ["", f"## The update rule ({model.optimizer.name})", "",
              "Each parameter element is updated by this function, fused into the compiled "
              "epoch (the same source, rendered by latexify-py):", "",
              "$$", optim.latex(rule, style="function"), "$$", ""]
    if model.optimizer.weight_decay:
        lines += [f"with L2 weight decay λ = {model.optimizer.weight_decay:g} added to the "
                  "gradient first.", ""]
    lines += ["## Model", "", net.summary()._repr_markdown_(), "",
              "## Derivation of the gradients", "", _derivation(net)]
    return "\n".join(lines) + "\n"


def write_run(out, model, net, ds, cfg, compiled):
    """Write the report, curves, weights and history into ``out``; return the paths."""
    os.makedirs(out, exist_ok=True)
    names = ("report.md", "curves.png", "weights.npz", "history.json")
    paths = [os.path.join(out, n) for n in names]
    plot_curves(model.history, paths[1])
    model.save(paths[2])
    with open(paths[3], "w") as f:
        json.dump(model.history, f, indent=1)
    with open(paths[0], "w") as f:
        f.write(markdown(model, net, ds, cfg, compiled))
    return paths
