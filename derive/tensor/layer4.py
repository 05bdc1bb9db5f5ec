"""What the convolution, pooling, recurrent, attention and graph layers share.

:class:`Layer4` is a :class:`~derive.tensor.layers.Layer` whose Program and Derivation
go through :func:`~derive.tensor.scatter.scatterise`: reads through computed indices get
their exact gather / scatter-accumulate forms, and the Derivation gains a section that
shows them. Everything else (the element-wise definition, the sweep, the record) is the
shared engine's.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import sympy as sp

from .layers import Layer
from .program import Program
from .scatter import scatter_section, scatterise


@dataclass
class Program4(Program):
    """A Program whose constant leaves (a graph's adjacency) have default values, and whose
    scatter positions may use dimension symbols (``c·H·W + h·W + w``).

    ``run`` binds the dimensions into the ``+=`` positions before running, then runs the
    shared :meth:`Program.run`; the Assignments themselves keep the symbols for kernels.
    """

    given: dict = field(default_factory=dict)

    def environment(self, values, upstream=None):
        return super().environment({**self.given, **dict(values)}, upstream)

    def run(self, values, upstream=None, backward=True):
        dims = self.environment(values, upstream).dims
        bound = replace(self, forward=[_bind(a, dims) for a in self.forward],
                        backward=[_bind(a, dims) for a in self.backward])
        return Program.run(bound, values, upstream, backward)


def _bind(a, dims):
    if a.mode != "+=" or not dims:
        return a
    return replace(a, lhs=tuple(sp.sympify(e).xreplace(dims) for e in a.lhs))


def finish_program(program, graph):
    """``scatterise(program)`` as a :class:`Program4` (constant leaves from ``meta["value"]``)."""
    prog = scatterise(program)
    return Program4(**{f: getattr(prog, f) for f in prog.__dataclass_fields__},
                    given=_given(graph))


def finish_derivation(d, graph):
    """Replace the Derivation's program by the scatterised one and show the scatters."""
    d.meta["program"] = finish_program(d.meta["program"], graph)
    section = scatter_section(d.meta["program"])
    if section is not None:
        d.sections.append(section)
    return d


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
