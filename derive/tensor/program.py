"""A Program: the forward pass and the VJPs of a tensor graph as ordered assignments.

This is what ``kernels/`` prints as numba source and what :func:`derive.evaluate` runs
with NumPy; both read the same assignments, so they agree by construction. The contract
is documented in :mod:`derive.tensor`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from derive.errors import InputError, ShapeError
from derive.tensor.evaluate import Env, evaluate_expr
from derive.tensor.tensor_graph import shape_str


@dataclass(frozen=True)
class TensorInfo:
    """One named array of a program."""

    name: str
    shape: tuple
    role: str  # input | target | label | param | state | mask | node | adjoint
    dtype: str = "float"
    meta: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Assignment:
    """``for indices: target[lhs] (mode) rhs``; see the package docstring.

    ``rhs`` is the index form (always correct); ``matrix`` the recognised matrix form
    (a :class:`~derive.tensor.matrix.MatNode`) or None.
    """

    target: str
    indices: tuple
    rhs: Any
    matrix: Any = None
    mode: str = "="
    lhs: tuple | None = None

    @property
    def shape(self):
        return tuple(i.upper + 1 for i in self.indices)


@dataclass
class Program:
    """Forward, state updates and backward of one graph (see the package docstring)."""

    tensors: dict
    forward: list
    backward: list
    updates: list
    output: str
    seed: str
    grads: dict
    dims: tuple
    constants: dict
    random: dict = field(default_factory=dict)
    title: str = ""
    #: the node a classifier's loss reads its scores from (None: not exactly one);
    #: set by the derivation (:func:`derive.tensor.modes.prediction_node`)
    prediction: str | None = None
    #: the eval-mode forward (Dropout by its expectation, BatchNorm on its running
    #: statistics; :mod:`derive.tensor.modes`); None when it is the train-mode forward
    inference: Program | None = None
    #: values of the constant leaves the graph carries (a graph's adjacency and degrees),
    #: used wherever the caller gives none
    given: dict = field(default_factory=dict)
    #: adjoints the sweep found equal to another's (v̄5 = v̄6: "v5_bar" -> "v6_bar"), which
    #: the program does not compute separately
    aliases: dict = field(default_factory=dict)
    #: the unrolled sequences' steps, as the graph records them (``graph.repeats``):
    #: [(layer description, [names step 1 defines], [names of step 2], ...)]; the kernels
    #: keep each node's steps in one stacked array and loop over t
    repeats: list = field(default_factory=list)

    def names(self, role):
        return [t.name for t in self.tensors.values() if t.role == role]

    def eval_mode(self):
        """The Program to run in eval mode: ``inference``, or this one when train and eval
        mode compute the same (UnsupportedError when a state's eval mode is unknown)."""
        if self.inference is not None:
            return self.inference
        if not self.random and not self.updates:
            return self
        from derive.tensor.modes import eval_program, no_eval_mode  # a Program not made by the sweep

        inference = eval_program(self)
        if inference is None:
            raise no_eval_mode(self)
        return inference

    @property
    def inputs(self):
        return [t.name for t in self.tensors.values()
                if t.role in ("input", "target", "label")]

    @property
    def params(self):
        return self.names("param")

    @property
    def state(self):
        return self.names("state")

    # -- running ------------------------------------------------------------------------
    def bind(self, values):
        """Dimension values from the arrays given (ShapeError on a mismatch).

        A size ``c·sym`` with ``c`` an integer (or known) binds ``sym`` too (``2·d_k = 8``
        gives ``d_k = 4``).
        """
        dims, given = {}, []
        for name, value in values.items():
            info = self.tensors.get(name)
            if info is None or info.role in ("node", "adjoint"):
                continue
            _bind_one(info, np.shape(value), dims)
            given.append((info, np.shape(value)))
        for info, shape in given:  # sizes like 2·d_k, once bare symbols are bound
            _bind_products(info, shape, dims)
        return dims

    def numeric(self, values):
        """``values`` with each of this program's tensors as an array of real numbers
        (InputError naming the tensor for text, ragged lists, complex or objects)."""
        return {k: _numeric(self.tensors[k], v) if k in self.tensors else v
                for k, v in dict(values).items()}

    def environment(self, values, upstream=None):
        """An :class:`Env` with inputs, dims, constants, masks and the seed in place."""
        env = Env(*self.leaf_arrays(values), self.constants)
        env.arrays[self.seed] = self.upstream_array(upstream, env)
        return env

    def leaf_arrays(self, values):
        """(arrays of every leaf, dimension values): the values checked (numbers, shapes,
        labels within their classes), masks drawn and constant leaves taken from ``given``
        where not given; InputError otherwise."""
        values = self.numeric({**self.given, **dict(values)})
        for name, spec in self.random.items():
            if name not in values:
                values[name] = mask_values(spec, self, values)
        dims = self.bind(values)
        _check_resolved(self, dims)
        arrays = {}
        for name, value in values.items():
            info = self.tensors.get(name)
            if info is None:
                raise InputError(f"'{name}' is not a tensor of this model (known: "
                                 f"{', '.join(self.leaf_names())})")
            arrays[name] = _as_array(info, value, dims)
        missing = [n for n in self.leaf_names() if n not in arrays]
        if missing:
            raise InputError(f"no value for '{missing[0]}' "
                             f"{shape_str(self.tensors[missing[0]].shape)}")
        return arrays, dims

    def upstream_array(self, upstream, env):
        """The output's adjoint as a float array of the output's shape (default: ones)."""
        out_shape = tuple(int(env.scalar(s)) for s in self.tensors[self.output].shape)
        seed = np.ones(out_shape) if upstream is None else \
            _numeric(self.tensors[self.output], upstream,
                     label=f"upstream (the adjoint of '{self.output}')")
        seed = np.asarray(seed, dtype=float)
        if seed.shape != out_shape:
            raise ShapeError(f"upstream gradient has shape {seed.shape}, the output "
                             f"'{self.output}' has shape {out_shape}")
        return seed

    def leaf_names(self):
        return [t.name for t in self.tensors.values()
                if t.role not in ("node", "adjoint")]

    def run(self, values, upstream=None, backward=True):
        """Every array: leaves, forward nodes, new state (``<name>_new``), adjoints."""
        env = self.environment(values, upstream)
        run_assignments(self.forward, env, self.tensors)
        new = {}
        for a in self.updates:
            new[a.target + "_new"] = evaluate_expr(a.rhs, a.indices, env)
        if backward:
            run_assignments(self.backward, env, self.tensors)
        env.arrays.update(new)
        return env.arrays


def run_assignments(assignments, env, tensors):
    """Execute assignments in order, writing into ``env.arrays``.

    A ``+=`` (scatter) target starts from zeros: scatterise gives each such target exactly
    one writer, and kernels zero it before their loop likewise.
    """
    for a in assignments:
        value = evaluate_expr(a.rhs, a.indices, env)
        if a.mode == "=":
            env.arrays[a.target] = value
            continue
        target = np.zeros([int(env.scalar(s)) for s in tensors[a.target].shape])
        _scatter_add(target, a, value, env)
        env.arrays[a.target] = target


def _scatter_add(target, a, value, env):
    """``target[lhs(I)] += value[I]`` for every I (repeated targets accumulate).

    Positions are evaluated like right-hand sides, so they may hold dimension symbols
    (``c·H·W + h·W + w``), ``Mod`` and elements of integer tensors (``i·S + ra[n,c,i,j]``).
    """
    where = tuple(np.broadcast_to(evaluate_expr(e, a.indices, env), value.shape).astype(int)
                  for e in a.lhs)
    np.add.at(target, where, value)


def _bind_one(info, got, dims):
    if len(got) != len(info.shape):
        raise ShapeError(f"tensor '{info.name}' has shape {shape_str(info.shape)}, the value "
                         f"given has shape {list(got)}")
    for want, size in zip(info.shape, got):
        want = sp.sympify(want)
        if want.is_Integer:
            if int(want) != size:
                raise ShapeError(f"tensor '{info.name}' has shape {shape_str(info.shape)}, "
                                 f"the value given has shape {list(got)}")
            continue
        if isinstance(want, sp.Symbol):
            if dims.setdefault(want, size) != size:
                raise ShapeError(f"dimension {want} is {dims[want]} elsewhere but {size} in "
                                 f"'{info.name}' (shape {list(got)})")


def _bind_products(info, got, dims):
    """Bind ``sym`` from a size ``c·sym`` (multi-head ``heads·d_k``) once ``c`` is known;
    check products already determined."""
    for want, size in zip(info.shape, got):
        want = sp.sympify(want)
        if not want.is_Mul:
            continue
        known = want.xreplace(dims)
        free = sorted(known.free_symbols, key=str)
        if not free:
            if known.is_Integer and int(known) != size:
                raise ShapeError(f"tensor '{info.name}' has shape {shape_str(info.shape)}, "
                                 f"the value given has shape {list(got)}")
            continue
        coeff = known.subs(free[0], 1)
        if len(free) != 1 or known != coeff * free[0] or not coeff.is_Integer:
            continue
        n = sp.Integer(size) / coeff
        if not (n.is_Integer and n > 0):
            raise ShapeError(f"tensor '{info.name}' has shape {shape_str(info.shape)}, the "
                             f"value given has shape {list(got)}")
        dims[free[0]] = int(n)


def _check_resolved(program, dims):
    for sym in program.dims:
        if sym not in dims:
            users = [t for t in program.tensors.values() if sym in
                     set().union(*[s.free_symbols for s in t.shape] or [set()])]
            user = users[0] if users else None
            where = f" (used by {user.name} {shape_str(user.shape)})" if user else ""
            raise InputError(f"dimension symbol '{sym}' is not determined by the values "
                             f"given{where}")


def _numeric(info, value, label=None):
    kind = "integer class labels" if info.dtype == "int" else "real numbers"
    expected = f"{label or f'tensor {info.name!r}'} {shape_str(info.shape)} needs {kind}"
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):  # ragged nested lists
        raise InputError(f"{expected}, got a ragged {type(value).__name__} (rows of "
                         "different lengths)") from None
    if arr.dtype.kind not in "biuf":
        got = {"U": "text", "S": "bytes", "c": "complex numbers"}.get(arr.dtype.kind,
                                                                      type(value).__name__)
        raise InputError(f"{expected}, got {got} {_clip(value)}")
    return arr


def _clip(value, width=30):
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _as_array(info, value, dims):
    arr = np.asarray(value)
    if info.dtype == "int":
        if arr.size and not np.all(np.mod(arr, 1) == 0):
            raise InputError(f"'{info.name}' holds integer labels, got non-integers")
        arr = arr.astype(np.int64)
        classes = info.meta.get("classes")
        if classes is not None and arr.size:
            c = int(sp.sympify(classes).xreplace(dims))
            if arr.min() < 0 or arr.max() >= c:
                raise InputError(f"labels in '{info.name}' must lie in 0..{c - 1}, got "
                                 f"{arr.min()}..{arr.max()}")
        return arr
    arr = arr.astype(float)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"'{info.name}' contains NaN or Inf")
    return arr


def mask_values(spec, program, values):
    """A Dropout keep-mask drawn from its seed (Bernoulli with P(keep) = ``keep``)."""
    dims = program.bind({k: v for k, v in values.items() if k in program.tensors})
    shape = [int(sp.sympify(s).xreplace(dims)) for s in program.tensors[spec["name"]].shape]
    rng = np.random.default_rng(spec.get("seed", 0))
    return (rng.random(shape) < spec["keep"]).astype(float)
