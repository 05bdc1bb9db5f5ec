"""Numeric answers: a number or a list of numbers read by the whitelist, and compared.

A blank whose answer is a value (a forward value, a worked step, a result item) is
compared as numbers: exactly (to 1e-9) when the student wrote integers or fractions, to
about 4 significant digits when they wrote decimals (as :mod:`derive.verify` accepts a
bare number). A wrong value is named with the diagnoses of :mod:`derive.verify.verdict`
that apply to plain numbers: ``sign``, ``transpose``, ``factor``, else ``other``.
Each element is read by :func:`derive.verify.answers.parse_answer` with no names known,
so only numbers and arithmetic on them are accepted; nothing is evaluated.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from derive.errors import DeriveError, InputError
from derive.verify.verdict import Verdict, number_out, ratio_text

ROUNDED_RTOL = 5e-4   # decimals: about 4 significant digits (derive.verify's NUMBER_RTOL)
EXACT_RTOL = 1e-9
MAX_ELEMENTS = 10_000
MAX_DEPTH = 3


def read(raw):
    """``(array of float, rounded)`` from a YAML number, list or text; InputError if not
    numbers. ``rounded``: some element was written as a decimal."""
    state = {"rounded": False, "count": 0}
    nested = _split(raw, 0, state)
    try:
        array = np.array(nested, dtype=float)
    except ValueError:
        raise InputError("the rows of the array have different lengths") from None
    if array.size == 0:
        raise InputError("the answer is empty")
    if not np.all(np.isfinite(array)):
        raise InputError("the answer is not a finite number")
    return array, state["rounded"]


def _split(raw, depth, state):
    if depth > MAX_DEPTH:
        raise InputError(f"an array may be nested at most {MAX_DEPTH} deep")
    if isinstance(raw, bool) or raw is None:
        raise InputError(f"expected a number, got {raw!r}")
    if isinstance(raw, list):
        return [_split(x, depth + 1, state) for x in raw]
    if isinstance(raw, str) and raw.strip().startswith("["):
        return _split(_brackets(raw.strip()), depth, state)
    state["count"] += 1
    if state["count"] > MAX_ELEMENTS:
        raise InputError(f"more than {MAX_ELEMENTS} numbers")
    return _number(raw, state)


def _brackets(text):
    """``"[[1, 2], [3/4, -1]]"`` -> nested lists of element texts (no evaluation)."""
    pos = 0

    def skip():
        nonlocal pos
        while pos < len(text) and text[pos].isspace():
            pos += 1

    def items(depth):
        nonlocal pos
        if depth > MAX_DEPTH:
            raise InputError(f"an array may be nested at most {MAX_DEPTH} deep")
        pos += 1  # the '['
        out = []
        while True:
            skip()
            if pos < len(text) and text[pos] == "[":
                out.append(items(depth + 1))
            else:
                start = pos
                while pos < len(text) and text[pos] not in ",[]":
                    pos += 1
                element = text[start:pos].strip()
                if element:
                    out.append(element)
                elif pos < len(text) and (text[pos] == "," or out):
                    raise InputError(f"an empty element at column {pos + 1}")
            skip()
            if pos >= len(text):
                raise InputError("a '[' is not closed")
            if text[pos] == "]":
                pos += 1
                return out
            if text[pos] != ",":
                raise InputError(f"unexpected {text[pos]!r} at column {pos + 1}")
            pos += 1

    found = items(0)
    skip()
    if pos < len(text):
        raise InputError(f"text after the closing ']' at column {pos + 1}")
    return found


def _number(raw, state):
    from derive.verify.answers import Vocabulary, parse_answer
    from derive.verify.guard import Timeout, deadline

    if isinstance(raw, float):
        state["rounded"] = True
    try:
        with deadline(1.0):
            value = parse_answer(raw if isinstance(raw, (int, float)) else str(raw),
                                 Vocabulary([]))
    except (Timeout, RecursionError, MemoryError):
        raise InputError("the answer is too complex to read") from None
    except InputError as exc:
        if "unknown name" in exc.message:  # a formula where a value is asked
            raise InputError(f"expected a number: this blank asks for a value, not a formula "
                             f"({str(raw)[:40]!r})") from None
        raise
    if not isinstance(value, sp.Basic) or value.free_symbols or not value.is_number:
        raise InputError(f"expected a number, got {str(raw)[:40]!r}")
    if value.has(sp.Float):
        state["rounded"] = True
    try:
        number = complex(value.evalf())
    except (TypeError, ValueError):
        raise InputError(f"expected a number, got {str(raw)[:40]!r}") from None
    if abs(number.imag) > 1e-12 * max(1.0, abs(number.real)):
        raise InputError("expected a real number")
    return number.real


def as_array(value):
    """The expected value (SymPy number or Matrix, NumPy array, int) as a float array."""
    if isinstance(value, sp.MatrixBase):
        return np.array(value.evalf(), dtype=float)
    if isinstance(value, sp.Basic):
        return np.array(float(value.evalf()))
    return np.asarray(value, dtype=float)


def text(value):
    """The expected value for people: exact where short, else 6 significant digits."""
    if isinstance(value, sp.MatrixBase):
        items = [number_out(x) for x in value]
        shape = value.shape
        if 1 in shape:
            return "[" + ", ".join(str(x) for x in items) + "]"
        rows = [items[r * shape[1]:(r + 1) * shape[1]] for r in range(shape[0])]
        return "[" + ", ".join("[" + ", ".join(str(x) for x in r) + "]" for r in rows) + "]"
    if isinstance(value, np.ndarray):
        return str((np.round(value.astype(float), 6) + 0.0).tolist())  # no -0.0
    if isinstance(value, sp.Basic) and not value.free_symbols:
        return str(number_out(value))
    if isinstance(value, sp.Basic):
        return sp.sstr(value)
    return str(value)


def same(given, expected, rounded):
    """Equal within the tolerance (a vector as row, column or flat is the same vector)."""
    a, b = _comparable(given, expected)
    if a is None:
        return False
    rtol = ROUNDED_RTOL if rounded else EXACT_RTOL
    return bool(np.allclose(a, b, rtol=rtol, atol=rtol * 1e-3))


def _comparable(a, b):
    if a.shape == b.shape:
        return a, b
    if a.size == b.size and (a.ndim <= 1 or 1 in a.shape) and (b.ndim <= 1 or 1 in b.shape):
        return a.ravel(), b.ravel()
    return None, None


def judge(node, raw, expected, carried=None):
    """A :class:`~derive.verify.verdict.Verdict` on a numeric answer (never raises).

    ``carried``: ``(value, label)`` the answer is right against when an earlier wrong
    answer is carried forward (a step recomputed from the student's previous value).
    """
    verdict = Verdict(node=node, answer=raw, verdict="unreadable", expected=None)
    try:
        given, rounded = read(raw)
    except DeriveError as exc:
        verdict.message = str(exc)
        return verdict
    verdict.parsed = given
    try:
        want = as_array(expected)
    except (TypeError, ValueError):
        verdict.message = ("this blank's answer is not a number, so it cannot be marked "
                           "as one (mark it by hand)")
        return verdict
    if same(given, want, rounded):
        verdict.verdict, verdict.proof = "correct", "symbolic" if not rounded else "numeric"
        verdict.message = "equals the expected value" + (" (to about 4 significant digits)"
                                                         if rounded else "")
        return verdict
    if carried is not None and same(given, as_array(carried[0]), rounded):  # noqa: SIM102
        verdict.verdict, verdict.proof = "correct", "numeric"
        verdict.judged_against, verdict.carried_from = carried[0], [carried[1]]
        verdict.message = (f"right when worked from your earlier answer for {carried[1]} "
                           "(an error carried forward is not counted twice)")
        return verdict
    verdict.verdict, verdict.proof = "wrong", "numeric"
    verdict.diagnosis, verdict.message = diagnose(given, want, rounded)
    if carried is not None:
        verdict.judged_against, verdict.carried_from = carried[0], [carried[1]]
        verdict.message += f" (also not right from your earlier answer for {carried[1]})"
    return verdict


def diagnose(given, want, rounded):
    """``(kind, sentence)`` for a wrong numeric answer."""
    if np.any(want != 0) and same(-given, want, rounded):
        return "sign", "sign error: the answer is the negative of the expected value"
    if want.ndim == 2 and want.shape[0] > 1 and want.shape[1] > 1 and \
            not np.allclose(want, want.T) and same(given.T, want, rounded):
        return "transpose", "the answer is the transpose of the expected matrix"
    if given.shape != want.shape and _comparable(given, want)[0] is None:
        return "transpose", (f"the answer has shape {given.shape}, the expected value "
                             f"{want.shape}")
    a, b = _comparable(given, want)
    mask = np.abs(b) > 1e-12
    if mask.any() and np.all(np.abs(a[~mask]) <= 1e-12):
        ratios = a[mask] / b[mask]
        if np.allclose(ratios, ratios[0], rtol=1e-6) and _simple(float(ratios[0])):
            return "factor", (f"off by a constant factor: the answer is "
                              f"{ratio_text(float(ratios[0]))} times the expected")
    return "other", "not the expected value"


def _simple(r):
    """A factor people slip by (2, 1/2, -3, 2/3), not 41/40: an off-by-one is no factor."""
    from fractions import Fraction

    frac = Fraction(r).limit_denominator(10)
    return frac not in (0, 1) and abs(float(frac) - r) <= 1e-6 * abs(r) and \
        abs(frac.numerator) <= 10
