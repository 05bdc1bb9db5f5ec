"""What the convolution, pooling, recurrent, attention and graph layers share.

Every Program is scatterised by :func:`~derive.tensor.backward.build_program`: reads
through computed indices get their exact gather / scatter-accumulate forms. A
:class:`Layer4` (and a model containing one) adds what is particular to these layers:
constant leaves with default values (a graph's adjacency, :class:`Program4`) and a
Derivation section that shows the scatters. Everything else (the element-wise definition,
the sweep, the record) is the shared engine's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ..derivation import BAR_SUFFIX
from .display import ElementForm, element_form
from .index import Fresh, pull_sum
from .layers import Layer
from .program import Program
from .scatter import scatter_section


@dataclass
class Program4(Program):
    """A Program whose constant leaves (a graph's adjacency) have default values.

    (Scatter positions with dimension symbols and integer tensors, and sizes like
    ``2·d_k``, are handled by :class:`~derive.tensor.program.Program` itself.)
    """

    given: dict = field(default_factory=dict)

    def leaf_arrays(self, values):
        return super().leaf_arrays({**self.given, **dict(values)})


def finish_program(program, graph):
    """``program`` (already scatterised by ``build_program``) as a :class:`Program4` whose
    constant leaves take their values from ``meta["value"]``."""
    return Program4(**{f: getattr(program, f) for f in program.__dataclass_fields__},
                    given=given_values(graph))


def finish_derivation(d, graph):
    """Replace the Derivation's program by the scatterised one and show the scatters."""
    d.program = finish_program(d.program, graph)
    drop_delta_matrix_forms(d, graph, d.program)
    section = scatter_section(d.program)
    if section is not None:
        d.sections.append(section)
    return d


# -- a guard on matrix displays --------------------------------------------------------------


def _bad(form, names):
    """A matrix display (whole tensors, no elements) holding a Kronecker delta of indices."""
    if not isinstance(form, sp.Basic) or isinstance(form, ElementForm) \
            or not form.has(sp.KroneckerDelta) or form.has(sp.Indexed):
        return False
    return form.has(sp.MatrixExpr) or any(str(s) in names and not s.is_integer
                                          for s in form.free_symbols)


def drop_delta_matrix_forms(d, graph, program):
    """Show the index form wherever matrix recognition read a delta of indices as a scalar.

    (``matrix.Recogniser.is_tensor_free`` accepts ``δ(k + 1, j)``; see
    /work/notes/requests_layers4.md. Harmless once that is fixed.)
    """
    index = _index_forms(program)
    names = set(program.tensors)

    def _bad_(form):
        return _bad(form, names)

    for n in d.nodes:
        if _bad_(n.definition):
            node = graph.nodes[n.name]
            n.definition = element_form(node.rhs, node.indices)
    for a in d.adjoints:
        if _bad_(a.in_nodes) and a.name in index:
            a.in_nodes = index[a.name]
        if _bad_(a.in_inputs):
            a.in_inputs = None
    for name, grad in d.gradients.items():
        if _bad_(grad.expression) and name in index:
            grad.expression = index[name]
    for e in d.edges:
        single = len([x for x in d.edges if x.src == e.src]) == 1
        if _bad_(e.contribution) and single and e.src in index:
            e.contribution = index[e.src]
    for section in d.sections:
        for step in section.steps:
            kept = [f for f in step.rhs if not _bad_(f)]
            step.rhs = kept or step.rhs


def _index_forms(program):
    """name -> index form of its adjoint: the gather form when exact, else the delta sum
    (a scatter ``x̄[lhs] += v`` read back as ``x̄[K] = Σ v δ(K, lhs)``)."""
    forms = {}
    for a in program.backward:
        if a.target.endswith(BAR_SUFFIX):
            rhs, K = (a.rhs, a.indices) if a.mode == "=" else \
                dense_form(a, program.tensors[a.target].shape)
            forms[a.target[: -len(BAR_SUFFIX)]] = element_form(rhs, K)
    return forms


def dense_form(a, shape):
    """``(rhs, K)`` with ``target[K] = rhs`` equal to the scatter ``a`` (deltas kept)."""
    K, deltas = [], []
    for e, size in zip(a.lhs, shape):
        if isinstance(e, sp.Idx) and e in a.indices and e not in K:
            K.append(e)
            continue
        k = Fresh.idx(size, "k")
        K.append(k)
        deltas.append(sp.KroneckerDelta(k, e))
    bound = tuple(i for i in a.indices if i not in K)
    return pull_sum(a.rhs * sp.Mul(*deltas), bound), tuple(K)


class Layer4(Layer):
    """A layer whose gradients may read or write through computed indices."""

    def program(self, wrt=None):
        """The kernel Program with gathers / scatter-accumulates (see :mod:`.scatter`)."""
        from .backward import build_program

        g = self.graph()
        return finish_program(build_program(g, wrt)[0], g)

    def derive(self, wrt=None, values=None, upstream=None):
        """The Derivation (index form, deltas, matrix form) plus the scatter section."""
        from .record import derive_graph

        g = self.graph()
        values = None if values is None else {**given_values(g), **values}
        return finish_derivation(derive_graph(g, wrt, values, upstream, kind="layer"), g)


def given_values(g):
    """name -> value of the constant leaves that carry one (``meta["value"]``: adjacency)."""
    return {n.name: n.meta["value"] for n in g.nodes.values() if n.is_leaf and "value" in n.meta}
