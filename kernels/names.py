"""Names in generated kernels: loop variables and temporaries, chosen per loop nest.

A loop variable is named as the derivation shows the same index
(:mod:`derive.tensor.display`): an assignment's free indices ``n`` for a batch axis, then
``i, j, k, l, ...``; the indices a reduction sums over ``j, k, l, p, q, ...`` (``n`` for a
batch axis), skipping the names in use around it (:func:`derive.tensor.index.bound_name`).
So ``y1[n, i, j, k] = Σ_{l,p,q} K1[i, l, p, q] xp1[n, l, j + p, k + q] + b1[i]`` prints as
loops over ``n, i, j, k`` with an inner sum over ``l, p, q``. A temporary is named by its
role (``acc`` for a sum, ``lse`` and ``lse_max`` for a log-sum-exp, ``arg`` and ``best``
for an argmax, ``cse`` for a common subexpression, ``factor`` for a factor tested against
zero), numbered within its nest only when one nest needs two (``acc``, ``acc2``).

Nothing comes from a process-wide counter: a network prints the same text whatever was
derived before it. No name shadows a tensor, a dimension, a name the generated module
defines (functions, ``np``, ``B``, the epoch's arguments) or a Python builtin, and the
epoch's own bookkeeping names all start with ``_``, which these never do.
"""
from __future__ import annotations

import builtins
import functools
import inspect
import keyword

import sympy as sp

from derive.tensor.display import pretty_names
from derive.tensor.index import bound_name

#: names the generated modules define or read besides the tensors: functions, helpers,
#: the epoch's and evaluators' arguments (see kernels.train_module), numpy and numba
MODULE_NAMES = frozenset({
    "np", "njit", "META", "train_step", "loss_step", "predict_step", "epoch", "evaluate",
    "forward", "count_correct", "vjp", "tanh_f32", "gemm", "matmul", "B", "X2", "Y", "X", "order",
    "lrs", "bs", "t0", "hyper", "wd", "theta", "grad", "x2", "out", "rseed", "scores",
    "labels", "hits"})
PYTHON_NAMES = frozenset(dir(builtins)) | frozenset(keyword.kwlist)


@functools.lru_cache(maxsize=None)
def reserved():
    """Every name a generated module defines or reads besides its tensors and dimensions."""
    return MODULE_NAMES | PYTHON_NAMES | _optimizer_names()


def _optimizer_names():
    """The update rules (module-level functions of a training module) and their
    hyper-parameters (the arguments after ``eta``: locals of its epoch)."""
    from . import optim

    out = set()
    for name, fn in inspect.getmembers(optim, inspect.isfunction):
        if fn.__module__ == optim.__name__:
            out.add(name)
            args = list(inspect.signature(fn).parameters)
            out.update(args[args.index("eta") + 1:] if "eta" in args else ())
    return frozenset(out)


class Names:
    """The names one generated module must leave alone (``taken``: its tensors' and
    dimensions' names); :meth:`nest` starts the names of one loop nest."""

    def __init__(self, taken=()):
        self.taken = frozenset(map(str, taken)) | reserved()

    def nest(self, expressions=()):
        """A :class:`Nest`, also avoiding every name ``expressions`` read."""
        seen = set()
        for e in expressions:
            if isinstance(e, sp.Basic):
                seen |= {str(b.label) for b in e.atoms(sp.IndexedBase)}
                seen |= {str(s) for s in e.free_symbols if not isinstance(s, sp.Idx)}
            elif e is not None:
                seen.add(str(e))
        return Nest(self.taken | seen)


class Nest:
    """Names of one loop nest: its loop variables by index, its temporaries by role."""

    def __init__(self, taken):
        self.taken = frozenset(taken)
        self.used = set()  # temporaries named so far
        self.index = {}  # Idx -> name of its loop variable

    def free(self, indices):
        """Name the assignment's own indices as the derivation does (n, i, j, k, ...)."""
        indices = list(indices)
        try:
            names = pretty_names(indices, taken=self.taken)
        except StopIteration:  # more indices than the derivation's letters
            names = []
            for i in indices:
                names.append(bound_name(extent_of(i), self.taken | set(names)))
        self.index.update(zip(indices, names))
        return names

    def bound(self, idx, around):
        """Name an index a reduction sums over, avoiding the names ``around`` it."""
        name = bound_name(extent_of(idx), self.taken | set(around))
        self.index[idx] = name
        return name

    def temp(self, role):
        """``role``, or ``role2``, ``role3``, ... if this nest already has one."""
        name, k = role, 1
        while name in self.used or name in self.taken:
            k += 1
            name = f"{role}{k}"
        self.used.add(name)
        return name


def extent_of(idx):
    return idx.upper + 1
