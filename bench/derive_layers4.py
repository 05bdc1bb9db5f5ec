"""Time deriving and rendering the layers of issue 4 (conv, pooling, recurrent, attention,
graph). Budgets: LSTM cell < 10 s, Conv2d with stride and padding < 5 s, and this issue's
table together with the dense layers' (bench/derive_layers.py) < 60 s on one core.

Run: ``python bench/derive_layers4.py`` (one process). Each layer is derived with symbolic
sizes and rendered to LaTeX and Markdown by ``reports``. Prints one line per item and the
total; exits non-zero if a budget is exceeded.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from derive.tensor.catalog4 import layers4  # noqa: E402
from derive.tensor.conv import Conv2d  # noqa: E402

BUDGETS = {"lstm_cell": 10.0, "conv2d(stride=2, padding=1)": 5.0}
TOTAL_BUDGET = 60.0  # with the dense layers: add bench/derive_layers.py's total


def render(d):
    import reports

    reports.render(d, "tex")
    reports.render(d, "md")


def items():
    yield "conv2d(stride=2, padding=1)", lambda: Conv2d(stride=2, padding=1).derive()
    for name, cls in layers4().items():
        yield name, lambda cls=cls: cls().derive()


def main():
    total, over = 0.0, []
    print(f"{'item':<30} {'derive s':>9} {'render s':>9} {'total s':>8}")
    for name, make in items():
        t0 = time.perf_counter()
        d = make()
        t1 = time.perf_counter()
        render(d)
        t2 = time.perf_counter()
        total += t2 - t0
        if t2 - t0 > BUDGETS.get(name, float("inf")):
            over.append(name)
        print(f"{name:<30} {t1 - t0:9.3f} {t2 - t1:9.3f} {t2 - t0:8.3f}")
    print(f"{'TOTAL':<30} {'':>9} {'':>9} {total:8.3f}")
    ok = not over and total < TOTAL_BUDGET
    print("within budget" if ok else f"OVER BUDGET: {', '.join(over) or 'total'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
