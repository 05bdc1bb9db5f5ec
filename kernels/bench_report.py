"""``derivekit bench``'s tables: the children's results summarised (median over
processes) and written as Markdown, with derivekit against the best peer, kernels.fit
against the compiled epoch, and final losses that disagree flagged."""
from __future__ import annotations

import os
import platform
import statistics

from .bench import WORKLOADS
from .bench_children import BLAS_PINS, pinned_cores


def summarise(runs):
    """{runner name: {"first", "steady", "loss", ...}} from :func:`run_processes`: the
    median over processes of each process's first epoch and steady median."""
    out = {}
    for r, results in runs.items():
        ok = [x for x in results if "skipped" not in x]
        if not ok:
            if results:
                out[results[0]["name"]] = {"skipped": results[0]["skipped"]}
            continue
        steadies = [x["steady"] for x in ok]
        row = {"first": statistics.median(x["first"] for x in ok),
               "steady": statistics.median(steadies), "spread": (min(steadies), max(steadies)),
               "loss": statistics.median(x["loss"] for x in ok),
               "losses": [x["loss"] for x in ok], "processes": len(ok),
               "blas": ok[0].get("blas", []), "runner": r}
        if all("fit" in x for x in ok):
            fits = [x["fit"]["steady"] for x in ok]
            row["fit"] = {"steady": statistics.median(fits), "spread": (min(fits), max(fits)),
                          "first": statistics.median(x["fit"]["first"] for x in ok),
                          "losses": [x["fit"]["loss"] for x in ok],
                          "ratios": [x["fit"]["steady"] / x["steady"] for x in ok]}
        out[ok[0]["name"]] = row
    return out


# -- report -------------------------------------------------------------------------------
def report(results, compile_runs, args):
    """Markdown: a table per thread count and workload (``results[(threads, name)]`` from
    :func:`summarise`), and the compile times."""
    pins = ("kept (" + ", ".join(f"{v}={os.environ[v]}" for v in BLAS_PINS if v in os.environ)
            + ")") if args.blas_pin else "unset in the children (OpenBLAS picks its kernels)"
    lines = ["# derivekit benchmark results", "",
             f"Command: `{args.command_line}`  ",
             f"Machine: {platform.machine()}, {_cpu()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}, {_versions()}  ",
             f"Load average (1 min) {args.load[0]:.2f} before the run, {args.load[1]:.2f} "
             "after (other jobs slow every runner alike, but add noise).  ",
             f"OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: {pins}.  ",
             "Every runner runs in its own fresh process, pinned to the same cores, with its "
             "thread pools set for the thread count before import (OMP/OPENBLAS/MKL_NUM_THREADS, "
             "torch.set_num_threads; at 1 thread XLA's --xla_cpu_multi_thread_eigen=false "
             "intra_op_parallelism_threads=1); rounds of one process per runner, in rotating "
             "(Williams) orders. All float32; same data, initial parameters and sample order "
             "for every runner. *first* = setup + first epoch (includes JIT compilation; numba "
             "peers may load from their own cache); *steady* = the median over processes of "
             "each process's median of the later epochs, with the range of those process "
             "medians; ratio = steady time / the best peer's (< 1: faster than every peer). "
             "*kernels.fit* is derivekit's training loop on the same run (progress=False, no "
             "validation), its epochs interleaved with the compiled epochs in the same process "
             "(its first epoch runs after theirs, so it compiles nothing). "
             "BLAS: what threadpoolctl saw loaded in the runner's process (numpy's own OpenBLAS "
             "is in every one).", ""]
    for (threads, wname), res in results.items():
        w = WORKLOADS[wname]
        lines += [f"## {wname} at {threads} thread{'s' if threads > 1 else ''}: {w.title}", "",
                  f"{args.epochs_of[wname]} epochs per process, cores "
                  f"{pinned_cores(threads)}.", "",
                  "| runner | processes | first epoch (s) | steady ms/epoch | range (ms) "
                  "| vs best peer | final loss | BLAS |",
                  "|---|---:|---:|---:|---|---:|---:|---|"]
        ran = {k: v for k, v in res.items() if "skipped" not in v}
        best = _best_peer(ran)
        ref = ran.get("derivekit", next(iter(ran.values()), None))
        for name, r in sorted(ran.items(), key=lambda kv: kv[1]["steady"]):
            rows = [(name, r["steady"], r["spread"], r["first"], r["losses"])]
            if "fit" in r:
                f = r["fit"]
                rows.append(("derivekit kernels.fit", f["steady"], f["spread"], f["first"],
                             f["losses"]))
            for label, steady, spread, first, losses in rows:
                ratio = f"{steady / best[1]:.2f}" if best else "-"
                lines.append(f"| {label} | {r['processes']} | {first:.3f} | {1e3 * steady:.3f} "
                             f"| {1e3 * spread[0]:.3f}-{1e3 * spread[1]:.3f} | {ratio} | "
                             f"{_loss_cell(losses, ref)} | {_blas_cell(r['blas'])} |")
        for name, r in res.items():
            if "skipped" in r:
                lines.append(f"| {name} | 0 | - | skipped: {r['skipped']} | | | | |")
        lines += ["", verdict(wname, res), ""]
    if compile_runs:
        (ci, cf), (wi, wf) = compile_runs
        lines += ["## Compile time (W1, fresh processes)", "",
                  "| cache | imports (s) | compile + first epoch (s) |", "|---|---:|---:|",
                  f"| cold (empty) | {ci:.2f} | {cf:.2f} |", f"| warm | {wi:.2f} | {wf:.2f} |", ""]
    return "\n".join(lines)


def _best_peer(res):
    peers = {k: v["steady"] for k, v in res.items() if k != "derivekit" and "steady" in v}
    if not peers:
        return None
    best = min(peers, key=peers.get)
    return best, peers[best]


def losses_agree(a, b):
    """Whether two final training losses are the same run's (float32 rounding apart)."""
    return abs(a - b) <= max(2e-4, 1e-2 * abs(b))


def _loss_cell(losses, ref):
    """The median final loss, flagged when the processes disagree with each other or the
    runner disagrees with derivekit's (same data, parameters and order: same run)."""
    text = f"{statistics.median(losses):.6f}"
    if max(losses) - min(losses) > 1e-6:
        text += f" (processes differ: {min(losses):.6f}-{max(losses):.6f})"
    if ref is not None and not losses_agree(statistics.median(losses), ref["loss"]):
        text += " **differs from derivekit's**"
    return text


def _blas_cell(blas):
    seen = []
    for b in blas:
        cell = " ".join(str(x) for x in (b.get("internal_api"), b.get("version"),
                                         b.get("architecture")) if x)
        cell += f" x{b['num_threads']}" if b.get("num_threads") is not None else ""
        if cell not in seen:
            seen.append(cell)
    return ", ".join(seen) or "-"


def verdict(wname, res):
    """One line: derivekit's steady time against the best peer (and PyTorch), and
    kernels.fit's against the compiled epoch."""
    ran = {k: v for k, v in res.items() if "skipped" not in v}
    if "derivekit" not in ran:
        return "derivekit: not run (it could not be built; derivekit bench printed why)."
    mine = ran["derivekit"]
    line = ""
    best = _best_peer(ran)
    if best:
        line = (f"derivekit / best peer ({best[0]}) = {mine['steady'] / best[1]:.2f} "
                f"({'at or below' if mine['steady'] <= best[1] else 'above'} the best peer).")
        torch = next((v for k, v in ran.items() if k.startswith("pytorch")), None)
        if torch:
            line += f" derivekit / PyTorch eager = {mine['steady'] / torch['steady']:.3f}."
    else:
        line = "No peer ran."
    if "fit" in mine:
        ratios = mine["fit"]["ratios"]
        line += (f" kernels.fit / compiled epoch = {statistics.median(ratios):.3f} (median over "
                 f"processes of each one's ratio; {min(ratios):.3f}-{max(ratios):.3f}).")
    flagged = [k for k, v in ran.items() if not losses_agree(v["loss"], mine["loss"])]
    if flagged:
        line += f" **Final losses differ from derivekit's: {', '.join(flagged)}.**"
    return line


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _versions():
    """Versions of the runtimes, read from package metadata (nothing imported)."""
    from importlib import metadata

    out = []
    for dist in ("numpy", "numba", "scipy", "torch", "jax", "threadpoolctl"):
        try:
            out.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(out)
