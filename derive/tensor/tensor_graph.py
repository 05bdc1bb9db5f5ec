"""Tensor graphs: named tensors defined element by element, in definition order.

A :class:`TensorGraph` holds leaves (inputs, parameters, labels, state, masks) and nodes
``v[I] = rhs(I)`` whose right-hand side is an index expression over earlier tensors.
Layers add their nodes through :meth:`TensorGraph.define`; the v-notation problem kind
builds one from text. Shapes are checked as nodes are added (ShapeError naming the node
and both shapes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import sympy as sp

from derive.errors import InputError, ShapeError
from derive.tensor.index import Argmax, Fresh, ISum, LogSumExp, dim

ROLES = ("input", "target", "label", "param", "state", "mask", "node")


def shape_str(shape):
    """``[B, 4]`` for display in messages."""
    return "[" + ", ".join(str(s) for s in shape) + "]"


def as_shape(shape, where=None):
    """A tuple of dimensions from ints / names / SymPy expressions."""
    if shape is None:
        return ()
    if not isinstance(shape, (list, tuple)):
        raise InputError(f"a shape is a list of sizes, got {shape!r:.40}", where=where)
    out = []
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, (int, str, sp.Basic)):
            raise InputError(f"a size is an integer or a name, got {s!r:.30}", where=where)
        if isinstance(s, int) and s < 1:
            raise ShapeError(f"sizes must be positive, got {s}", where=where)
        if isinstance(s, str) and not s.isidentifier():
            raise InputError(f"dimension name {s!r} is not a valid name", where=where)
        out.append(dim(s))
    return tuple(out)


@dataclass
class TensorNode:
    """A tensor of the graph: a leaf (``rhs is None``) or ``name[indices] = rhs``."""

    name: str
    shape: tuple = ()
    role: str = "node"
    dtype: str = "float"
    indices: tuple = ()
    rhs: Any = None
    layer: str = ""
    text: str = ""
    meta: dict = field(default_factory=dict)
    inputs: tuple = ()

    @property
    def symbol(self):
        """``IndexedBase(name)``, or ``Symbol(name)`` for a 0-d tensor."""
        return sp.IndexedBase(self.name) if self.shape else sp.Symbol(self.name)

    def element(self, indices=None):
        """The element at ``indices`` (default: the node's own free indices)."""
        idx = tuple(self.indices if indices is None else indices)
        return self.symbol[idx] if self.shape else self.symbol

    @property
    def is_leaf(self):
        return self.rhs is None


class Tensor:
    """A handle on a graph tensor: ``t[i, j]`` is its element, ``t[()]`` a 0-d value."""

    def __init__(self, graph, name):
        self.graph, self.name = graph, name

    @property
    def node(self):
        return self.graph.nodes[self.name]

    @property
    def shape(self):
        return self.node.shape

    @property
    def ndim(self):
        return len(self.node.shape)

    def __getitem__(self, idx):
        idx = idx if isinstance(idx, tuple) else (idx,)
        if len(idx) != self.ndim:
            raise ShapeError(f"{self.name} {shape_str(self.shape)} indexed with {len(idx)} "
                             "indices")
        return self.node.element(idx)

    def __repr__(self):
        return f"Tensor({self.name}, {shape_str(self.shape)})"


class TensorGraph:
    """Named tensors in definition order, an output, constants and notes."""

    def __init__(self, title="Tensor graph"):
        self.title = title
        self.nodes = {}
        self.output = None
        self.prediction = None  # the node a loss reads its scores from, when a model says
        self.constants = {}
        self.notes = []
        self.checks = []  # (title, callable(derivation) -> Section) from layers
        self.latex_names = {}
        # per unrolled sequence: (its layer, the node names each step t = 1..T defined);
        # a document shows the first and last steps of a long one (derive.tensor.record)
        self.repeats = []

    def step_names(self, before):
        """The names defined since ``before`` (a copy of the node names taken earlier)."""
        return [n for n in self.nodes if n not in before]

    # -- building ---------------------------------------------------------------------------
    def unique(self, base):
        """``base`` if unused, else ``base_2``, ``base_3``, ..."""
        if base not in self.nodes:
            return base
        k = 2
        while f"{base}_{k}" in self.nodes:
            k += 1
        return f"{base}_{k}"

    def leaf(self, name, shape, role="input", dtype="float", **meta):
        """Add an input / parameter / label / state / mask tensor."""
        if role not in ROLES or role == "node":
            raise InputError(f"unknown tensor role {role!r}")
        self._check_new(name)
        self.nodes[name] = TensorNode(name, as_shape(shape), role, dtype, meta=meta)
        return Tensor(self, name)

    def define(self, name, shape, element, *, layer="", text="", **meta):
        """Add ``name[I] = element(*I)``; ``element`` gets one fresh Idx per axis."""
        self._check_new(name)
        shape = as_shape(shape)
        idx = tuple(Fresh.idx(s, "i") for s in shape)
        rhs = sp.sympify(element(*idx))
        used = {str(b.label) for b in rhs.atoms(sp.IndexedBase)}
        used |= {str(s) for s in rhs.free_symbols if isinstance(s, sp.Symbol)}
        inputs = tuple(n for n in self.nodes if n in used)
        self.nodes[name] = TensorNode(name, shape, "node", "float", idx, rhs, layer, text, meta,
                                      inputs)
        return Tensor(self, name)

    def constant(self, name, value):
        """A named hyper-parameter (ε, momentum) kept as a symbol with a value (a real
        number; a string only if it reads as one, ``"1e-5"`` or ``"1/2"``: never evaluated)."""
        try:
            if isinstance(value, bool) or not isinstance(value, (int, float, str, sp.Number)):
                raise ValueError
            value = float(Fraction(value.strip())) if isinstance(value, str) else value
        except (ValueError, ZeroDivisionError):
            raise InputError(f"{name} must be a number, got {value!r:.40}") from None
        sym = sp.Symbol(name, positive=True)
        self.constants[sym] = value
        return sym

    def _check_new(self, name):
        if not isinstance(name, str) or not name.isidentifier() or name.endswith("_bar"):
            raise InputError(f"{name!r} is not a valid tensor name")
        if name in self.nodes:
            raise InputError(f"tensor '{name}' is defined twice")

    # -- reductions with fresh indices ----------------------------------------------------
    @staticmethod
    def sum(size, fn, hint="j"):
        """Σ_j fn(j) over ``range(size)`` with a fresh index j."""
        j = Fresh.idx(size, hint)
        return ISum(fn(j), j)

    @staticmethod
    def logsumexp(size, fn):
        """log Σ_k exp(fn(k)) over ``range(size)``."""
        k = Fresh.idx(size, "k")
        return LogSumExp(fn(k), k)

    @staticmethod
    def argmax(size, fn):
        """The first k maximising fn(k)."""
        k = Fresh.idx(size, "k")
        return Argmax(fn(k), k)

    # -- queries ----------------------------------------------------------------------------
    def tensor(self, name):
        return Tensor(self, name)

    def inputs_of(self, name):
        """Names a node's definition refers to, in graph order."""
        return list(self.nodes[name].inputs)

    def consumers(self, name):
        return [n for n in self.nodes if name in self.inputs_of(n)]

    def ancestors(self, name):
        """``name`` and every tensor it depends on."""
        seen, todo = set(), [name]
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(self.inputs_of(n))
        return seen

    def descendants(self, names):
        out = set(names)
        for n in self.nodes:
            if any(i in out for i in self.inputs_of(n)):
                out.add(n)
        return out

    def dims(self):
        """Dimension symbols used by any shape, in first-use order."""
        out = []
        for node in self.nodes.values():
            for s in node.shape:
                for sym in sorted(s.free_symbols, key=str):
                    if sym not in out:
                        out.append(sym)
        return out

    def leaves(self, role=None):
        return [n for n in self.nodes.values() if n.is_leaf and (role is None or n.role == role)]


def check_same_shape(a, b, node, op):
    """ShapeError unless shapes ``a`` and ``b`` are equal, naming both and the node."""
    if tuple(a) != tuple(b):
        raise ShapeError(f"shapes {shape_str(a)} and {shape_str(b)} do not match in {op}",
                         where=node)
