"""From a reverse sweep to a Derivation: the shared fields, filled for tensors.

* ``nodes``: each tensor with its definition (matrix form when recognised, else index
  form ``[rhs]_{n,i}``) and shape;
* ``edges``: the element partial ∂dst/∂src (deltas eliminated where the ranges allow)
  and the contribution to the source's adjoint;
* ``adjoints``: ``as_sum`` (Σ_j v̄_j ∂v_j/∂v_i, symbolic), ``in_nodes`` (in terms of the
  nodes and the consumers' adjoints, ⊙ and @ explicit), ``in_inputs`` (everything
  substituted, kept when small), ``value``;
* ``sections``: the worked index derivation (definition -> element derivative -> deltas
  eliminated -> matrix form), as :class:`~derive.derivation.Step` s, and, where a tensor
  is read or written through computed indices (convolution windows, pooling routes,
  time steps), the scatter-accumulate and gather forms the program runs.

:func:`derive_forward` records the definition alone, for a layer without a useful
gradient (the 0/1 loss, hard attention), with the reason the layer gives.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from derive.derivation import BAR_SUFFIX, Adjoint, Derivation, Edge, Gradient, Node, Section, Step
from derive.derivation import bar as bar_symbol
from derive.tensor.reverse_sweep import build_program, substitute_aliases
from derive.tensor.display import display, element_form, indexed_lhs, names_for, pretty, pretty_names
from derive.tensor.evaluate import Env, evaluate_expr
from derive.tensor.tensor_graph import shape_str
from derive.tensor.index import ISum, inline, simplify_index
from derive.tensor.matrix import recognise
from derive.tensor.scatter import scatter_section

MAX_INLINE_OPS = 300  # in_inputs is dropped (None) beyond this size: it would not help
SHOWN_STEPS = 2  # of a long unrolled sequence, the first and last steps a document shows


def derive_graph(graph, wrt=None, values=None, upstream=None, kind="tensor_graph",
                 title=None, all_steps=False):
    """The Derivation of ``graph``'s output with respect to ``wrt`` (see module docs).

    Of a sequence unrolled over more than ``2 * SHOWN_STEPS + 1`` steps, the record shows
    the first and last :data:`SHOWN_STEPS` steps (``all_steps=True``: every step): the
    steps between are the same formulas with t shifted, and an exam answer writes them
    once. The program (kernels, ``evaluate``) runs every step either way."""
    program, s = build_program(graph, wrt)
    arrays = program.run(values, upstream) if values is not None else None
    hidden, elided = ({}, []) if all_steps else elided_steps(graph)
    view = View(graph, s, program, arrays, kind, hidden)
    d = Derivation(title=title or graph.title, kind=kind, output=graph.output, wrt=list(s.wrt),
                   program=program,
                   meta={"shapes": view.shapes(),
                         "latex_names": dict(graph.latex_names)})
    d.nodes = view.nodes()
    d.edges = view.edges()
    d.adjoints = view.adjoints()
    for name in s.wrt:
        adj = d.adjoint(name) if name in s.adjoints else None
        d.gradients[name] = Gradient(name, adj.in_nodes if adj else sp.S.Zero,
                                     adj.value if adj else None, graph.nodes[name].shape)
    for text in s.conventions + graph.notes + view.general_notes() + elided:
        d.note(text)
    if hidden:
        d.meta["elided"] = sorted(hidden)
        # tensors some of whose uses are in elided steps: their edge list is partial
        d.meta["elided_uses"] = sorted({e.src for e in s.edges if e.dst in hidden
                                        and e.src not in hidden})
    d.sections = view.sections()
    for check in graph.checks:
        d.sections.append(check(view))
    routes = scatter_section(program)
    if routes is not None:
        d.sections.append(routes)
    return d


def elided_steps(graph):
    """({node name: step}, notes) for the middle steps of every long unrolled sequence."""
    hidden, notes = {}, []
    for layer, steps in getattr(graph, "repeats", ()):
        T = len(steps)
        if T <= 2 * SHOWN_STEPS + 1:
            continue
        first, last = SHOWN_STEPS + 1, T - SHOWN_STEPS
        for t in range(first, last + 1):
            hidden.update({name: t for name in steps[t - 1]})
        shown = ", ".join(map(str, list(range(1, first)) + list(range(last + 1, T + 1))))
        notes.append(
            f"{layer}: steps {first} to {last} are step {first - 1}'s formulas with t "
            f"shifted (nodes {steps[first - 1][0]} to {steps[last - 1][-1]}); this document "
            f"shows steps {shown} of {T}. Every step is derived and runs in the program "
            "(evaluate, kernels); derive(all_steps=True), or derivekit layer with "
            "--all-steps, prints them all.")
    return hidden, notes


def derive_forward(graph, values=None, reason="", kind="layer", title=None):
    """A Derivation of ``graph``'s definition alone (no gradient), noting ``reason``."""
    d = Derivation(title=title or graph.title, kind=kind, output=graph.output)
    arrays = build_program(graph, [])[0].run(values, backward=False) \
        if values is not None else None
    steps = []
    for n in graph.nodes.values():
        value = arrays.get(n.name) if arrays else None
        d.nodes.append(Node(n.name, None if n.rhs is None else element_form(n.rhs, n.indices),
                            tuple(n.inputs), _role(n.role), value, n.shape or None))
        if n.rhs is not None:
            steps.append(Step(indexed_lhs(n.name, n.indices), [pretty(n.rhs, n.indices)[0]]))
    d.sections.append(Section("Definition", steps))
    if reason:
        d.note(reason)
    return d


class View:
    """The display forms of one sweep (index and matrix), computed once each."""

    def __init__(self, graph, sweep, program, arrays, kind, hidden=None):
        self.g, self.s, self.p, self.arrays, self.kind = graph, sweep, program, arrays, kind
        self.hidden = hidden or {}  # nodes of elided steps: derived, not shown
        out = graph.nodes[graph.output]
        self.seed = {sp.Symbol(out.name + BAR_SUFFIX): sp.S.One} if not out.shape else {}
        self.tensors = program.tensors
        self._adj = {}

    # -- index forms ------------------------------------------------------------------------
    def adjoint_rhs(self, name):
        """ū in index form: aliases and a loss seed (1) substituted, simplified."""
        if name not in self._adj:
            rhs = substitute_aliases(self.s.adjoints[name], self.s.aliases).xreplace(self.seed)
            self._adj[name] = simplify_index(rhs)
        return self._adj[name]

    def show(self, rhs, indices):
        if not indices:
            return element_form(rhs, indices)  # scalars read best in index form
        return display(rhs, indices, recognise(rhs, indices, self.tensors), self.tensors)

    def value(self, name):
        if self.arrays is None:
            return None
        key = name if name in self.arrays else None
        return self.arrays.get(key) if key else None

    def env(self):
        dims = self.p.bind({k: v for k, v in self.arrays.items() if k in self.tensors
                            and self.tensors[k].role not in ("node", "adjoint")})
        return Env(self.arrays, dims, self.p.constants)

    # -- the shared fields ------------------------------------------------------------------
    def nodes(self):
        out = []
        for n in self.g.nodes.values():
            if n.meta.get("update") or n.name in self.hidden:
                continue
            definition = None if n.rhs is None else self.show(n.rhs, n.indices)
            out.append(Node(n.name, definition, tuple(n.inputs), _role(n.role), self.value(n.name),
                            n.shape or None, n.layer or n.text))
        return out

    def edges(self):
        env = self.env() if self.arrays is not None else None
        out = []
        for e in self.s.edges:
            if e.src in self.hidden or e.dst in self.hidden:
                continue
            K, own = self.s.indices[e.src], self.g.nodes[e.dst].indices
            nk, ni = names_for(K, own)
            partial = element_form(e.partial, own + K, ni + nk)
            contrib = simplify_index(substitute_aliases(e.contribution, self.s.aliases)
                                     .xreplace(self.seed))
            value = evaluate_expr(contrib, K, env) if env is not None else None
            out.append(Edge(e.src, e.dst, partial, self.show(contrib, K), value))
        return out

    def adjoints(self):
        out = []
        for name in self.s.order[1:]:
            if name in self.hidden:
                continue
            consumers = [e.dst for e in self.s.edges if e.src == name]
            as_sum = sp.Add(*[sp.Mul(bar_symbol(c), sp.Derivative(sp.Symbol(c), sp.Symbol(name)),
                                     evaluate=False) for c in consumers], evaluate=False)
            K = self.s.indices[name]
            rhs = self.adjoint_rhs(name)
            value = self.value(self.s.aliases.get(name, name) + BAR_SUFFIX)
            out.append(Adjoint(name, as_sum, self.show(rhs, K), self.in_inputs(name), value,
                               self.g.nodes[name].shape or None))
        return out

    def in_inputs(self, name):
        """ū with every node and adjoint substituted (None when too large to help)."""
        if self.kind != "tensor_graph":
            return None  # a network's adjoints in its inputs only grow; exams ask for these
        defs = {n.name: (n.indices, n.rhs) for n in self.g.nodes.values() if n.rhs is not None}
        for other in self.s.order[1:]:
            defs[other + BAR_SUFFIX] = (self.s.indices[other], self.adjoint_rhs(other))
        try:
            rhs = inline(self.adjoint_rhs(name), defs)
        except RecursionError:
            return None
        if sp.count_ops(rhs) > MAX_INLINE_OPS:
            return None
        rhs = simplify_index(rhs, expand=False)
        return self.show(rhs, self.s.indices[name])

    def shapes(self):
        return {n.name: shape_str(n.shape) for n in self.g.nodes.values()}

    def general_notes(self):
        notes = ["Shapes: " + ", ".join(f"{n.name}: {shape_str(n.shape)}"
                                        for n in self.g.nodes.values()
                                        if not n.meta.get("update")
                                        and n.name not in self.hidden) + "."]
        if any(len(n.shape) == 1 for n in self.g.nodes.values()):
            notes.append("In matrix form a 1-D tensor is a row vector (1 x n); "
                         "⊙ is the elementwise product and 1 a vector of ones.")
        return notes

    # -- the worked sections -----------------------------------------------------------
    def sections(self):
        out = [self.forward_section()]
        for name in self.s.order[1:]:
            if name not in self.hidden:
                out.append(self.adjoint_section(name))
        return out

    def forward_section(self):
        steps = []
        for n in self.g.nodes.values():
            if n.rhs is None or n.meta.get("update") or n.name in self.hidden:
                continue
            rhs, _ = pretty(n.rhs, n.indices)
            forms = [rhs]
            node = recognise(n.rhs, n.indices, self.tensors)
            if node is not None and n.shape:
                forms.append(display(n.rhs, n.indices, node, self.tensors))
            steps.append(Step(indexed_lhs(n.name, n.indices), forms,
                              note=f"{n.name}: {shape_str(n.shape)}"))
        return Section("Forward pass, element by element", steps,
                       text="Each tensor is defined once, entry by entry.")

    def adjoint_section(self, name):
        K = self.s.indices[name]
        steps = []
        chain, elided = [], 0
        for e in [e for e in self.s.edges if e.src == name]:
            if e.dst in self.hidden:
                elided += 1
                continue
            dst = self.g.nodes[e.dst]
            nk, ni = names_for(K, dst.indices)
            lhs = sp.Derivative(indexed_lhs(dst.name, dst.indices, ni),
                                indexed_lhs(name, K, nk))
            raw, _ = pretty(e.raw, dst.indices + K, ni + nk)
            done, _ = pretty(e.partial, dst.indices + K, ni + nk)
            steps.append(Step(lhs, _dedupe([raw, done]),
                              note="differentiate the definition; δ is the Kronecker delta"))
            bar_c = self.s.bar_element(dst.name, dst.indices)
            chain.append(ISum(bar_c * e.raw, *dst.indices) if dst.indices else bar_c * e.raw)
        done, _ = pretty(self.adjoint_rhs(name), K)
        if elided:  # the sum over its uses would leave out the elided steps' terms
            forms = [done]
        else:
            summed, _ = pretty(sp.Add(*chain).xreplace(self.seed), K)
            forms = _dedupe([summed, done])
        node = recognise(self.adjoint_rhs(name), K, self.tensors)
        if node is not None and K:
            forms.append(display(self.adjoint_rhs(name), K, node, self.tensors))
        shape = shape_str(self.g.nodes[name].shape)
        note = f"chain rule over every use, deltas eliminated; shape {shape}"
        if elided:
            note += f" ({elided} uses in the steps this document leaves out are alike)"
        steps.append(Step(indexed_lhs(name + BAR_SUFFIX, K, pretty_names(K)), forms, note=note))
        return Section(f"Adjoint of {name}", steps)


def _dedupe(forms):
    out = []
    for f in forms:
        if not out or f != out[-1]:
            out.append(f)
    return out


def _role(role):
    return {"node": "node", "param": "param"}.get(role, "input")


def numeric_check(view, rhs, indices, target, seed=0):
    """Max |difference| between ``rhs`` and the derived adjoint ``target`` at random values."""
    rng = np.random.default_rng(seed)
    sizes = {d: 3 + k for k, d in enumerate(view.p.dims)}
    values = {}
    for t in view.p.tensors.values():
        if t.role in ("node", "adjoint") or t.role == "mask":
            continue
        shape = [int(sp.sympify(s).xreplace(sizes)) for s in t.shape]
        values[t.name] = (rng.integers(0, int(shape and 2) or 1, shape) if t.dtype == "int"
                          else rng.normal(size=shape) if t.role != "state"
                          else rng.uniform(0.5, 1.5, shape))
    out_shape = [int(sp.sympify(s).xreplace(sizes)) for s in view.p.tensors[view.p.output].shape]
    arrays = view.p.run(values, rng.normal(size=out_shape))
    env = Env(arrays, sizes, view.p.constants)
    got = evaluate_expr(rhs, indices, env)
    return float(np.max(np.abs(got - arrays[target]))), sizes
