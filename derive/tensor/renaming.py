"""Equal shapes up to renaming: derive a repeated piece of a graph once.

An unrolled sequence (an RNN, LSTM or GRU over T steps) repeats each step's definitions T
times with other tensor names (``c1_3 = c1_2 ⊙ f1_3 + g1_3 ⊙ i1_3`` is ``c1_2 = c1_1 ⊙ f1_2
+ g1_2 ⊙ i1_2`` renamed) and other fresh indices. Differentiation does not look at names,
so the result for one is the result for the other, renamed. :func:`shape_of` replaces the
tensors and the fresh indices of some expressions by placeholders numbered in order of
appearance; expressions with equal shapes have equal placeholder forms, and a result
computed on one is mapped to the other by the inverse renaming.

Only names are replaced: dimensions (``B``, ``h``), constants and every index range stay
as they are, and a placeholder index keeps its range. Shapes whose printed order differs
(SymPy orders arguments by name) simply do not match: a cache miss, never a wrong result.

>>> import sympy as sp
>>> i, k = sp.Idx("i3", 4), sp.Idx("k7", 4)
>>> a, b = sp.IndexedBase("h1_2"), sp.IndexedBase("c1_2")
>>> s1 = shape_of([a[i] * b[i], k], {"h1_2", "c1_2"})
>>> s2 = shape_of([sp.IndexedBase("h1_3")[i] * sp.IndexedBase("c1_3")[i], k],
...               {"h1_3", "c1_3"})
>>> s1.key == s2.key
True
>>> s2.restore(s1.forward[0])
c1_3[i3]*h1_3[i3]
"""
from __future__ import annotations

import re

import sympy as sp

from derive.derivation import BAR_SUFFIX

FRESH = re.compile(r"^[a-z]\d+$")  # Fresh.idx names: i17, j26, k57


class Shape:
    """Placeholder forms of some expressions, and the renaming back."""

    def __init__(self, forward, back):
        self.forward = forward  # the expressions with placeholders
        self.back = back  # placeholder -> original
        self.key = tuple(forward)  # SymPy compares (and hashes) structurally

    def restore(self, expr):
        """``expr`` (in placeholders) with the original names put back."""
        return expr.xreplace(self.back) if isinstance(expr, sp.Basic) and self.back else expr


def shape_of(exprs, tensors):
    """The :class:`Shape` of ``exprs``: tensors named in ``tensors`` (IndexedBase labels and
    0-d Symbols, with their ``_bar`` adjoints) and fresh indices become placeholders."""
    to, back = {}, {}

    def name(obj):
        if obj in to:
            return
        n = len(to)
        if isinstance(obj, sp.Idx):
            new = sp.Idx(f"_q{n}", (obj.lower, obj.upper))
        elif isinstance(obj, sp.IndexedBase):
            new = sp.IndexedBase(f"_T{n}")
        else:
            new = sp.Symbol(f"_T{n}", **obj.assumptions0)
        to[obj], back[new] = new, obj

    def visit(e):
        if isinstance(e, sp.Idx):
            if FRESH.match(str(e.label)):
                name(e)
            return
        if isinstance(e, sp.IndexedBase):
            if _tensor(str(e.label), tensors):
                name(e)
            return
        if isinstance(e, sp.Symbol):
            if _tensor(e.name, tensors):
                name(e)
            return
        for a in e.args:
            visit(a)

    for e in exprs:
        visit(e)
    forward = [e.xreplace(to) if to else e for e in exprs]
    return Shape(forward, back)


def _tensor(label, tensors):
    return label in tensors or (label.endswith(BAR_SUFFIX)
                                and label[: -len(BAR_SUFFIX)] in tensors)
