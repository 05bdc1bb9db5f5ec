"""Grading a class: ``derivekit grade EXAM.yaml SUBMISSIONS/ -o MARKS/``.

:func:`grade_class` marks every submission in a folder against its student's own
variant and writes ``MARKS/students/<id>/...`` and ``MARKS/scores.csv`` (the layout of
:mod:`derive.exam.marks`). The work runs on Dask (:mod:`derive.exam.cluster`): a
LocalCluster sized to the machine by default, an existing scheduler with
``scheduler="tcp://HOST:PORT"``, or in this process with ``workers=0`` (no Dask at all;
the reference the others are checked against).

How a run goes:

* the exam (and roster) are read and checked here first: bad input is one line and
  nothing is written;
* the client reads the submissions' bytes a batch at a time and sends text, never paths,
  so workers need not share a filesystem; a bounded number of batches is in flight, so
  memory does not grow with the class;
* results are written by the client as each batch arrives, one student at a time, each
  file atomically and ``record.json`` last; a task Dask reruns after losing a worker
  returns the same bytes, and each finished task is written once, so no student is
  lost or written twice;
* a rerun skips the files already graded (their ``record.json`` names them) unless
  ``force``; ``scores.csv`` is rebuilt from every record at the end.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field

from derive.errors import DeriveError, InputError

SUFFIXES = (".yaml", ".yml", ".csv")
MAX_BATCH = 50          # submissions per task; see bench/grading.py for the overhead
TASKS_PER_THREAD = 4    # batches per worker thread: small classes still spread out
IN_FLIGHT_PER_THREAD = 3


@dataclass
class GradeRun:
    """What a run did: counts, the lines to report, where scores.csv is."""

    out_dir: str
    submissions: int = 0
    graded: int = 0
    skipped: int = 0
    errors: list = field(default_factory=list)   # one line each: unreadable, not written
    scores: str = ""
    seconds: float = 0.0
    workers: int = 0
    batch: int = 0


def submission_files(path):
    """The submission files at ``path`` (a folder: its .yaml/.yml/.csv files, sorted by
    name; or one file)."""
    where = os.fspath(path)
    if os.path.isfile(where):
        return [where]
    if not os.path.isdir(where):
        raise InputError("no such folder or file of submissions", where=where)
    try:
        names = sorted(n for n in os.listdir(where)
                       if n.lower().endswith(SUFFIXES) and not n.startswith("."))
    except OSError as exc:
        raise InputError(f"cannot list the folder ({exc.strerror})", where=where) from None
    files = [os.path.join(where, n) for n in names if os.path.isfile(os.path.join(where, n))]
    if not files:
        raise InputError(f"no submissions here (files ending {', '.join(SUFFIXES)})",
                         where=where)
    return files


def batch_size(n, threads, batch=None):
    """Submissions per task: ``batch`` if given, else enough tasks for every thread to take
    several (a small class still spreads out), at most :data:`MAX_BATCH` each."""
    if batch is not None:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise InputError("expected a positive integer", where="--batch")
        return batch
    return max(1, min(MAX_BATCH, math.ceil(n / (threads * TASKS_PER_THREAD))))


def _read(path, limit):
    """A submission's bytes (at most ``limit``+1 of them: the grader refuses more), or
    ``None`` when the file cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read(limit + 1)
    except OSError:
        return None


def _batches(files, size, limit):
    """``[(name, bytes), ...]`` lists of ``size``, read only when asked for (streaming)."""
    for i in range(0, len(files), size):
        yield [(os.path.basename(f), _read(f, limit)) for f in files[i:i + size]]


def grade_class(exam_path, submissions, out_dir, *, scheduler=None, workers=None,
                force=False, batch=None, formats=("md", "pdf"), progress=True, roster=None,
                on_result=None, timeout=None):
    """Grade a folder of submissions into ``out_dir``; a :class:`GradeRun`.

    Parameters
    ----------
    exam_path : str
        The exam file (YAML) the papers were made from.
    submissions : str
        A folder of submission files (or one file).
    out_dir : str
        The marks folder (created; nothing in it is deleted).
    scheduler : str, optional
        ``tcp://HOST:PORT`` of a running Dask scheduler (workers started elsewhere).
    workers : int, optional
        Worker processes of the LocalCluster (default: the machine's cores); ``0`` grades
        in this process without Dask.
    force : bool
        Grade the files already graded again (by default a rerun skips them).
    batch : int, optional
        Submissions per task (default: see :func:`batch_size`).
    formats : tuple
        Feedback formats per student: ``"md"``, ``"pdf"`` (results.json always).
    roster : str, optional
        A roster CSV; a submission for an id not on it scores 0 with the reason.
    on_result : callable, optional
        Called with each record after its files are written.
    timeout : float, optional
        Seconds to reach ``scheduler`` (default :data:`cluster.CONNECT_TIMEOUT`).
    """
    from derive.exam import cluster
    from derive.exam.examfile import load_exam
    from derive.exam.grading import MAX_BYTES
    from derive.exam.roster import read_roster

    started = time.perf_counter()
    check_workers(scheduler, workers)
    unknown = [f for f in formats if f not in ("md", "pdf")]
    if unknown:
        raise InputError(f"unknown feedback format {unknown[0]!r} (md, pdf)",
                         where="--feedback")
    exam_text = _exam_text(exam_path)
    exam = load_exam(exam_path)  # every check before any work: bad input writes nothing
    roster_ids = read_roster(roster) if roster else None
    files = submission_files(submissions)
    _check_out(out_dir)
    previous = {} if force else _previous(out_dir)
    done = set(previous.values())
    todo = [f for f in files if os.path.basename(f) not in done]
    run = GradeRun(os.path.abspath(out_dir), len(files), skipped=len(files) - len(todo))
    args = (exam_text, os.path.basename(exam_path),
            os.path.dirname(os.path.abspath(exam_path)), roster_ids)
    writer = _Writer(out_dir, previous, run, on_result)
    try:
        if not todo:
            pass
        elif workers == 0 and not scheduler:
            run.workers, run.batch = 0, batch_size(len(todo), 1, batch)
            with _bar(len(todo), progress) as bar:
                for part in _batches(todo, run.batch, MAX_BYTES):
                    writer.write(cluster.grade_batch(*args, part, formats), bar)
        else:
            t = timeout if timeout is not None else cluster.CONNECT_TIMEOUT
            with cluster.connect(scheduler, workers, timeout=t) as client:
                _on_dask(client, args, exam, todo, formats, batch, MAX_BYTES, writer, run,
                         progress)
    except BaseException:
        if writer.any:  # what was graded before the failure is in scores.csv too
            _scores(out_dir, exam)
        raise
    run.scores = _scores(out_dir, exam)
    run.seconds = time.perf_counter() - started
    return run


def check_workers(scheduler, workers):
    """``--scheduler`` and ``--workers`` checked (one or neither; workers an int >= 0)."""
    if scheduler and workers is not None:
        raise InputError("give --scheduler (an existing cluster) or --workers (a local "
                         "one), not both", where="--workers")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 0):
        raise InputError("expected an integer >= 0 (0: in this process)", where="--workers")


def make_papers(exam_path, roster, out, fmt="pdf", *, scheduler=None, workers=None,
                batch=None, progress=True, timeout=None):
    """``derivekit exam``: every student's paper and key, the master key and variants.json
    in ``out``; the paths written.

    The variants are drawn, solved and rendered on Dask as grading is (a LocalCluster
    sized to the machine by default, ``scheduler`` for a running one, ``workers=0`` or a
    single variant in this process), a batch of students per task; the client writes
    every file once all are made, so a draw that fails (it names the student) leaves
    ``out`` as it was.
    """
    from derive.exam import cluster
    from derive.exam.examfile import load_exam
    from derive.exam.output import make_variants, rendered, write_rendered
    from derive.exam.roster import read_roster

    check_workers(scheduler, workers)
    exam_text = _exam_text(exam_path)
    exam = load_exam(exam_path)
    ids = read_roster(roster) if roster else [""]
    if (workers == 0 or len(ids) == 1 and workers is None) and not scheduler:
        results = [rendered(v, fmt) for v in make_variants(exam, ids)]
        return write_rendered(exam, results, out, fmt)
    args = (exam_text, os.path.basename(exam_path),
            os.path.dirname(os.path.abspath(exam_path)))
    t = timeout if timeout is not None else cluster.CONNECT_TIMEOUT
    with cluster.connect(scheduler, workers, timeout=t) as client:
        results = _papers_on_dask(client, args, ids, fmt, batch, progress)
    return write_rendered(exam, results, out, fmt)


def _papers_on_dask(client, args, ids, fmt, batch, progress):
    """Rendered variants of ``ids`` (in roster order), a bounded number of batches in
    flight; the first failed draw stops the run with its message."""
    from distributed import as_completed

    from derive.exam.cluster import paper_batch, worker_threads

    threads = worker_threads(client)
    size = batch_size(len(ids), threads, batch)
    parts = iter(range(0, len(ids), size))
    futures, starts, done = as_completed(loop=client.loop), {}, {}

    def submit():
        start = next(parts, None)
        if start is not None:
            f = client.submit(paper_batch, *args, ids[start:start + size], fmt, pure=False)
            starts[f.key] = start
            futures.add(f)

    for _ in range(max(2, IN_FLIGHT_PER_THREAD * threads)):
        submit()
    try:
        with _bar(len(ids), progress, "variants") as bar:
            for future in futures:
                got = future.result()
                future.release()
                if isinstance(got, tuple) and got[:1] == ("error",):
                    raise InputError(got[1])
                done[starts.pop(future.key)] = got
                bar.update(len(got))
                submit()
    except BaseException:
        for f in list(getattr(futures, "futures", ())):
            f.cancel()
        raise
    return [r for start in sorted(done) for r in done[start]]


def _on_dask(client, args, exam, todo, formats, batch, limit, writer, run, progress):
    """Keep a bounded number of batches in flight; write each as it completes.

    The students are split into one lane per worker, all students of a variant in one
    lane (the lanes about equal), and a lane's batches are asked of its worker (another
    may take them when it is gone): each worker then solves its own variants, where
    unrestricted batches had every worker solve nearly every variant."""
    from distributed import as_completed

    from derive.exam.cluster import grade_batch, worker_threads

    threads = worker_threads(client)
    addresses = sorted(client.scheduler_info().get("workers", {}))
    run.workers = len(addresses)
    run.batch = batch_size(len(todo), threads, batch)
    lanes = _lanes(exam, todo, max(1, len(addresses)))
    parts = _interleaved([(addresses[k] if len(addresses) > 1 else None,
                           _batches(lane, run.batch, limit)) for k, lane in enumerate(lanes)])
    in_flight = max(2, IN_FLIGHT_PER_THREAD * threads)
    # each task carries the exam's text (a few kB): data scattered once would be lost with
    # the worker holding it, and a task that carries what it needs can run anywhere
    futures = as_completed(loop=client.loop)
    names = {}
    try:
        def submit():
            where, part = next(parts, (None, None))
            if part is not None:
                pin = {"workers": [where], "allow_other_workers": True} if where else {}
                f = client.submit(grade_batch, *args, part, formats, pure=False, retries=0,
                                  **pin)
                names[f.key] = [name for name, _ in part]
                futures.add(f)
            return part is not None

        for _ in range(in_flight):
            if not submit():
                break
        with _bar(len(todo), progress) as bar:
            for future in futures:
                batch_names = names.pop(future.key)
                try:
                    results = future.result()
                except Exception as exc:  # noqa: BLE001 -- the batch, not the class
                    _lost(batch_names, exc, run, bar)
                else:
                    writer.write(results, bar)
                future.release()
                submit()
    except BaseException:
        for f in list(getattr(futures, "futures", ())):
            f.cancel()
        raise


def _lanes(exam, files, n):
    """``files`` in ``n`` lists of about equal length, each variant's students in one (the
    student id a file is graded as is its stem, unless it names another: then only the
    worker that solves its variant differs)."""
    from collections import defaultdict

    from derive.exam.cluster import variant_key

    if n == 1:
        return [list(files)]
    groups = defaultdict(list)
    for f in files:
        groups[variant_key(exam, os.path.splitext(os.path.basename(f))[0])].append(f)
    lanes = [[] for _ in range(n)]
    for key in sorted(groups, key=lambda k: (-len(groups[k]), k)):
        min(lanes, key=len).extend(groups[key])
    return [sorted(lane) for lane in lanes]


def _interleaved(lanes):
    """``(worker, batch)`` taking each lane's next batch in turn."""
    lanes = list(lanes)
    while lanes:
        for item in list(lanes):
            where, batches = item
            part = next(batches, None)
            if part is None:
                lanes.remove(item)
            else:
                yield where, part


def _lost(batch_names, exc, run, bar):
    """A batch Dask gave up on (its workers kept dying, or a bug): each file named; nothing
    is written for them, so a rerun grades them again."""
    why = " ".join(str(exc).split())[:160]
    what = "the workers running it died" if type(exc).__name__ == "KilledWorker" else \
        f"{type(exc).__name__}{': ' + why if why else ''}"
    for name in batch_names:
        run.errors.append(f"{name}: not graded ({what}); a rerun grades it again, and "
                          f"--batch 1 keeps a file that kills a worker from taking others "
                          f"with it")
        bar.update(1)


class _Writer:
    """Writes each arriving record (client side) and keeps one submission per student."""

    def __init__(self, out_dir, previous, run, on_result):
        self.out_dir = out_dir
        self.owner = dict(previous)   # student -> the file their record came from
        self.run = run
        self.on_result = on_result
        self.any = False

    def write(self, results, bar):
        from derive.exam.marks import write_student

        for record, files in results:
            student, name = record.get("student") or "", record["file"]
            if record.get("error"):
                self.run.errors.append(record["error"])
            kept = self.owner.get(student)
            if kept is not None and kept != name:
                first = min(kept, name)
                self.run.errors.append(f"{name}: student {student} also submitted {kept}; "
                                       f"the first by name ({first}) is graded")
                if first == kept:
                    bar.update(1)
                    continue
            try:
                write_student(self.out_dir, record, files)
            except DeriveError as exc:
                self.run.errors.append(f"{name}: not written ({exc})")
                bar.update(1)
                continue
            self.owner[student] = name
            self.any = True
            self.run.graded += 1
            bar.update(1)
            if self.on_result is not None:
                self.on_result(record)


def _scores(out_dir, exam):
    from derive.exam.marks import write_scores

    return write_scores(out_dir, exam)


def _exam_text(path):
    from derive.exam.grading import MAX_BYTES

    try:
        if os.path.getsize(path) > MAX_BYTES:
            raise InputError(f"larger than {MAX_BYTES:,} bytes", where=os.fspath(path))
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise InputError(f"cannot read the exam file ({exc.strerror})",
                         where=os.fspath(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", where=os.fspath(path)) from None


def _check_out(out_dir):
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError("exists and is not a folder", where=os.fspath(out_dir))
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make the output folder ({exc.strerror or exc})",
                         where=os.fspath(out_dir)) from None


def _previous(out_dir):
    """``{student: file}`` of the records already in ``out_dir``."""
    from derive.exam.marks import read_records

    return {r["student"]: r["file"] for r in read_records(out_dir)
            if r.get("student") and r.get("file")}


class _NoBar:
    def update(self, n=1):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _bar(total, progress, what="grading"):
    """A tqdm bar of students done on stderr (none when not a terminal or not asked)."""
    if not progress or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="student", desc=what, file=sys.stderr,
                dynamic_ncols=True)
