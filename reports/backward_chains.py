r"""The backward pass as a person writes it, one chain of equalities per adjoint.

For every node, in the order the sweep recorded them (output first)::

    \bar v_i = \sum_j \bar v_j \partial v_j/\partial v_i   (one term per outgoing edge)
             = the contributions with the local partials filled in
             = in node terms = in input terms
             = the contributions' values summed = the value

A node used twice (fan-out, a shared RNN weight) gets one term per use. Repeated lines
(a partial of 1 makes several forms alike) are dropped later by ``passes.drop_repeats``.
"""
from __future__ import annotations

import sympy as sp

from reports.document_model import Equations, Math, Row
from reports.latex_printer import latex, latex_pieces, shape_tex, symbol_tex
from reports.values import classify, entry_tex, value_tex


def signed_sum(terms):
    """Math of ``terms`` (each may start with ``-``) joined with the right signs."""
    signed = []
    for i, term in enumerate(terms):
        term = term.strip()
        if term.startswith("-"):
            signed.append("- " + term[1:].lstrip())
        else:
            signed.append(term if i == 0 else "+ " + term)
    return Math(" ".join(signed), pieces=signed)


def expr_math(expr, names, optional=False):
    """Math of an expression, with the places it may be broken."""
    if isinstance(expr, str):
        return Math(expr, optional=optional)
    pieces, glue = latex_pieces(expr, names)
    return Math(latex(expr, names), pieces, glue, optional=optional)


def contribution_tex(edge, names, tensor=False):
    r"""The contribution of ``edge`` as ``\bar v_j \cdot (\partial v_j / \partial v_i)``.

    The adjoint is written first, as in the chain rule; the sign is pulled to the front.
    Between tensors the product is a contraction, not a scalar product: the recorded
    contribution (matrix form, ``\bar z^{\top} x``) is shown as it is.
    """
    if tensor:
        return latex(edge.contribution, names)
    adjoint = symbol_tex(edge.dst, names, adjoint=True)
    partial = edge.partial
    if isinstance(partial, str):
        return r"%s \cdot %s" % (adjoint, partial)
    partial = sp.S(partial)  # a number or an expression; text was handled above
    sign = ""
    if partial.could_extract_minus_sign():
        sign, partial = "-", -partial
    if partial == 1:
        return sign + adjoint
    text = latex(partial, names)
    if isinstance(partial, (sp.Add, sp.MatAdd)):
        text = r"\left(%s\right)" % text
    glue = r" \cdot " if text[0].isdigit() or text.startswith(r"\frac") else " "
    return sign + adjoint + glue + text


def is_tensor(d, edge):
    """True when either end of ``edge`` is a tensor (a node with a shape)."""
    shaped = {n.name for n in d.nodes if n.shape}
    return edge.src in shaped or edge.dst in shaped


def shape_math(shape, names):
    r"""``\in \mathbb{R}^{B \times 3}``: the shape, stated after a tensor's value."""
    return Math(r"\in \mathbb{R}^{%s}" % shape_tex(shape, names), rel="")


def chain_rule_tex(edge, names):
    r"""``\bar v_j \frac{\partial v_j}{\partial v_i}`` for one edge."""
    dst, src = symbol_tex(edge.dst, names), symbol_tex(edge.src, names)
    return r"%s \frac{\partial %s}{\partial %s}" % (symbol_tex(edge.dst, names, True), dst, src)


def adjoint_row(d, adj, names):
    """The chain of equalities for one Adjoint."""
    elided = adj.name in d.meta.get("elided_uses", ())
    # some uses are in steps the document leaves out: the full sum over uses, not the
    # listed edges' contributions, which would leave those terms out
    edges = [] if elided else d.edges_from(adj.name)
    rhs = []
    if edges:
        rhs.append(signed_sum([chain_rule_tex(e, names) for e in edges]))
        rhs.append(signed_sum([contribution_tex(e, names, is_tensor(d, e)) for e in edges]))
    elif adj.as_sum is not None:
        rhs.append(expr_math(adj.as_sum, names))
    if adj.in_nodes is not None:
        rhs.append(expr_math(adj.in_nodes, names))
    if adj.in_inputs is not None:
        rhs.append(expr_math(adj.in_inputs, names, optional=True))
    values = [e.value for e in edges]
    if len(edges) > 1 and all(classify(v) not in ("none", "array") for v in values):
        rhs.append(signed_sum([entry_tex(v, names) for v in values]))
    if adj.value is not None:
        rhs.append(Math(value_tex(adj.value, names)))
    if adj.shape:
        rhs.append(shape_math(adj.shape, names))
    note = "Some of its uses are in the steps this document leaves out (see the notes)." \
        if elided else _note(d, adj, edges, names)
    return Row(Math(symbol_tex(adj.name, names, adjoint=True)), rhs, note)


def _note(d, adj, edges, names):
    if adj.name == d.output:
        out, seed = symbol_tex(d.output, names), symbol_tex(d.output, names, True)
        if adj.shape:
            return f"Seed: the upstream gradient ${seed}$ is given."
        return r"Seed: $%s = \partial %s / \partial %s = 1$." % (seed, out, out)
    if len(edges) > 1:
        times = "twice" if len(edges) == 2 else f"{len(edges)} times"
        return f"${symbol_tex(adj.name, names)}$ is used {times}: one contribution per use."
    if not edges and d.edges:
        return "No path to the output: the adjoint is zero."
    return ""


def backward_blocks(d, names):
    """The backward pass: one Equations block, a Row per adjoint."""
    if not d.adjoints:
        return []
    return [Equations([adjoint_row(d, a, names) for a in d.adjoints])]
