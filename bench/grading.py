"""Grading speed on Dask: ``derivekit grade`` single-process vs a LocalCluster of 1 and 2.

Run (one line; prints a Markdown section, and with ``--results`` puts it in RESULTS.md)::

    python bench/grading.py --n 10000 --results bench/RESULTS.md

The exam is one 6-step problem (a scalar graph; the student fills in four adjoints and
two gradients) with drawn parameters giving 24 distinct variants (an exam's usual small
integer ranges; each worker solves each variant once and caches it, so a run costs about
``variants x solve + N x grade`` per worker: both are printed). N
synthetic submissions are written to a temporary folder: most correct, every 5th with a
wrong first adjoint (the later steps are then judged with the error carried forward),
every 7th with a blank left out. Feedback is Markdown only (``formats=("md",)``): a
PDF per student is a pdflatex run each, which measures TeX, not grading.

Each mode runs in a fresh Python process (so its peak RSS is its own): the client's peak
(ru_maxrss) and every worker's (psutil, sampled every 0.2 s) are reported. Memory is
flat when the 2-worker peaks at N/5 and at N are about the same: the client keeps a
bounded number of batches in flight and never holds the class's text.

Goals (issue 18): >= 1.7x from 1 to 2 workers, >= 2,000 submissions/minute with 2.
Submissions/minute is over the whole run (cluster start, exam load and scores.csv
included); "grading/min" leaves out the start (first batch sent -> last written).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

EXAM = """\
title: "Bench: a 6-step graph"
seed: 7
problems:
  - title: A six-node graph
    points: 6
    prompt: "Backpropagate from $y$ through p, q, s, r, t."
    params:
      w1: {choice: [1, 2, 3]}
      w2: {choice: [-1, 2]}
      x1: {choice: [-1, 2]}
      x2: {choice: [1]}
      b: {choice: [-1, 1]}
    fill: [adjoint t, adjoint r, adjoint s, adjoint q, gradient w1, gradient w2]
    problem:
      inputs: [x1, x2]
      params: [w1, w2, b]
      nodes: {p: w1*x1, q: w2*x2, s: p + q + b, r: s*s, t: r*w1, y: t + q}
      output: y
      wrt: [w1, w2]
      values: {w1: "${w1}", w2: "${w2}", x1: "${x1}", x2: "${x2}", b: "${b}"}
"""
SECTION = "## Grading a class on Dask (bench/grading.py)"


def make_class(folder, n):
    """The exam file and ``n`` submissions in ``folder``; the number of distinct variants."""
    import yaml

    from derive.exam.cluster import load_exam_text
    from derive.exam.numbers import text

    exam_path = os.path.join(folder, "exam6.yaml")
    with open(exam_path, "w", encoding="utf-8") as fh:
        fh.write(EXAM)
    exam = load_exam_text(EXAM, "exam6.yaml", folder, key="bench")
    subs = os.path.join(folder, "submissions")
    os.makedirs(subs, exist_ok=True)
    for i in range(n):
        sid = f"b{i:05d}"
        blanks = exam.variant(sid).problems[0].blanks
        answers = {b.entry: text(b.answer) for b in blanks}
        if i % 5 == 1:
            answers["adjoint t"] = "7"          # carried forward through the rest
        if i % 7 == 3:
            answers.pop("gradient w2")
        with open(os.path.join(subs, f"{sid}.yaml"), "w", encoding="utf-8") as fh:
            yaml.safe_dump({"student": sid, "answers": {1: answers}}, fh)
    return exam_path, subs, exam.misses


# -- one mode, in its own process ------------------------------------------------------------
class _Peaks(threading.Thread):
    """Samples the RSS of this process's descendants (the Dask workers)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peaks = {}
        self.stop = threading.Event()

    def run(self):
        try:
            import psutil
        except ImportError:
            return
        me = psutil.Process()
        while not self.stop.wait(0.2):
            for child in me.children(recursive=True):
                try:
                    rss = child.memory_info().rss
                except psutil.Error:
                    continue
                self.peaks[child.pid] = max(self.peaks.get(child.pid, 0), rss)


def child(mode, exam_path, subs, out):
    from derive.exam.run import grade_class

    workers = 0 if mode == "single" else int(mode)
    peaks = _Peaks()
    peaks.start()
    first = []
    run = grade_class(exam_path, subs, out, workers=workers, formats=("md",),
                      progress=False,
                      on_result=lambda r: first or first.append(time.perf_counter()))
    end = time.perf_counter()
    peaks.stop.set()
    peaks.join()
    workers_mb = [v / 2**20 for v in peaks.peaks.values()]  # the largest is a worker
    print(json.dumps({
        "mode": mode, "graded": run.graded, "seconds": run.seconds, "batch": run.batch,
        "first_result_s": (first[0] - (end - run.seconds)) if first else None,
        "client_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "client_cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
        "worker_mb": max(workers_mb) if workers_mb else None,
        "errors": len(run.errors)}))


def overhead(tasks=400):
    """Seconds of one Dask task that does nothing with a small payload, on 1 worker."""
    from derive.exam.cluster import connect
    from distributed import as_completed

    payload = EXAM * 2
    with connect(workers=1) as client:
        client.submit(len, payload, pure=False).result()   # the worker is up
        start = time.perf_counter()
        futures = as_completed([client.submit(len, payload, pure=False)
                                for _ in range(3)], loop=client.loop)
        sent = 3
        for f in futures:
            f.result()
            if sent < tasks:
                futures.add(client.submit(len, payload, pure=False))
                sent += 1
        print(json.dumps({"per_task_s": (time.perf_counter() - start) / tasks}))


def run_mode(mode, exam_path, subs, tmp, scores=True):
    out = tempfile.mkdtemp(prefix=f"marks-{mode}-", dir=tmp)
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", mode,
                           exam_path, subs, out], capture_output=True, text=True,
                          cwd=ROOT, check=False)
    if done.returncode:
        sys.exit(f"bench/grading.py: mode {mode} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not scores:
        return result
    with open(os.path.join(out, "scores.csv"), encoding="utf-8") as fh:
        result["scores"] = fh.read()
    shutil.rmtree(out, ignore_errors=True)
    return result


# -- the table ---------------------------------------------------------------------------------
def _per_min(r, n):
    return 60 * n / r["seconds"]


def table(results, n, small, variants, load, seconds_make, per_task):
    lines = [SECTION, "",
             f"Command: `python bench/grading.py --n {n}`  ",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}; load average before the run: {load:.2f} "
             "(1 min).  ",
             f"Class: {n:,} submissions of one 6-step problem ({variants} distinct variants "
             f"drawn), every 5th with a wrong first adjoint, every 7th with a blank left "
             f"out; feedback.md + results.json + record.json per student (no PDF). "
             f"Writing the class took {seconds_make:.0f} s.", "",
             "| mode | submissions | batch | wall (s) | submissions/min | first result (s) "
             "| client peak RSS (MB) | worker peak RSS (MB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, r in results:
        count = small if key.endswith("small") else n
        first = f"{r['first_result_s']:.1f}" if r["first_result_s"] is not None else ""
        worker = f"{r['worker_mb']:.0f}" if r["worker_mb"] else "(in the client)"
        name = {"single": "single process (workers=0)", "1": "LocalCluster, 1 worker",
                "2": "LocalCluster, 2 workers"}[r["mode"]]
        lines.append(f"| {name} | {count:,} | {r['batch']} | {r['seconds']:.1f} | "
                     f"{_per_min(r, count):,.0f} | {first} | {r['client_mb']:.0f} | {worker} |")
    by = dict(results)
    if "1" in by and "2" in by:
        speedup = by["1"]["seconds"] / by["2"]["seconds"]
        lines += ["", f"Speed-up from 1 to 2 workers: {speedup:.2f}x (goal >= 1.7x). "
                      f"2 workers: {_per_min(by['2'], n):,.0f} submissions/minute "
                      "(goal >= 2,000)."]
    if "1" in by and "2" in by and by["1"]["first_result_s"] and by["2"]["first_result_s"]:
        steady = {k: (n - by[k]["batch"]) / (by[k]["seconds"] - by[k]["first_result_s"])
                  for k in ("1", "2")}
        lines.append(f"After the first result (cluster start, imports and the first "
                     f"variants excluded): 1 worker {60 * steady['1']:,.0f}/min, 2 workers "
                     f"{60 * steady['2']:,.0f}/min, speed-up {steady['2'] / steady['1']:.2f}x. "
                     f"CPU time of the client process (the scheduler, reading submissions, "
                     f"writing every file): {by['1'].get('client_cpu_s', 0):.0f} s with 1 "
                     f"worker, {by['2'].get('client_cpu_s', 0):.0f} s with 2, on a machine of "
                     f"{os.cpu_count()} cores.")
    if "2" in by and "2-small" in by:
        a, b = by["2-small"], by["2"]
        lines.append(f"Memory, 2 workers, {small:,} vs {n:,} submissions: client "
                     f"{a['client_mb']:.0f} vs {b['client_mb']:.0f} MB, worker "
                     f"{a['worker_mb'] or 0:.0f} vs {b['worker_mb'] or 0:.0f} MB.")
    if "1" in by:
        r = by["1"]
        grading = (r["seconds"] - r["first_result_s"]) / max(1, n - r["batch"])
        lines.append(f"Per-task overhead (an empty Dask task, 1 worker): {1000 * per_task:.1f} "
                     f"ms, against about {1000 * grading:.0f} ms of grading per submission "
                     f"(1 worker, after its first batch) x {r['batch']} per task: "
                     f"{100 * per_task / (per_task + r['batch'] * grading):.2f}% of a "
                     f"task's time.")
    same = {r["scores"] for key, r in results if not key.endswith("small")}
    lines.append(f"scores.csv identical across the modes: {'yes' if len(same) == 1 else 'NO'}.")
    return "\n".join(lines) + "\n"


def put_section(path, text):
    """Replace (or append) this bench's section of RESULTS.md."""
    old = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    start = old.find(SECTION)
    if start >= 0:
        end = old.find("\n## ", start + len(SECTION))
        old = old[:start] + (old[end + 1:] if end >= 0 else "")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(old.rstrip() + "\n\n" + text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10_000, help="submissions (default 10,000)")
    p.add_argument("--modes", default="single,1,2", help="of single, 1, 2 (workers)")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the 2-worker run at n/5 (the memory-flat check)")
    p.add_argument("--results", help="put the Markdown section into this file")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return overhead() if args.child[0] == "overhead" else child(*args.child)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="derivekit-bench-grading-") as tmp:
        start = time.perf_counter()
        exam_path, subs, variants = make_class(tmp, args.n)
        made = time.perf_counter() - start
        print(f"wrote {args.n:,} submissions ({variants} variants) in {made:.0f} s",
              file=sys.stderr)
        results = []
        for mode in args.modes.split(","):
            results.append((mode, run_mode(mode, exam_path, subs, tmp)))
            print(f"{mode}: {results[-1][1]['seconds']:.1f} s", file=sys.stderr)
        per_task = run_mode("overhead", exam_path, subs, tmp, scores=False)["per_task_s"]
        small = max(1, args.n // 5)
        if not args.no_memory and "2" in args.modes.split(","):
            part = os.path.join(tmp, "small")
            os.makedirs(part)
            for name in sorted(os.listdir(subs))[:small]:
                os.link(os.path.join(subs, name), os.path.join(part, name))
            results.append(("2-small", run_mode("2", exam_path, part, tmp)))
    text = table(results, args.n, small, variants, load, made, per_task)
    print(text)
    if args.results:
        put_section(args.results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
