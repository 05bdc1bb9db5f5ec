"""A time limit around work on untrusted answers.

The whitelist parser already bounds an answer's size, depth and constant powers, so an
answer cannot run code or build an astronomically large number. What it can still do is
be *legal but costly*: ``(x1 + x2)**9999`` parses in microseconds, yet expanding it would
not finish. Symbolic steps on answers therefore run under :func:`deadline`, which raises
:class:`Timeout` after a wall-clock budget (``SIGALRM``; on threads other than the main
one, or where signals are missing, the budget cannot be enforced and the work simply
runs, which is why the cheap bounds come first).
"""
from __future__ import annotations

import contextlib
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

    Nested deadlines keep the outer one: an inner block never extends it.
    """
    if not _can_alarm() or seconds is None:
        yield
        return
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    if remaining and remaining <= seconds:  # an outer, shorter deadline is running
        yield
        return

    def _raise(signum, frame):
        raise Timeout(f"gave up after {seconds:g} s")

    start = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if remaining:  # re-arm the outer deadline with what is left of it
            left = remaining - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))


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


def guarded(judge, verdict_for_error, seconds):
    """Run ``judge()``; an unexpected failure or a timeout becomes an "unreadable" verdict.

    A grading run must report every answer, never stop with a traceback: whatever goes
    wrong inside one answer's judgement is that answer's message.
    """
    try:
        with deadline(seconds):
            return judge()
    except Timeout:
        return verdict_for_error(f"the answer could not be judged within {seconds:g} s")
    except (RecursionError, MemoryError):
        return verdict_for_error("the answer is too complex to judge")
    except Exception as exc:  # noqa: BLE001
        return verdict_for_error(f"the answer could not be judged ({type(exc).__name__}: "
                                 f"{str(exc)[:120]})")
