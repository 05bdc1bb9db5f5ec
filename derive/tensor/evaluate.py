"""Numbers from index expressions: a float64 NumPy evaluator (the oracle).

An expression is evaluated to a labelled array (:class:`Arr`: data plus the Idx of each
axis). Products under a sum go to ``np.einsum``; a label inside an index (``p[n, y[n]]``)
or an affine index becomes a NumPy gather; ``LogSumExp`` subtracts the max; ``Heaviside``
uses its stated value at 0. Nothing is scalarised: sizes only enter through the arrays.
"""
from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np
import sympy as sp

from derive.errors import InputError, ShapeError
from derive.functions import FUNCTIONS
from derive.tensor.index import Argmax, IndexOp, ISum, LogSumExp, dim, extent

#: NumPy implementations of the elementwise functions that appear in index forms: the
#: function registry's, and integer index functions (circular padding, positional
#: encodings: whole numbers in floats, cast to int where they index an array).
NUMPY_FUNCTIONS = {r.cls: r.numpy for r in FUNCTIONS if r.cls}
NUMPY_FUNCTIONS.update({sp.Mod: np.mod, sp.floor: np.floor})

_RELATIONS = {sp.StrictGreaterThan: np.greater, sp.GreaterThan: np.greater_equal,
              sp.StrictLessThan: np.less, sp.LessThan: np.less_equal,
              sp.Eq: np.equal, sp.Ne: np.not_equal}


@dataclass
class Arr:
    """A labelled array: ``data`` whose axis ``k`` runs over the index ``axes[k]``."""

    data: np.ndarray
    axes: tuple = ()


class Env:
    """Arrays, dimension values and constants an expression is evaluated against."""

    def __init__(self, arrays, dims=None, constants=None):
        self.arrays = arrays
        self.dims = {dim(k): sp.Integer(int(v)) for k, v in (dims or {}).items()}
        self.constants = {k: sp.Float(v) for k, v in (constants or {}).items()}

    # -- the interface MatNode.numpy uses -------------------------------------------------
    def array(self, name):
        if name not in self.arrays:
            raise InputError(f"no value for tensor '{name}'")
        return self.arrays[name]

    def scalar(self, expr):
        value = sp.sympify(expr).xreplace(self.dims).xreplace(self.constants)
        if value.free_symbols:
            names = ", ".join(sorted(str(s) for s in value.free_symbols))
            raise InputError(f"unresolved symbols {names} in {expr}")
        return float(value)

    def size(self, idx):
        return int(self.scalar(extent(idx)))

    def shape_of(self, axes):
        return [self.size(a) for a in axes]

    def apply(self, fn, arrays):
        return _call(fn.expr, dict(zip(fn.variables, arrays)), self)


def evaluate_expr(expr, indices, env):
    """``expr`` evaluated on the full ranges of ``indices``: an ndarray in that order."""
    arr = _ev(sp.sympify(expr), env)
    return _layout(arr, tuple(indices), env)


def _layout(arr, order, env):
    data = np.asarray(arr.data, dtype=float) if arr.data.dtype.kind != "i" else arr.data
    missing = [a for a in arr.axes if a not in order]
    if missing:
        raise ShapeError(f"index {missing[0]} is not an axis of the result")
    axes = list(arr.axes) + [a for a in order if a not in arr.axes]
    data = data.reshape(data.shape + (1,) * (len(axes) - data.ndim))
    data = np.transpose(data, [axes.index(a) for a in order]) if order else data
    return np.broadcast_to(data, env.shape_of(order)).copy() if order else np.asarray(data)


def _align(arrs):
    """Broadcast labelled arrays onto the union of their axes."""
    axes = []
    for a in arrs:
        axes += [x for x in a.axes if x not in axes]
    if not axes:
        return [np.asarray(a.data) for a in arrs], ()
    out = []
    for a in arrs:
        perm = [a.axes.index(x) for x in axes if x in a.axes]
        d = np.transpose(a.data, perm) if a.axes else a.data
        shape = [d.shape[perm.index(a.axes.index(x))] if x in a.axes else 1 for x in axes]
        out.append(np.reshape(d, shape))
    return out, tuple(axes)


def _ev(e, env):
    handler = _HANDLERS.get(type(e))
    if handler is not None:
        return handler(e, env)
    if isinstance(e, sp.Idx):
        return Arr(np.arange(env.size(e)), (e,))
    if e.is_Number or e.is_NumberSymbol:
        return Arr(np.asarray(float(e)))
    if isinstance(e, sp.Symbol):
        return _symbol(e, env)
    if isinstance(e, sp.Rel):
        (a, b), axes = _align([_ev(x, env) for x in e.args])
        return Arr(_RELATIONS[type(e)](a, b), axes)
    if isinstance(e, (sp.Add, sp.Mul, sp.Pow, sp.Function, sp.Piecewise, sp.Min, sp.Max)):
        return _elementwise(e, env)
    raise InputError(f"cannot evaluate {type(e).__name__} ({e})")


def _symbol(e, env):
    if str(e) in env.arrays:
        return Arr(np.asarray(env.arrays[str(e)], dtype=float))
    if e in env.dims:
        return Arr(np.asarray(float(env.dims[e])))
    if e in env.constants:
        return Arr(np.asarray(float(env.constants[e])))
    raise InputError(f"no value for '{e}'")


def _elementwise(e, env):
    args = [_ev(a, env) for a in e.args] if not isinstance(e, sp.Piecewise) else None
    if isinstance(e, sp.Add):
        data, axes = _align(args)
        return Arr(sum(data[1:], data[0]), axes)
    if isinstance(e, sp.Mul):
        data, axes = _align(args)
        out = data[0]
        for d in data[1:]:
            out = out * d
        return Arr(out, axes)
    if isinstance(e, sp.Pow):
        (b, x), axes = _align(args)
        return Arr(np.power(b.astype(float), x), axes)
    if isinstance(e, sp.Piecewise):
        return _piecewise(e, env)
    fn = NUMPY_FUNCTIONS.get(type(e))
    if fn is None:
        raise InputError(f"no numeric implementation of {type(e).__name__}")
    data, axes = _align(args)
    return Arr(np.asarray(fn(*data), dtype=float), axes)


def _piecewise(e, env):
    vals = [_ev(x, env) for x, _ in e.args]
    conds = [_ev(c, env) if c is not sp.true else Arr(np.asarray(True)) for _, c in e.args]
    data, axes = _align(vals + conds)
    n = len(vals)
    shape = np.broadcast_shapes(*[d.shape for d in data])
    out = np.select([np.broadcast_to(c, shape) for c in data[n:]],
                    [np.broadcast_to(v, shape) for v in data[:n]], default=np.nan)
    return Arr(out, axes)


def _call(expr, mapping, env):
    """Evaluate ``expr`` with its dummies bound to arrays already broadcast together.

    The arrays enter as 0-d "symbols" whose data has a shape: with no labelled axes
    anywhere, :func:`_align` leaves them to NumPy's own broadcasting.
    """
    names = {d: sp.Symbol(f"_m{k}") for k, d in enumerate(mapping)}
    arrays = dict(env.arrays)
    arrays.update({str(names[d]): np.asarray(a, dtype=float) for d, a in mapping.items()})
    inner = Env(arrays, constants=env.constants)
    inner.dims = env.dims
    return np.asarray(_ev(expr.xreplace(names), inner).data, dtype=float)


def _indexed(e, env):
    data = np.asarray(env.array(str(e.base)))
    if data.ndim != len(e.indices):
        raise ShapeError(f"{e.base} has {data.ndim} axes, indexed with {len(e.indices)}")
    if all(isinstance(i, sp.Idx) for i in e.indices) and len(set(e.indices)) == len(e.indices) \
            and list(data.shape) == env.shape_of(e.indices):
        return Arr(data, tuple(e.indices))  # else an Idx covers part of its axis: gather
    idx = [_ev(i, env) for i in e.indices]
    parts, axes = _align(idx)
    return Arr(data[tuple(p.astype(int) for p in parts)], axes)


def _isum(e, env):
    factors = sp.Mul.make_args(e.body)
    arrs = [_ev(f, env) for f in factors]
    letters = {}
    for a in arrs:
        for x in a.axes:
            letters.setdefault(x, string.ascii_letters[len(letters)])
    bound = set(e.indices)
    out_axes = tuple(x for x in letters if x not in bound)
    spec = ",".join("".join(letters[x] for x in a.axes) for a in arrs)
    spec += "->" + "".join(letters[x] for x in out_axes)
    data = np.einsum(spec, *[np.asarray(a.data, dtype=float) for a in arrs], optimize=True)
    scale = 1.0
    for i in e.indices:
        if i not in letters:
            scale *= env.size(i)
    return Arr(np.asarray(data) * scale, out_axes)


def _reduce_axes(e, env):
    arr = _ev(e.body, env)
    axis = tuple(arr.axes.index(i) for i in e.indices if i in arr.axes)
    rest = tuple(x for x in arr.axes if x not in e.indices)
    return arr, axis, rest


def _lse(e, env):
    arr, axis, rest = _reduce_axes(e, env)
    m = np.max(arr.data, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(arr.data - m), axis=axis, keepdims=True)) + m
    return Arr(np.squeeze(out, axis=axis), rest)


def _argmax(e, env):
    arr, axis, rest = _reduce_axes(e, env)
    return Arr(np.argmax(arr.data, axis=axis[0]), rest)


def _delta(e, env):
    (a, b), axes = _align([_ev(x, env) for x in e.args])
    return Arr((a == b).astype(float), axes)


_HANDLERS = {sp.Indexed: _indexed, ISum: _isum, LogSumExp: _lse, Argmax: _argmax,
             sp.KroneckerDelta: _delta}
assert all(issubclass(k, (sp.Basic, IndexOp)) for k in _HANDLERS)
