"""Reverse-mode differentiation of a scalar Graph, recorded step by step.

The sweep is micrograd's: walk the nodes in reverse topological order and, for every
edge i -> j, add the contribution v̄_j ∂v_j/∂v_i to v̄_i. A node used twice receives two
contributions. Every step is kept in the Derivation (edge partials, contributions, and
each adjoint as a sum, in node terms, in input terms and as a value) for reports/,
kernels/ and derive.verify to read.

Numbers go through :class:`Numbers`: the exact (or float) values a person reads, each
confirmed against an independent 30-digit evaluation of the unsimplified step
(derive.scalar.confirm). Without values, the printed forms are still confirmed at one probe
point. Simplification shares one time allowance per derivation (derive.budget).
"""
from __future__ import annotations

import sympy as sp

from derive.budget import allowance
from derive.scalar.confirm import DIGITS, ConsistencyError, Evaluator, approx, confirm, real_value
from derive.derivation import Adjoint, Derivation, Edge, Gradient, bar
from derive.errors import InputError
from derive.functions import CONVENTIONS, kinks, real_diff
from derive.scalar.parse import parse_number
from derive.scalar.simplify import MAX_TREE, tidy, tree_size

INPUT_FORM_BUDGET = 12
SIMPLIFY_SECONDS = 3.0  # all the simplification of one derivation
STEP_SECONDS = 1.0  # one expression's simplification
EXACT_TREE = 400  # an exact value larger than this is shown as a float instead
EXACT_DIGITS = 60  # nor is one holding a number of more digits
PROBE = (0.61, 0.83, 1.13, 0.47, 1.29, 0.71, 0.97, 1.41)  # leaf values for the probe


def backprop(graph, wrt=None, values=None, title="Backpropagation", where="problem",
             keys=None):
    """Derive d output / d every node of ``graph``; returns a Derivation.

    Parameters
    ----------
    graph : derive.scalar.scalar_graph.Graph
    wrt : list of str, optional
        Names whose gradient is wanted (default: every leaf).
    values : dict, optional
        Leaf values (numbers, or text like "1/2"); exact inputs give exact results.
    where, keys : str, dict, optional
        Where errors point: ``where`` is the file or command, ``keys`` names the
        ``wrt`` and ``values`` settings there (the CLI's are ``--wrt`` and ``--at``).
    """
    keys = {"wrt": "wrt", "values": "values", **(keys or {})}
    loc = {k: f"{where}: {v}" if where else v for k, v in keys.items()}
    sym = {n.name: sp.Symbol(n.name) for n in graph.nodes}
    wrt = list(wrt) if wrt else [n.name for n in graph.leaves]
    for name in wrt:
        if name not in graph.by_name:
            raise InputError(f"'{name}' is not in the graph (nodes: "
                             f"{', '.join(graph.by_name)})", where=loc["wrt"])
    order = _ancestors(graph, graph.output)
    d = Derivation(title=title, kind="graph", output=graph.output, wrt=wrt,
                   meta={"latex_names": dict(graph.latex_names)})
    with allowance(SIMPLIFY_SECONDS, STEP_SECONDS) as budget:
        nums = Numbers(graph, order, sym, values, loc["values"], d)
        expanded = _expand(graph, order, sym)
        for n in graph.nodes:
            if n.name in order:
                n.value = nums.exact.get(n.name)
                d.nodes.append(n)
        _sweep(graph, order, sym, expanded, nums, d)
    for name in wrt:
        _gradient(d, name, order, nums)
    if budget.spent:
        d.note(f"Simplification stopped after {SIMPLIFY_SECONDS:g} s: later forms are "
               "shown as derived, not simplified.")
    return d


def _ancestors(graph, output):
    """Names the output depends on (itself included), in the graph's order."""
    needed = {output}
    for node in reversed(graph.computed):
        if node.name in needed:
            needed.update(node.inputs)
    return [n.name for n in graph.nodes if n.name in needed]


def _expand(graph, order, sym):
    """Each node as an expression of the leaves (None where that would be too large)."""
    out = {}
    for name in order:
        node = graph.by_name[name]
        if node.definition is None:
            out[name] = sym[name]
        elif any(out[i] is None for i in node.inputs):
            out[name] = None
        else:
            e = node.definition.xreplace({sym[i]: out[i] for i in node.inputs})
            out[name] = e if tree_size(e, MAX_TREE) <= MAX_TREE else None
    return out


def _sweep(graph, order, sym, expanded, nums, d):
    """The reverse sweep: contributions per edge, then each adjoint four ways."""
    contribs = {name: [] for name in order}  # name -> [(dst, partial_in_nodes)]
    in_nodes = {graph.output: sp.S.One}
    for name in reversed(order):
        node = graph.by_name[name]
        if name != graph.output:
            _finish_adjoint(name, contribs[name], in_nodes, expanded, sym, nums, d)
        else:
            nums.seed(name)
            d.adjoints.append(Adjoint(name, sp.S.One, sp.S.One, sp.S.One,
                                      nums.exact_adjoint.get(name)))
        if node.definition is None:
            continue
        for parent in node.inputs:
            partial = _partial(node, parent, sym)
            contribs[parent].append((name, partial))
            value = nums.edge(name, parent, partial)
            if nums.given:
                _state_conventions(node, nums, sym, d)
            d.edges.append(Edge(parent, name, partial, bar(name) * partial, value))


def _partial(node, parent, sym):
    """∂node/∂parent written in node terms (σ(z)(1 − σ(z)) becomes ŷ(1 − ŷ))."""
    partial = real_diff(node.definition, sym[parent])
    if not node.definition.is_Symbol:
        partial = partial.subs(node.definition, sym[node.name])
    return tidy(partial)


def _finish_adjoint(name, contribs, in_nodes, expanded, sym, nums, d):
    if contribs:
        as_sum = sp.Add(*[bar(j) * p for j, p in contribs], evaluate=False)
        nodes_form = tidy(sp.Add(*[in_nodes[j] * p for j, p in contribs]))
    else:  # a leaf the output does not reach through any edge
        as_sum = nodes_form = sp.S.Zero
    in_nodes[name] = nodes_form
    inputs_form = _in_inputs(nodes_form, expanded, sym, d)
    value = nums.adjoint(name, contribs)
    nums.confirm_form(nodes_form, name, "in node terms")
    nums.confirm_form(inputs_form, name, "in input terms")
    d.adjoints.append(Adjoint(name, as_sum, nodes_form, inputs_form, value))


def _in_inputs(nodes_form, expanded, sym, d):
    """The node form with every node written out in the inputs, simplified lightly.

    Input terms nest every earlier node; the node form is already simplified, so only
    small input forms get the slow simplify (a 2-2-1 network stays well under 2 s).
    """
    used = [s.name for s in nodes_form.free_symbols if s.name in expanded]
    if any(expanded[n] is None for n in used):
        d.note("Some adjoints are written in terms of intermediate nodes: written out in "
               "the inputs they would be too large to print.")
        return nodes_form
    return tidy(nodes_form.xreplace({sym[n]: expanded[n] for n in used}),
                budget=INPUT_FORM_BUDGET)


def _gradient(d, name, order, nums):
    if name in order:
        adj = d.adjoint(name)
        d.gradients[name] = Gradient(name, adj.in_inputs, adj.value)
        return
    d.gradients[name] = Gradient(name, sp.S.Zero, 0 if nums.given else None)
    d.note(f"{d.output} does not depend on {name} (it cancels out or is never used), "
           f"so d{d.output}/d{name} = 0.")


def _state_conventions(node, nums, sym, d):
    for fname in kinks(node.definition, nums._esubs()):
        d.note(f"{CONVENTIONS[fname]} (reached at node '{node.name}')")


def _huge_numbers(expr):
    """True when ``expr`` holds an integer or fraction of more than EXACT_DIGITS digits."""
    return any(max(abs(r.p), r.q).bit_length() > EXACT_DIGITS * 3.33
               for r in expr.atoms(sp.Rational))


class Numbers:
    """Values of one sweep: exact (as printed) beside their 30-digit float twins.

    With ``values`` given, every exact value is confirmed against its twin and the
    twins find inputs outside a function's domain. Without, the twins run alone at a
    probe point, only to confirm the printed forms; a probe point outside the domain
    simply ends the probe.
    """

    def __init__(self, graph, order, sym, values, where, d):
        self.graph, self.sym, self.where, self.d = graph, sym, where, d
        self.given = values is not None
        self.exact, self.exact_adjoint = {}, {}
        self.twin, self.twin_adjoint, self.scale = {}, {}, {}
        self.floating = False
        self.active = True
        self._evaluator, self._evaluator_for, self._exact_subs = None, {}, {}
        if self.given:
            self._forward(order, self._leaf_values(order, values))
        else:
            try:
                self._forward(order, dict(zip([n.name for n in graph.leaves],
                                              (sp.Float(p, DIGITS) for p in PROBE * 64))))
            except InputError:
                self.active = False

    def _leaf_values(self, order, values):
        if not isinstance(values, dict):
            raise InputError("expected a mapping of name: value", where=self.where)
        leaves = {}
        for name in order:
            if self.graph.by_name[name].definition is None:
                if name not in values:
                    raise InputError(f"no value given for '{name}'", where=self.where)
                leaves[name] = parse_number(values[name], where=f"{self.where}.{name}")
        self.floating = any(isinstance(v, sp.Float) for v in leaves.values())
        return leaves

    @property
    def fsubs(self):
        """The twins as an Evaluator (built once the forward values are all known)."""
        if self._evaluator is None or len(self._evaluator_for) != len(self.twin):
            self._evaluator_for = dict(self.twin)
            self._evaluator = Evaluator({self.sym[k]: v for k, v in self.twin.items()})
        return self._evaluator

    def _forward(self, order, leaves):
        for name in order:
            node = self.graph.by_name[name]
            if node.definition is None:
                self.twin[name] = approx(leaves[name], {})
                if self.given:
                    self.exact[name] = leaves[name]
                continue
            what = (lambda n=node: f"node '{n.name}' = {n.definition}")
            self.twin[name] = real_value(node.definition, self.fsubs, what, self.where,
                                         self._shown())
            if self.given:
                exact = node.definition.xreplace({self.sym[i]: self.exact[i]
                                                  for i in node.inputs})
                self.exact[name] = self._settle(exact, self.twin[name], what)

    def _shown(self):
        return {k: v for k, v in (self.exact if self.given else self.twin).items()
                if self.graph.by_name[k].definition is None}

    def _settle(self, exact, twin, what, scale=None):
        """The value to print: a float in float mode, else exact and lightly simplified."""
        if self.floating or exact.has(sp.Float):
            return sp.Float(twin, 15)
        if tree_size(exact, EXACT_TREE) > EXACT_TREE or _huge_numbers(exact):
            self.d.note("Some exact values grew too large to print; they are shown to 15 "
                        "significant digits.")
            return sp.Float(twin, 15)
        value = tidy(exact) if sp.count_ops(exact) < 60 else exact
        confirm(value, twin, what, scale)
        return value

    def seed(self, output):
        self.twin_adjoint[output], self.scale[output] = sp.Float(1), sp.Float(1)
        if self.given:
            self.exact_adjoint[output] = sp.S.One

    def edge(self, dst, src, partial):
        """Twin (and exact) value of the contribution v̄_dst ∂dst/∂src; the exact one."""
        if not self.active:
            return None
        what = (lambda: f"d{dst}/d{src} = {partial}")
        try:
            twin = real_value(partial, self.fsubs, what, self.where, self._shown())
        except InputError:
            if self.given:
                raise
            self.active = False
            return None
        self.twin_adjoint.setdefault(src, sp.Float(0))
        self.scale.setdefault(src, sp.Float(0))
        term = self.twin_adjoint[dst] * twin
        self.twin_adjoint[src] += term
        self.scale[src] += abs(term) + self.scale[dst] * abs(twin)
        if not self.given:
            return None
        exact_partial = self._settle(partial.xreplace(self._esubs()), twin, what)
        return self._settle(self.exact_adjoint[dst] * exact_partial, term,
                            f"the contribution of {dst} to {src}_bar")

    def _esubs(self):
        if len(self._exact_subs) != len(self.exact):
            self._exact_subs = {self.sym[k]: v for k, v in self.exact.items()}
        return self._exact_subs

    def adjoint(self, name, contribs):
        """The exact value of ``name``'s adjoint (None without values)."""
        if not (self.given and self.active):
            return None
        total = sum((self.exact_adjoint[j] * p.xreplace(self._esubs()) for j, p in contribs),
                    sp.S.Zero)
        twin = self.twin_adjoint.get(name, sp.Float(0))
        value = self._settle(total, twin, f"{name}_bar", self.scale.get(name))
        self.exact_adjoint[name] = value
        return value

    def confirm_form(self, form, name, how):
        """The printed form of ``name``'s adjoint must give its twin value."""
        if not self.active or name not in self.twin_adjoint and form == 0:
            return
        twin = self.twin_adjoint.get(name, sp.Float(0))
        try:
            value = self.fsubs(form)
        except (TypeError, ValueError):
            value = None
        if value is None or not value.is_Number:
            if self.given:
                raise ConsistencyError(f"{name}_bar {how} ({form}) could not be evaluated "
                                       "at the given values (please report this)")
            return
        confirm(value, twin, lambda: f"{name}_bar {how} ({form})", self.scale.get(name))
