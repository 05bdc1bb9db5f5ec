"""Scalarising SMALL instances: every entry of every tensor as its own SymPy expression.

Only for worked numeric examples and for checking the index derivation against
``sympy.diff`` on a tiny instance (B = 2, d = 3, ...). Deriving never goes through here:
a whole-tensor scalarisation grows without bound (DESIGN.md, "Never scalarise").
"""
from __future__ import annotations

import itertools

import numpy as np
import sympy as sp

from derive.errors import InputError
from derive.tensor.index import Argmax, IndexOp, ISum, LogSumExp

MAX_ENTRIES = 400  # refuse instances where a tensor has more entries than this


def entry_symbol(name, index):
    """The scalar standing for ``name[index]`` (``x_0_1``), or ``name`` for 0-d."""
    return sp.Symbol("_".join([name] + [str(i) for i in index]) if index else name, real=True)


class Scalariser:
    """Expands index expressions for given sizes into scalar SymPy expressions."""

    def __init__(self, sizes, arrays):
        self.sizes = {sp.Symbol(str(k), integer=True, positive=True): int(v)
                      for k, v in sizes.items()}
        self.arrays = arrays  # name -> object ndarray of SymPy expressions (or ints)

    def size(self, idx):
        n = int(sp.sympify(idx.upper + 1).xreplace(self.sizes))
        if n > MAX_ENTRIES:
            raise InputError(f"instance too large to scalarise ({n} entries on one axis)")
        return n

    def tensor(self, assignment_indices, rhs):
        """The object array of ``rhs`` over all values of the indices."""
        shape = [self.size(i) for i in assignment_indices]
        out = np.empty(shape, dtype=object)
        for point in itertools.product(*[range(s) for s in shape]):
            env = dict(zip(assignment_indices, point))
            out[point] = self.expand(rhs, env) if shape else None
        if not shape:
            return np.array(self.expand(rhs, {}), dtype=object)
        return out

    def expand(self, e, env):
        if isinstance(e, sp.Idx):
            return sp.Integer(env[e])
        if isinstance(e, sp.Indexed):
            idx = tuple(int(self.expand(i, env)) for i in e.indices)
            return self.arrays[str(e.base)][idx]
        if isinstance(e, sp.Symbol):
            if str(e) in self.arrays:
                return self.arrays[str(e)][()]
            return e.xreplace(self.sizes)
        if isinstance(e, IndexOp):
            return self.reduction(e, env)
        if not e.args:
            return e
        return e.func(*[self.expand(a, env) for a in e.args])

    def reduction(self, e, env):
        ranges = [range(self.size(i)) for i in e.indices]
        values = [self.expand(e.body, {**env, **dict(zip(e.indices, p))})
                  for p in itertools.product(*ranges)]
        if isinstance(e, ISum):
            return sp.Add(*values)
        if isinstance(e, LogSumExp):
            return sp.log(sp.Add(*[sp.exp(v) for v in values]))
        if isinstance(e, Argmax):
            nums = [float(v) for v in values]
            return sp.Integer(int(np.argmax(nums)))
        raise InputError(f"cannot scalarise {type(e).__name__}")


def scalarise(program, sizes, leaves=None, upstream=None):
    """Every array of ``program`` as scalar expressions for the given ``sizes``.

    Leaves are entry symbols (``x_0_1``) unless given in ``leaves`` (name -> array, e.g.
    integer labels); the seed defaults to entry symbols ``<out>_bar_...``.
    Returns name -> object ndarray.
    """
    sc = Scalariser(sizes, {})
    arrays = {}
    for info in program.tensors.values():
        if info.role in ("node", "adjoint") and info.name != program.seed:
            continue
        shape = [int(sp.sympify(s).xreplace(sc.sizes)) for s in info.shape]
        if leaves and info.name in leaves:
            arrays[info.name] = np.asarray(leaves[info.name], dtype=object)
            continue
        arr = np.empty(shape, dtype=object)
        for point in itertools.product(*[range(s) for s in shape]):
            arr[point] = entry_symbol(info.name, point)
        scalar = np.array(entry_symbol(info.name, ()), dtype=object)
        arrays[info.name] = arr if shape else scalar
    if upstream is not None:
        arrays[program.seed] = np.asarray(upstream, dtype=object)
    sc.arrays = arrays
    for a in program.forward + program.backward:
        arrays[a.target] = sc.tensor(a.indices, a.rhs)
    return arrays
