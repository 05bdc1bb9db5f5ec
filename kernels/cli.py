"""``derivekit train CONFIG.yaml`` (or flags): build, compile, train, report.

A config is YAML (read by ``derive.yamlio``: safe and bounded; every value is data,
layer specs are read by the layer catalogue, :func:`derive.layers.catalog.layer_from_text`,
never evaluated)::

    model:
      layers: ["linear(64, 128)", relu, "linear(128, 10)"]
      loss: cross_entropy
      input_shape: [1, 8, 8]     # optional: one sample's shape; the data is read as it
    data: digits                 # or {mnist: {images: F, labels: F}}, {npz: F},
                                 # {sequences: {n: 512, T: 8, d: 3, classes: 3}}
    optimizer: {name: sgd, lr: 0.1}
    schedule: constant           # or {name: cosine}
    epochs: 20
    batch_size: 32
    dtype: float32
    seed: 0
    out: derivekit-train         # report.md, curves.png, weights.npz, history.json

Flags override the file: ``--model "linear(64,128),relu,linear(128,10)" --loss
cross_entropy --data digits --optimizer adam --lr 1e-3 --epochs 20 --batch-size 32``.
With neither, the defaults above train the digits MLP (>= 97% validation accuracy).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from derive.errors import DeriveError, InputError

DEFAULTS = {
    "model": {"layers": ["linear(64, 128)", "relu", "linear(128, 10)"], "loss": "cross_entropy"},
    "data": "digits", "optimizer": {"name": "sgd", "lr": 0.1}, "schedule": "constant",
    "epochs": 20, "batch_size": 32, "dtype": "float32", "seed": 0, "init": "xavier_uniform",
    "out": "derivekit-train",
}
KEYS = set(DEFAULTS) | {"validation"}


EXAMPLES = """examples:
  derivekit train                                    (the digits MLP, into derivekit-train/)
  derivekit train examples/train/digits_mlp.yaml
  derivekit train examples/train/digits_cnn.yaml --epochs 5 --out cnn-run
  derivekit train --model "linear(64,128),relu,linear(128,10)" --optimizer adam --lr 1e-3

A config is YAML (model, data, optimizer, schedule, epochs, batch_size, dtype, seed,
out); flags override it. A loss on score-shaped targets (--loss mse, bce, bce_logits)
reads the data's integer class labels as one-hot rows. The output folder is checked before training starts, and a
run whose loss becomes NaN or infinite stops with exit code 1 and writes nothing."""


class Diverged(DeriveError):
    """Training stopped because the loss became NaN or infinite (exit code 1)."""

    exit_code = 1


def _parser():
    p = argparse.ArgumentParser(prog="derivekit train", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Train a model compiled from its derivation "
                                            "(a YAML config, or flags) and write a report.")
    p.add_argument("config", nargs="?", help="a YAML training config")
    p.add_argument("--model", help='layers, e.g. "linear(64,128),relu,linear(128,10)"')
    p.add_argument("--loss")
    p.add_argument("--data", help="digits | mnist:IMAGES,LABELS | npz:FILE")
    p.add_argument("--optimizer")
    p.add_argument("--lr", type=float)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--dtype", choices=("float32", "float64"))
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="folder for the report, curves and weights")
    p.add_argument("--checkpoint", help="checkpoint file (resumes if it exists)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--format", choices=("text", "json"), default="text")
    return p


def load_config(path):
    """The config at ``path`` merged over the defaults (InputError on unknown keys)."""
    from derive import yamlio

    raw = yamlio.load(path, "config")
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise InputError("a training config is a mapping of keys", where=path)
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise InputError(f"unknown key(s) {unknown}; known: {sorted(KEYS)}", where=path)
    return {**DEFAULTS, **raw}


def merge_flags(cfg, args):
    cfg = dict(cfg)
    if args.model:
        from derive.layers.catalog import split_layers

        cfg["model"] = {**cfg["model"], "layers": split_layers(args.model)}
    if args.loss:
        cfg["model"] = {**cfg["model"], "loss": args.loss}
    if args.data:
        kind, _, rest = args.data.partition(":")
        cfg["data"] = kind if not rest else {kind: rest.split(",")}
    opt = cfg["optimizer"] if isinstance(cfg["optimizer"], dict) else {"name": cfg["optimizer"]}
    if args.optimizer:
        opt = {"name": args.optimizer}
    if args.lr is not None:
        opt = {**opt, "lr": args.lr}
    cfg["optimizer"] = opt
    for key in ("epochs", "batch_size", "dtype", "seed", "out"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    return cfg


def build_net(model_cfg, where="model"):
    """A derive Sequential from ``{"layers": [...], "loss": name}``: every layer read from
    its text by the layer catalogue (:func:`derive.layers.catalog.layer_from_text`)."""
    import derive.layers as dt
    from derive.layers.catalog import layer_from_text

    def make(spec, k):
        return layer_from_text(str(spec), where=f"{where}.layers[{k}]")

    layers = model_cfg.get("layers") or []
    if not isinstance(layers, list) or not layers:
        raise InputError("layers must be a non-empty list", where=f"{where}.layers")
    built = [make(s, k) for k, s in enumerate(layers)]
    loss = make(model_cfg.get("loss", "cross_entropy"), "loss")
    shape = model_cfg.get("input_shape")
    if shape is not None and not (isinstance(shape, list) and shape
                                  and all(isinstance(d, int) and d > 0 for d in shape)):
        raise InputError(f"input_shape must be a list of positive sizes, e.g. [1, 8, 8], "
                         f"got {shape!r}", where=f"{where}.input_shape")
    return dt.Sequential(*built, loss=loss, input_shape=tuple(shape) if shape else None)


def one_hot_targets(net):
    """Give a loss on score-shaped targets (mse, bce, bce_logits) the data's integer class
    labels as one-hot rows, T[n, k] = δ(k, y_n), in place; returns the sentence that says
    so (None when the loss reads class labels already). Every dataset of ``train`` holds
    integer labels, and one-hot targets are what a course's "MSE on the digits" means."""
    if net.loss is None or net.loss.labels == "int":
        return None
    net.loss = _one_hot_loss_class()(net.loss)
    return (f"the loss {net.loss.key} compares the scores with one-hot rows of the integer "
            f"class labels (target[n, k] = 1 where k = y[n], else 0)")


def _one_hot_loss_class():
    from derive.layers.losses import Loss

    class OneHot(Loss):
        """A loss on targets shaped like the scores, read from integer class labels:
        the target of label c is the one-hot row e_c (``T[n, k] = δ(k, y_n)``)."""

        labels = "int"

        def __init__(self, inner):
            self.inner, self.classes = inner, inner.classes
            self.key, self.title = inner.key, inner.title
            self.has_gradient = inner.has_gradient

        def options(self):
            return self.inner.options()

        def describe(self):
            return f"{self.inner.describe()} on one-hot labels"

        def loss(self, z, y, where):
            import sympy as sp

            from derive.tensor import ops

            z, y = ops._labels_fit(z, y, where, self.key)
            onehot = ops.Lazy(z.shape, lambda n, k: sp.KroneckerDelta(k, y[n]))
            return self.inner.loss(z, onehot, where)

    return OneHot


def load_data(spec, seed=0):
    from . import data

    if spec == "digits":
        return data.digits(seed=seed)
    if isinstance(spec, dict) and len(spec) == 1:
        (kind, arg), = spec.items()
        if kind == "mnist":
            files = arg if isinstance(arg, list) else [arg.get("images"), arg.get("labels")]
            return data.mnist(*files[:2], seed=seed)
        if kind == "npz":
            return data.mnist(arg[0] if isinstance(arg, list) else arg, seed=seed)
        if kind == "sequences" and isinstance(arg, dict):
            return _sequences(arg, seed)
    raise InputError(f"data {spec!r}: use digits, {{mnist: [IMAGES, LABELS]}}, {{npz: FILE}} "
                     "or {sequences: {n: 512, T: 8, d: 3, classes: 3}}", where="data")


def _sequences(arg, seed):
    """The synthetic sequence task (:func:`kernels.data.sequences`), a fifth for validation."""
    from . import data

    sizes = {"n": 512, "T": 8, "d": 3, "classes": 3}
    for key, value in arg.items():
        if key not in sizes or isinstance(value, bool) or not isinstance(value, int) \
                or value < 1:
            raise InputError(f"sequences.{key}: expected one of {', '.join(sizes)} with a "
                             f"positive whole number, got {value!r}", where="data")
        sizes[key] = value
    return data.sequences(sizes["n"], T=sizes["T"], d=sizes["d"], n_classes=sizes["classes"],
                          seed=seed, validation=0.2)


def _check_count(value, key, args, where):
    """``epochs``/``batch_size`` must be whole numbers >= 1; the error names the flag or key."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        flag = "--" + key.replace("_", "-")
        place = flag if getattr(args, key) is not None else \
            (f"{where}: {key}" if where else flag)
        raise InputError(f"expected a whole number >= 1, got {value!r}", where=place)


def _one_line_warnings(message, category, filename, lineno, file=None, line=None):
    print(f"derivekit train: warning: {message}", file=sys.stderr)


def train_main(argv=None):
    """Entry point of ``derivekit train``; returns the exit code."""
    import warnings

    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warnings
        return _train(argv)


def _train(argv):
    args = _parser().parse_args(argv)
    cfg = load_config(args.config) if args.config else dict(DEFAULTS)
    cfg = merge_flags(cfg, args)
    for key in ("epochs", "batch_size"):  # checked before anything is compiled
        _check_count(cfg[key], key, args, where=args.config)
    where = "--out" if args.out is not None else \
        (f"{args.config}: out" if args.config else "out")
    created = output_folder(cfg["out"], where)  # before training, not after it
    try:
        return _run(args, cfg)
    except BaseException:  # nothing written half-way: take back the folders made for it
        _remove_empty(created)
        raise


def output_folder(out, where="out"):
    """Make the run's folder ``out`` (and its parents) and check a file can be written in
    it; returns the folders created (to remove if the run fails). InputError otherwise."""
    if not isinstance(out, str) or not out.strip():
        raise InputError(f"expected a folder name, got {out!r}", where=where)
    path = os.path.abspath(out)
    missing = []
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise InputError(f"cannot write the run into {out!r}: {path} is not a folder",
                         where=where)
    created = []
    try:
        for folder in reversed(missing):
            os.mkdir(folder)
            created.append(folder)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        _remove_empty(created)
        raise InputError(f"cannot write the run into {out!r} ({exc.strerror})",
                         where=where) from None
    return created


def _remove_empty(folders):
    for folder in reversed(folders):
        try:
            os.rmdir(folder)
        except OSError:
            break  # something was written there after all: keep it


def _run(args, cfg):
    import warnings

    import kernels
    from kernels.fit import TrainingWarning

    net = build_net(cfg["model"])
    ds = load_data(cfg["data"], cfg["seed"])
    note = one_hot_targets(net)
    if note and args.format == "text":
        print(f"note: {note}")
    opt = dict(cfg["optimizer"])
    name = opt.pop("name", "sgd")
    schedule = opt.pop("schedule", None) or cfg.get("schedule")
    t0 = time.perf_counter()
    model = kernels.compile(net, dtype=cfg["dtype"], optimizer=name, schedule=schedule,
                            seed=cfg["seed"], init=cfg["init"], **opt)
    compiled = time.perf_counter() - t0
    if ds.input_shape != model.input_shape:  # flat digits for a conv net: read as images
        ds = ds.reshaped(model.input_shape)
    failure = None
    with warnings.catch_warnings(record=True) as caught:  # shown below, one line each
        warnings.simplefilter("always", TrainingWarning)
        try:
            kernels.fit(model, ds, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                        seed=cfg["seed"], checkpoint=args.checkpoint,
                        progress=not args.no_progress and args.format == "text")
        except BaseException as exc:  # Ctrl-C: its warning says where the checkpoint is
            failure = exc
    # fit stops early (without raising) only when the loss stops being finite
    stopped = failure is None and len(model.history) < cfg["epochs"]
    said = [w for w in caught if issubclass(w.category, TrainingWarning)]
    for w in caught:
        if not (stopped and w is (said[-1] if said else None)):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if failure is not None:
        raise failure
    if stopped:
        why = str(said[-1].message).split(";")[0] if said else \
            f"epoch {len(model.history) + 1}: the loss stopped being finite"
        lr = cfg["optimizer"].get("lr")
        raise Diverged(f"training diverged ({why}); nothing written" +
                       (f" (learning rate {lr}: try a smaller positive one)"
                        if lr is not None else ""))
    from .report import write_run

    paths = write_run(cfg["out"], model, net, ds, cfg, compiled)
    final = model.history[-1] if model.history else {}
    if args.format == "json":
        print(json.dumps({"final": final, "files": paths, "compile_seconds": compiled,
                          "notes": [note] if note else []}))
    else:
        shown = ", ".join(f"{k} {final[k]:.4f}" for k in
                          ("loss", "accuracy", "val_loss", "val_accuracy") if k in final)
        print(f"trained {len(model.history)} epochs: {shown}")
        print(f"wrote {', '.join(os.path.relpath(p) for p in paths)}")
    return 0
