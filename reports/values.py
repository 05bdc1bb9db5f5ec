r"""Numbers as a worked solution shows them: exact first, then a decimal.

A value in a Derivation may be a SymPy number (exact where the inputs were exact), a
SymPy expression, a Python or NumPy scalar, a NumPy array, a SymPy matrix or a nested
list. :func:`classify` names which; :func:`value_tex` typesets it (``\frac{3}{2} \approx
1.5``); ``reports.json_out`` converts it with the same classification.
"""
from __future__ import annotations

import numbers
import re

import numpy as np
import sympy as sp

from derive.stepforms import Approx
from reports.latex_printer import DIGITS, decimal, decimal_tex, latex, text_math  # noqa: F401

MAX_ENTRIES = 6  # rows / columns of a matrix shown before eliding with dots


def classify(v):
    """One of ``none, text, bool, int, float, exact, expr, array``.

    ``exact`` is a SymPy number free of floats (``3/2``, ``sqrt(2)/2``, ``7``); ``expr``
    a SymPy object with free symbols or a matrix expression; ``array`` anything with rows.
    """
    if v is None:
        return "none"
    if isinstance(v, str):
        return "text"
    if isinstance(v, (bool, np.bool_)):
        return "bool"
    if isinstance(v, (np.ndarray, sp.MatrixBase, list, tuple)):
        return "array"
    if isinstance(v, (sp.UnevaluatedExpr, Approx)):
        return "expr"  # arithmetic as written, a decimal: printed as given, not evaluated
    if isinstance(v, sp.Basic):
        if not v.is_number or getattr(v, "is_Matrix", False):
            return "expr"
        return "float" if v.has(sp.Float) else "exact"
    if isinstance(v, numbers.Integral):
        return "int"
    if isinstance(v, numbers.Real):
        return "float"
    return "text"


def as_rows(v):
    """A value of kind ``array`` as a NumPy object array (keeps exact SymPy entries)."""
    if isinstance(v, sp.MatrixBase):
        return np.array(v.tolist(), dtype=object)
    return np.array(v, dtype=object)


def approximate(v):
    """The decimal of an exact SymPy number, or None when it is an integer or not real."""
    if v.is_Integer or v.is_real is False:
        return None
    try:
        return decimal(sp.N(v, DIGITS + 4))
    except TypeError:  # not reducible to one real number
        return None


def entry_tex(v, names=None):
    """One scalar value, exact only (no decimal); text is set as escaped words."""
    kind = classify(v)
    if kind == "float":
        return decimal_tex(v)
    if kind in ("int", "bool"):
        return str(int(v))
    if kind == "text":  # a dimension name (B) stays mathematics; other words are escaped
        text = str(v)
        return text if re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", text) else text_math(text)
    return latex(v, names)


def value_tex(v, names=None):
    r"""A value in LaTeX, exact then ``\approx`` decimal when it is not an integer.

    >>> import sympy as sp
    >>> value_tex(sp.Rational(3, 2))
    '\\frac{3}{2} \\approx 1.5'
    """
    kind = classify(v)
    if kind == "none":
        return ""
    if kind == "array":
        return array_tex(v, names)
    text = entry_tex(v, names)
    if kind == "exact":
        approx = approximate(v)
        if approx is not None:
            text += r" \approx " + decimal_tex(approx)
    return text


def array_tex(v, names=None, approx=True):
    """A vector or matrix as ``bmatrix`` (elided past MAX_ENTRIES), then its decimals."""
    rows = as_rows(v)
    if rows.ndim == 0:
        return value_tex(rows.item(), names)
    if rows.ndim > 2:
        return r"\text{array of shape } (%s)" % ", ".join(map(str, rows.shape))
    exact = bmatrix(rows, lambda e: entry_tex(e, names))
    if approx and any(classify(e) == "exact" and approximate(e) is not None for e in rows.flat):
        # an entry with symbols has no decimal: it is shown exact in the decimal matrix too
        return exact + r" \approx " + bmatrix(rows, lambda e: decimal_tex(sp.N(e)) if
                                               classify(e) != "expr" else entry_tex(e, names))
    return exact


def _elide(n):
    """Indices shown along an axis of length ``n`` (None marks the dots)."""
    if n <= MAX_ENTRIES:
        return list(range(n))
    return list(range(MAX_ENTRIES - 2)) + [None, n - 1]


def bmatrix(rows, show):
    """``\\begin{bmatrix}...`` of a 1-D (one row) or 2-D object array."""
    grid = rows.reshape(1, -1) if rows.ndim == 1 else rows
    cols = _elide(grid.shape[1])
    lines = []
    for i in _elide(grid.shape[0]):
        if i is None:
            lines.append(" & ".join(r"\ddots" if j is None else r"\vdots" for j in cols))
        else:
            lines.append(" & ".join(r"\cdots" if j is None else show(grid[i, j]) for j in cols))
    return r"\begin{bmatrix} %s \end{bmatrix}" % r" \\ ".join(lines)
