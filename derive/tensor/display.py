"""How tensor results are shown: matrix expressions, or index form with readable indices.

* :func:`matrix_display` turns a :class:`~derive.tensor.matrix.MatNode` into SymPy matrix
  algebra (``MatrixSymbol``, ``MatMul``, ``HadamardProduct``, transposes, ``OneMatrix``
  for broadcasts and batch sums), so shapes are checked by SymPy as well. A 1-D tensor
  is shown as a row vector ``1 x n`` (exam convention: ``x @ W`` with ``x: [d]``).
* :class:`ElementForm` shows an index expression as ``[rhs]_{n,i}``: the tensor whose
  ``(n, i)`` entry is ``rhs``; :func:`pretty` gives indices the usual names (``n`` for the
  batch, then i, j, k) and removes the ranges SymPy's ``Idx`` would print.
"""
from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions import HadamardProduct, MatrixExpr, OneMatrix

from derive.tensor.index import IndexOp, canonical, subs_index

BATCH_NAMES = ("B", "N")
FREE_NAMES = "ijklmpqrs"


# -- index form ---------------------------------------------------------------------------


def pretty_names(indices, taken=()):
    """Display names for free indices: n for a batch dimension, then i, j, k, ..."""
    names, pool = [], iter(n for n in FREE_NAMES if n not in taken)
    for idx in indices:
        size = idx.upper + 1
        if str(size) in BATCH_NAMES and "n" not in names and "n" not in taken:
            names.append("n")
        else:
            names.append(next(n for n in pool if n not in names))
    return names


def pretty(expr, indices, names=None):
    """``expr`` with free ``indices`` renamed for display and all Idx made plain symbols.

    ``names`` (optional) gives the display names; returns ``(expr, labels)`` where labels
    are the Symbols standing for ``indices``.
    """
    names = list(names) if names is not None else pretty_names(indices)
    new = tuple(sp.Idx(n, i.upper + 1) for n, i in zip(names, indices))
    out = canonical(subs_index(sp.sympify(expr), dict(zip(indices, new))), new)
    return plain(out), tuple(sp.Symbol(n, integer=True) for n in names)


def names_for(first, then):
    """Display names for two groups of indices, the first group named first."""
    a = pretty_names(first)
    return a, pretty_names(then, taken=a)


def plain(expr):
    """Every Idx replaced by its label (no ranges in the display)."""
    if isinstance(expr, sp.Idx):
        return expr.label
    if not isinstance(expr, sp.Basic) or not expr.args:
        return expr
    args = [plain(a) for a in expr.args]
    if isinstance(expr, IndexOp):
        return sp.Expr.__new__(type(expr), *args)
    return expr.func(*args)


class ElementForm(sp.Expr):
    """``[rhs]_{i,j}``: the tensor whose entry (i, j) is ``rhs`` (display only)."""

    is_commutative = True

    def __new__(cls, rhs, *labels):
        return sp.Expr.__new__(cls, sp.sympify(rhs), *labels)

    @property
    def rhs(self):
        return self.args[0]

    @property
    def labels(self):
        return self.args[1:]

    def _sympystr(self, printer):
        if not self.labels:
            return printer._print(self.rhs)
        return "[%s]_(%s)" % (printer._print(self.rhs),
                              ",".join(printer._print(x) for x in self.labels))


def element_form(expr, indices, names=None):
    """An :class:`ElementForm` of ``expr`` with readable indices."""
    body, labels = pretty(expr, indices, names)
    return ElementForm(body, *labels)


def indexed_lhs(name, indices, names=None):
    """``name_{n,i}`` (plain labels) for the left side of an index-form step."""
    names = list(names) if names is not None else pretty_names(indices)
    labels = tuple(sp.Symbol(n, integer=True) for n in names)
    return sp.IndexedBase(name)[labels] if labels else sp.Symbol(name)


# -- matrix form ---------------------------------------------------------------------------


class _Tex(sp.Symbol):
    """A placeholder holding an operand's LaTeX, made while reports' printer prints a
    :class:`MapDisplay` (its text is the printer's own output, printed back as is)."""

    def _sympystr(self, printer):
        return getattr(self, "_plain", self.name)


def _placeholder(matrix, printer):
    sym = _Tex(_operand_tex(matrix, printer))
    sym._plain = str(matrix)
    return sym


def _operand_tex(matrix, printer):
    tex = printer._print(matrix)
    if isinstance(matrix, (sp.MatAdd, sp.MatMul, HadamardProduct)):
        tex = r"\left(%s\right)" % tex
    return tex


class Ones(OneMatrix):
    """A vector (or matrix) of ones, printed 1_B (column) or 1_B^T (row)."""

    def _sympystr(self, printer):
        return "ones(%s, %s)" % self.shape

    def _eval_transpose(self):
        return Ones(self.shape[1], self.shape[0])


class MapDisplay(MatrixExpr):
    """``fn`` applied entry by entry to matrices of one shape (e.g. ``1 + exp(V4)``)."""

    def __new__(cls, fn, *mats):
        return MatrixExpr.__new__(cls, fn, *mats)

    @property
    def shape(self):
        return self.args[1].shape

    def body(self, printer):
        """The formula with each matrix replaced by its LaTeX from ``printer``."""
        fn, mats = self.args[0], self.args[1:]
        subs = {v: _placeholder(m, printer) for v, m in zip(fn.variables, mats)}
        return fn.expr.xreplace(subs)

    def _sympystr(self, printer):
        fn, mats = self.args[0], self.args[1:]
        body = fn.expr.xreplace({v: sp.Symbol(str(m)) for v, m in zip(fn.variables, mats)})
        return "(%s)" % printer._print(body)


class NamedMatrixFn(MatrixExpr):
    """A named matrix function such as softmax(Z) or onehot(y), with its shape."""

    def __new__(cls, name, arg, rows, cols):
        name = name if isinstance(name, sp.Symbol) else sp.Symbol(name)
        return MatrixExpr.__new__(cls, name, arg, sp.sympify(rows),
                                  sp.sympify(cols))

    @property
    def shape(self):
        return self.args[2], self.args[3]

    def _sympystr(self, printer):
        return "%s(%s)" % (self.args[0], printer._print(self.args[1]))


def matrix_display(node, tensors=None):
    """SymPy matrix algebra for a MatNode (1-D tensors as rows, scalars as Symbols)."""
    return _Display(tensors or {}).show(node)


class _Display:
    def __init__(self, tensors):
        self.tensors = tensors

    def show(self, node):
        return getattr(self, "_" + type(node).__name__)(node)

    def _Ref(self, node):
        shape = node.shape
        if not shape:
            return sp.Symbol(node.name)
        if len(shape) == 1:
            return sp.MatrixSymbol(node.name, 1, shape[0])
        if len(shape) == 2:
            return sp.MatrixSymbol(node.name, *shape)
        # a tensor of three or more axes has no matrix form: the element form is shown
        # (an IndexedBase here let x/(H W) stand for a spatial mean, its sums dropped)
        raise ValueError(f"{node.name} has {len(shape)} axes: no matrix form")

    def _Const(self, node):
        return node.value

    def _Transpose(self, node):
        return self.show(node.a).T

    def _MatMul(self, node):
        a, b = self.show(node.a), self.show(node.b)
        a = a.T if node.ta else a
        b = b.T if node.tb else b
        if node.b.ndim == 1 and node.a.ndim == 2:
            return sp.MatMul(b, a.T)  # W @ x shown in row form: x W^T
        if node.b.ndim == 1:
            return sp.MatMul(a, b.T)  # a dot product
        return sp.MatMul(a, b)

    def _Outer(self, node):
        return sp.MatMul(self.show(node.a).T, self.show(node.b))

    def _Scale(self, node):
        inner = self.show(node.a)
        return sp.MatMul(node.c, inner) if isinstance(inner, MatrixExpr) else node.c * inner

    def _Hadamard(self, node):
        mats, scalars = self.operands(node)
        if not mats:
            return sp.Mul(*scalars)
        core = mats[0] if len(mats) == 1 else HadamardProduct(*mats)
        return sp.MatMul(sp.Mul(*scalars), core) if scalars else core

    def _Add(self, node):
        mats, scalars = self.operands(node)
        if not mats:
            return sp.Add(*scalars)
        if scalars:
            c, ones = sp.Add(*scalars), Ones(*mats[0].shape)
            mats.append(ones if c == 1 else sp.MatMul(c, ones))
        return sp.MatAdd(*mats)

    def operands(self, node):
        mats, scalars = [], []
        for op in node.ops:
            shown = self.show(op)
            (mats if isinstance(shown, MatrixExpr) else scalars).append(shown)
        return mats, scalars

    def _Map(self, node):
        ops = [self.show(op) for op in node.ops]
        if not any(isinstance(o, MatrixExpr) for o in ops):
            return node.fn(*ops)
        return MapDisplay(node.fn, *ops)

    def _Reduce(self, node):
        a, inner = self.show(node.a), node.a
        if not isinstance(a, MatrixExpr):
            return a
        if inner.ndim == 1 or len(node.axis) == inner.ndim:
            left = Ones(1, a.shape[0]) if a.shape[0] != 1 else None
            right = Ones(a.shape[1], 1) if a.shape[1] != 1 else None
            parts = [p for p in (left, a, right) if p is not None]
            return sp.MatMul(*parts) if len(parts) > 1 else a
        if node.axis == (0,):
            return sp.MatMul(Ones(1, a.shape[0]), a)  # column sums: a row
        return sp.MatMul(a, Ones(a.shape[1], 1)).T  # row sums, shown as a row

    def _Broadcast(self, node):
        a, inner = self.show(node.a), node.a
        if not isinstance(a, MatrixExpr) or len(node.axes) == len(inner.axes):
            return a
        if len(node.axes) == 2 and inner.ndim == 1:
            rows, cols = node.shape
            if inner.axes[0] == node.axes[1]:
                return sp.MatMul(Ones(rows, 1), a)  # a row repeated down the batch
            return sp.MatMul(a.T, Ones(1, cols))  # a column repeated across
        return a

    def _OneHot(self, node):
        return NamedMatrixFn("onehot", sp.Symbol(node.label), *node.shape)

    def _Gather(self, node):
        a = self.show(node.a)
        hot = NamedMatrixFn("onehot", sp.Symbol(node.label), *a.shape)
        return sp.MatMul(HadamardProduct(a, hot), Ones(a.shape[1], 1)).T

    def _Softmax(self, node):
        a = self.show(node.a)
        return NamedMatrixFn("softmax", a, *a.shape)

    def _LogSumExpNode(self, node):
        a = self.show(node.a)
        return NamedMatrixFn("lse", a, 1, a.shape[0]) if isinstance(a, MatrixExpr) else a


def display(rhs, indices, node=None, tensors=None):
    """The matrix form of an assignment when recognised, else its element form."""
    if node is not None:
        try:
            return matrix_display(node, tensors)
        except (sp.ShapeError, TypeError, ValueError, AttributeError):
            pass
    return element_form(rhs, indices)
