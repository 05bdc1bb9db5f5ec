"""Shape ops, element by element: batched ``@``, reshape, broadcast_to, permute, and
reductions (sum, mean, max, logsumexp) over several axes at once.

Like :mod:`derive.tensor.ops` each op returns a :class:`~derive.tensor.ops.Lazy` (a shape
and an element rule), so its gradient is derived by the reverse sweep like any other
definition, never written here:

* ``reshape`` reads ``x`` at the row-major position of the output index
  (``y[i, j] = x[⌊(4i + j)/12⌋, ⌊(4i + j)/4⌋ mod 3, (4i + j) mod 4]``); its adjoint comes
  out as the exact scatter ``x̄[⌊·⌋, ·] += ȳ[i, j]``, which visits each entry once: the
  reshape of ȳ back to x's shape;
* ``broadcast_to`` reads a size-1 axis at 0, so its adjoint sums ȳ over the broadcast axes;
* ``permute`` renames axes, so its adjoint is the inverse permutation;
* ``max`` over axes reads ``x`` at its first maximum (``Argmax``, forward only), so its
  gradient goes to that entry (ties: the first; PyTorch's ``amax`` splits ties evenly).
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from derive.errors import ShapeError
from derive.tensor import ops
from derive.tensor.evaluate import NUMPY_FUNCTIONS
from derive.tensor.index import Argmax, Fresh, ISum, LogSumExp, dim, product
from derive.tensor.tensor_graph import shape_str


class idiv(sp.Function):  # noqa: N801  (an index function, like sympy's floor)
    """``idiv(e, m) = ⌊e / m⌋`` for an index ``e >= 0`` and a size ``m``: the integer
    division a reshape's positions use (it states its range, so scatters through it are
    exact).

    >>> idiv(7, 3)
    2
    """

    is_integer = True
    is_nonnegative = True

    @classmethod
    def eval(cls, e, m):
        if e.is_Integer and m.is_Integer:
            return sp.Integer(int(e) // int(m))
        if m == 1:
            return e
        return None

    def index_range(self):
        from derive.tensor.scatter import index_range
        inner = index_range(self.args[0])
        if inner is None:
            return None
        m = self.args[1]
        return sp.floor(inner[0] / m), sp.floor(inner[1] / m)

    def _latex(self, printer):
        e, m = (printer._print(a) for a in self.args)
        return r"\left\lfloor \frac{%s}{%s} \right\rfloor" % (e, m)

    def _sympystr(self, printer):
        e, m = (printer._print(a) for a in self.args)
        e = f"({e})" if isinstance(self.args[0], sp.Add) else e
        return f"floor({e}/{m})"

    def _pythoncode(self, printer):
        e, m = (printer._print(a) for a in self.args)
        return f"(({e}) // ({m}))"


NUMPY_FUNCTIONS.setdefault(idiv, lambda e, m: np.floor_divide(e, m))


def _axes(a, axes, op):
    """``axes`` (int, list, None = all) as sorted distinct axis numbers of ``a``."""
    if axes is None:
        return tuple(range(a.ndim))
    axes = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
    out = []
    for k in axes:
        if not isinstance(k, (int, np.integer)) or not -a.ndim <= k < max(a.ndim, 1):
            raise ShapeError(f"axis {k} is out of range in {op} of a tensor of shape "
                             f"{shape_str(a.shape)}")
        out.append(int(k) % a.ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"axis repeated in {op}: {list(axes)}")
    return tuple(sorted(out))


def _insert(idx, axes, bound):
    """The full index: ``idx`` at the kept axes, ``bound`` at ``axes`` (sorted)."""
    full, it, ib = [], iter(idx), iter(bound)
    for k in range(len(idx) + len(bound)):
        full.append(next(ib) if k in axes else next(it))
    return tuple(full)


# -- products ----------------------------------------------------------------------------------


def matmul(a, b, where=None, text="@"):
    """``a @ b`` as NumPy: 1-D and 2-D operands as :func:`ops.matmul`, more axes as a stack
    of matrices in the last two, with the leading (batch) axes broadcast."""
    a, b = ops.lazy(a), ops.lazy(b)
    if a.ndim <= 2 and b.ndim <= 2:
        return ops.matmul(a, b, where=where, text=text)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"'@' needs operands with at least one axis, got "
                         f"{shape_str(a.shape)} and {shape_str(b.shape)}", where=where)
    va = a.ndim == 1  # a vector: one row, dropped from the result
    vb = b.ndim == 1  # a vector: one column, dropped
    sa = ((1,) + a.shape) if va else a.shape
    sb = (b.shape + (1,)) if vb else b.shape
    if sa[-1] != sb[-2]:
        raise ShapeError(f"shapes {shape_str(a.shape)} and {shape_str(b.shape)} do not match "
                         f"in {text} (inner sizes {sa[-1]} and {sb[-2]})", where=where)
    try:
        batch = ops.broadcast([sa[:-2], sb[:-2]], where, text)
    except ShapeError:
        raise ShapeError(f"shapes {shape_str(a.shape)} and {shape_str(b.shape)} do not "
                         f"match in {text} (batch axes {shape_str(sa[:-2])} and "
                         f"{shape_str(sb[:-2])} do not broadcast)", where=where) from None
    shape = batch + (() if va else (sa[-2],)) + (() if vb else (sb[-1],))

    def own(idx, sizes):
        idx = idx[len(idx) - len(sizes):] if sizes else ()
        return tuple(sp.S.Zero if s == 1 and t != 1 else i
                     for i, s, t in zip(idx, sizes, batch[len(batch) - len(sizes):]))

    def element(*idx):
        nb = len(batch)
        bi, rest = idx[:nb], list(idx[nb:])
        i = () if va else (rest.pop(0),)
        k = () if vb else (rest.pop(0),)
        j = Fresh.idx(sa[-1], "j")
        left = a[own(bi, sa[:-2]) + i + (j,)]
        right = b[own(bi, sb[:-2]) + (j,) + k]
        return ISum(left * right, j)

    return ops.Lazy(shape, element)


# -- shapes ------------------------------------------------------------------------------------


def _sizes(shape, where, op):
    sizes = [dim(s) for s in shape]
    if any(s.is_Integer and s < 1 and s != -1 for s in sizes):
        raise ShapeError(f"sizes in {op} must be positive, got {shape_str(sizes)}", where=where)
    return sizes


def reshape(a, shape, where=None):
    """``a.reshape(shape)`` in row-major (C) order; one size may be -1 (inferred)."""
    a = ops.lazy(a)
    shape = [shape] if isinstance(shape, (int, np.integer, str)) else list(shape)
    sizes = _sizes(shape, where, "reshape")
    total = product(a.shape)
    if sum(1 for s in sizes if s == -1) > 1:
        raise ShapeError(f"reshape to {shape_str(shape)}: only one size may be -1",
                         where=where)
    if -1 in sizes:
        known = product(s for s in sizes if s != -1)
        rest = sp.simplify(total / known)
        if not (rest.is_Integer and rest > 0) and not (not rest.is_number
                                                       and rest.is_positive):
            raise ShapeError(f"cannot reshape a tensor of shape {shape_str(a.shape)} "
                             f"({total} entries) to {shape_str(shape)}", where=where)
        sizes = [rest if s == -1 else s for s in sizes]
    if sp.simplify(product(sizes) - total) != 0:
        raise ShapeError(f"cannot reshape a tensor of shape {shape_str(a.shape)} "
                         f"({total} entries) to {shape_str(sizes)} ({product(sizes)} "
                         "entries)", where=where)
    sizes = tuple(sizes)
    if sizes == a.shape:
        return a

    groups = _groups(a.shape, sizes)

    def element(*idx):
        pos = []
        for (i0, i1), (o0, o1) in groups:
            pos += _unflatten(_flatten(idx[o0:o1], sizes[o0:o1]), a.shape[i0:i1])
        return a[tuple(pos)] if pos else a[()]

    return ops.Lazy(sizes, element)


def _groups(old, new):
    """Runs of axes ``(old[i0:i1], new[o0:o1])`` with equal products, as short as possible
    (a reshape moves entries only inside each run: [2, 3, 4] -> [6, 4] is [2, 3] -> [6]
    and [4] -> [4])."""
    out, i, o = [], 0, 0
    while i < len(old) or o < len(new):
        i1, o1 = i, o
        p, q = sp.S.One, sp.S.One
        while True:
            if i1 < len(old) and (o1 == len(new) or p == q and i1 == i or _less(p, q)):
                p, i1 = p * old[i1], i1 + 1
            elif o1 < len(new):
                q, o1 = q * new[o1], o1 + 1
            else:
                break
            if sp.simplify(p - q) == 0 and i1 > i and o1 > o:
                break
        out.append(((i, i1), (o, o1)))
        i, o = i1, o1
    return out


def _less(p, q):
    d = sp.simplify(q - p)
    return bool(d.is_positive) if d.is_number else True


def _flatten(idx, sizes):
    """The row-major position of ``idx`` in a block of ``sizes``."""
    return sp.Add(*[i * product(sizes[k + 1:]) for k, i in enumerate(idx)])


def _unflatten(flat, sizes):
    """The indices of row-major position ``flat`` in a block of ``sizes``."""
    out = []
    for k, n in enumerate(sizes):
        q = idiv(flat, product(sizes[k + 1:]))
        out.append(q if k == 0 else sp.Mod(q, n))
    return out


def broadcast_to(a, shape, where=None):
    """``a`` broadcast to ``shape`` (NumPy's rules: size-1 or missing leading axes)."""
    a = ops.lazy(a)
    shape = [shape] if isinstance(shape, (int, np.integer, str)) else list(shape)
    sizes = tuple(_sizes(shape, where, "broadcast_to"))
    bad = len(sizes) < a.ndim or any(
        s != 1 and s != t for s, t in zip(a.shape, sizes[len(sizes) - a.ndim:]))
    if bad:
        raise ShapeError(f"cannot broadcast a tensor of shape {shape_str(a.shape)} to "
                         f"{shape_str(sizes)}", where=where)
    return ops.elementwise(lambda x, _: x, a, ops.Lazy(sizes, lambda *i: sp.S.Zero),
                           where=where, op="broadcast_to")


def permute(a, axes=None, where=None):
    """``a.transpose(axes)`` (NumPy) / ``a.permute(axes)`` (PyTorch): axis ``k`` of the
    result is axis ``axes[k]`` of ``a``; no axes reverses them (``.T`` for 2-D)."""
    a = ops.lazy(a)
    axes = tuple(reversed(range(a.ndim))) if axes is None or axes == () else tuple(axes)
    norm = [int(k) % a.ndim for k in axes if isinstance(k, (int, np.integer))
            and -a.ndim <= k < a.ndim]
    if len(axes) != a.ndim or sorted(norm) != list(range(a.ndim)):
        raise ShapeError(f"axes {list(axes)} are not a permutation of the {a.ndim} axes of "
                         f"a tensor of shape {shape_str(a.shape)}", where=where)
    inverse = [norm.index(k) for k in range(a.ndim)]
    return ops.Lazy(tuple(a.shape[k] for k in norm),
                    lambda *i: a[tuple(i[inverse[k]] for k in range(a.ndim))])


def transpose(a, *axes, where=None):
    """``a.T`` (2-D, or 1-D unchanged), or :func:`permute` when ``axes`` are given or
    ``a`` has more axes (then its axes are reversed, as NumPy's ``a.T``)."""
    a = ops.lazy(a)
    if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
        axes = tuple(axes[0])
    if not axes and a.ndim <= 2:
        return ops.transpose(a, where=where)
    return permute(a, axes or None, where=where)


# -- reductions over several axes --------------------------------------------------------------


def summation(a, axes=None, where=None):
    """Σ over ``axes`` (int, list; default all): needle's ``summation(a, axes=...)``."""
    a = ops.lazy(a)
    return ops.reduce_sum(a, _axes(a, axes, "summation"))


def mean(a, axes=None, where=None):
    """The mean over ``axes`` (default: all entries)."""
    a = ops.lazy(a)
    return ops.mean(a, _axes(a, axes, "mean"))


def logsumexp(a, axes=-1, where=None):
    """``log Σ exp(a)`` over ``axes`` at once (one stable reduction, max subtracted)."""
    a = ops.lazy(a)
    axes = _axes(a, axes, "logsumexp")

    def element(*idx):
        bound = tuple(Fresh.idx(a.shape[k], "k") for k in axes)
        return LogSumExp(a[_insert(idx, axes, bound)], *bound)

    return ops.Lazy(tuple(s for k, s in enumerate(a.shape) if k not in axes), element)


def _max_one(a, axis):
    def element(*idx):
        k = Fresh.idx(a.shape[axis], "k")
        first = Argmax(a[idx[:axis] + (k,) + idx[axis:]], k)
        return a[idx[:axis] + (first,) + idx[axis:]]

    return ops.Lazy(tuple(s for k, s in enumerate(a.shape) if k != axis), element)


def reduce_max(a, axes=None, where=None):
    """The maximum over ``axes`` (default all): ``a`` read at its first maximum, one axis
    after another from the last, so its gradient goes to that entry."""
    a = ops.lazy(a)
    for k in reversed(_axes(a, axes, "max")):
        a = _max_one(a, k)
    return a
