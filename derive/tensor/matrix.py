"""Recognising index expressions as matrix algebra.

:func:`recognise` turns an index expression with free indices ``order`` into a small tree
of :class:`MatNode` s: a contraction over one index becomes ``MatMul`` with the right
transposes, a sum over one axis ``Reduce`` (a column sum over the batch), a product of
tensors with the same indices ``Hadamard`` (⊙), a product of two vectors with different
indices ``Outer``, a missing axis an explicit ``Broadcast``. What is not recognised raises
:class:`NotRecognised` inside and gives ``None`` outside: the index form stays, correct.

The node classes live in :mod:`derive.tensor.nodes` and are re-exported here (the kernel
interface names them ``derive.tensor.matrix.MatMul`` etc.).
"""
from __future__ import annotations

import sympy as sp

from derive.tensor.index import IndexOp, ISum, LogSumExp, free_indices, subs_index
from derive.tensor.nodes import (Add, Broadcast, Const, Elementwise, Gather, Hadamard,  # noqa: F401
                    LogSumExpNode, Map, MatMul, MatNode, OneHot, Outer, Reduce, Ref, Scale,
                    Softmax, Transpose, walk)


class NotRecognised(Exception):
    """The expression has no matrix form we know (the index form is kept)."""


# -- recognition --------------------------------------------------------------------------


def recognise(expr, order, tensors):
    """The matrix form of ``expr`` with axes ``order``, or None.

    Parameters
    ----------
    expr : sympy.Expr
        Index form (deltas eliminated).
    order : tuple of Idx
        The free indices of ``expr`` in the layout wanted.
    tensors : dict
        name -> TensorInfo-like (``.shape``, ``.dtype``); 0-d tensors are Symbols.
    """
    try:
        return Recogniser(tensors).rec(sp.sympify(expr), tuple(order))
    except NotRecognised:
        return None


class Recogniser:
    """The rules of :func:`recognise` (one method per kind of expression)."""

    def __init__(self, tensors):
        self.tensors = tensors

    # -- helpers --------------------------------------------------------------------------
    def is_tensor_free(self, e):
        """True if ``e`` involves no tensor (a number, constant or dimension)."""
        # a delta of indices (the crop after padding) varies with the loop: not a scalar
        if e.has(sp.Indexed, IndexOp) or e.atoms(sp.Idx):
            return False
        return not any(str(s) in self.tensors for s in e.free_symbols)

    def aligned(self, e, order):
        """``e`` recognised over the indices of ``order`` it uses, broadcast to ``order``."""
        free = free_indices(e)
        sub = tuple(a for a in order if a in free)
        node = self.rec(e, sub)
        return node if sub == tuple(order) else Broadcast(tuple(order), node)

    # -- dispatch -------------------------------------------------------------------------
    def rec(self, e, order):
        if set(free_indices(e)) != set(order):
            raise NotRecognised(f"free indices of {e} differ from {order}")
        if self.is_tensor_free(e):
            if order:
                raise NotRecognised("index used as a value")
            return Const((), e)
        if isinstance(e, sp.Indexed):
            return self.indexed(e, order)
        if isinstance(e, sp.Symbol):
            return Ref((), str(e))
        if isinstance(e, sp.KroneckerDelta):
            return self.delta(e, order)
        single = self.single_operand(e, order)
        if single is not None:
            return single
        if isinstance(e, sp.Add):
            return Add(order, tuple(self.aligned(t, order) for t in e.args))
        if isinstance(e, sp.Mul):
            return self.mul(e, order)
        if isinstance(e, ISum):
            return self.isum(e, order)
        if isinstance(e, LogSumExp):
            return self.lse(e, order)
        if isinstance(e, (sp.Function, sp.Pow, sp.Piecewise)):
            return self.map(e, order)
        raise NotRecognised(f"no matrix form for {type(e).__name__}")

    def indexed(self, e, order):
        idx = e.indices
        gather = self.gather(e, order)
        if gather is not None:
            return gather
        if len(set(idx)) != len(idx) or not all(isinstance(i, sp.Idx) for i in idx):
            raise NotRecognised("repeated or computed index")
        node = Ref(tuple(idx), str(e.base))
        return self.permute(node, order)

    def gather(self, e, order):
        """``z[n, y[n]]``: the entry of each row picked by a label."""
        if len(e.indices) != 2:
            return None
        n, lab = e.indices
        if isinstance(n, sp.Idx) and isinstance(lab, sp.Indexed) and lab.indices == (n,) \
                and tuple(order) == (n,):
            classes = sp.Idx("c_", self.tensors[str(e.base)].shape[1])
            return Gather((n,), Ref((n, classes), str(e.base)), str(lab.base))
        return None

    def permute(self, node, order):
        if node.axes == tuple(order):
            return node
        if node.ndim == 2 and node.axes == tuple(order)[::-1]:
            return Transpose(tuple(order), node)
        raise NotRecognised("axis permutation beyond a transpose")

    def delta(self, e, order):
        a, b = e.args
        for lab, k in ((a, b), (b, a)):
            if isinstance(lab, sp.Indexed) and isinstance(k, sp.Idx) and len(lab.indices) == 1 \
                    and isinstance(lab.indices[0], sp.Idx):
                node = OneHot((lab.indices[0], k), str(lab.base))
                return self.permute(node, order)
        raise NotRecognised("a delta between free indices")

    def single_operand(self, e, order):
        """An elementwise formula of ONE tensor element, e.g. ``1 + exp(v4[i])``."""
        kinds = (sp.Add, sp.Mul, sp.Pow, sp.Function, sp.Piecewise)
        if e.has(IndexOp) or not isinstance(e, kinds):
            return None
        leaves = set(self.leaves(e))
        if len(leaves) != 1 or not all(isinstance(x, sp.Indexed) and self.plain(x)
                                       for x in leaves):
            return None
        (leaf,) = leaves
        if free_indices(leaf) != set(order):
            return None
        if isinstance(e, sp.Mul) and leaf in e.args and all(
                self.is_tensor_free(f) for f in e.args if f != leaf):
            return None  # c * x is a Scale, not a function of x
        s = sp.Dummy("s")
        body = e.xreplace({leaf: s})
        if body.atoms(sp.Idx):
            return None  # the formula reads an index as a value: no elementwise map
        return Map(order, (self.rec(leaf, order),), sp.Lambda(s, body))

    def map(self, e, order):
        """A function of several operands: recognise each tensor argument."""
        soft = self.softmax(e, order)
        if soft is not None:
            return soft
        leaves = self.leaves(e)
        dummies = [sp.Dummy(f"s{k}") for k in range(len(leaves))]
        body = e.xreplace(dict(zip(leaves, dummies)))
        if body.atoms(sp.Idx):  # sin(t / 10000^(2i/d)): a function of the indices themselves
            raise NotRecognised("index used as a value")
        ops = tuple(self.aligned(x, order) for x in leaves)
        return Map(order, ops, sp.Lambda(tuple(dummies), body))

    @staticmethod
    def plain(x):
        """True for an element indexed by distinct plain indices (``x[n, i]``)."""
        return all(isinstance(i, sp.Idx) for i in x.indices) and \
            len(set(x.indices)) == len(x.indices)

    def leaves(self, e):
        """Maximal sub-expressions of ``e`` that are tensor elements or reductions."""
        if isinstance(e, (sp.Indexed, IndexOp)) or (isinstance(e, sp.Symbol)
                                                    and str(e) in self.tensors):
            return [e]
        out = []
        for a in e.args:
            for x in self.leaves(a):
                if x not in out:
                    out.append(x)
        return out

    def softmax(self, e, order):
        """``exp(u[.., i] - LSE_k u[.., k])`` is softmax(u) along the axis of ``i``."""
        if not isinstance(e, sp.exp):
            return None
        terms = sp.Add.make_args(e.args[0])
        lse = [t for t in terms if isinstance(t, sp.Mul) and t.args[0] == -1
               and isinstance(t.args[1], LogSumExp) and len(t.args) == 2]
        if len(lse) != 1 or len(lse[0].args[1].indices) != 1:
            return None
        op = lse[0].args[1]
        rest = sp.Add(*[t for t in terms if t is not lse[0]])
        for i in order:
            if subs_index(op.body, {op.indices[0]: i}) == rest:
                return Softmax(order, self.rec(rest, order), list(order).index(i))
        return None

    def lse(self, e, order):
        if len(e.indices) != 1:
            raise NotRecognised("log-sum-exp over several indices")
        inner = tuple(order) + e.indices
        return LogSumExpNode(order, self.rec(e.body, inner), len(order))

    # -- products and contractions ---------------------------------------------------------
    def split_scale(self, factors):
        const = [f for f in factors if self.is_tensor_free(f)]
        rest = [f for f in factors if not self.is_tensor_free(f)]
        return sp.Mul(*const), rest

    def scaled(self, c, node):
        return node if c == 1 else Scale(node.axes, c, node)

    def mul(self, e, order):
        c, rest = self.split_scale(e.args)
        for k, f in enumerate(rest):
            if isinstance(f, sp.Add) and f.could_extract_minus_sign():
                c, rest[k] = -c, -f  # 2(-v6 + y)/d reads -(2/d)(v6 - y)
        rest = self.merge_by_leaf(rest)
        if len(rest) == 1 and c == 1 and rest[0] == e:  # merging gave the product back
            raise NotRecognised("no matrix form for this product")
        if len(rest) == 1:
            return self.scaled(c, self.rec(rest[0], order))
        outer = self.outer(rest, order)
        if outer is not None:
            return self.scaled(c, outer)
        ops = tuple(self.aligned(f, order) for f in rest)
        return self.scaled(c, Hadamard(order, ops))

    def merge_by_leaf(self, factors):
        """Multiply together the factors that are formulas of the same single element.

        ``σ(x)·(1 - σ(x))`` then reads as one elementwise function of ``x``.
        """
        groups, out = {}, []
        for f in factors:
            leaves = self.leaves(f)
            key = leaves[0] if len(leaves) == 1 and not f.has(IndexOp) \
                and isinstance(leaves[0], sp.Indexed) else None
            if key is None:
                out.append(f)
            else:
                groups.setdefault(key, []).append(f)
        return [sp.Mul(*fs) for fs in groups.values()] + out

    def outer(self, factors, order):
        """Factors over {i} times factors over {j} (and nothing else): an outer product."""
        if len(order) != 2:
            return None
        groups = {}
        for f in factors:
            groups.setdefault(frozenset(free_indices(f)), []).append(f)
        if set(groups) != {frozenset({order[0]}), frozenset({order[1]})}:
            return None
        a = self.rec(sp.Mul(*groups[frozenset({order[0]})]), (order[0],))
        b = self.rec(sp.Mul(*groups[frozenset({order[1]})]), (order[1],))
        return Outer(order, a, b)

    def isum(self, e, order):
        c, rest = self.split_scale(sp.Mul.make_args(e.body))
        bound = set(e.indices)
        inside = [f for f in rest if free_indices(f) & bound]
        outside = [f for f in rest if not free_indices(f) & bound]
        core = self.contraction(inside, e.indices, order)
        if outside:
            ops = (self.aligned(core_expr, order) for core_expr in outside)
            core = Hadamard(order, (core,) + tuple(ops)) if core.axes == tuple(order) \
                else Hadamard(order, (Broadcast(order, core),) + tuple(ops))
        return self.scaled(c, core)

    def contraction(self, factors, bound, order):
        """Σ_bound Π factors: a reduction (one operand) or a matrix product (two)."""
        groups = {}
        for f in factors:
            groups.setdefault(frozenset(free_indices(f) - set(bound)), []).append(f)
        keep = frozenset().union(*groups)
        out = tuple(a for a in order if a in keep)
        if len(groups) == 1:
            (others,) = groups
            inner = out + tuple(bound)
            node = self.rec(sp.Mul(*factors), inner)
            if isinstance(node, Transpose):  # sum the stored array along its own axis
                node = node.a
            return Reduce(out, node, tuple(node.axes.index(b) for b in bound))
        if len(groups) == 2 and len(bound) == 1:
            return self.matmul(groups, bound[0], out)
        raise NotRecognised("contraction of more than two operands")

    def matmul(self, groups, j, out):
        (g1, f1), (g2, f2) = groups.items()
        if g1 & g2 or len(g1) > 1 or len(g2) > 1:
            raise NotRecognised("batched or multi-index product")
        if g1 and g2 and g2 == {out[0]}:
            (g1, f1), (g2, f2) = (g2, f2), (g1, f1)  # the first result axis on the left
        a = self.rec(sp.Mul(*f1), tuple(g1) + (j,))
        b = self.rec(sp.Mul(*f2), (j,) + tuple(g2))
        ta, a = (True, a.a) if isinstance(a, Transpose) else (False, a)
        tb, b = (True, b.a) if isinstance(b, Transpose) else (False, b)
        return MatMul(tuple(g1) + tuple(g2), a, b, ta, tb)
