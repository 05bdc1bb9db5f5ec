"""``derivekit bench``'s processes: one runner on one workload in a child, and the parent's
loop that starts the children (see :mod:`kernels.bench` for what is measured and why).

A child, ``python -m kernels.bench_children WORKLOAD RUNNER --epochs 20 --threads 1``, prints
one JSON line (:func:`run_one`); :func:`run_child` starts one with the runner's
environment (:func:`child_env`), pinned to the cores :func:`pinned_cores` names, and
:func:`run_processes` runs rounds of them in rotating orders.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .bench import (WORKLOADS, DerivekitRunner, derivekit_model, initial_params, load_peers,
                    runner_orders)

#: what pins OpenBLAS to one kernel set; dropped from the children unless --blas-pin
BLAS_PINS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: the peer module's library, to name it in a skipped row
PEER_LIBRARY = {"peer_numba": "numba", "peer_jax": "jax", "peer_torch": "torch",
                "peer_numpy": "numpy"}


def child_env(runner, threads, blas_pin=False, base=None):
    """The environment of a child running ``runner`` with ``threads`` threads: every
    thread pool's size set before anything is imported, XLA's single-thread flags at one
    thread, OpenBLAS's kernel pins dropped unless ``blas_pin``, and the source tree this
    module is in first on the path (so the child times this checkout's code)."""
    env = dict(os.environ if base is None else base)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    if runner == "peer_jax":
        flags = [f for f in env.get("XLA_FLAGS", "").split()
                 if not f.startswith(("--xla_cpu_multi_thread_eigen",
                                      "intra_op_parallelism_threads"))]
        if threads == 1:
            flags += ["--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1"]
        env["XLA_FLAGS"] = " ".join(flags)
    if not blas_pin:
        for var in BLAS_PINS:
            env.pop(var, None)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root] + [q for q in [env.get("PYTHONPATH")] if q])
    return env


def pinned_cores(threads):
    """The cores a child with ``threads`` threads is pinned to: the last ``threads`` of
    this process's (the same set for every runner), or None where affinity is unknown."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    return cores[-threads:]


def _set_torch_threads(threads):
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set, or parallel work already started
        pass


def blas_info():
    """The BLAS/OpenMP pools this process loaded (threadpoolctl), one dict each."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"internal_api": "unknown (threadpoolctl is not installed)"}]
    keys = ("user_api", "internal_api", "architecture", "num_threads", "version", "prefix")
    return [{k: info.get(k) for k in keys} for info in threadpool_info()]


# -- one runner, one workload, one process (the child) ------------------------------------
def epoch_orders(n, epochs):
    """The order of the ``n`` samples in each epoch, the same for every runner (and the
    orders ``kernels.fit(..., seed=0)`` draws)."""
    from .fit import epoch_order

    return [epoch_order(n, 0, e) for e in range(epochs)]


def run_one(w, runner, epochs, threads=1, fit=True):
    """Time ``runner`` (``"derivekit"`` or a peer module's name) on workload ``w`` in this
    process; returns a dict ready for JSON (see the module docstring), with ``skipped``
    saying why when the runner cannot run here."""
    out = {"workload": w.name, "runner": runner, "name": runner, "epochs": epochs,
           "threads": threads, "pid": os.getpid(),
           "cores": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
           else None}
    if runner == "peer_torch":
        _set_torch_threads(threads)
    X, y = w.data()
    params = initial_params(w)
    t0 = time.perf_counter()
    if runner == "derivekit":
        make = DerivekitRunner
    else:
        mods = load_peers([runner])
        if not mods:
            return {**out, "skipped": f"{PEER_LIBRARY.get(runner, runner)} is not installed"}
        out["name"], make = mods[0].NAME, mods[0].make
    try:
        r = make(w, params, X, y)
    except Exception as exc:  # noqa: BLE001 - a runner that cannot run is reported
        return {**out, "skipped": f"{type(exc).__name__}: {exc}"}
    setup = time.perf_counter() - t0
    orders = epoch_orders(len(X), epochs)
    times, losses = [], []

    def bare(e):
        t0 = time.perf_counter()
        losses.append(float(r.epoch(orders[e])))
        times.append(time.perf_counter() - t0)

    if runner == "derivekit" and fit:
        out["fit"] = _fit_interleaved(w, params, X, y, orders, bare)
    else:
        for e in range(epochs):
            bare(e)
    out.update(first=setup + times[0], times=times, loss=losses[-1], losses=losses,
               steady=statistics.median(times[1:]) if len(times) > 1 else times[0],
               blas=_own_kernels(runner) + blas_info())
    return out


def _own_kernels(runner):
    """What a runner computes its products with besides the BLAS threadpoolctl sees:
    PyTorch links MKL (or its own BLAS) into itself, XLA compiles to Eigen/its own."""
    if runner == "peer_torch":
        import torch

        lib = "mkl" if torch.backends.mkl.is_available() else "torch's own BLAS"
        return [{"internal_api": f"torch {lib}", "num_threads": torch.get_num_threads()}]
    if runner == "peer_jax":
        return [{"internal_api": "XLA CPU (Eigen)", "num_threads": None}]
    return []


def _fit_interleaved(w, params, X, y, orders, bare):
    """``kernels.fit`` on a second model with the same initial parameters (and, with
    seed 0, the same orders), epoch ``e`` of the bare runner run from fit's callback
    after fit's epoch ``e - 1``: the two alternate as the runners of one process used
    to. Fit's epoch is timed from the callback's return to its next call (the whole
    cycle: snapshot, order, compiled epoch, checks, record, progress, callback call);
    its first epoch from the call of fit (data checks included)."""
    from .fit import fit as fit_fn

    model = derivekit_model(w, params)
    marks = []
    bare(0)

    def callback(_model, _record):
        marks.append(time.perf_counter())  # fit's epoch ends
        if len(marks) // 2 < len(orders):  # after fit's epoch e: bare epoch e + 1
            bare(len(marks) // 2)
        marks.append(time.perf_counter())  # fit's next epoch starts

    marks.append(time.perf_counter())
    history = fit_fn(model, (X, y), epochs=len(orders), batch_size=w.batch, seed=0,
                     progress=False, callback=callback)
    times = [marks[2 * e + 1] - marks[2 * e] for e in range(len(history))]
    return {"first": times[0], "times": times, "loss": float(history[-1]["loss"]),
            "steady": statistics.median(times[1:]) if len(times) > 1 else times[0],
            "progress": False}


def child_main(argv=None):
    """The child: ``python -m kernels.bench_children WORKLOAD RUNNER [--epochs N] [--threads T]
    [--no-fit]`` prints :func:`run_one`'s dict as one JSON line; returns 0."""
    p = argparse.ArgumentParser(prog="python -m kernels.bench_children",
                                description="one runner, one workload, this process (JSON)")
    p.add_argument("workload", choices=sorted(WORKLOADS))
    p.add_argument("runner", help="derivekit or a peer module (peer_numpy, ...)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-fit", action="store_true", help="derivekit: skip kernels.fit")
    args = p.parse_args(argv)
    w = WORKLOADS[args.workload]
    result = run_one(w, args.runner, args.epochs or w.epochs, args.threads, not args.no_fit)
    print(json.dumps(result))
    return 0


_CHILD = "import sys; from kernels.bench_children import child_main; sys.exit(child_main())"


def run_child(wname, runner, epochs, threads=1, cores=None, blas_pin=False, fit=True,
              timeout=3600):
    """:func:`run_one` in a fresh process pinned to ``cores``, with ``runner``'s
    environment (:func:`child_env`); its dict, or one with ``skipped`` when it failed."""
    cmd = [sys.executable, "-c", _CHILD, wname, runner, "--epochs", str(epochs),
           "--threads", str(threads)] + ([] if fit else ["--no-fit"])
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    try:
        res = subprocess.run(cmd, env=child_env(runner, threads, blas_pin),
                             capture_output=True, text=True, preexec_fn=pin, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"runner": runner, "name": runner, "skipped": f"over {timeout} s"}
    lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
    if res.returncode != 0 or not lines:
        why = (res.stderr.strip().splitlines() or ["no output"])[-1]
        return {"runner": runner, "name": runner,
                "skipped": f"child failed (exit {res.returncode}): {why}"}
    return json.loads(lines[-1])


def run_processes(w, runners, epochs, processes, threads, blas_pin=False, log=print):
    """Every runner ``processes`` times on ``w``, each a fresh process pinned to the same
    cores, rounds in rotating orders; {runner: [child dicts]} (a runner skipped in its
    first process is not started again)."""
    cores = pinned_cores(threads)
    runs = {r: [] for r in runners}
    rows = runner_orders(len(runners))
    for k in range(processes):
        for r in [runners[i] for i in rows[k % len(rows)]] if runners else []:
            if runs[r] and "skipped" in runs[r][0]:
                continue
            res = run_child(w.name, r, epochs, threads, cores, blas_pin)
            runs[r].append(res)
            if "skipped" in res:
                log(f"  {w.name} {res['name']}: skipped ({res['skipped']})")
                continue
            fit = res.get("fit")
            log(f"  {w.name} x{threads} #{k + 1} {res['name']:20s} first {res['first']:7.3f} s  "
                f"steady {1e3 * res['steady']:9.3f} ms/epoch  loss {res['loss']:.6f}"
                + (f"  fit {1e3 * fit['steady']:9.3f} ms/epoch" if fit else ""))
    return runs


if __name__ == "__main__":
    sys.exit(child_main())
