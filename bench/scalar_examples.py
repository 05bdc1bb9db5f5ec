"""Issue 2's speed check: each scalar example derives and renders to .md and .json.

Run: ``taskset -c 0 python bench/scalar_examples.py`` (one core). Prints seconds per
example, cold (first in a fresh process, imports excluded) and warm (median of 5).
Target: under 2 s each.
"""
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import derive as dv  # noqa: E402
import reports  # noqa: E402

EXAMPLES = ["rnn.yaml", "decompose.yaml", "bce_sigmoid.yaml", "mlp_2_2_1.yaml"]


def once(path):
    start = time.perf_counter()
    derivations = dv.solve(path)
    reports.render(derivations, "md")
    reports.render(derivations, "json")
    return time.perf_counter() - start


def main():
    print(f"{'example':<20} {'cold s':>8} {'warm s (median of 5)':>22}")
    worst = 0.0
    for name in EXAMPLES:
        path = os.path.join(ROOT, "examples", name)
        cold = once(path)
        warm = statistics.median(once(path) for _ in range(5))
        worst = max(worst, cold, warm)
        print(f"{name:<20} {cold:>8.3f} {warm:>22.3f}")
    print(f"worst: {worst:.3f} s (target < 2 s)")
    return 0 if worst < 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
