"""How long an LSTM over T steps takes to derive and render, and to compile cold.

Each measurement is a fresh process (imports included), median of ``--repeats``:

* ``derive + render``: ``derivekit layer lstm_seq -p steps=T -p output=last -o F`` for
  F = .tex and .pdf (the PDF adds pdflatex);
* ``compile cold``: ``kernels.compile`` of LSTM(d=8, h=32, T) -> Linear -> softmax CE
  (Adam, float32) with an empty kernel cache (derive + generate + numba), then the first
  epoch on 256 sequences;
* ``compile warm``: the same in a new process with the cache the cold run left.

Usage: ``python bench/sequence_speed.py [--steps 20] [--repeats 3]``; prints a Markdown
table (and the load average, since other jobs slow every number alike).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

COMPILE = r"""
import sys, time
t0 = time.perf_counter()
import numpy as np
import derive as dv, kernels
from derive.layers.sequences import LSTM
T = int(sys.argv[1])
net = dv.Sequential(LSTM(8, 32, steps=T, output="last", h0="zeros"), dv.Linear(32, 4),
                    loss=dv.SoftmaxCrossEntropy(), input_shape=(T, 8))
model = kernels.compile(net, dtype="float32", optimizer="adam", lr=1e-2)
t1 = time.perf_counter()
rng = np.random.default_rng(0)
X = rng.normal(size=(256, T, 8)).astype(np.float32)
y = rng.integers(0, 4, size=256)
model.run_epoch(X, y, np.arange(256), np.full(8, 1e-2), 32)
t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f}")
"""


def timed(cmd, env=None):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    T, rows = args.steps, []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as out:
        for suffix in (".tex", ".pdf"):
            cmd = ["derivekit", "layer", "lstm_seq", "-p", f"steps={T}", "-p", "output=last",
                   "-o", os.path.join(out, "lstm" + suffix)]
            times = [timed(cmd) for _ in range(args.repeats)]
            rows.append((f"derive + render to {suffix[1:]}", statistics.median(times), times))
        cold, warm, first = [], [], []
        for _ in range(args.repeats):
            cache = tempfile.mkdtemp(dir=out)
            env = {**os.environ, "DERIVEKIT_CACHE": cache}
            for into in (cold, warm):
                r = subprocess.run([sys.executable, "-c", COMPILE, str(T)], check=True,
                                   env=env, capture_output=True, text=True)
                compile_s, epoch_s = map(float, r.stdout.split()[-2:])
                into.append(compile_s)
                if into is cold:
                    first.append(epoch_s)
        rows.append(("compile cold (import, derive, generate, numba)", statistics.median(cold),
                     cold))
        rows.append(("first epoch after it (256 sequences, batch 32)",
                      statistics.median(first), first))
        rows.append(("compile warm (a new process, the cache filled)", statistics.median(warm),
                     warm))
    print(f"LSTM over T = {T} steps (d = 8, h = 32); fresh process each, median of "
          f"{args.repeats}; load average before: {load:.2f}\n")
    print("| what | median (s) | runs (s) |\n|---|---:|---|")
    for what, med, times in rows:
        print(f"| {what} | {med:.2f} | {', '.join(f'{t:.2f}' for t in times)} |")


if __name__ == "__main__":
    main()
