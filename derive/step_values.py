"""Printed = computed for worked steps: each step's numbers agree along its chain.

A worked step prints ``lhs = form = form = ...``: a formula, the same formula with the
numbers put in (arithmetic as written, :mod:`derive.stepforms`), the worked-out value, its
decimal (``Approx``). Every side that is a pure number or a matrix of numbers (no symbols,
no words, no derivative or named operator) is evaluated to 30 digits, and each is compared
with the numeric side before it: the arithmetic as printed must give the value printed
after it. :func:`check_step_values` raises :class:`~derive.tensor.printed.PrintedFormError`
naming the section and the step on a disagreement. Sides with symbols are the formulas the
numbers come from; they are counted (``symbolic``), not evaluated.
"""
from __future__ import annotations

import sympy as sp

from derive import stepforms
from derive.tensor.printed import PrintedFormError

RTOL = 1e-9


def _is_operator(e):
    """A named form of the subject (ArgMax, Norm, Grad, ...) other than a decimal."""
    return isinstance(e, stepforms._Form) and not isinstance(e, stepforms.Approx)


def number(side):
    """The 30-digit value of a purely numeric side (a number or a matrix), else None."""
    if isinstance(side, (int, float)) and not isinstance(side, bool):
        side = sp.Integer(side) if isinstance(side, int) else sp.Float(side, 17)
    if isinstance(side, sp.MatrixBase) and not isinstance(side, sp.Basic):
        side = sp.ImmutableMatrix(side)
    if isinstance(side, sp.Basic):  # the largest of the numbers shown is a number too
        side = side.replace(lambda e: isinstance(e, stepforms.MaxOf),
                            lambda e: sp.Max(*e.args))
    if not isinstance(side, sp.Basic) or side.free_symbols \
            or side.atoms(sp.Derivative, stepforms.Word) \
            or any(_is_operator(e) for e in sp.preorder_traversal(side)):
        return None
    try:
        value = side.doit()
        if getattr(value, "is_Matrix", False):
            return sp.Matrix(value).evalf(30)
        value = sp.N(value, 30)
    except (TypeError, ValueError, AttributeError, ZeroDivisionError):
        return None
    return value if value.is_number and value.is_finite else None


def _differ(a, b):
    if getattr(a, "is_Matrix", False) or getattr(b, "is_Matrix", False):
        if not (getattr(a, "is_Matrix", False) and getattr(b, "is_Matrix", False)) \
                or a.shape != b.shape:
            return f"a {getattr(a, 'shape', 'number')} side equals a " \
                   f"{getattr(b, 'shape', 'number')} side"
        pairs = list(zip(a, b))
    else:
        pairs = [(a, b)]
    for x, y in pairs:
        if abs(complex(x) - complex(y)) > RTOL * max(1.0, abs(complex(x))):
            return f"{float(sp.re(x)):.12g} then {float(sp.re(y)):.12g}"
    return None


def check_step_values(d):
    """Compare the numeric sides of every worked step of ``d``.

    Returns ``{"checked": n, "symbolic": m}`` (pairs of numeric sides compared, sides
    holding symbols); raises PrintedFormError on the first pair that disagrees.
    """
    counts = {"checked": 0, "symbolic": 0}
    for section in getattr(d, "sections", []):
        for k, step in enumerate(section.steps):
            previous = None
            for side in [step.lhs, *(step.rhs if isinstance(step.rhs, (list, tuple)) else [])]:
                value = number(side)
                if value is None:
                    counts["symbolic"] += isinstance(side, sp.Basic)
                    continue
                if previous is not None:
                    wrong = _differ(previous, value)
                    if wrong:
                        raise PrintedFormError(
                            f"printed step {k + 1} of '{section.title}' ({step.lhs} = ...) "
                            f"does not add up: {wrong}", where=d.title)
                    counts["checked"] += 1
                previous = value
    return counts
