"""Cold and warm compile times of the bench workloads, each measurement a fresh process.

For each workload (``kernels.bench.WORKLOADS``: the same networks ``derivekit bench``
trains) a child process imports derive and kernels, compiles the workload's network
(``kernels.compile``: derive, generate the kernel module) and runs one epoch (numba
compiles the kernel's functions here). Three states of the caches:

* ``first``: nothing cached at all, numba's cache of :mod:`kernels.runtime` included
  (``NUMBA_CACHE_DIR`` set to an empty folder): the first kernel on a new install;
* ``cold``: an empty kernel cache (``DERIVEKIT_CACHE``), the runtime's shared BLAS
  helpers already compiled (as after any earlier kernel on the machine): a new network;
* ``warm``: the kernel cache the cold run left: the same network again in a new process.

The workloads are interleaved in each round (a load that drifts slows all alike); the
median over ``--rounds`` rounds is reported, with the load average before and after.

Usage: ``python bench/compile_speed.py [--only W1,W5,W6] [--rounds 3]``; prints Markdown.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import derive, kernels
from kernels import bench
t1 = time.perf_counter()
w = bench.WORKLOADS[sys.argv[1]]
X, y = w.data()
params = bench.initial_params(w)
t2 = time.perf_counter()
model = bench.derivekit_model(w, params)
t3 = time.perf_counter()
order = np.arange(len(X), dtype=np.int64)
steps = -(-len(order) // w.batch)
model.run_epoch(X, y, order, np.full(steps, w.lr), w.batch)
t4 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "compile": t3 - t2, "first_epoch": t4 - t3}))
"""

STATES = ("first", "cold", "warm")


def child(workload, env):
    r = subprocess.run([sys.executable, "-c", CHILD, workload], env=env, cwd=ROOT,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{workload}: the child failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def fill_runtime_cache(workload, env):
    """One untimed run: numba's cache of the runtime helpers, as ``cold`` assumes."""
    child(workload, env)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="W1,W2,W4,W5,W6")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    base = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    load_before = os.getloadavg()[0]
    times = {(n, s): [] for n in names for s in STATES}
    with tempfile.TemporaryDirectory() as tmp:
        prime = os.path.join(tmp, "prime")
        for n in names:  # the runtime helpers compiled once, as on any used install
            fill_runtime_cache(n, {**base, "DERIVEKIT_CACHE": prime})
        for r in range(args.rounds):
            for n in names:
                kcache = os.path.join(tmp, f"k{r}{n}")
                ncache = os.path.join(tmp, f"n{r}{n}")
                first = child(n, {**base, "DERIVEKIT_CACHE": kcache + "f",
                                  "NUMBA_CACHE_DIR": ncache})
                cold = child(n, {**base, "DERIVEKIT_CACHE": kcache})
                warm = child(n, {**base, "DERIVEKIT_CACHE": kcache})
                for s, got in zip(STATES, (first, cold, warm)):
                    times[(n, s)].append(got)
                shutil.rmtree(ncache, ignore_errors=True)
    load_after = os.getloadavg()[0]

    def med(n, s, key):
        return statistics.median(t[key] for t in times[(n, s)])

    print(f"Fresh process per cell, median of {args.rounds} rounds (workloads interleaved); "
          f"load average {load_before:.2f} before, {load_after:.2f} after.\n")
    print("| workload | cache | imports (s) | derive + generate (s) | first epoch, numba "
          "compiles (s) | compile + first epoch (s) |")
    print("|---|---|---:|---:|---:|---:|")
    for n in names:
        for s in STATES:
            c, e = med(n, s, "compile"), med(n, s, "first_epoch")
            total = statistics.median(t["compile"] + t["first_epoch"] for t in times[(n, s)])
            print(f"| {n} | {s} | {med(n, s, 'imports'):.2f} | {c:.2f} | {e:.2f} | "
                  f"{total:.2f} |")


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"\n({time.perf_counter() - t:.0f} s)")
