"""Time limits around symbolic work that user input can make arbitrarily costly.

The whitelist parser bounds an expression's size, depth and constant powers, so input
cannot run code or build an astronomically large number. What it can still do is be
*legal but costly*: ``(x1 + x2)**9999`` parses in microseconds, yet expanding it would
not finish, and ``factor`` of an exact value with ``exp(-529/64)`` factors a polynomial of
degree 529. Such steps run under :func:`deadline`, which raises :class:`Timeout` after a
wall-clock budget: by ``SIGALRM`` on the main thread, and on any other thread (a Dask
worker grading a class runs its tasks on threads) by a timer thread that raises Timeout
in the working thread (``PyThreadState_SetAsyncExc``). Either way the exception arrives
between two Python bytecodes, so a single long C call (one huge integer product) finishes
first, which is why the cheap structural bounds in :mod:`derive.scalar.simplify` come
first.
"""
from __future__ import annotations

import contextlib
import contextvars
import ctypes
import gc
import heapq
import os
import signal
import threading
import time


class Timeout(Exception):
    """The budget of a :func:`deadline` block ran out."""


def _can_alarm():
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def deadline(seconds):
    """Raise :class:`Timeout` inside the block after ``seconds`` of wall-clock time.

    The cyclic garbage collector is paused while an armed block runs: a full collection
    of a large heap (a long session, a class of submissions) takes seconds, and that pause
    would otherwise be charged to the block and turn a proof of 0.1 s into a time-out.
    Reference counting still frees memory meanwhile; the collector resumes afterwards.

    Nested deadlines keep the outer one: an inner block never extends it. The block
    receives ``True`` when this deadline armed the timer itself, ``False`` when it did
    not (a shorter outer deadline running); a caller that catches Timeout to fall back
    should re-raise it when it did not arm the timer, since the Timeout then belongs to an
    outer block.
    """
    if seconds is None:
        yield False
        return
    if not _can_alarm():
        with thread_deadline(seconds) as armed:
            yield armed
        return
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    if remaining and remaining <= seconds:  # an outer, shorter deadline is running
        yield False
        return

    def _raise(signum, frame):
        # An exception raised while Python runs a gc callback is printed and dropped; the
        # timer is re-armed so a swallowed Timeout comes again until the block is left.
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        raise Timeout(f"gave up after {seconds:g} s")

    start = time.monotonic()
    collecting = gc.isenabled()
    gc.disable()
    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if collecting:
            gc.enable()
        if remaining:  # re-arm the outer deadline with what is left of it
            left = remaining - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))


_THREAD = threading.local()  # .end: when the innermost running thread deadline ends


def _set_async_exc(tid, exc):
    """Raise ``exc`` in thread ``tid`` at its next bytecode (None: withdraw a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(tid), None if exc is None else ctypes.py_object(exc))


class _Watch:
    """One thread per process that raises the exceptions of every thread deadline when
    they are due (a heap of ends, a condition to wait on): entering a deadline costs a
    push, not a thread start (~100 us each, several per graded answer)."""

    RETRY = 0.05  # a delivered exception the work swallowed comes again after this

    def __init__(self):
        self.cond = threading.Condition()
        self.heap = []
        self.count = 0
        self.pid = None

    def add(self, entry):
        with self.cond:
            if self.pid != os.getpid():  # first use, or a child forked from a user
                self.pid, self.heap = os.getpid(), []
                threading.Thread(target=self._run, name="derivekit-deadlines",
                                 daemon=True).start()
            self.count += 1
            heapq.heappush(self.heap, (entry["end"], self.count, entry))
            self.cond.notify()

    def remove(self, entry):
        """Disarm ``entry``; withdraw its exception if raised and not yet delivered."""
        with self.cond:
            entry["armed"] = False
            if entry["fired"]:
                _set_async_exc(entry["tid"], None)

    def _run(self):
        with self.cond:
            while True:
                while self.heap and not self.heap[0][2]["armed"]:
                    heapq.heappop(self.heap)
                if not self.heap:
                    self.cond.wait()
                    continue
                now = time.monotonic()
                end, _, entry = self.heap[0]
                if now < end:
                    self.cond.wait(end - now)
                    continue
                heapq.heappop(self.heap)
                _set_async_exc(entry["tid"], entry["exc"])
                entry["fired"] = True
                entry["end"] = now + self.RETRY
                self.count += 1
                heapq.heappush(self.heap, (entry["end"], self.count, entry))


_WATCH = _Watch()


@contextlib.contextmanager
def thread_deadline(seconds, exc=Timeout):
    """:func:`deadline` off the main thread: raise ``exc`` in this thread after ``seconds``
    (again every 50 ms until the block is left, as the signal handler re-arms), from the
    process's one watching thread. Leaving the block disarms it under the watcher's lock
    and withdraws an exception not yet delivered, so none escapes after the block. The
    garbage collector is left alone (it is process-wide and other threads may be timing
    blocks of their own). Works on the main thread too; an ``exc`` that is a
    BaseException (a grading run's per-submission limit) passes through the ``except
    Exception`` of the work it stops."""
    outer = getattr(_THREAD, "end", None)
    now = time.monotonic()
    if outer is not None and outer - now <= seconds:  # a shorter outer deadline runs
        yield False
        return
    entry = {"end": now + seconds, "tid": threading.get_ident(), "exc": exc, "armed": True,
             "fired": False}
    _THREAD.end = entry["end"]
    _WATCH.add(entry)
    try:
        yield True
    finally:
        _WATCH.remove(entry)
        _THREAD.end = outer


class Allowance:
    """A wall-clock allowance shared by many small steps of one piece of work.

    A derivation tidies hundreds of expressions; each gets at most ``step`` seconds, and
    all of them together at most ``total``. Once the allowance is spent, :meth:`left`
    is 0 and callers take their cheap path (``spent`` records that this happened).
    """

    def __init__(self, total, step):
        self.end = time.monotonic() + total
        self.step = step
        self.spent = False

    def left(self):
        """Seconds the next step may take (0 when the allowance is used up)."""
        left = min(self.step, self.end - time.monotonic())
        if left <= 0:
            self.spent = True
            return 0.0
        return left


def attempt(fn, seconds, default=None):
    """``fn()`` under a deadline; ``default`` when it times out or raises an arithmetic error.

    Used for *optional* symbolic work (a proof attempt, a simplification for display):
    giving up there changes how a verdict is justified, never the verdict.
    """
    try:
        with deadline(seconds):
            return fn()
    except Exception:  # noqa: BLE001 - optional work: any failure means "not this way"
        return default
_ACTIVE = contextvars.ContextVar("derivekit_allowance", default=None)


@contextlib.contextmanager
def allowance(total, step):
    """Make an :class:`Allowance` the one :func:`step_seconds` reads inside the block."""
    token = _ACTIVE.set(Allowance(total, step))
    try:
        yield _ACTIVE.get()
    finally:
        _ACTIVE.reset(token)


def step_seconds(default):
    """Seconds the next costly step may take: the active allowance's, else ``default``."""
    active = _ACTIVE.get()
    return default if active is None else active.left()
