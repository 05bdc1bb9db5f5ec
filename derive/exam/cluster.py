"""The Dask side of grading: where the work runs and what a worker does with a batch.

A task is one *batch* of submissions, ``[(file name, bytes), ...]``, sent with the exam
file's TEXT (workers need not share a filesystem with the client). A worker process loads
each exam once (cached by a hash of its text) and grades the batch with
:func:`derive.exam.grading.grade_text`; it returns ``[(record, files), ...]`` and writes
nothing: the client writes every student's files as results arrive, so a task Dask runs
again after a worker died can at worst produce the same bytes, written once.

Variants are cached inside a worker by the parameters drawn (:class:`CachedExam`): two
students whose draws agree share one solved problem instead of solving it twice. The
cache is bounded, so a worker's memory does not grow with the class.

Clusters: :func:`connect` gives a ``distributed.Client`` on a ``LocalCluster`` of worker
processes (one thread each: SymPy is not thread-parallel) on 127.0.0.1 with no
dashboard, or on an existing scheduler by address. Both close when the ``with`` block
ends, whatever ends it.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections import OrderedDict

from derive.errors import InputError

CONNECT_TIMEOUT = 5        # seconds to reach a scheduler given by address
EXAMS_KEPT = 4             # exams a worker keeps loaded (a long-lived cluster sees several)
SUBMISSION_SECONDS = 120   # a submission still being graded after this on a Dask worker: 0
VARIANTS_KEPT = 256        # solved problem variants a worker keeps, per exam (bounded memory)


# -- the cluster -----------------------------------------------------------------------------
def machine_workers():
    """Worker processes for a LocalCluster "sized to the machine": the usable cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def connect(scheduler=None, workers=None, timeout=CONNECT_TIMEOUT):
    """A ``distributed.Client``: on ``scheduler`` (``tcp://HOST:PORT``) when given, else on
    a new LocalCluster of ``workers`` processes (default: :func:`machine_workers`).

    An address that cannot be reached within ``timeout`` seconds is an InputError of one
    line (nothing has been written by then)."""
    import logging

    from distributed import Client, LocalCluster

    # a grading run says nothing but its progress, errors and summary: a LocalCluster logs
    # every worker start and stop, and the client every result it must fetch again after a
    # worker died; a batch given up on is reported by the run, file by file
    levels = {name: logging.getLogger(name).level
              for name in ("distributed", "distributed.scheduler", "distributed.client")}
    logging.getLogger("distributed").setLevel(logging.ERROR)
    logging.getLogger("distributed.scheduler").setLevel(logging.CRITICAL)
    logging.getLogger("distributed.client").setLevel(logging.ERROR)
    try:
        if scheduler:
            _probe(scheduler, timeout)
            try:
                client = Client(scheduler, timeout=timeout, set_as_default=False)
            except Exception as exc:  # noqa: BLE001 -- whatever the far end did: one line
                raise _unreachable(scheduler, exc) from None
            with client:
                yield client
            return
        n = machine_workers() if workers is None else int(workers)
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None,
                          silence_logs=logging.ERROR) as cluster, \
                Client(cluster, set_as_default=False) as client:
            yield client
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _unreachable(address, exc):
    reason = " ".join(str(exc).split())[:160] or type(exc).__name__
    if isinstance(exc, MemoryError):  # what Dask's reader makes of another protocol
        reason = "it does not speak Dask's protocol"
    return InputError(f"cannot reach the Dask scheduler at {address}: {reason}",
                      where="--scheduler")


def _probe(address, timeout):
    """Check ``address`` is a Dask scheduler answering within ``timeout`` seconds, before
    a Client exists (a Client that fails half-way complains again when collected)."""
    import asyncio
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.core import rpc

    try:
        scheme, loc = parse_address(address)
        host, port = parse_host_port(loc)
    except (ValueError, TypeError) as exc:
        raise _unreachable(address, exc) from None
    if scheme == "tcp":
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            raise _unreachable(address, exc.strerror and OSError(exc.strerror) or exc) \
                from None

    async def identity():
        r = rpc(address, timeout=timeout)
        try:
            return await asyncio.wait_for(r.identity(), timeout)
        finally:
            await r.close_rpc()

    try:
        info = asyncio.run(identity())
    except Exception as exc:  # noqa: BLE001 -- a closed port, a stranger, a timeout
        if isinstance(exc, asyncio.TimeoutError) or not str(exc):
            exc = OSError(f"no answer within {timeout:g} s")
        raise _unreachable(address, exc) from None
    if not isinstance(info, dict) or info.get("type") != "Scheduler":
        kind = info.get("type") if isinstance(info, dict) else type(info).__name__
        raise _unreachable(address, OSError(f"it is a {kind}, not a scheduler"))


def worker_threads(client):
    """Threads across the cluster's workers now (at least 1)."""
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # noqa: BLE001 -- a scheduler mid-restart: assume one
        return 1


# -- what a worker does ----------------------------------------------------------------------
def exam_key(exam_text, exam_name, roster):
    """A hash naming one exam text (and roster): the worker's cache key."""
    h = hashlib.sha256()
    h.update(exam_name.encode("utf-8") + b"\x00" + exam_text.encode("utf-8") + b"\x00")
    h.update(json.dumps(sorted(roster) if roster is not None else None).encode("utf-8"))
    return h.hexdigest()


_EXAMS: OrderedDict = OrderedDict()


def load_exam_text(exam_text, exam_name, folder, key=None):
    """The :class:`CachedExam` of an exam file's text (loaded once per process and key).

    The text is written to a private temporary file named as the original (so messages
    name it), read by :func:`derive.exam.load_exam` with every check it makes, and
    ``folder`` (the client's folder of the exam file) kept as the exam's folder."""
    from derive.exam.examfile import load_exam

    key = key or exam_key(exam_text, exam_name, None)
    exam = _EXAMS.get(key)
    if exam is not None:
        _EXAMS.move_to_end(key)
        return exam
    with tempfile.TemporaryDirectory(prefix="derivekit-exam-") as tmp:
        path = os.path.join(tmp, os.path.basename(exam_name) or "exam.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(exam_text)
        plain = load_exam(path)
    exam = CachedExam(plain.title, plain.seed, plain.problems, exam_name, folder)
    _EXAMS[key] = exam
    while len(_EXAMS) > EXAMS_KEPT:
        _EXAMS.popitem(last=False)
    return exam


def grade_batch(exam_text, exam_name, folder, roster, batch, formats):
    """Grade ``batch`` (``[(name, bytes or None), ...]``): ``[(record, files), ...]``.

    ``None`` for a file's content is a file the client could not read; its record says
    so. Pure: the same arguments give the same records and bytes on any worker."""
    from derive.exam.grading import grade_text, student_files

    key = exam_key(exam_text, exam_name, roster)
    exam = load_exam_text(exam_text, exam_name, folder, key)
    known = frozenset(roster) if roster is not None else None
    out = []
    for name, data in batch:
        try:
            with watchdog(SUBMISSION_SECONDS):
                record = grade_text(exam, name, data, roster=known).to_dict()
        except SubmissionTimeout:
            record = _timed_out(exam, name, data, known)
        out.append((record, student_files(record, formats)))
    return out


def paper_batch(exam_text, exam_name, folder, ids, fmt):
    """Draw, solve and render the papers and keys of the students ``ids``: a list of
    :func:`derive.exam.output.rendered` results, or ``("error", message)`` when a draw
    fails (the message names the student; the client then writes nothing)."""
    from derive.errors import DeriveError
    from derive.exam.output import make_variants, rendered

    exam = load_exam_text(exam_text, exam_name, folder)
    try:
        return [rendered(v, fmt) for v in make_variants(exam, ids)]
    except DeriveError as exc:
        return ("error", str(exc))


# -- a time limit on a worker thread ---------------------------------------------------------
class SubmissionTimeout(BaseException):
    """Raised into a worker thread whose submission ran past :data:`SUBMISSION_SECONDS`
    (a BaseException, so no ``except Exception`` on the way swallows it)."""


@contextlib.contextmanager
def watchdog(seconds):
    """Stop the block with :class:`SubmissionTimeout` after ``seconds`` on a worker thread.

    The judging of one answer has its own, finer time limits (:mod:`derive.budget`, armed
    on any thread); this is the backstop for a whole submission, raised as a
    BaseException so that no fallback on the way catches it. On the main thread (a run
    with ``--workers 0``) it does nothing: the per-answer limits are all there is there,
    as in ``derivekit check``.
    """
    import threading

    from derive.budget import thread_deadline

    if seconds is None or threading.current_thread() is threading.main_thread():
        yield
        return
    with thread_deadline(seconds, SubmissionTimeout):
        yield


def _timed_out(exam, name, data, roster):
    """The record of a submission stopped by :func:`watchdog` (score 0, the reason)."""
    from derive.exam.grading import StudentResult, read_submission
    from derive.exam.roster import SAFE_ID

    stem = os.path.splitext(os.path.basename(name))[0]
    try:
        student = read_submission(name, data)[0]
    except Exception:  # noqa: BLE001 -- the id is all that is wanted here
        student = stem if SAFE_ID.fullmatch(stem) else ""
    total = float(sum(p.points for p in exam.problems))
    return StudentResult(student, name, 0.0, total,
                         error=f"{name}: could not be graded within {SUBMISSION_SECONDS:g} s",
                         exam=exam.title).to_dict()


# -- variants cached by the parameters drawn -------------------------------------------------
def first_draw(problem, seed, student_id):
    """The first draw of a student's generator that meets the problem's constraints on
    parameters (cheap: nothing is solved), or None: what a problem variant is keyed on."""
    from derive.exam import sampling
    from derive.exam.examfile import MAX_TRIES

    rng = sampling.generator(seed, student_id, problem.number)
    for _ in range(MAX_TRIES):
        values = sampling.draw(problem.params, rng)
        if not sampling.parameters_fail(problem.constraints, values):
            return values
    return None


def variant_key(exam, student_id):
    """Equal for two students whose variants are solved from the same draws (the client
    sends them to one worker, so each variant is solved once in the cluster)."""
    return tuple(json.dumps(first_draw(p, exam.seed, student_id), sort_keys=True,
                            default=str) for p in exam.problems)



def _exam_class():
    from derive.exam.examfile import Exam

    return Exam


class CachedExam(_exam_class()):
    """An :class:`~derive.exam.Exam` whose problem variants are solved once per set of
    drawn parameters.

    A problem variant is a function of the parameters its draw accepts (the spec they are
    put into is solved deterministically). The student's generator is replayed exactly as
    :meth:`Exam._problem_variant` replays it up to the first draw that meets the parameter
    constraints; when the exam's own method accepts that draw, its result is what any
    student with that draw gets, and it is kept. A draw whose derivation broke a
    constraint (resampled) is not cached: the student's later draws decide the variant.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._solved = OrderedDict()
        self.hits = 0
        self.misses = 0

    def _problem_variant(self, problem, student_id):
        first = first_draw(problem, self.seed, student_id)
        if first is None:  # the exam's own method names the constraint
            return super()._problem_variant(problem, student_id)
        key = (problem.number, json.dumps(first, sort_keys=True, default=str))
        found = self._solved.get(key)
        if found is not None:
            self._solved.move_to_end(key)
            self.hits += 1
            return found
        self.misses += 1
        made = super()._problem_variant(problem, student_id)
        if made.params == first:
            self._solved[key] = made
            while len(self._solved) > VARIANTS_KEPT:
                self._solved.popitem(last=False)
        return made
