"""Time deriving and rendering every layer of the catalogue, and the tensor examples.

Budgets (one core): the dense layers (dense, activation, loss, penalty and norm groups of
the catalogue) < 30 s in total and none over 5 s; the LSTM cell < 10 s, Conv2d with
stride and padding < 5 s, and the whole table < 60 s.

Run: ``taskset -c 0 python bench/derive_layers.py``. Each layer is derived with symbolic
sizes by ``derive.layers.layer_derivation`` and rendered to LaTeX and Markdown by
``reports``; a small Sequential and every examples/tensor/*.yaml are included. Prints one
line per item and the totals; exits non-zero if a budget is exceeded.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import derive as dt  # noqa: E402
import reports  # noqa: E402
from derive.problem import solve  # noqa: E402
from derive.layers.catalog import CATALOGUE  # noqa: E402

EACH_BUDGET = 5.0
BUDGETS = {"lstm_cell": 10.0}
DENSE_TOTAL_BUDGET, TOTAL_BUDGET = 30.0, 60.0
DENSE_GROUPS = ("dense", "activation", "loss", "penalty", "norm")


def items():
    """(name, is_dense, make) for every item timed."""
    for name, entry in CATALOGUE.items():
        yield name, entry.group in DENSE_GROUPS, lambda name=name: dt.layer_derivation(name)
    yield "conv2d(stride=2, padding=1)", False, \
        lambda: dt.layer_derivation("conv2d", stride=2, padding=1)
    yield "sequential(mlp+bn+dropout)", True, lambda: dt.Sequential(
        dt.Linear(64, 128), dt.BatchNorm(128), dt.ReLU(), dt.Dropout(0.1),
        dt.Linear(128, 10), loss=dt.CrossEntropy()).derive()
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "tensor")
    for f in sorted(os.listdir(here)):
        if f.endswith(".yaml"):
            yield f, False, lambda f=f: solve(os.path.join(here, f))[0]


def main():
    total = dense = 0.0
    over = []
    print(f"{'item':<30} {'derive s':>9} {'render s':>9} {'total s':>8}")
    for name, is_dense, make in items():
        t0 = time.perf_counter()
        d = make()
        t1 = time.perf_counter()
        reports.render(d, "tex")
        reports.render(d, "md")
        t2 = time.perf_counter()
        total += t2 - t0
        dense += (t2 - t0) if is_dense else 0.0
        if t2 - t0 > BUDGETS.get(name, EACH_BUDGET):
            over.append(name)
        print(f"{name:<30} {t1 - t0:9.3f} {t2 - t1:9.3f} {t2 - t0:8.3f}")
    print(f"{'TOTAL (dense layers)':<30} {dense:28.3f}   budget {DENSE_TOTAL_BUDGET:.0f} s")
    print(f"{'TOTAL (everything)':<30} {total:28.3f}   budget {TOTAL_BUDGET:.0f} s")
    if dense > DENSE_TOTAL_BUDGET or total > TOTAL_BUDGET:
        over.append("total")
    print("within budget" if not over else f"OVER BUDGET: {', '.join(over)}")
    return 0 if not over else 1


if __name__ == "__main__":
    sys.exit(main())
