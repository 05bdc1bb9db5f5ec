"""A time limit around work on untrusted answers (see :mod:`derive.budget`).

A grading run must report every answer: :func:`guarded` turns whatever goes wrong while
judging one answer (a timeout, a recursion limit, an arithmetic failure) into that
answer's "unreadable" verdict.
"""
from __future__ import annotations

from derive.budget import Timeout, attempt, deadline  # noqa: F401 - the judging modules' names


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
