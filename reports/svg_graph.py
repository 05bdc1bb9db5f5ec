r"""The computational graph as inline SVG for the HTML page: the TikZ picture, redrawn.

The layout is the PDF's: the layers and their order come from ``reports.graph_layers``
(the :class:`~reports.document_model.Graph` block) and the node positions and edge bends
from ``reports.tikz`` (its ``_positions`` in centimetres, its ``_bends`` decisions), so
both pictures have one layout. TikZ's ``bend left=a`` is drawn as TikZ draws it: a cubic
curve leaving ``a`` degrees left of the straight line, its control points 0.3915 of the
way along (``looseness=1``). Nodes are rounded boxes (a circle for a short name), edges
end in arrows, and node names and edge labels (the local partials) are MathML in
``foreignObject``, converted like the rest of the page (``reports.mathml``).
"""
from __future__ import annotations

import math
import re

from reports.latex_printer import visible_len
from reports.mathml import mathml
from reports.tikz import _bends, _positions

PX_PER_CM = 48
NODE_H, UNIT_PX, PAD_PX = 38, 9.5, 8  # node height, width of a visible_len unit, padding
LABEL_H, LABEL_UNIT_PX = 22, 8
ARROW_LEN, ARROW_HALF = 9, 3.5
MARGIN = 14
LOOSENESS = 0.3915  # TikZ's control-point distance for bends (looseness=1)
_BEND = re.compile(r"^, bend (left|right)=(-?\d+(?:\.\d+)?)$")


def _bend_degrees(option):
    """TikZ's bend option as degrees to the left (0 for a straight edge)."""
    if not option:
        return 0.0
    match = _BEND.match(option)
    if match is None:
        raise ValueError(f"reports.tikz wrote a bend the SVG cannot draw: {option!r}")
    return float(match.group(2)) * (1 if match.group(1) == "left" else -1)


class _Box:
    """A node: centre (SVG pixels, y down) and half sizes of its rounded box."""

    def __init__(self, node, centre):
        self.node, (self.x, self.y) = node, centre
        self.hw = max(NODE_H, visible_len(node.tex) * UNIT_PX + 2 * PAD_PX) / 2
        self.hh = NODE_H / 2

    def border(self, angle):
        """Where a ray from the centre at ``angle`` (radians, SVG axes) leaves the box:
        a stadium, straight sides and round ends of radius hh."""
        dx, dy = math.cos(angle), math.sin(angle)
        straight = self.hw - self.hh
        t = self.hh / abs(dy) if dy else math.inf
        if abs(t * dx) <= straight:
            return self.x + t * dx, self.y + t * dy
        cx = math.copysign(straight, dx)  # the end circle's centre, relative to ours
        b = cx * dx  # solve |t d - (cx, 0)| = hh for the outer t
        t = b + math.sqrt(max(b * b - cx * cx + self.hh ** 2, 0.0))
        return self.x + t * dx, self.y + t * dy


def _curve(src, dst, bend):
    """Start, two controls and end of the edge src -> dst, bent ``bend`` degrees left."""
    # left in TikZ (y up) is a negative turn on screen (y down)
    along = math.atan2(dst.y - src.y, dst.x - src.x)
    turn = math.radians(-bend)
    out, back = along + turn, along + math.pi - turn
    start, end = src.border(out), dst.border(back)
    reach = LOOSENESS * math.dist(start, end)
    c1 = (start[0] + reach * math.cos(out), start[1] + reach * math.sin(out))
    c2 = (end[0] + reach * math.cos(back), end[1] + reach * math.sin(back))
    return start, c1, c2, end


def _point(p, t):
    """The point at ``t`` of a cubic curve ``p``."""
    s = 1 - t
    return tuple(s ** 3 * a + 3 * s * s * t * b + 3 * s * t * t * c + t ** 3 * d
                 for a, b, c, d in zip(*p))


def _arrow(curve):
    """The curve shortened by the arrowhead, and the head's triangle."""
    start, c1, c2, end = curve
    tx, ty = end[0] - c2[0], end[1] - c2[1]
    norm = math.hypot(tx, ty) or 1.0
    tx, ty = tx / norm, ty / norm
    base = (end[0] - ARROW_LEN * tx, end[1] - ARROW_LEN * ty)
    head = [end, (base[0] - ARROW_HALF * ty, base[1] + ARROW_HALF * tx),
            (base[0] + ARROW_HALF * ty, base[1] - ARROW_HALF * tx)]
    return (start, c1, c2, base), head


def _f(v):
    return f"{v:.1f}"


def _label(x, y, w, h, tex, cls):
    return (f'<foreignObject x="{_f(x - w / 2)}" y="{_f(y - h / 2)}" width="{_f(w)}" '
            f'height="{_f(h)}"><div class="{cls}">{mathml(tex)}</div></foreignObject>')


def svg(graph):
    """Inline ``<svg>`` of a :class:`~reports.document_model.Graph`."""
    nodes = {n.name: n for layer in graph.layers for n in layer}
    pos = _positions(graph.layers)
    boxes = {name: _Box(nodes[name], (x * PX_PER_CM, -y * PX_PER_CM))
             for name, (x, y) in pos.items()}
    edges, labels, xs, ys = [], [], [], []
    for edge, option in zip(graph.edges, _bends(graph, pos)):
        curve = _curve(boxes[edge.src], boxes[edge.dst], _bend_degrees(option))
        line, head = _arrow(curve)
        xs += [p[0] for p in curve]
        ys += [p[1] for p in curve]
        s, c1, c2, e = (" ".join(map(_f, p)) for p in line)
        edges.append(f'<path d="M {s} C {c1}, {c2}, {e}"/>'
                     f'<polygon points="{" ".join(",".join(map(_f, p)) for p in head)}"/>')
        if edge.label is not None:
            x, y = _point(curve, 0.5)
            w = visible_len(edge.label) * LABEL_UNIT_PX + 8
            xs += [x - w / 2, x + w / 2]
            ys += [y - LABEL_H / 2, y + LABEL_H / 2]
            labels.append(f'<rect class="glabel-bg" x="{_f(x - w / 2)}" y="{_f(y - LABEL_H / 2)}" '
                          f'width="{_f(w)}" height="{LABEL_H}" rx="3"/>'
                          + _label(x, y, w, LABEL_H, edge.label, "glabel"))
    drawn = []
    for box in boxes.values():
        xs += [box.x - box.hw, box.x + box.hw]
        ys += [box.y - box.hh, box.y + box.hh]
        drawn.append(f'<rect class="gnode-box" x="{_f(box.x - box.hw)}" y="{_f(box.y - box.hh)}" '
                     f'width="{_f(2 * box.hw)}" height="{NODE_H}" rx="{NODE_H / 2}"/>'
                     + _label(box.x, box.y, 2 * box.hw, NODE_H, box.node.tex, "gnode"))
    left, top = min(xs) - MARGIN, min(ys) - MARGIN
    width, height = max(xs) + MARGIN - left, max(ys) + MARGIN - top
    return (f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" role="group" '
            f'aria-label="Computational graph" width="{_f(width)}" height="{_f(height)}" '
            f'viewBox="{_f(left)} {_f(top)} {_f(width)} {_f(height)}">\n'
            f'<g class="gedges">{"".join(edges)}</g>\n'
            f'<g class="glabels">{"".join(labels)}</g>\n'
            f'<g class="gnodes">{"".join(drawn)}</g>\n</svg>')
