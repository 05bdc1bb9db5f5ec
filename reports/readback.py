"""Printed = computed for LaTeX: the LaTeX a document writes, read back and compared.

Each formula of a scalar Derivation that a document shows (every adjoint's forms and every
final gradient) is printed by the one LaTeX printer (:func:`reports.latex_printer.latex`),
read back by derivekit's own LaTeX answer reader (``derive.verify.answers.parse_answer``,
the one that reads students' LaTeX answers) over the problem's names, and both the SymPy
object printed and the expression read back are evaluated at one random probe point and
compared. A disagreement raises :class:`~derive.tensor.printed.PrintedFormError` naming the
formula; a form the reader cannot read (or that is not real at the probe point) is skipped
and counted.
"""
from __future__ import annotations

import random

import sympy as sp

from derive.errors import DeriveError
from derive.tensor.printed import PrintedFormError

from reports.latex_printer import latex

RTOL = 1e-9


def scalar_forms(d):
    """(what, SymPy expression) of every adjoint form and gradient a scalar document shows."""
    out = []
    for a in d.adjoints:
        for field in ("as_sum", "in_nodes", "in_inputs"):
            e = getattr(a, field, None)
            if isinstance(e, sp.Expr) and not e.is_Matrix:
                out.append((f"{a.name}_bar (adjoint, {field})", e))
    for w, g in d.gradients.items():
        if isinstance(g.expression, sp.Expr) and not g.expression.is_Matrix:
            out.append((f"d/d{w} (gradient)", g.expression))
    return out


def _value(expr, point):
    subs = {s: point.setdefault(str(s), sp.Float(random.uniform(0.2, 0.8), 30))
            for s in expr.free_symbols}
    v = complex(sp.N(expr.xreplace(subs), 30))
    return v.real if abs(v.imag) < 1e-20 else None


def latex_readback(d, seed=0):
    """Read back every scalar form's LaTeX; ``{"read": n, "skipped": m}`` or PrintedFormError."""
    from derive.verify.answers import Vocabulary, parse_answer

    counts = {"read": 0, "skipped": 0}
    if d.program is not None:
        return counts
    names = [n.name for n in d.nodes]
    vocab = Vocabulary(names, d.meta.get("latex_names"))
    random.seed(seed)
    point = {}
    for what, expr in scalar_forms(d):
        tex = latex(expr)
        try:
            back = parse_answer(tex, vocab)
            want, got = _value(expr, point), _value(back, point)
        except (DeriveError, TypeError, ValueError, ZeroDivisionError, RecursionError):
            counts["skipped"] += 1
            continue
        if want is None or got is None:
            counts["skipped"] += 1
            continue
        if abs(got - want) > RTOL * max(1.0, abs(want)):
            raise PrintedFormError(f"the LaTeX of printed {what}, {tex}, reads back as "
                                   f"{back}: {got:.6g} where the formula gives {want:.6g}",
                                   where=d.title)
        counts["read"] += 1
    return counts
