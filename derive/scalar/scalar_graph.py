"""Scalar computation graphs: named nodes in topological order.

Two ways in:

* :func:`from_assignments` -- named assignments in order, as exam problems write them
  (``p = u1, q = w*p, r = u2 + q, ...``);
* :func:`from_expression` -- one expression, decomposed into primitive nodes
  ``v1 .. vn`` in the order a person evaluates it. A string is decomposed from its
  syntax tree, so ``(x1 + x2)**2 + x2*x3 - x3`` gives ``v1 = x1 + x2, v2 = v1**2,
  v3 = x2*x3, v4 = v2 + v3, v5 = v4 - x3``; an identical sub-expression is one node
  used twice (fan-out), not two nodes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from derive.derivation import Node
from derive.errors import InputError
from derive.scalar.parse import Parser, check_identifier
from derive.problem import check_keys, get, problem_kind

#: Most computed nodes a graph may have: a worked solution of more is unreadable, and
#: the sweep's exact arithmetic grows with it. Larger graphs are refused in one line.
MAX_GRAPH_NODES = 500


@dataclass
class Graph:
    """Leaves (inputs, then parameters) followed by computed nodes, topologically."""

    nodes: list = field(default_factory=list)
    output: str | None = None
    latex_names: dict = field(default_factory=dict)

    def __post_init__(self):
        self.by_name = {n.name: n for n in self.nodes}
        if self.output is None and self.nodes:
            self.output = self.nodes[-1].name

    @property
    def leaves(self):
        return [n for n in self.nodes if n.definition is None]

    @property
    def computed(self):
        return [n for n in self.nodes if n.definition is not None]

    def symbol(self, name):
        return sp.Symbol(name)


def _leaf(name, role, where):
    check_identifier(name, where)
    return Node(name=name, role=role)


def from_assignments(assignments, inputs=None, params=None, output=None, where="nodes"):
    """Build a Graph from ``{name: definition}`` (or a list of pairs), in order.

    ``inputs``/``params`` declare the leaves; when both are omitted, every name that is
    not a node becomes an input (in order of first use), including a name that cancels
    out of its definition (``x/x``): its gradient is 0, not an unknown name. Definitions
    are text (parsed with the whitelist) or SymPy expressions. Building takes time
    linear in the number of nodes, at most :data:`MAX_GRAPH_NODES` of them.
    """
    pairs = list(assignments.items()) if isinstance(assignments, dict) else list(assignments)
    if not pairs:
        raise InputError("no nodes given", where=where)
    if len(pairs) > MAX_GRAPH_NODES:
        raise InputError(f"too many nodes ({len(pairs)}; at most {MAX_GRAPH_NODES})",
                         where=where)
    declared = inputs is not None or params is not None
    leaves = [_leaf(n, "input", where) for n in (inputs or [])]
    leaves += [_leaf(n, "param", where) for n in (params or [])]
    node_names = [str(name) for name, _ in pairs]
    _check_names(leaves, node_names, where)
    position = {name: i for i, name in enumerate(node_names)}
    known = {n.name for n in leaves}
    computed = []
    for i, (name, text) in enumerate(pairs):
        loc = f"{where}.{name}"
        expr, mentioned = _definition(text, loc)
        used = [s.name for s in _ordered_symbols(expr)]
        for s in dict.fromkeys(used + mentioned):
            if s in known:
                continue
            if s == name:
                raise InputError(f"cycle: node '{name}' depends on itself", where=loc)
            if s in position:
                raise InputError(f"node '{s}' is used before it is defined", where=loc)
            if declared:
                raise InputError(f"unknown symbol '{s}' (not an input, parameter or "
                                 "earlier node)", where=loc)
            leaves.append(Node(name=s, role="input"))
            known.add(s)
        computed.append(Node(name=name, definition=expr, inputs=tuple(dict.fromkeys(used))))
        known.add(name)
    graph = Graph(leaves + computed, output=output)
    if output is not None and output not in graph.by_name:
        raise InputError(f"output '{output}' is not a node of the graph", where=where)
    return graph


def _check_names(leaves, node_names, where):
    seen = set()
    for name in [n.name for n in leaves] + node_names:
        check_identifier(name, where)
        if name in seen:
            raise InputError(f"name '{name}' is defined twice", where=where)
        seen.add(name)


def _definition(text, where):
    """A node's definition and the names its text mentions (some may cancel out)."""
    if isinstance(text, sp.Basic):
        return text, []
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise InputError(f"expected an expression, got {type(text).__name__}", where=where)
    parser = Parser(where=where)
    return parser.parse(str(text)), list(parser.mentioned)


def _ordered_symbols(expr):
    """Free symbols of ``expr`` in a stable order (pre-order of the tree)."""
    out = []
    for sub in sp.preorder_traversal(expr):
        if isinstance(sub, sp.Symbol) and sub not in out:
            out.append(sub)
    return out


class _Decomposer:
    """A Parser ``combine`` hook that makes one node per operation."""

    def __init__(self, prefix, taken=()):
        self.prefix = prefix
        self.taken = set(taken)  # the expression's own names: node names skip them
        self.nodes = []
        self.seen = {}
        self.count = 0

    def fresh(self):
        self.count += 1
        while f"{self.prefix}{self.count}" in self.taken:
            self.count += 1
        return f"{self.prefix}{self.count}"

    def __call__(self, op, build, args):
        expr = build(*args)
        if expr.is_number:
            return expr
        key = (op, tuple(args))
        if key in self.seen:
            return self.seen[key]
        name = self.fresh()
        inputs = tuple(dict.fromkeys(s.name for a in args for s in _ordered_symbols(a)))
        self.nodes.append(Node(name=name, definition=expr, inputs=inputs))
        self.seen[key] = sp.Symbol(name)
        return self.seen[key]


def from_expression(expr, inputs=None, params=None, prefix="v", where="expression"):
    """Decompose one expression into primitive nodes ``v1..vn`` (see module docstring)."""
    mentioned = []
    if isinstance(expr, sp.Basic):
        deco = _Decomposer(prefix, {s.name for s in expr.free_symbols})
        top = _decompose_sympy(expr, deco)
    else:
        names = Parser(where=where)
        names.parse(expr)  # first the names the text uses, so no node takes one of them
        mentioned = list(names.mentioned)
        deco = _Decomposer(prefix, mentioned)
        top = Parser(where=where, combine=deco).parse(expr)
    if not deco.nodes or top != sp.Symbol(deco.nodes[-1].name):
        deco.nodes.append(Node(name=deco.fresh(), definition=top,
                               inputs=tuple(s.name for s in _ordered_symbols(top))))
    pairs = [(n.name, n.definition) for n in deco.nodes]
    graph = from_assignments(pairs, inputs=inputs, params=params, where=where)
    cancelled = [n for n in mentioned if n not in graph.by_name]
    if cancelled and inputs is None and params is None:  # x in x/x + y: still an input
        graph = Graph(graph.leaves + [Node(name=n, role="input") for n in cancelled]
                      + graph.computed, output=graph.output)
    return graph


def _decompose_sympy(expr, deco):
    """Post-order walk of a SymPy tree (n-ary Add/Mul stay one node each)."""
    if expr.is_Atom:
        return expr
    args = [_decompose_sympy(a, deco) for a in expr.args]
    return deco(type(expr).__name__, lambda *a: expr.func(*a), args)


GRAPH_KEYS = {"title", "kind", "inputs", "params", "nodes", "expression", "output", "wrt",
              "values", "latex", "notes"}


@problem_kind("graph")
def solve_graph(spec, where):
    """Problem kind ``graph``: ``nodes:`` in order, or one ``expression:``."""
    from derive.scalar.backprop import backprop

    check_keys(spec, GRAPH_KEYS, where)
    inputs = _names(spec, "inputs", where)
    params = _names(spec, "params", where)
    if ("nodes" in spec) == ("expression" in spec):
        raise InputError("give exactly one of 'nodes:' and 'expression:'", where=where)
    if "nodes" in spec:
        nodes = get(spec, "nodes", where, (dict, list))
        if isinstance(nodes, list):
            nodes = _pairs_from_list(nodes, f"{where}: nodes")
        graph = from_assignments(nodes, inputs, params, spec.get("output"), f"{where}: nodes")
    else:
        text = get(spec, "expression", where, str)
        graph = from_expression(text, inputs, params, where=f"{where}: expression")
    graph.latex_names = get(spec, "latex", where, dict, {})
    return backprop(graph, wrt=_names(spec, "wrt", where), values=spec.get("values"),
                    title=get(spec, "title", where, str, "Backpropagation"), where=where)


def _names(spec, key, where):
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError("expected a list of names", where=f"{where}: {key}")
    for v in value:
        check_identifier(v, f"{where}: {key}")
    return value


def _pairs_from_list(items, where):
    """``nodes:`` as a list of one-key mappings or of "name = definition" strings."""
    pairs = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and len(item) == 1:
            pairs.append(next(iter(item.items())))
        elif isinstance(item, str) and item.count("=") == 1:
            name, text = (s.strip() for s in item.split("="))
            pairs.append((name, text))
        else:
            raise InputError("each node must be 'name: definition' or 'name = definition'",
                             where=f"{where}[{i}]")
    return pairs
