"""Element-wise definitions of the ops, written once and shared by layers and v-notation.

An operand is anything with a ``shape`` and element access ``t[i, j]`` (a graph
:class:`~derive.tensor.tensor_graph.Tensor` or a :class:`Lazy`). Each op returns a
:class:`Lazy`: a shape and the rule giving its element at given indices. Nothing is
evaluated and nothing is scalarised; a graph node is created only when a caller defines
one (``graph.define(name, op.shape, op.element)``).
"""
from __future__ import annotations

import sympy as sp

from derive.errors import InputError, ShapeError
from derive.functions import constant
from derive.functions import relu as _relu
from derive.functions import softplus as _softplus
from derive.tensor.tensor_graph import shape_str
from derive.tensor.index import Argmax, Fresh, ISum, LogSumExp, dim, product


class Lazy:
    """A tensor given by its shape and an element rule ``element(*indices)``."""

    def __init__(self, shape, element, text=""):
        self.shape = tuple(dim(s) for s in shape)
        self.element = element
        self.text = text

    @property
    def ndim(self):
        return len(self.shape)

    def __getitem__(self, idx):
        idx = idx if isinstance(idx, tuple) else (idx,)
        return self.element(*idx)


def lazy(x):
    """An operand as a Lazy (numbers become 0-d constants)."""
    if isinstance(x, Lazy):
        return x
    if hasattr(x, "shape") and hasattr(x, "__getitem__"):
        return Lazy(x.shape, lambda *i: x[i] if i else x[()])
    value = constant(x, "an operand")
    return Lazy((), lambda: value)


def broadcast(shapes, where=None, op="an elementwise op"):
    """NumPy's broadcasting of shapes; ShapeError naming both shapes otherwise."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for k in range(ndim):
        sizes = [s[k - ndim + len(s)] for s in shapes if k - ndim + len(s) >= 0]
        sizes = [x for x in sizes if x != 1]
        if len(set(sizes)) > 1:
            a, b = [s for s in shapes if s][:2] if len(shapes) > 1 else (shapes[0], ())
            raise ShapeError(f"shapes {shape_str(a)} and {shape_str(b)} do not match in {op}",
                             where=where)
        out.append(sizes[0] if sizes else sp.Integer(1))
    return tuple(out)


def elementwise(fn, *operands, where=None, op="an elementwise op"):
    """``fn`` applied entry by entry to broadcast operands (NumPy rules)."""
    ops = [lazy(o) for o in operands]
    shape = broadcast([o.shape for o in ops], where, op)

    def element(*idx):
        args = []
        for o in ops:
            own = idx[len(idx) - o.ndim:] if o.ndim else ()
            own = tuple(sp.S.Zero if s == 1 and t != 1 else i
                        for i, s, t in zip(own, o.shape, shape[len(shape) - o.ndim:]))
            args.append(o[own] if own else o[()])
        return fn(*args)

    return Lazy(shape, element)


def matmul(a, b, where=None, text="@"):
    """``a @ b`` with NumPy's rules for 1-D and 2-D operands (shapes checked)."""
    a, b = lazy(a), lazy(b)
    if a.ndim not in (1, 2) or b.ndim not in (1, 2):
        raise ShapeError(f"'@' needs 1-D or 2-D operands, got {shape_str(a.shape)} and "
                         f"{shape_str(b.shape)}", where=where)
    inner_a, inner_b = a.shape[-1], b.shape[0]
    if inner_a != inner_b:
        raise ShapeError(f"shapes {shape_str(a.shape)} and {shape_str(b.shape)} do not match "
                         f"in {text} (inner sizes {inner_a} and {inner_b})", where=where)
    shape = a.shape[:-1] + b.shape[1:]

    def element(*idx):
        ia, ib = idx[: a.ndim - 1], idx[a.ndim - 1:]
        j = Fresh.idx(inner_a, "j")
        return ISum(a[ia + (j,)] * b[(j,) + ib], j)

    return Lazy(shape, element)


def transpose(a, where=None):
    """``a.T`` of a 2-D operand (a 1-D one is returned unchanged, as in NumPy)."""
    a = lazy(a)
    if a.ndim == 1:
        return a
    if a.ndim != 2:
        raise ShapeError(f".T needs a 2-D operand, got {shape_str(a.shape)}", where=where)
    return Lazy(a.shape[::-1], lambda i, j: a[j, i])


def reduce_sum(a, axes=None):
    """Σ over ``axes`` (default: all) of ``a``."""
    a = lazy(a)
    axes = tuple(range(a.ndim)) if axes is None else tuple(x % a.ndim for x in axes)
    keep = [k for k in range(a.ndim) if k not in axes]

    def element(*idx):
        full = [None] * a.ndim
        for k, i in zip(keep, idx):
            full[k] = i
        bound = []
        for k in axes:
            full[k] = Fresh.idx(a.shape[k], "j")
            bound.append(full[k])
        return ISum(a[tuple(full)], *bound) if bound else a[tuple(full)]

    return Lazy(tuple(a.shape[k] for k in keep), element)


def count(a, axes=None):
    """Number of entries summed by ``reduce_sum(a, axes)``."""
    a = lazy(a)
    axes = range(a.ndim) if axes is None else axes
    return product(a.shape[k] for k in axes)


def mean(a, axes=None):
    """The mean over ``axes`` (default: all entries)."""
    n = count(a, axes)
    s = reduce_sum(a, axes)
    return Lazy(s.shape, lambda *i: s[i] / n if i else s[()] / n)


def logsumexp(a, axis=-1):
    """``log Σ_k exp(a[.., k, ..])`` along ``axis`` (stable by construction)."""
    a = lazy(a)
    axis %= a.ndim
    keep = tuple(s for k, s in enumerate(a.shape) if k != axis)

    def element(*idx):
        k = Fresh.idx(a.shape[axis], "k")
        full = idx[:axis] + (k,) + idx[axis:]
        return LogSumExp(a[full], k)

    return Lazy(keep, element)


def log_softmax(a, axis=-1):
    """``a - logsumexp(a)`` along ``axis``."""
    a = lazy(a)
    axis %= a.ndim
    lse = logsumexp(a, axis)
    return Lazy(a.shape, lambda *i: a[i] - lse[i[:axis] + i[axis + 1:]])


def softmax(a, axis=-1):
    """``exp(a - logsumexp(a))``: softmax written so that it cannot overflow."""
    ls = log_softmax(a, axis)
    return Lazy(ls.shape, lambda *i: sp.exp(ls[i]))


def activation(row, a, **options):
    """The registry function ``row`` applied entry by entry (an activation layer's op)."""
    opts = row.options(kwargs=options)
    return elementwise(lambda x: row.sympy(x, *opts), a)


# -- losses (mean over the batch / all entries, as PyTorch's default reduction) -------------

def mse(a, y, where=None):
    """``mean((a - y)^2)`` over all entries."""
    return mean(elementwise(lambda p, t: (p - t) ** 2, a, y, where=where, op="mse"))


def bce(p, y, where=None):
    """``-mean(y log p + (1 - y) log(1 - p))`` on probabilities ``p``."""
    return mean(elementwise(lambda q, t: -(t * sp.log(q) + (1 - t) * sp.log(1 - q)), p, y,
                            where=where, op="bce"))


def bce_logits(z, y, where=None):
    """``mean(softplus(z) - y z)``: BCE on logits (= BCE(sigmoid(z), y), stably)."""
    return mean(elementwise(lambda s, t: _softplus(s) - t * s, z, y, where=where,
                            op="bce_logits"))


def _labels_fit(z, labels, where, op):
    z, labels = lazy(z), lazy(labels)
    if z.ndim != 2 or labels.shape != z.shape[:1]:
        raise ShapeError(f"shapes {shape_str(z.shape)} and {shape_str(labels.shape)} do not "
                         f"match in {op} (scores [B, C] and labels [B])", where=where)
    return z, labels


def cross_entropy(z, labels, where=None):
    """Softmax cross-entropy on logits ``z: [B, C]`` with int labels ``[B]``, batch mean.

    ``(1/B) Σ_n (LSE_k z[n,k] - z[n, y_n])``: the log-softmax at the true class.
    """
    z, labels = _labels_fit(z, labels, where, "cross_entropy")
    lse = logsumexp(z, 1)
    per = Lazy(labels.shape, lambda n: lse[n] - z[n, labels[n]])
    return mean(per)


def hinge(s, labels, margin=1, where=None):
    """Multiclass SVM hinge (CS231n): ``(1/B) Σ_n Σ_{j≠y_n} max(0, s_nj - s_ny + Δ)``."""
    s, labels = _labels_fit(s, labels, where, "hinge")
    delta = constant(margin, "the hinge margin")
    per = Lazy(s.shape, lambda n, j: (1 - sp.KroneckerDelta(j, labels[n]))
               * _relu(s[n, j] - s[n, labels[n]] + delta))
    return Lazy((), lambda: reduce_sum(per)[()] / s.shape[0])


def zero_one(s, labels, where=None):
    """0/1 loss: the fraction of rows whose first maximum is not the label."""
    s, labels = _labels_fit(s, labels, where, "zero_one")

    def wrong(n):
        k = Fresh.idx(s.shape[1], "k")
        return 1 - sp.KroneckerDelta(Argmax(s[n, k], k), labels[n])

    return mean(Lazy(labels.shape, wrong))


#: the two textbook forms of the squared (L2) penalty: scale -> factor in front of λ Σ w²
L2_SCALES = {"lambda": sp.Integer(1), "lambda/2": sp.Rational(1, 2)}


def penalty_weight(value, what):
    """A penalty weight λ: a number (see ``constant``) that is not negative."""
    lam = constant(value, what)
    if lam.is_negative:
        raise InputError(f"{what} must not be negative, got {value!r:.40}")
    return lam


def l2_factor(scale):
    """The factor of λ Σ w² for ``scale`` ("lambda": λ Σ w², gradient 2λw; "lambda/2":
    (λ/2) Σ w², gradient λw, PyTorch's weight decay)."""
    if scale not in L2_SCALES:
        raise InputError(f"unknown L2 scale convention {scale!r:.40}: expected "
                         f"{' or '.join(map(repr, L2_SCALES))}")
    return L2_SCALES[scale]


def l1(w, lam=1):
    """``λ Σ |w|``."""
    lam = penalty_weight(lam, "the L1 weight")
    return Lazy((), lambda: lam * reduce_sum(elementwise(sp.Abs, w))[()])


def l2(w, lam=1, scale="lambda/2"):
    """``(λ/2) Σ w²`` (gradient λw, PyTorch's weight decay), or ``λ Σ w²`` (gradient 2λw)
    with ``scale="lambda"``."""
    lam = penalty_weight(lam, "the L2 weight") * l2_factor(scale)
    return Lazy((), lambda: lam * reduce_sum(
        elementwise(lambda x: x ** 2, w))[()])


def l2_lambda(w, lam=1):
    """``λ Σ w²`` (gradient 2λw): v-notation's name for ``l2(w, lam, scale="lambda")``."""
    return l2(w, lam, "lambda")


def elastic_net(w, l1_weight=1, l2_weight=1, scale="lambda/2"):
    """``λ1 Σ|w| + (λ2/2) Σ w²``, or ``λ1 Σ|w| + λ2 Σ w²`` with ``scale="lambda"``."""
    a, b = l1(w, l1_weight), l2(w, l2_weight, scale)
    return Lazy((), lambda: a[()] + b[()])


def elastic_net_lambda(w, l1_weight=1, l2_weight=1):
    """``λ1 Σ|w| + λ2 Σ w²``: v-notation's name for ``elastic_net(.., scale="lambda")``."""
    return elastic_net(w, l1_weight, l2_weight, "lambda")
