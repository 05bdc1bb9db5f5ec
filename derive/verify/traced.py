"""Arrays that remember which graph values they are computed from.

A needle ``gradient`` (or a torch ``backward``) must return *graph expressions* of
``out_grad`` and the op's inputs: the framework differentiates them again for a second
derivative (double backward, Hessian-vector products, second-order methods). A gradient
computed on plain arrays (``realize_cached_data()``, ``.numpy()``, ``np.asarray``) and
wrapped back as ``Tensor(...)`` has the right values, so first-order training works, but
it is a constant to the graph: it has left it.

:class:`Traced` is a NumPy array carrying ``deps``, the names of the graph values it was
computed from. Every ufunc, reduction, view and NumPy function applied to traced arrays
unions their ``deps``; ``realize_cached_data()`` and ``numpy()`` return a plain array
(and the call is written to a log, to name it); :class:`Tensor` (needle's constructor)
makes a new leaf with no ``deps``, as needle's does.
"""
from __future__ import annotations

import numpy as np

EMPTY = frozenset()


class Traced(np.ndarray):
    """A float array with ``deps`` (names of graph values) and a ``label`` for messages."""

    deps = EMPTY
    label = None
    log = None

    def __array_finalize__(self, obj):
        # views, reshapes, copies and astype keep what their source was computed from
        self.deps = getattr(obj, "deps", EMPTY)
        self.log = getattr(obj, "log", None)
        self.label = None

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        deps, log = _gather(inputs)
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*(_plain(x) for x in inputs), **kwargs)
        if out is not None:
            for o in out:
                if isinstance(o, Traced):
                    o.deps = o.deps | deps
            return out[0] if len(out) == 1 else out
        return _wrap(result, deps, log)

    def __array_function__(self, func, types, args, kwargs):
        deps, log = _gather((args, kwargs))
        result = func(*_unwrap(args), **_unwrap(kwargs))
        return _wrap(result, deps, log)

    def __setitem__(self, index, value):
        # a value written in flows into the array (scatter-style gradients)
        deps, _ = _gather((index, value))
        self.deps = self.deps | deps
        super().__setitem__(_unwrap(index), _unwrap(value))

    def realize_cached_data(self):
        """needle's: the value as a plain array (outside the graph)."""
        return self._leave("realize_cached_data()")

    def numpy(self):
        """needle's and torch's: the value as a plain array (outside the graph)."""
        return self._leave("numpy()")

    def detach(self):
        """needle's and torch's: the same value as a new leaf."""
        return Tensor(self._leave("detach()"))

    def _leave(self, call):
        if self.log is not None:
            self.log.append(f"{self.label}.{call}" if self.label else call)
        return np.array(self)


class Tensor(Traced):
    """needle's ``Tensor(array)`` as ``gradcheck`` runs a gradient: a new leaf, holding a
    copy of the value and computed from nothing in the graph (a constant to it).

    >>> t = Tensor([1.0, 2.0], requires_grad=False)
    >>> (t * 2).deps
    frozenset()
    """

    def __new__(cls, array, *, device=None, dtype=None, requires_grad=True):
        value = array.numpy() if hasattr(array, "numpy") and \
            not isinstance(array, np.ndarray) else array
        out = np.array(value, dtype=dtype).view(cls)
        out.deps, out.label = EMPTY, None
        return out


def traced(value, deps, log, label=None):
    """``value`` as a Traced array computed from ``deps`` (a set of names)."""
    out = np.array(value).view(Traced)
    out.deps, out.log, out.label = frozenset(deps), log, label
    return out


def _plain(x):
    return x.view(np.ndarray) if isinstance(x, Traced) else x


def _unwrap(x):
    if isinstance(x, Traced):
        return x.view(np.ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _gather(x, deps=None, logs=None):
    """The union of ``deps`` of every Traced in ``x`` (nested lists, tuples, dicts)."""
    deps = set() if deps is None else deps
    logs = [] if logs is None else logs
    if isinstance(x, Traced):
        deps |= x.deps
        if x.log is not None:
            logs.append(x.log)
    elif isinstance(x, (list, tuple)):
        for v in x:
            _gather(v, deps, logs)
    elif isinstance(x, dict):
        for v in x.values():
            _gather(v, deps, logs)
    return frozenset(deps), (logs[0] if logs else None)


def _wrap(result, deps, log):
    if isinstance(result, tuple):
        return tuple(_wrap(r, deps, log) for r in result)
    if isinstance(result, (np.ndarray, np.generic)) and not isinstance(result, Traced):
        out = np.asarray(result).view(Traced)
        out.deps, out.log = deps, log
        return out
    return result
