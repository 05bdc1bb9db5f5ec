"""Start-up time of the ``derivekit`` command: the median of fresh processes per command.

Run: ``python bench/startup.py [--runs 7] [--before CHECKOUT] [--script]``. Each command
runs ``--runs`` times in a fresh interpreter (``python -m derive ...``, or the installed
``derivekit`` script with ``--script``), after one untimed run that leaves the bytecode
caches warm (the child may write them even when PYTHONDONTWRITEBYTECODE is set, as an
installed package has them). ``--before`` also times another checkout of the code (say
``git archive OLD | tar -x -C /tmp/before``): its runs alternate with this checkout's,
so a load that drifts (a shared machine) slows both alike. The table goes to stdout, in
Markdown, with the heavy packages each command loads here (one more run, ``-X
importtime``). Targets: ``derivekit --help`` <= 0.3 s and a small ``derivekit grad``
<= 1 s. This is a measurement, not a test (tests/test_cli_edges.py checks the import
structure instead).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = (
    ("python -c pass (the floor)", None),
    ("derivekit --help", ["--help"]),
    ("derivekit --version", ["--version"]),
    ('derivekit grad "x*y" --at x=1,y=2', ["grad", "x*y", "--at", "x=1,y=2"]),
    ("derivekit layer (the list)", ["layer"]),
)
HEAVY = ("sympy", "numpy", "scipy", "numba", "matplotlib", "sklearn", "torch", "jax",
         "reports", "kernels")


def command_line(args, script):
    """The argv that runs ``derivekit args`` (or the bare interpreter when args is None)."""
    if args is None:
        return [sys.executable, "-c", "pass"]
    if script:
        found = shutil.which("derivekit")
        if found is None:
            raise SystemExit("startup.py: --script: no derivekit on PATH (pip install -e .)")
        return [found, *args]
    return [sys.executable, "-m", "derive", *args]


def child_env(root):
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its .pyc files
    return env


def time_once(argv, root):
    """(seconds, exit code) of one fresh run of ``argv`` with ``root``'s code."""
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=root, env=child_env(root), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0, done.returncode


def heavy_loaded(args, root):
    """The heavy top-level packages ``derivekit args`` imports (from ``-X importtime``)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "derive", *args],
                          cwd=root, env=child_env(root), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    loaded = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            loaded.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return ", ".join(name for name in HEAVY if name in loaded) or "-"


def measure(runs, roots, script):
    """{(label, root): [seconds per run] or "fails (exit N)"}; the roots alternate."""
    out = {}
    for label, args in COMMANDS:
        argv = command_line(args, script)
        live = []
        for root in roots:
            _, code = time_once(argv, root)  # untimed: bytecode and OS file caches warm
            if code == 0:
                live.append(root)
                out[label, root] = []
            else:  # e.g. an option an older checkout does not have
                out[label, root] = f"fails (exit {code})"
        for _ in range(runs):
            for root in live:
                out[label, root].append(time_once(argv, root)[0])
        shown = ", ".join(f"{statistics.median(out[label, r]):.3f} s" for r in live)
        print(f"  {label}: median {shown}", file=sys.stderr)
    return out


def table(results, runs, roots, script):
    how = "the derivekit script" if script else f"{os.path.basename(sys.executable)} -m derive"
    names = ["before", "after"] if len(roots) == 2 else ["median"]
    lines = [f"Median of {runs} fresh processes per command, in seconds ({how}; "
             + ("before: `" + roots[0] + "`, after: `" + roots[1] + "`, their runs "
                "alternating; " if len(roots) == 2 else "")
             + f"{platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f} after "
             "the run). Heavy packages: those the command loads (after).", "",
             "| command | " + " | ".join(f"{n} (s)" for n in names)
             + " | min-max (s) | heavy packages |",
             "|---|" + "---:|" * len(names) + "---:|---|"]
    for label, args in COMMANDS:
        cells, last = [], None
        for root in roots:
            value = results[label, root]
            cells.append(value if isinstance(value, str) else f"{statistics.median(value):.3f}")
            last = value
        spread = "-" if isinstance(last, str) else f"{min(last):.3f}-{max(last):.3f}"
        heavy = heavy_loaded(args, roots[-1]) if args else "-"
        lines.append(f"| `{label}` | " + " | ".join(cells) + f" | {spread} | {heavy} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python bench/startup.py",
                                description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7, help="timed runs per command (default 7)")
    p.add_argument("--before", help="another checkout, timed in alternation with this one")
    p.add_argument("--script", action="store_true",
                   help="time the installed derivekit script instead of python -m derive")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    roots = ([os.path.abspath(args.before)] if args.before else []) + [ROOT]
    print(table(measure(args.runs, roots, args.script), args.runs, roots, args.script))
    return 0


if __name__ == "__main__":
    sys.exit(main())
