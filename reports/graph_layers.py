"""The computational graph for people: topological layers and a list of edges.

A computed node sits one layer right of its deepest input and a leaf just left of its
first use, so every edge points rightwards. Within a layer nodes are ordered by the mean
height of their neighbours (barycentre sweeps), which keeps an unrolled RNN straight and
puts each weight beside the unit it feeds. LaTeX draws the layers with TikZ; Markdown
and HTML show the edge table instead.
"""
from __future__ import annotations

from reports.backward_chains import contribution_tex, is_tensor
from reports.document_model import Graph, GraphEdge, GraphNode, Math, Table
from reports.latex_printer import latex, symbol_tex, visible_len
from reports.values import value_tex

# Beyond these a drawing is unreadable on a page: the edge table stands alone.
MAX_LAYERS, MAX_PER_LAYER = 9, 12
# Edge labels (local partials) are drawn only when every one is this short.
MAX_LABEL = 8


def layers(nodes, edges):
    """Node names grouped into topological layers, inputs first (list of lists).

    A computed node sits one layer right of its deepest input; a leaf sits just left of
    its first consumer (so a target ``y`` or a weight used late appears where it is used).
    """
    inputs = {n.name: list(n.inputs) for n in nodes}
    for e in edges:  # (an edge into a step a long sequence's record leaves out is not drawn)
        if e.dst in inputs and e.src not in inputs[e.dst]:
            inputs[e.dst].append(e.src)
    depth = {}
    for n in nodes:  # Derivation nodes are in topological order
        depth[n.name] = 1 + max((depth[i] for i in inputs[n.name] if i in depth), default=-1)
    for n in nodes:
        if not inputs[n.name]:
            used = [depth[c] for c, ins in inputs.items() if n.name in ins]
            depth[n.name] = max(min(used, default=1) - 1, 0)
    grouped = [[] for _ in range(1 + max(depth.values(), default=-1))]
    for n in nodes:
        grouped[depth[n.name]].append(n.name)
    return _barycentre(grouped, inputs)


def _barycentre(grouped, inputs):
    """Order each layer by the mean height of the nodes it connects to.

    A first sweep places computed nodes by their inputs (leaves last); a second places
    each leaf by its consumers, so a weight sits next to the unit it feeds.
    """
    consumers = {}
    for name, ins in inputs.items():
        for i in ins:
            consumers.setdefault(i, []).append(name)
    height = {}
    for _ in range(2):
        placed = dict(height)
        for k, layer in enumerate(grouped):
            def key(name):
                near = inputs[name] or consumers.get(name, [])
                seen = [placed[i] for i in near if i in placed]
                return -sum(seen) / len(seen) if seen else float("inf")
            grouped[k] = layer = sorted(layer, key=key)  # stable: ties keep the order
            placed.update({name: (len(layer) - 1) / 2 - j for j, name in enumerate(layer)})
        height = placed
    return grouped


def graph_blocks(d, names):
    """The Graph drawing (if it fits a page) and the edge table, as document blocks."""
    if not d.edges:
        return []
    grouped = layers(d.nodes, d.edges)
    drawable = len(grouped) <= MAX_LAYERS and max(map(len, grouped)) <= MAX_PER_LAYER
    partials = [latex(e.partial, names) for e in d.edges]
    labelled = drawable and all(visible_len(p) <= MAX_LABEL for p in partials)
    blocks = []
    if drawable:
        tex = {n.name: symbol_tex(n.name, names) for n in d.nodes}
        blocks.append(Graph([[GraphNode(n, tex[n]) for n in layer] for layer in grouped],
                            [GraphEdge(e.src, e.dst, p if labelled else None)
                             for e, p in zip(d.edges, partials)]))
    table = edge_table(d, names, partials)
    if labelled:
        table.only = frozenset({"md", "html"})
    return blocks + [table]


def edge_table(d, names, partials):
    """One row per edge: the edge, its local partial, its contribution and value."""
    with_values = any(e.value is not None for e in d.edges)
    header = ["Edge", "Local partial", "Contribution"] + (["Value"] if with_values else [])
    rows = []
    for e, p in zip(d.edges, partials):
        src, dst = (symbol_tex(n, names) for n in (e.src, e.dst))
        row = [Math(r"%s \to %s" % (src, dst)),
               Math(r"\frac{\partial %s}{\partial %s} = %s" % (dst, src, p)),
               Math(contribution_tex(e, names, is_tensor(d, e)))]
        if with_values:
            row.append(Math(value_tex(e.value, names)))
        rows.append(row)
    return Table(header, rows)
