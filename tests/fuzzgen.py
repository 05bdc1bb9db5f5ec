"""What the fuzzers share: sources of randomness, outcomes, time limits, profiles.

One generator serves two drivers: the hypothesis suite (tests/test_fuzz_*.py) and the
long runner (bench/fuzz.py, plain seeded ``random``). Generators take a *source* with
``integer(lo, hi)`` and ``real(lo, hi)``; :class:`RandomSource` answers from
``random.Random``, :class:`DrawSource` from a hypothesis ``draw`` (so hypothesis can
shrink a failure).

Every check returns an :class:`Outcome` instead of raising, so a driver can count
mismatches, crashes (an unexpected exception), refusals (a DeriveError) and slow cases;
:func:`expect_ok` turns it into a test failure.

The generators: fuzzgen_terms (random expression trees), fuzzgen_scalar (scalar cases and
their mpmath/torch oracles), fuzzgen_special (out-of-domain points and kinks),
fuzzgen_tensor (layer compositions and kernels), fuzzgen_hostile (hostile text).
"""
from __future__ import annotations

import os
import random
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass

#: No input may take longer than this to be answered or refused (issue 20, "Must show").
TIME_LIMIT = 10.0


# -- sources of randomness ----------------------------------------------------------------
class RandomSource:
    """Choices from ``random.Random(seed)`` (the long runner)."""

    def __init__(self, seed):
        self.rng = random.Random(seed)

    def integer(self, lo, hi):
        return self.rng.randint(lo, hi)

    def real(self, lo, hi):
        return self.rng.uniform(lo, hi)


def drawn(make, *args, **kw):
    """A hypothesis strategy of the cases ``make(source, *args, **kw)`` builds, its random
    choices drawn by hypothesis (so failing cases shrink and replay)."""
    from hypothesis import strategies as st

    return st.composite(lambda draw: make(DrawSource(draw), *args, **kw))()


class DrawSource:
    """Choices from a hypothesis ``draw`` (shrinkable)."""

    def __init__(self, draw):
        from hypothesis import strategies as st

        self.draw, self.st = draw, st

    def integer(self, lo, hi):
        return self.draw(self.st.integers(lo, hi))

    def real(self, lo, hi):
        return self.draw(self.st.floats(lo, hi, allow_nan=False, allow_infinity=False))


def pick(src, items):
    return items[src.integer(0, len(items) - 1)]


def chance(src, percent):
    return src.integer(0, 99) < percent


# -- profiles ----------------------------------------------------------------------------
def examples(fast, factor=None):
    """``fast`` cases per test in the CI profile; ``factor`` times as many (default 50,
    or $DERIVEKIT_FUZZ_FACTOR) when DERIVEKIT_FUZZ=long (pytest --fuzz-long)."""
    if os.environ.get("DERIVEKIT_FUZZ") != "long":
        return fast
    return fast * (factor or int(os.environ.get("DERIVEKIT_FUZZ_FACTOR", "50")))


# -- outcomes and time limits -------------------------------------------------------------
@dataclass
class Outcome:
    """What one case gave: status ok | mismatch | crash | refused | slow | oracle."""

    kind: str
    status: str
    repro: str
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self):
        return self.status == "ok"

    def report(self):
        return f"[{self.kind}] {self.status} ({self.seconds:.2f} s): {self.repro}\n  {self.detail}"


class FuzzFailure(AssertionError):
    """A case that did not give the right answer; one subclass per status, so hypothesis
    reports each kind of failure of a test separately."""


class Mismatch(FuzzFailure):
    pass


class Crash(FuzzFailure):
    pass


class Refused(FuzzFailure):
    pass


class Slow(FuzzFailure):
    pass


class OracleDisagreement(FuzzFailure):
    pass


FAILURES = {"mismatch": Mismatch, "crash": Crash, "refused": Refused, "slow": Slow,
            "oracle": OracleDisagreement}


def expect_ok(outcome):
    """Raise the outcome's failure class unless it is ok."""
    if not outcome.ok:
        raise FAILURES[outcome.status](outcome.report())
    return outcome


class CaseTimeout(BaseException):
    """Raised by :func:`time_limit` (a BaseException, so no ``except Exception`` eats it)."""


@contextmanager
def time_limit(seconds):
    """Interrupt the block after ``seconds`` with CaseTimeout (SIGALRM; main thread)."""
    if seconds is None or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise CaseTimeout()

    try:
        previous = signal.signal(signal.SIGALRM, on_alarm)
    except ValueError:  # not the main thread: no limit here (the runner has its own)
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def timed(kind, repro, body, limit=TIME_LIMIT):
    """Run ``body()`` -> (status, detail) under the time limit; unexpected exceptions are
    crashes, DeriveErrors refusals."""
    from derive.errors import DeriveError

    start = time.perf_counter()
    try:
        with time_limit(limit):
            status, detail = body()
    except CaseTimeout:
        status, detail = "slow", f"no answer within {limit:g} s"
    except DeriveError as exc:
        status, detail = "refused", f"{type(exc).__name__}: {exc}"
    except RecursionError:
        status, detail = "crash", "RecursionError"
    except Exception as exc:  # noqa: BLE001 -- an unexpected exception is the finding
        status, detail = "crash", f"{type(exc).__name__}: {str(exc)[:300]}"
    return Outcome(kind, status, repro, detail, time.perf_counter() - start)


def scratch_dir():
    """This process's scratch folder (problem files, sentinels), made on first use."""
    global _SCRATCH
    if _SCRATCH is None:
        import atexit
        import shutil
        import tempfile

        _SCRATCH = tempfile.mkdtemp(prefix="derivekit-fuzz-")
        atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)
    return _SCRATCH


_SCRATCH = None


def problem_file(text, name="problem.yaml"):
    """Write ``text`` to ``name`` in the scratch folder; its path."""
    path = os.path.join(scratch_dir(), name)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path
