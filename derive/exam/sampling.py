"""Randomised parameters of an exam problem: ranges, placeholders and constraints.

A problem's ``params:`` maps names to ranges::

    w:  {randint: [1, 5]}                  # an integer from 1 to 5, both included
    u1: {choice: [1, 2, "1/2"]}            # one of the listed numbers
    X:  {randint: [-3, 3], shape: [2, 3]}  # a 2 x 3 nested list of such integers

A value is placed into the problem's own spec wherever the spec holds the placeholder
``"${w}"``: a string that is exactly one placeholder becomes the value itself (a number,
or a nested list for a shaped parameter); a placeholder inside longer text (``"${w}*p"``,
``"conv2d(${c}, 3)"``) is replaced by the number written out. Values are DATA: nothing is
evaluated here, and the problem's own whitelist readers parse the resulting spec as
they parse any problem file.

The generator is numpy's ``Generator`` (PCG64) seeded by SHA-256 of the exam's seed, the
student id and the problem's number, so a variant depends on nothing else (not Python's
salted ``hash``, not the roster's order, not the other problems' resampling).
"""
from __future__ import annotations

import hashlib
import math
import re

from derive.errors import InputError

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
NUMBER_TEXT = re.compile(r"-?\d+(\.\d+)?(/\d+)?")
MAX_ENTRIES = 10_000  # entries of one shaped parameter
RANGE_KEYS = {"randint", "choice", "shape"}


def generator(seed, student_id, problem_number):
    """numpy's Generator for one problem of one student's variant (reproducible)."""
    import numpy as np

    text = f"{seed}\x00{student_id}\x00{problem_number}".encode("utf-8")
    return np.random.default_rng(int.from_bytes(hashlib.sha256(text).digest()[:16], "little"))


def check_ranges(params, where):
    """``params:`` validated (InputError naming the key); returns it as a dict."""
    if not isinstance(params, dict):
        raise InputError("expected a mapping of names to ranges", where=where)
    for name, rng in params.items():
        at = f"{where}.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise InputError(f"parameter name {name!r:.40} is not an identifier", where=where)
        if not isinstance(rng, dict) or not rng.keys() & {"randint", "choice"}:
            raise InputError("expected {randint: [low, high]} or {choice: [...]}", where=at)
        unknown = set(rng) - RANGE_KEYS
        if unknown or ("randint" in rng) == ("choice" in rng):
            raise InputError("a range has randint: or choice: (one of them) and optionally "
                             "shape:", where=at)
        _check_range(rng, at)
    return params


def _check_range(rng, at):
    if "randint" in rng:
        lo_hi = rng["randint"]
        if not (isinstance(lo_hi, list) and len(lo_hi) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in lo_hi)
                and lo_hi[0] <= lo_hi[1]):
            raise InputError("randint: expected [low, high], integers with low <= high",
                             where=f"{at}.randint")
    else:
        options = rng["choice"]
        if not isinstance(options, list) or not options:
            raise InputError("choice: expected a non-empty list", where=f"{at}.choice")
        for i, v in enumerate(options):
            if not _is_number(v):
                raise InputError(f"expected a number (an integer, a decimal or 'p/q'), got "
                                 f"{v!r:.40}", where=f"{at}.choice[{i}]")
    shape = rng.get("shape", [])
    if not (isinstance(shape, list) and all(isinstance(n, int) and not isinstance(n, bool)
                                            and n > 0 for n in shape)):
        raise InputError("shape: expected a list of positive integers", where=f"{at}.shape")
    if math.prod(shape) > MAX_ENTRIES:
        raise InputError(f"shape {shape} has more than {MAX_ENTRIES:,} entries",
                         where=f"{at}.shape")


def _is_number(v):
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    if isinstance(v, float):
        return math.isfinite(v)
    return isinstance(v, str) and NUMBER_TEXT.fullmatch(v.strip()) is not None


def draw(params, rng):
    """One value per parameter: Python ints / numbers, nested lists for shaped ones."""
    values = {}
    for name, spec in params.items():
        shape = tuple(spec.get("shape", ()))
        if "randint" in spec:
            lo, hi = spec["randint"]
            flat = [int(v) for v in rng.integers(lo, hi + 1, size=math.prod(shape))]
        else:
            options = spec["choice"]
            flat = [options[int(i)] for i in rng.integers(0, len(options),
                                                          size=math.prod(shape))]
        values[name] = _nest(flat, shape) if shape else flat[0]
    return values


def _nest(flat, shape):
    if len(shape) == 1:
        return list(flat)
    step = math.prod(shape[1:])
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def substitute(value, values, where):
    """``value`` (a spec, nested) with every ``${name}`` replaced by ``values[name]``."""
    if isinstance(value, dict):
        return {k: substitute(v, values, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, values, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = PLACEHOLDER.fullmatch(value.strip())
    if whole:
        return _value_of(whole.group(1), values, where)
    return PLACEHOLDER.sub(lambda m: _text_of(m.group(1), values, where), value)


def placeholders(value):
    """Every name a ``${name}`` inside ``value`` (nested) refers to."""
    if isinstance(value, dict):
        return set().union(*(placeholders(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(placeholders(v) for v in value))
    return set(PLACEHOLDER.findall(value)) if isinstance(value, str) else set()


def _value_of(name, values, where):
    if name not in values:
        known = ", ".join(sorted(values)) or "none"
        raise InputError(f"'${{{name}}}' names no parameter (params: {known})", where=where)
    return values[name]


def _text_of(name, values, where):
    value = _value_of(name, values, where)
    if isinstance(value, list):
        return str(value)  # "[1, -2]": a list written into text (a prompt, a layer string)
    text = str(value)
    # a negative number inside a formula keeps its sign to itself: "w*-2" -> "w*(-2)"
    return f"({text})" if text.startswith("-") else text


# -- constraints ------------------------------------------------------------------------------
CONSTRAINTS = {
    "nonzero": "every entry of these parameters is non-zero",
    "positive": "every entry of these parameters is positive",
    "distinct": "the entries of these parameters are all different",
    "nonzero_values": "the forward values of these nodes have no zero entry (no ReLU, "
                      "|x| or step exactly at its kink, no zero variance)",
    "smooth": "the derivation reaches no non-smooth point (no convention is used)",
}


def check_constraints(constraints, params, where):
    """``constraints:`` validated against the problem's parameter names."""
    if not isinstance(constraints, dict):
        raise InputError("expected a mapping such as {nonzero: [w], distinct: [u1, u2]}",
                         where=where)
    for key, names in constraints.items():
        at = f"{where}.{key}"
        if key not in CONSTRAINTS:
            raise InputError(f"unknown constraint '{key}' (known: "
                             f"{', '.join(CONSTRAINTS)})", where=where)
        if key == "smooth":
            if not isinstance(names, bool):
                raise InputError("expected true or false", where=at)
            continue
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InputError("expected a list of names", where=at)
        if key != "nonzero_values":
            missing = [n for n in names if n not in params]
            if missing:
                raise InputError(f"'{missing[0]}' is not a parameter (params: "
                                 f"{', '.join(params) or 'none'})", where=at)
    return constraints


def parameters_fail(constraints, values):
    """The first constraint on parameters that ``values`` break, else None."""
    for key, names in constraints.items():
        if key in ("nonzero_values", "smooth"):
            continue
        entries = [e for n in names for e in _flat(values[n])]
        numbers = [_as_fraction(e) for e in entries]
        if key == "nonzero" and any(x == 0 for x in numbers) \
                or key == "positive" and any(x <= 0 for x in numbers) \
                or key == "distinct" and len(set(numbers)) < len(numbers):
            return f"{key}: [{', '.join(names)}]"
    return None


def derivation_fails(constraints, derivation, where):
    """The first constraint on the derivation's values that it breaks, else None
    (InputError when a named node is not in the problem: no resampling mends that)."""
    import numpy as np

    for name in constraints.get("nonzero_values", []):
        try:
            node = derivation.node(name)
        except (KeyError, ValueError, LookupError):
            node = None
        if node is None or node.value is None:
            raise InputError(f"'{name}' is not a node with a value in this problem",
                             where=f"{where}.nonzero_values")
        if np.any(np.asarray(node.value, dtype=object) == 0):
            return f"nonzero_values: [{', '.join(constraints['nonzero_values'])}]"
    if constraints.get("smooth") and any("reached at" in n for n in derivation.notes):
        return "smooth: true"
    return None


def _flat(value):
    if isinstance(value, list):
        return [e for v in value for e in _flat(v)]
    return [value]


def _as_fraction(value):
    from fractions import Fraction

    return Fraction(value.strip()) if isinstance(value, str) else Fraction(value)
