"""The matrix-form tree: array nodes with labelled axes (what kernels print as NumPy).

Every :class:`MatNode` has ``axes`` (the Idx each array axis stands for), ``shape``,
``children`` and :meth:`MatNode.numpy` (its value with NumPy, given an
:class:`~derive.tensor.evaluate.Env`). Operands of elementwise nodes are aligned to the
node's axes (a missing axis is an explicit :class:`Broadcast`). Recognition lives in
:mod:`derive.tensor.matrix`; display in :mod:`derive.tensor.display`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from derive.tensor.index import extent


@dataclass(frozen=True, eq=False)
class MatNode:
    """Base: an array whose axis ``k`` runs over the index ``axes[k]``."""

    axes: tuple

    @property
    def shape(self):
        return tuple(extent(a) for a in self.axes)

    @property
    def ndim(self):
        return len(self.axes)

    @property
    def children(self):
        return ()

    def numpy(self, env):
        raise NotImplementedError

    def __repr__(self):
        kids = ", ".join(repr(c) for c in self.children)
        return f"{type(self).__name__}({kids})"


@dataclass(frozen=True, eq=False, repr=False)
class Ref(MatNode):
    """The stored array ``name`` (axes in storage order)."""

    name: str = ""

    def numpy(self, env):
        return np.asarray(env.array(self.name), dtype=float)

    def __repr__(self):
        return f"Ref({self.name})"


@dataclass(frozen=True, eq=False, repr=False)
class Const(MatNode):
    """A scalar: a number, a constant or a dimension symbol."""

    value: sp.Expr = sp.S.Zero

    def numpy(self, env):
        return np.asarray(env.scalar(self.value), dtype=float)

    def __repr__(self):
        return f"Const({self.value})"


@dataclass(frozen=True, eq=False, repr=False)
class Unary(MatNode):
    """A node with one operand ``a``; further fields of a subclass follow ``a``."""

    a: MatNode = None

    @property
    def children(self):
        return (self.a,)


@dataclass(frozen=True, eq=False, repr=False)
class Transpose(Unary):
    """``a.T`` of a 2-D node."""

    def numpy(self, env):
        return self.a.numpy(env).T


@dataclass(frozen=True, eq=False, repr=False)
class MatMul(MatNode):
    """``np.dot(a.T if ta else a, b.T if tb else b)`` (operands of rank 1 or 2)."""

    a: MatNode = None
    b: MatNode = None
    ta: bool = False
    tb: bool = False

    @property
    def children(self):
        return (self.a, self.b)

    def numpy(self, env):
        a, b = self.a.numpy(env), self.b.numpy(env)
        return np.dot(a.T if self.ta else a, b.T if self.tb else b)

    def __repr__(self):
        t = lambda x, f: f"{x!r}.T" if f else repr(x)  # noqa: E731
        return f"MatMul({t(self.a, self.ta)}, {t(self.b, self.tb)})"


@dataclass(frozen=True, eq=False, repr=False)
class Outer(MatNode):
    """``np.outer(a, b)`` of two vectors."""

    a: MatNode = None
    b: MatNode = None

    @property
    def children(self):
        return (self.a, self.b)

    def numpy(self, env):
        return np.outer(self.a.numpy(env), self.b.numpy(env))


@dataclass(frozen=True, eq=False, repr=False)
class Elementwise(MatNode):
    """Base of nodes acting entry by entry on operands aligned to ``axes``."""

    ops: tuple = ()

    @property
    def children(self):
        return self.ops


class Hadamard(Elementwise):
    """The elementwise product ``ops[0] ⊙ ops[1] ⊙ ...``."""

    def numpy(self, env):
        out = 1.0
        for op in self.ops:
            out = out * op.numpy(env)
        return out


class Add(Elementwise):
    """The elementwise sum of the operands."""

    def numpy(self, env):
        return sum(op.numpy(env) for op in self.ops)


@dataclass(frozen=True, eq=False, repr=False)
class Scale(MatNode):
    """``c * a`` with ``c`` a scalar SymPy expression (numbers, constants, dimensions)."""

    c: sp.Expr = sp.S.One
    a: MatNode = None

    @property
    def children(self):
        return (self.a,)

    def numpy(self, env):
        return env.scalar(self.c) * self.a.numpy(env)

    def __repr__(self):
        return f"Scale({self.c}, {self.a!r})"


@dataclass(frozen=True, eq=False, repr=False)
class Map(Elementwise):
    """``fn(*ops)`` entry by entry; ``fn`` is a ``sympy.Lambda`` over scalar dummies."""

    fn: sp.Lambda = None

    def numpy(self, env):
        return env.apply(self.fn, [op.numpy(env) for op in self.ops])

    def __repr__(self):
        kids = ", ".join(repr(c) for c in self.ops)
        return f"Map({self.fn.expr}, {kids})"


@dataclass(frozen=True, eq=False, repr=False)
class Reduce(Unary):
    """``a.sum(axis=axis)``; ``axis`` is a tuple of axis numbers of ``a``."""

    axis: tuple = ()

    def numpy(self, env):
        return self.a.numpy(env).sum(axis=self.axis)

    def __repr__(self):
        return f"Reduce({self.a!r}, axis={self.axis})"


@dataclass(frozen=True, eq=False, repr=False)
class Broadcast(Unary):
    """``a`` seen with the target ``axes``: missing axes become size-1 (``a[:, None]``)."""

    def numpy(self, env):
        a = self.a.numpy(env)
        return a.reshape([s if ax in self.a.axes else 1
                          for ax, s in zip(self.axes, env.shape_of(self.axes))])


@dataclass(frozen=True, eq=False, repr=False)
class OneHot(MatNode):
    """``onehot(label)``: ``(y[:, None] == arange(C))`` as floats (axes: label's, class)."""

    label: str = ""

    def numpy(self, env):
        y = np.asarray(env.array(self.label)).astype(int)
        classes = env.shape_of(self.axes[-1:])[0]
        return (y[..., None] == np.arange(classes)).astype(float)

    def __repr__(self):
        return f"OneHot({self.label})"


@dataclass(frozen=True, eq=False, repr=False)
class Gather(Unary):
    """``a[arange(B), y]``: from each row of ``a`` the entry at the row's label."""

    label: str = ""

    def numpy(self, env):
        a = self.a.numpy(env)
        y = np.asarray(env.array(self.label)).astype(int)
        return a[np.arange(a.shape[0]), y]

    def __repr__(self):
        return f"Gather({self.a!r}, {self.label})"


@dataclass(frozen=True, eq=False, repr=False)
class Softmax(Unary):
    """Softmax of ``a`` along ``axis`` (computed with the max subtracted)."""

    axis: int = -1

    def numpy(self, env):
        a = self.a.numpy(env)
        e = np.exp(a - a.max(axis=self.axis, keepdims=True))
        return e / e.sum(axis=self.axis, keepdims=True)


@dataclass(frozen=True, eq=False, repr=False)
class LogSumExpNode(Unary):
    """``log Σ exp(a)`` along ``axis`` (stable); the axis is dropped."""

    axis: int = -1

    def numpy(self, env):
        a = self.a.numpy(env)
        m = a.max(axis=self.axis, keepdims=True)
        return (np.log(np.exp(a - m).sum(axis=self.axis, keepdims=True)) + m).squeeze(
            self.axis)


def walk(node):
    """Every node of a MatNode tree, parents first."""
    yield node
    for child in node.children:
        yield from walk(child)
