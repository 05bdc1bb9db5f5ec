"""The long fuzz profile: many random cases, one worker process, a Markdown summary.

Run (with the generators of the pytest fuzz suite, tests/fuzzgen*.py)::

    nice -n 10 python bench/fuzz.py --scalar 10000 --tensor 1000 [--kernels 20]
        [--pairs 4] [--hostile 500] [--cli] [--seed 0] [--markdown fuzz.md]
        [--log results.jsonl]
    python bench/fuzz.py --from-log results.jsonl        # the summary again
    python bench/fuzz.py --only scalar:123 --seed 0     # one case again, in this process

``--scalar N`` runs N scalar-family cases: smooth random graphs (every documented
function, expression / nodes / problem file, exact and float values) against 40-digit
mpmath differences and torch, with every tenth case a point outside the real domain
(must be refused) and every tenth a kink (must follow the stated convention). ``--pairs
K`` sweeps every composition f(g(x)) of two unary functions at K exact points. ``--tensor
N`` runs random compositions (dense, conv, table rows) against finite differences and
torch, ``--kernels N`` compiles that many kernels against derive.evaluate, ``--hostile N``
sends hostile text through every reader and ``--cli`` runs the command-line cases.

Cases run in one worker process; each has TIME_LIMIT (10 s; kernels 120 s) inside the
worker, and the worker is killed and restarted if a case does not come back at all, so a
hung case cannot stall the run. Case ``kind:i`` is generated from the seed string
``"{seed}:{kind}:{i}"``, so ``--only`` reproduces it exactly.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mproc
import os
import platform
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
GRACE = 20.0  # seconds past the case's own limit before the worker is killed


# -- cases, in the worker ------------------------------------------------------------------
def _setup_worker(options):
    for path in (ROOT, TESTS):
        if path not in sys.path:
            sys.path.insert(0, path)
    import warnings

    warnings.simplefilter("ignore")
    if options.get("cache"):
        os.environ["DERIVEKIT_CACHE"] = options["cache"]


def run_case(kind, index, options):
    """The Outcome of case ``kind:index`` (generated from the seed, checked)."""
    import fuzzgen as fg
    import fuzzgen_hostile as fh
    import fuzzgen_scalar as fs
    import fuzzgen_special as fsp
    import fuzzgen_tensor as ftn
    import fuzzgen_terms as ft

    src = fg.RandomSource(f"{options['seed']}:{kind}:{index}")
    limit, torch = options["limit"], options["torch"]
    if kind == "scalar":
        require = ft.DOCUMENTED[index % len(ft.DOCUMENTED)] if index % 2 else None
        ops = [op.name for op in ft.OPS] if index % 10 == 3 else None
        return fs.check_scalar(fs.scalar_case(src, require=require, ops=ops), torch, limit)
    if kind == "ood":
        return fsp.check_out_of_domain(fsp.ood_case(src), limit)
    if kind == "kink":
        return fsp.check_kink(fsp.kink_case(src), limit)
    if kind == "pair":
        names = [op.name for op in ft.UNARY]
        pair = [names[index // len(names) % len(names)], names[index % len(names)]]
        case = fs.scalar_case(src, chain_of=pair, mode="exact", form="expression")
        return fs.check_scalar(case, torch, limit)
    if kind == "tensor":
        family = list(ftn.FAMILIES)[index % len(ftn.FAMILIES)]
        return ftn.check_tensor(ftn.tensor_case(src, family), torch, limit)
    if kind == "kernel":
        family = list(ftn.FAMILIES)[index % len(ftn.FAMILIES)]
        return ftn.check_kernel(ftn.tensor_case(src, family), max(limit, 120.0))
    if kind == "hostile":
        readers = list(fh.READERS)
        return fh.check_hostile(fh.hostile_case(src, readers[index % len(readers)]), limit)
    if kind == "cli":
        return fh.check_cli(fh.cli_cases()[index], limit)
    raise ValueError(f"unknown kind {kind!r}")


def worker(conn, options):
    _setup_worker(options)
    while True:
        task = conn.recv()
        if task is None:
            return
        kind, index = task
        try:
            out = run_case(kind, index, options)
            conn.send({"kind": out.kind, "status": out.status, "repro": out.repro,
                       "detail": out.detail, "seconds": out.seconds})
        except BaseException as exc:  # noqa: BLE001 -- a generator bug, reported as such
            conn.send({"kind": kind, "status": "error", "repro": f"{kind}:{index}",
                       "detail": f"the fuzzer itself failed: {type(exc).__name__}: {exc}",
                       "seconds": 0.0})


class Worker:
    """One worker process; restarted when a case does not come back in time."""

    def __init__(self, options):
        self.options, self.ctx, self.proc = options, mproc.get_context("spawn"), None
        self.restarts = 0

    def start(self):
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=worker, args=(child, self.options), daemon=True)
        self.proc.start()

    def run(self, kind, index, timeout):
        if self.proc is None or not self.proc.is_alive():
            self.start()
        self.conn.send((kind, index))
        start = time.perf_counter()
        if self.conn.poll(timeout):
            try:
                return self.conn.recv()
            except (EOFError, OSError):  # the worker died (killed by the OOM killer, ...)
                pass
        self.kill()
        return {"kind": kind, "status": "slow", "repro": f"{kind}:{index} (bench/fuzz.py "
                f"--only {kind}:{index} --seed {self.options['seed']})",
                "detail": f"killed after {time.perf_counter() - start:.0f} s (hung or died)",
                "seconds": time.perf_counter() - start}

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
            self.proc = None
            self.restarts += 1

    def stop(self):
        if self.proc is not None and self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(10)


# -- the run ---------------------------------------------------------------------------------
def tasks(args):
    out = []
    for i in range(args.scalar):
        out.append(("ood" if i % 10 == 0 else "kink" if i % 10 == 5 else "scalar", i))
    sys.path.insert(0, TESTS)
    from fuzzgen_terms import UNARY

    out += [("pair", i) for i in range(args.pairs * len(UNARY) ** 2)]
    out += [("tensor", i) for i in range(args.tensor)]
    out += [("hostile", i) for i in range(args.hostile)]
    from fuzzgen_hostile import cli_cases

    out += [("cli", i) for i in range(len(cli_cases()) if args.cli else 0)]
    out += [("kernel", i) for i in range(args.kernels)]
    return out


def run(args):
    import shutil
    import tempfile

    cache = tempfile.mkdtemp(prefix="derivekit-fuzz-cache-")  # kernels built by this run
    options = {"seed": args.seed, "limit": args.limit, "torch": not args.no_torch,
               "cache": cache}
    w, results = Worker(options), []
    todo = tasks(args)
    start = time.perf_counter()
    log = open(args.log, "w", encoding="utf-8") if args.log else None
    try:
        for n, (kind, index) in enumerate(todo, 1):
            timeout = (max(args.limit, 120.0) if kind == "kernel" else args.limit) + GRACE
            r = w.run(kind, index, timeout)
            r["case"] = f"{kind}:{index}"
            results.append(r)
            if log:
                log.write(json.dumps(r) + "\n")
                log.flush()
            if n % args.progress == 0 or n == len(todo):
                _progress(n, len(todo), results, time.perf_counter() - start)
    finally:
        w.stop()
        shutil.rmtree(cache, ignore_errors=True)
        if log:
            log.close()
    return results, time.perf_counter() - start, w.restarts


def _ok(r):
    return r["status"] == "ok"


def _progress(n, total, results, seconds):
    c = Counter(r["status"] for r in results)
    print(f"[{seconds:7.0f} s] {n}/{total} " + ", ".join(f"{k} {v}" for k, v in sorted(
        c.items())), file=sys.stderr, flush=True)


# -- the summary -----------------------------------------------------------------------------
KIND_NAMES = {"scalar": "scalar graphs", "ood": "out-of-domain points", "kink": "kinks",
              "pair": "f(g(x)) sweep", "tensor": "tensor compositions",
              "kernel": "compiled kernels", "hostile": "hostile text", "cli": "command line"}


def failure_class(r):
    """Failures that differ only in numbers, names and quoted text are one class: the
    detail up to its first number, brace or value, with names and quotes blanked."""
    detail = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", r["detail"])
    detail = re.sub(r"d/d\w+", "d/dX", detail)
    detail = re.sub(r"(wrt|node|tensor) \S+", r"\1 X", detail)
    detail = re.split(r"answered instead of refusing|\(nodes:", detail)[0]
    cut = re.search(r"[-+]?\d|\{|\bvalue\b|\bgot\b", detail[12:])
    detail = detail[:12 + cut.start()] if cut else detail
    return r["kind"], r["status"], detail.strip(" :,(")[:80]


def summary(results, seconds, restarts, args):
    lines = [f"## Fuzzing: `python bench/fuzz.py {' '.join(args.argv)}`", "",
             _machine(seconds, restarts), "",
             "| kind | cases | ok | of which refused (expected) | mismatches | crashes | "
             "refused (valid input) | slow (> limit) | slowest case (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    by_kind = defaultdict(list)
    for r in results:
        by_kind[r["case"].split(":")[0]].append(r)
    for kind, rs in by_kind.items():
        c = Counter(r["status"] for r in rs)
        expected = sum(1 for r in rs if _ok(r) and r["detail"].startswith("refused"))
        slowest = max(rs, key=lambda r: r["seconds"])
        lines.append(f"| {KIND_NAMES.get(kind, kind)} | {len(rs)} | {c['ok']} | {expected} | "
                     f"{c['mismatch'] + c['oracle']} | {c['crash'] + c['error']} | "
                     f"{c['refused']} | {c['slow']} | {slowest['seconds']:.2f} |")
    lines += ["", _slowest(results), ""] + _classes(results)
    return "\n".join(lines) + "\n"


def _machine(seconds, restarts):
    commit = _git("rev-parse", "--short", "HEAD")
    changed = _git("status", "--porcelain", "--", "derive", "kernels", "reports")
    dirty = " (with uncommitted changes)" if changed else ""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"Code: {commit}{dirty}. Machine: {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, load {load:.2f}. One worker process; "
            f"{seconds:.0f} s in all; worker restarts after a hung case: {restarts}.")


def _git(*args):
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def _slowest(results):
    r = max(results, key=lambda r: r["seconds"])
    return f"Slowest case: {r['seconds']:.2f} s, `{r['case']}`: `{_short(r['repro'])}`."


def _classes(results):
    groups = defaultdict(list)
    for r in results:
        if not _ok(r):
            groups[failure_class(r)].append(r)
    if not groups:
        return ["No failures."]
    n = sum(len(g) for g in groups.values())
    out = [f"{n} failure{'s' * (n != 1)} in {len(groups)} class{'es' * (len(groups) != 1)} "
           "(each with its shortest reproduction):", ""]
    for (kind, status, _), rs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        r = min(rs, key=lambda r: len(r["repro"]))
        out.append(f"- **{status}** ({KIND_NAMES.get(kind, kind)}, {len(rs)}x, "
                   f"`{r['case']}`): `{_short(r['repro'])}` — {_short(r['detail'], 300)}")
    return out


def _short(text, n=240):
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n] + " …"


# -- entry --------------------------------------------------------------------------------------
def parse(argv):
    p = argparse.ArgumentParser(description="The long fuzz profile of derivekit.")
    p.add_argument("--scalar", type=int, default=0, help="scalar-family cases")
    p.add_argument("--pairs", type=int, default=0, help="points per f(g(x)) pair")
    p.add_argument("--tensor", type=int, default=0, help="tensor compositions")
    p.add_argument("--kernels", type=int, default=0, help="compiled kernels")
    p.add_argument("--hostile", type=int, default=0, help="hostile texts (in-process)")
    p.add_argument("--cli", action="store_true", help="the command-line cases")
    p.add_argument("--seed", default="0")
    p.add_argument("--limit", type=float, default=10.0, help="seconds per case")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--markdown", help="also write the summary to this file")
    p.add_argument("--log", help="write every case's result as a JSON line to this file")
    p.add_argument("--from-log", help="only summarise the results of an earlier --log")
    p.add_argument("--progress", type=int, default=100, help="report every N cases")
    p.add_argument("--only", help="run one case KIND:INDEX here and print it")
    args = p.parse_args(argv)
    args.argv = argv
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.only:
        options = {"seed": args.seed, "limit": args.limit, "torch": not args.no_torch}
        _setup_worker(options)
        kind, index = args.only.split(":")
        out = run_case(kind, int(index), options)
        print(out.report())
        return 0 if out.ok else 1
    if args.from_log:
        with open(args.from_log, encoding="utf-8") as fh:
            results = [json.loads(line) for line in fh]
        seconds, restarts = sum(r["seconds"] for r in results), 0
    else:
        results, seconds, restarts = run(args)
    text = summary(results, seconds, restarts, args)
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write(text)
    return 0 if all(_ok(r) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
