"""Reverse-mode differentiation of a scalar Graph, recorded step by step.

The sweep is micrograd's: walk the nodes in reverse topological order and, for every
edge i -> j, add the contribution v̄_j ∂v_j/∂v_i to v̄_i. A node used twice receives two
contributions. Every step is kept in the Derivation (edge partials, contributions, and
each adjoint as a sum, in node terms, in input terms and as a value) for reports/,
kernels/ and derive.verify to read.
"""
from __future__ import annotations

import sympy as sp

from .derivation import Adjoint, Derivation, Edge, Gradient, bar
from .errors import InputError
from .functions import CONVENTIONS, kinks
from .parse import parse_number
from .simplify import tidy


INPUT_FORM_BUDGET = 12


def backprop(graph, wrt=None, values=None, title="Backpropagation", where="problem"):
    """Derive d output / d every node of ``graph``; returns a Derivation.

    Parameters
    ----------
    graph : derive.graph.Graph
    wrt : list of str, optional
        Names whose gradient is wanted (default: every leaf).
    values : dict, optional
        Leaf values (numbers, or text like "1/2"); exact inputs give exact results.
    """
    sym = {n.name: sp.Symbol(n.name) for n in graph.nodes}
    wrt = list(wrt) if wrt else [n.name for n in graph.leaves]
    for name in wrt:
        if name not in graph.by_name:
            raise InputError(f"'{name}' is not in the graph (nodes: "
                             f"{', '.join(graph.by_name)})", where=f"{where}: wrt")
    order = _ancestors(graph, graph.output)
    expanded = _expand(graph, order, sym)
    vals = _forward_values(graph, order, sym, values, where) if values is not None else None
    d = Derivation(title=title, kind="graph", output=graph.output, wrt=wrt,
                   meta={"latex_names": dict(graph.latex_names)})
    for n in graph.nodes:
        if n.name in order:
            n.value = vals.get(n.name) if vals else None
            d.nodes.append(n)
    _sweep(graph, order, sym, expanded, vals, d)
    for name in wrt:
        adj = d.adjoint(name) if name in order else None
        expr = adj.in_inputs if adj else sp.S.Zero
        d.gradients[name] = Gradient(name, expr, adj.value if adj else (0 if vals else None))
    return d


def _ancestors(graph, output):
    """Names the output depends on (itself included), in the graph's order."""
    needed = {output}
    for node in reversed(graph.computed):
        if node.name in needed:
            needed.update(node.inputs)
    return [n.name for n in graph.nodes if n.name in needed]


def _expand(graph, order, sym):
    """Each node as an expression of the leaves."""
    out = {}
    for name in order:
        node = graph.by_name[name]
        out[name] = sym[name] if node.definition is None else \
            node.definition.xreplace({sym[i]: out[i] for i in node.inputs})
    return out


def _forward_values(graph, order, sym, values, where):
    if not isinstance(values, dict):
        raise InputError("expected a mapping of name: value", where=f"{where}: values")
    vals = {}
    for name in order:
        node = graph.by_name[name]
        if node.definition is None:
            if name not in values:
                raise InputError(f"no value given for '{name}'", where=f"{where}: values")
            vals[name] = parse_number(values[name], where=f"{where}: values.{name}")
            continue
        v = node.definition.xreplace({sym[i]: vals[i] for i in node.inputs})
        v = _settle(v, _floating(vals))
        if v.has(sp.zoo, sp.nan, sp.oo, -sp.oo) or v == sp.nan:
            raise InputError(f"node '{name}' = {node.definition} is undefined at the given "
                             "values (division by zero or log of 0?)", where=f"{where}: nodes")
        vals[name] = v
    return vals


def _settle(v, floating=False):
    """Evaluate a value: floats stay floats, exact values get a light simplification."""
    if floating or v.has(sp.Float):
        return sp.Float(v.evalf()) if v.is_number and v.is_real else v.evalf()
    return tidy(v) if sp.count_ops(v) < 60 else v


def _floating(vals):
    """Float arithmetic throughout when any given value is a float (exact otherwise)."""
    return any(isinstance(v, sp.Float) for v in vals.values())


def _sweep(graph, order, sym, expanded, vals, d):
    """The reverse sweep: contributions per edge, then each adjoint four ways."""
    contribs = {name: [] for name in order}  # name -> [(dst, partial_in_nodes)]
    in_nodes, value = {graph.output: sp.S.One}, {graph.output: sp.S.One if vals else None}
    for name in reversed(order):
        node = graph.by_name[name]
        if name != graph.output:
            _finish_adjoint(name, contribs[name], in_nodes, value, expanded, sym, vals, d)
        else:
            d.adjoints.append(Adjoint(name, sp.S.One, sp.S.One, sp.S.One, value[name]))
        if node.definition is None:
            continue
        for parent in node.inputs:
            partial = _partial(node, parent, sym)
            contribs[parent].append((name, partial))
            pv = None
            if vals:
                pv = _settle(partial.xreplace({sym[k]: vals[k] for k in vals}), _floating(vals))
                _state_conventions(node, partial, sym, vals, d)
            d.edges.append(Edge(parent, name, partial, bar(name) * partial,
                                None if pv is None else _settle(value[name] * pv,
                                                                _floating(vals))))


def _partial(node, parent, sym):
    """∂node/∂parent written in node terms (σ(z)(1 − σ(z)) becomes ŷ(1 − ŷ))."""
    partial = sp.diff(node.definition, sym[parent])
    if not node.definition.is_Symbol:
        partial = partial.subs(node.definition, sym[node.name])
    return tidy(partial)


def _finish_adjoint(name, contribs, in_nodes, value, expanded, sym, vals, d):
    if contribs:
        as_sum = sp.Add(*[bar(j) * p for j, p in contribs], evaluate=False)
        nodes_form = tidy(sp.Add(*[in_nodes[j] * p for j, p in contribs]))
    else:  # a leaf the output does not reach through any edge
        as_sum = nodes_form = sp.S.Zero
    in_nodes[name] = nodes_form
    # Input terms nest every earlier node; the node form is already simplified, so only
    # small input forms get the slow simplify (a 2-2-1 network stays well under 2 s).
    inputs_form = tidy(nodes_form.xreplace({sym[k]: e for k, e in expanded.items()}),
                       budget=INPUT_FORM_BUDGET)
    if vals:
        total = sum((value[j] * p.xreplace({sym[k]: vals[k] for k in vals})
                     for j, p in contribs), sp.S.Zero)
        value[name] = _settle(total, _floating(vals))
    else:
        value[name] = None
    d.adjoints.append(Adjoint(name, as_sum, nodes_form, inputs_form, value[name]))


def _state_conventions(node, partial, sym, vals, d):
    for fname in kinks(node.definition, {sym[k]: vals[k] for k in vals}):
        d.note(f"{CONVENTIONS[fname]} (reached at node '{node.name}')")
