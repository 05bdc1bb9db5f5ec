"""Time deriving and rendering every dense layer (issue 3: < 30 s total, none over 5 s).

Run: ``python bench/derive_layers.py`` (one process, one core is enough). Each layer is
derived with symbolic sizes by ``derive.tensor.layer_derivation`` and rendered to LaTeX
and Markdown by ``reports``; a small Sequential and the v1..v7 problem file are included.
Prints one line per item and the total; exits non-zero if a budget is exceeded.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import derive.tensor as dt  # noqa: E402
from derive.problem import solve  # noqa: E402

TOTAL_BUDGET, EACH_BUDGET = 30.0, 5.0


def render(d):
    try:
        import reports
    except ImportError:  # reports not installed: derivation time only
        return
    reports.render(d, "tex")
    reports.render(d, "md")


def items():
    for name in dt.LAYER_NAMES:
        yield name, lambda name=name: dt.layer_derivation(name)
    yield "sequential(mlp+bn+dropout)", lambda: dt.Sequential(
        dt.Linear(64, 128), dt.BatchNorm(128), dt.ReLU(), dt.Dropout(0.1),
        dt.Linear(128, 10), loss=dt.CrossEntropy()).derive()
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "tensor")
    for f in sorted(os.listdir(here)):
        if f.endswith(".yaml"):
            yield f, lambda f=f: solve(os.path.join(here, f))[0]


def main():
    total, worst = 0.0, ("", 0.0)
    print(f"{'item':<30} {'derive s':>9} {'render s':>9} {'total s':>8}")
    for name, make in items():
        t0 = time.perf_counter()
        d = make()
        t1 = time.perf_counter()
        render(d)
        t2 = time.perf_counter()
        total += t2 - t0
        worst = max(worst, (name, t2 - t0), key=lambda x: x[1])
        print(f"{name:<30} {t1 - t0:9.3f} {t2 - t1:9.3f} {t2 - t0:8.3f}")
    print(f"{'TOTAL':<30} {'':>9} {'':>9} {total:8.3f}   (slowest: {worst[0]} {worst[1]:.3f} s)")
    ok = total < TOTAL_BUDGET and worst[1] < EACH_BUDGET
    print("within budget" if ok else "OVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
