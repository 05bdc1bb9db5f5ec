"""What the convolution, pooling, recurrent, attention and graph layers share.

:class:`Layer4` is a :class:`~derive.tensor.layers.Layer` whose Program and Derivation
go through :func:`~derive.tensor.scatter.scatterise`: reads through computed indices get
their exact gather / scatter-accumulate forms, and the Derivation gains a section that
shows them. Everything else (the element-wise definition, the sweep, the record) is the
shared engine's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..derivation import BAR_SUFFIX
from ..errors import ShapeError
from .display import ElementForm, element_form
from .evaluate import evaluate_expr
from .graph import shape_str
from .layers import Layer
from .program import Program
from .scatter import scatter_section, scatterise


@dataclass
class Program4(Program):
    """A Program whose constant leaves (a graph's adjacency) have default values, and whose
    scatter positions may hold dimension symbols and integer tensors (``c·H·W + h·W + w``,
    ``i·S + ra[n,c,i,j]``): positions are evaluated with the same NumPy evaluator as the
    right-hand sides, and each ``+=`` target starts from zeros (one writer per target, as
    kernels do).
    """

    given: dict = field(default_factory=dict)

    def environment(self, values, upstream=None):
        return super().environment({**self.given, **dict(values)}, upstream)

    def bind(self, values):
        """Dimension values from the arrays, also through sizes like ``2·d_k`` (heads·d_k)."""
        dims = super().bind(values)
        for name, value in values.items():
            info = self.tensors.get(name)
            if info is not None and info.role not in ("node", "adjoint"):
                _bind_products(info, np.shape(value), dims)
        return dims

    def run(self, values, upstream=None, backward=True):
        env = self.environment(values, upstream)
        execute(self.forward, env, self.tensors)
        new = {a.target + "_new": evaluate_expr(a.rhs, a.indices, env) for a in self.updates}
        if backward:
            execute(self.backward, env, self.tensors)
        env.arrays.update(new)
        return env.arrays


def _bind_products(info, got, dims):
    """Bind ``sym`` from a size ``c·sym`` (ShapeError when ``c`` does not divide it)."""
    for want, size in zip(info.shape, got):
        free = [s for s in want.free_symbols if s not in dims]
        if len(free) != 1 or not want.is_Mul or want != want.subs(free[0], 1) * free[0]:
            continue
        n = sp.Integer(size) / want.subs(free[0], 1)
        if not (n.is_Integer and n > 0):
            raise ShapeError(f"tensor '{info.name}' has shape {shape_str(info.shape)}, the "
                             f"value given has shape {list(got)}")
        dims[free[0]] = n


def execute(assignments, env, tensors):
    """Run assignments in order; ``+=`` ones scatter-add into a zeroed target."""
    for a in assignments:
        value = evaluate_expr(a.rhs, a.indices, env)
        if a.mode == "=":
            env.arrays[a.target] = value
            continue
        target = np.zeros([int(env.scalar(s)) for s in tensors[a.target].shape])
        where = tuple(np.broadcast_to(evaluate_expr(e, a.indices, env), value.shape).astype(int)
                      for e in a.lhs)
        np.add.at(target, where, value)
        env.arrays[a.target] = target


def finish_program(program, graph):
    """``scatterise(program)`` as a :class:`Program4` (constant leaves from ``meta["value"]``)."""
    prog = scatterise(program)
    return Program4(**{f: getattr(prog, f) for f in prog.__dataclass_fields__},
                    given=_given(graph))


def finish_derivation(d, graph):
    """Replace the Derivation's program by the scatterised one and show the scatters."""
    before = d.meta["program"]
    d.meta["program"] = finish_program(before, graph)
    drop_delta_matrix_forms(d, graph, before, d.meta["program"])
    section = scatter_section(d.meta["program"])
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


def drop_delta_matrix_forms(d, graph, before, after):
    """Show the index form wherever matrix recognition read a delta of indices as a scalar.

    (``matrix.Recogniser.is_tensor_free`` accepts ``δ(k + 1, j)``; see
    /work/notes/requests_layers4.md. Harmless once that is fixed.)
    """
    index = _index_forms(before, after)
    names = set(after.tensors)

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


def _index_forms(before, after):
    """name -> index form of its adjoint: the gather form when exact, else the delta sum."""
    forms = {a.target: a for a in before.backward}
    forms.update({a.target: a for a in after.backward if a.mode == "="})
    return {t[: -len(BAR_SUFFIX)]: element_form(a.rhs, a.indices) for t, a in forms.items()
            if t.endswith(BAR_SUFFIX)}


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
        values = None if values is None else {**_given(g), **values}
        return finish_derivation(derive_graph(g, wrt, values, upstream, kind="layer"), g)


def _given(g):
    return {n.name: n.meta["value"] for n in g.nodes.values() if n.is_leaf and "value" in n.meta}
