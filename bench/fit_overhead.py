"""What ``kernels.fit`` adds to the compiled epoch (the target: at most 5 %).

``python bench/fit_overhead.py [--only W1,W4] [--epochs 40] [--rounds 15] [--threads 1]``

One process, one model per workload (the bench's network, data and initial parameters,
float32). Each round times, in a rotating order:

- *bare*: the compiled epoch as the bench calls it, ``model.run_epoch(X, y, order, lrs,
  batch)`` with the orders and rates made before the clock starts;
- *run_epoch + drawing the epoch's order*: the same, plus the seeded shuffle fit makes
  for every epoch (``kernels.fit.epoch_order(N, seed, epoch)``): the part of
  fit's overhead that any loop over epochs with a fresh order pays;
- *fit, progress=False* and *fit, progress=True* (tqdm writing to ``/dev/null``, a
  non-TTY file, as in a log or CI): one ``kernels.fit(model, (X, y), epochs=E)`` call
  with no validation split, as ``derivekit bench`` times fit (its data is the training
  split only);
- with ``--validation``, also fit with the digits validation split (360 samples: fit
  evaluates the model on them after every epoch).

Each epoch is timed on its own: the bare ones around ``run_epoch``, fit's from one
callback to the next (the whole cycle: snapshot, order, compiled epoch, finiteness
test, record, progress bar, callback call). A row gives the median and the 25th
percentile of all its epochs (over every round; the percentile is the better estimate
when other jobs preempt this one: a preempted epoch is 4-8 ms longer), and the whole
call divided by its epochs (fit's per-call setup included: data checks, the bar). Every
overhead is against the bare row of the same workload. The machine is shared: the load
average is printed, before and after, and only the interleaving makes rows comparable.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="W1,W4")
    p.add_argument("--epochs", type=int, default=40, help="epochs per timed call")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--validation", action="store_true",
                   help="also time fit with the digits validation split")
    args = p.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cores[-args.threads:])

    import numpy as np
    from threadpoolctl import threadpool_limits

    import kernels
    from kernels import bench, data
    from kernels.fit import epoch_order

    limits = threadpool_limits(args.threads)  # noqa: F841 - kept for the whole run
    load0 = os.getloadavg()
    sink = open(os.devnull, "w")
    rows = []
    for wname in [n.strip().upper() for n in args.only.split(",")]:
        w = bench.WORKLOADS[wname]
        X, y = w.data()
        X, y = np.ascontiguousarray(X), np.ascontiguousarray(y, dtype=np.int64)
        ds = data.digits(images=w.model["kind"] == "cnn", dtype=np.float32)
        model = bench.derivekit_model(w, bench.initial_params(w))
        E = args.epochs
        steps = -(-len(X) // w.batch)
        lrs = np.full(steps, w.lr)
        orders = [epoch_order(len(X), 0, e) for e in range(E)]

        clock = time.perf_counter

        def bare():
            ts = []
            for order in orders:
                t0 = clock()
                model.run_epoch(X, y, order, lrs, w.batch)
                ts.append(clock() - t0)
            return ts

        def bare_order():  # the bare epoch plus drawing its order, as fit does
            ts = []
            for e in range(E):
                t0 = clock()
                order = epoch_order(len(X), 0, e)
                model.run_epoch(X, y, order, lrs, w.batch)
                ts.append(clock() - t0)
            return ts

        def fit(progress, validation=None):
            def run():  # an epoch: from one callback to the next (the whole cycle)
                marks = []
                stderr, sys.stderr = sys.stderr, sink  # tqdm.auto writes to sys.stderr
                try:
                    kernels.fit(model, (X, y), epochs=E, batch_size=w.batch,
                                progress=progress, validation=validation,
                                callback=lambda m, r: marks.append(clock()))
                finally:
                    sys.stderr = stderr
                return list(np.diff(marks))
            return run

        variants = {"bare compiled epoch (run_epoch)": bare,
                    "run_epoch + drawing the epoch's order": bare_order,
                    "fit, progress=False": fit(False),
                    "fit, progress=True (non-TTY)": fit(True)}
        if args.validation:
            variants["fit, progress=False, validation (360)"] = fit(False, (ds.X_val, ds.y_val))
        epochs = {k: [] for k in variants}  # every epoch's time
        calls = {k: [] for k in variants}  # whole call / E: fit's per-call setup included
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for run in variants.values():  # warm-up: compile, import tqdm
                run()
            names = list(variants)
            for r in range(args.rounds):
                for k in names[r % len(names):] + names[:r % len(names)]:
                    t0 = clock()
                    epochs[k] += variants[k]()
                    calls[k].append((clock() - t0) / E)
        q = {k: (statistics.median(v), float(np.percentile(v, 25)), statistics.median(calls[k]))
             for k, v in epochs.items()}
        for k in names:
            rows.append((wname, k, *(1e3 * x for x in q[k]),
                         *(100 * (x / b - 1) for x, b in zip(q[k], q[names[0]]))))
        print(f"{wname} done", file=sys.stderr)
    load1 = os.getloadavg()
    print(f"Command: `python bench/fit_overhead.py {' '.join(argv or sys.argv[1:])}`  ")
    print(f"{args.rounds} rounds x {args.epochs} epochs per variant, interleaved; "
          f"{args.threads} thread(s), pinned; load average (1, 5, 15 min) "
          f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} before, "
          f"{load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} after (2 cores, shared).\n")
    print("| workload | what | median ms/epoch | overhead | p25 ms/epoch | overhead (p25) "
          "| whole call / epochs (ms) | overhead (whole call) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for wname, k, med, p25, call, o_med, o_p25, o_call in rows:
        print(f"| {wname} | {k} | {med:.3f} | {o_med:+.1f} % | {p25:.3f} | {o_p25:+.1f} % | "
              f"{call:.3f} | {o_call:+.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
