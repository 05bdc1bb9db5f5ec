"""The computational graph as a TikZ picture: layers left to right, partials on edges.

The picture is sized to the text block (about 16 x 20 cm): layers are spread over the
width, the widest layer over at most the height. An edge that skips layers is bent so
that it does not run through the nodes between its ends; parallel edges (a node used
twice by the same node, as in ``x*x``) are bent apart.
"""
from __future__ import annotations

from collections import Counter

WIDTH_CM, HEIGHT_CM = 15.0, 12.0
MAX_DX_CM, MAX_DY_CM = 3.2, 1.6

STYLE = (r"every node/.style={font=\small}, "
         r"var/.style={draw, thick, rounded corners=4mm, minimum size=8mm, inner sep=2pt}, "
         r"partial/.style={fill=white, inner sep=1pt, font=\scriptsize}")


def _positions(layers):
    dx = min(MAX_DX_CM, WIDTH_CM / max(len(layers) - 1, 1))
    tallest = max(len(layer) for layer in layers)
    dy = min(MAX_DY_CM, HEIGHT_CM / max(tallest - 1, 1))
    pos = {}
    for i, layer in enumerate(layers):
        for k, node in enumerate(layer):
            pos[node.name] = (i * dx, ((len(layer) - 1) / 2 - k) * dy)
    return pos


def _bends(graph, pos):
    """``bend ..`` options per edge, '' for a straight edge.

    An edge that skips layers bends away from the middle of the picture (up when it
    runs above the centre line, down below it), more the more layers it skips.
    """
    depth = {n.name: i for i, layer in enumerate(graph.layers) for n in layer}
    seen, total = Counter(), Counter((e.src, e.dst) for e in graph.edges)
    bends = []
    for e in graph.edges:
        pair, span = (e.src, e.dst), depth[e.dst] - depth[e.src]
        k = seen[pair]
        seen[pair] += 1
        if total[pair] > 1:
            bends.append(f", bend left={(-1) ** k * 18 * (k // 2 + 1)}")
        elif span > 1:
            side = "left" if pos[e.src][1] + pos[e.dst][1] >= 0 else "right"
            bends.append(f", bend {side}={min(12 + 6 * span, 40)}")
        else:
            bends.append("")
    return bends


def tikz(graph):
    """TikZ source of a :class:`~reports.document_model.Graph`."""
    pos = _positions(graph.layers)
    ids = {name: f"n{i}" for i, name in enumerate(pos)}
    lines = [r"\begin{center}", r"\begin{tikzpicture}[%s]" % STYLE]
    for layer in graph.layers:
        for node in layer:
            x, y = pos[node.name]
            lines.append(r"\node[var] (%s) at (%.2f, %.2f) {$%s$};" % (ids[node.name], x, y,
                                                                       node.tex))
    for edge, bend in zip(graph.edges, _bends(graph, pos)):
        label = r" node[partial] {$%s$}" % edge.label if edge.label is not None else ""
        lines.append(r"\draw[-{Stealth[length=2mm]}%s] (%s) to%s (%s);"
                     % (bend, ids[edge.src], label, ids[edge.dst]))
    lines += [r"\end{tikzpicture}", r"\end{center}"]
    return "\n".join(lines)
