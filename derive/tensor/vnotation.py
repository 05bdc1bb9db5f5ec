"""Tensor graphs in v-notation, as exams write them (problem kind ``tensor_graph``).

.. code-block:: yaml

    tensors: {x: [d], W: [d, d], y: [d]}
    nodes: {v4: x @ W, v5: exp(v4), v6: v4 + v5, v7: mse(v6, y)}
    output: v7
    wrt: [x, W, y]
    values: {x: [1, 2], W: [[0.1, 0.2], [0.3, 0.4]], y: [0, 1]}   # optional

A tensor is ``name: [sizes]`` (ints or dimension names) or a mapping
``{shape: [B], labels: C}`` for integer class labels. Node text is parsed by the
whitelist parser (never ``eval``); ``@`` is the matrix product (NumPy's rules: 1-D and
2-D operands, and stacks of matrices with broadcast batch axes), ``*`` ``/`` ``+`` ``-``
``**`` act entry by entry with broadcasting, ``v.T`` reverses the axes.

Shape ops take their axes or sizes after the tensor, as numbers or one keyword
(``axes=``, ``axis=``, ``dim=``, ``shape=``): ``reshape(v, 6, 4)``, ``reshape(v,
shape=[4, -1])``, ``broadcast_to(v, 2, 3, 4)``, ``permute(v, 2, 0, 1)``,
``transpose(v, 1, 0, 2)``, ``sum(v, 0, 2)``, ``summation(v, axes=[0, 2])`` (needle's
name), ``mean(v, axes=[1, 2])``, ``max(v, 0, 2)``, ``logsumexp(v, axes=[1, 2])``.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from derive.errors import DeriveError, InputError, ShapeError, UnsupportedError
from derive.functions import row_of
from derive.scalar.parse import check_identifier, parse
from derive.problem import check_keys, get, problem_kind
from derive.tensor import ops, shape_ops
from derive.tensor.tensor_graph import TensorGraph, as_shape

KEYS = {"kind", "title", "tensors", "nodes", "output", "wrt", "values", "dims", "upstream"}


class MatMulOp(sp.Function):
    """``a @ b`` kept unevaluated while parsing (lowered by :func:`lower`)."""

    nargs = 2


class TransposeOp(sp.Function):
    """``a.T`` kept unevaluated while parsing."""

    nargs = 1


#: op name -> (builder(operands..., *numbers), number of tensor operands); elementwise
#: functions (exp, relu, leaky_relu(v, 0.2), ...) come from the function registry
OPS = {
    "mse": (ops.mse, 2), "bce": (ops.bce, 2), "bce_logits": (ops.bce_logits, 2),
    "cross_entropy": (ops.cross_entropy, 2), "hinge": (ops.hinge, 2),
    "zero_one": (ops.zero_one, 2), "softmax": (ops.softmax, 1),
    "log_softmax": (ops.log_softmax, 1), "logsumexp": (ops.logsumexp, 1),
    "sum": (ops.reduce_sum, 1), "mean": (ops.mean, 1), "l1": (ops.l1, 1), "l2": (ops.l2, 1),
    "elastic_net": (ops.elastic_net, 1), "l2_lambda": (ops.l2_lambda, 1),
    "elastic_net_lambda": (ops.elastic_net_lambda, 1), "transpose": (shape_ops.transpose, 1),
    "reshape": (shape_ops.reshape, 1), "broadcast_to": (shape_ops.broadcast_to, 1),
    "permute": (shape_ops.permute, 1), "summation": (shape_ops.summation, 1),
    "max": (shape_ops.reduce_max, 1),
}
#: ops whose numbers after the tensor are one list (axes or sizes), given either way
LISTED = {"sum", "mean", "summation", "max", "logsumexp", "reshape", "broadcast_to",
          "permute", "transpose"}
_KEYWORDS = ("axes", "axis", "dim", "shape")


class _Call:
    """``name(v, 1, 2)`` or ``name(v, axes=[1, 2])`` as the unevaluated ``name(v, 1, 2)``."""

    def __init__(self, name):
        self.name, self.fn = name, sp.Function(name)

    def __call__(self, *args, **kwargs):
        extra = []
        for key, value in kwargs.items():
            if self.name not in LISTED or key not in _KEYWORDS or len(kwargs) > 1:
                raise ValueError(f"unexpected keyword {key!r:.20}")
            extra += list(value) if isinstance(value, list) else [value]
        if any(isinstance(v, bool) or not isinstance(v, int) for v in extra):
            raise ValueError(f"{'/'.join(_KEYWORDS)} must be whole numbers")
        return self.fn(*args, *[sp.Integer(v) for v in extra])


_FUNCS = {name: _Call(name) for name in OPS}


@problem_kind("tensor_graph")
def solve(spec, where):
    """Solve a tensor_graph problem: a Derivation with adjoints in index and matrix form."""
    from derive.tensor.record import derive_graph

    check_keys(spec, KEYS, where)
    graph = build_graph(spec, where)
    wrt = get(spec, "wrt", where, list, None)
    values = read_values(spec, graph, where)
    upstream = spec.get("upstream")
    try:
        return derive_graph(graph, wrt, values, np.asarray(upstream, float)
                            if upstream is not None else None, kind="tensor_graph",
                            title=spec.get("title") or "Tensor graph")
    except DeriveError as exc:
        raise exc if exc.where and where in str(exc.where) else exc.at(where) from None


def build_graph(spec, where):
    """The TensorGraph of a spec (tensors, then nodes in the order written)."""
    graph = TensorGraph(spec.get("title") or "Tensor graph")
    tensors = get(spec, "tensors", where, dict)
    for name, desc in tensors.items():
        add_tensor(graph, str(name), desc, f"{where}: tensors.{name}")
    dims = {str(s) for s in graph.dims()}
    clash = dims & set(graph.nodes)
    if clash:
        raise InputError(f"'{sorted(clash)[0]}' is both a tensor and a dimension name",
                         where=f"{where}: tensors")
    nodes = rejoin_flow(get(spec, "nodes", where, dict), f"{where}: nodes")
    if not nodes:
        raise InputError("no nodes given", where=f"{where}: nodes")
    for name, text in nodes.items():
        add_node(graph, str(name), text, f"{where}: nodes.{name}")
    graph.output = str(get(spec, "output", where, str, list(nodes)[-1]))
    if graph.output not in graph.nodes or graph.nodes[graph.output].is_leaf:
        raise InputError(f"output '{graph.output}' is not a node (nodes: "
                         f"{', '.join(map(str, nodes))})", where=f"{where}: output")
    return graph


def rejoin_flow(nodes, where):
    """Undo YAML's split of ``{v7: mse(v6, y)}`` at the comma inside the call.

    In a YAML flow mapping a comma ends the entry, so the issue's own one-line form
    arrives as ``{"v7": "mse(v6", "y)": None}``. Entries whose parentheses are not yet
    balanced absorb the following keys until they are.
    """
    out, pending = {}, None
    for key, value in nodes.items():
        if pending is not None:
            piece = str(key) if value is None else f"{key}: {value}"
            out[pending] = f"{out[pending]}, {piece}"
        else:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise InputError(f"node text must be an expression, got {value!r:.40}",
                                 where=f"{where}.{key}")
            out[key] = str(value)
            pending = key
        text = out[pending]
        if text.count("(") <= text.count(")") and text.count("[") <= text.count("]"):
            pending = None
    return out


def add_tensor(graph, name, desc, where):
    check_identifier(name, where)
    if isinstance(desc, dict):
        check_keys(desc, {"shape", "labels", "role"}, where)
        shape = as_shape(desc.get("shape", []), where)
        if "labels" in desc:
            classes = as_shape([desc["labels"]], where)[0]
            graph.leaf(name, shape, role="label", dtype="int", classes=classes)
            return
        role = desc.get("role", "input")
        if role not in ("input", "param", "target"):
            raise InputError(f"role must be input, param or target, got {role!r}", where=where)
        graph.leaf(name, shape, role=role)
        return
    graph.leaf(name, as_shape(desc, where), role="input")


def add_node(graph, name, text, where):
    check_identifier(name, where)
    if name in graph.nodes:
        raise InputError(f"'{name}' is defined twice", where=where)
    names = {n: sp.Symbol(n) for n in graph.nodes}
    expr = parse(text, names=names, functions=_FUNCS, unknown="error", where=where,
                 matmul=MatMulOp, transpose=TransposeOp)
    value = Lowering(graph, where, f"{name} = {text}").lower(expr)
    graph.define(name, value.shape, value.element, text=str(text))


class Lowering:
    """Parsed node text -> an element-wise definition (a :class:`~ops.Lazy`)."""

    def __init__(self, graph, where, text):
        self.graph, self.where, self.text = graph, where, text

    def lower(self, e):
        if e.is_number:  # 2, or a constant such as sqrt(2/pi) inside gelu(v)
            return ops.lazy(e)
        if isinstance(e, sp.Symbol):
            if str(e) in self.graph.nodes:
                return ops.lazy(self.graph.tensor(str(e)))
            return ops.lazy(e)
        if isinstance(e, MatMulOp):
            a, b = (self.lower(x) for x in e.args)
            return shape_ops.matmul(a, b, where=self.where, text=self.text)
        if isinstance(e, TransposeOp):
            return shape_ops.transpose(self.lower(e.args[0]), where=self.where)
        name = type(e).__name__
        if name in OPS:
            return self.op(name, e.args)
        row = row_of(e)
        if row is not None and row.params:
            self.numbers(row.name, e.args[len(row.inputs):])
        if isinstance(e, (sp.Add, sp.Mul, sp.Pow, sp.Function)):
            return ops.elementwise(lambda *a: e.func(*a), *[self.lower(a) for a in e.args],
                                   where=self.where, op=self.text)
        raise UnsupportedError(f"cannot use {type(e).__name__} on tensors", where=self.where)

    def numbers(self, name, args):
        """The options after a function's tensors: numbers only (ints stay ints)."""
        for a in args:
            if not a.is_Number:
                raise InputError(f"extra arguments of {name}() must be numbers, got {a}",
                                 where=self.where)
        return [int(a) if a.is_Integer else float(a) for a in args]

    def op(self, name, args):
        builder, arity = OPS[name]
        if len(args) < arity:
            raise InputError(f"{name}() takes {arity} tensor argument(s), got {len(args)}",
                             where=self.where)
        tensors = [self.lower(a) for a in args[:arity]]
        extra = self.numbers(name, args[arity:])
        if name in LISTED and extra:
            extra = [tuple(extra)]
        if name in ("sum", "mean", "logsumexp"):
            builder = getattr(shape_ops, {"sum": "summation"}.get(name, name))
        try:
            if name in ("mse", "bce", "bce_logits", "cross_entropy", "zero_one"):
                return builder(*tensors, where=self.where)
            if name in LISTED:
                return builder(*tensors, *extra, where=self.where)
            return builder(*tensors, *extra)
        except ShapeError as exc:
            raise exc if exc.where else exc.at(self.where) from None
        except (TypeError, ValueError, IndexError) as exc:
            raise InputError(f"bad arguments to {name}(): {exc}", where=self.where) from None


def read_values(spec, graph, where):
    """``values:`` as float arrays (None when absent), checked against the tensors."""
    values = get(spec, "values", where, dict, None)
    if values is None:
        return None
    out = {}
    for name, value in values.items():
        if name not in graph.nodes or not graph.nodes[name].is_leaf:
            raise InputError(f"'{name}' is not an input tensor", where=f"{where}: values")
        try:
            out[name] = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise InputError("values must be numbers or nested lists of numbers",
                             where=f"{where}: values.{name}") from None
    dims = get(spec, "dims", where, dict, {})
    for key, size in dims.items():
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InputError(f"a dimension is a positive integer, got {size!r}",
                             where=f"{where}: dims.{key}")
    return out
