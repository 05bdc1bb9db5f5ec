"""The document model between the passes and the emitters.

A Derivation is first turned into a flat list of blocks (``reports.parts`` builds them,
``reports.passes`` tidies them); each emitter (``latex_out``, ``markdown_out``,
``html_out``) then only lays the blocks out in its format. Mathematics is already LaTeX
here (all three formats show LaTeX math); prose is plain text that may hold ``$...$``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Math:
    """Printed mathematics, with what the passes need to lay it out.

    ``pieces`` are where it may be broken (summands with their signs, or factors) and
    ``glue`` starts a continued line (``\\cdot`` for a product). ``lines`` is filled by
    the line-breaking pass (one piece group per line). ``rel`` is the relation written
    before it in a chain (empty when ``tex`` begins with its own, like ``\\approx``).
    An ``optional`` form (an adjoint written out in the inputs) is dropped when it is too
    wide to read.
    """

    tex: str
    pieces: list = field(default_factory=list)
    glue: str = ""
    lines: list = field(default_factory=list)
    rel: str = "="
    optional: bool = False

    def __post_init__(self):
        if not self.lines:
            self.lines = [self.tex]


@dataclass
class Heading:
    """A heading; ``level`` 1 is the document title, 2 a part, 3 a sub-part."""

    text: str
    level: int = 2


@dataclass
class Prose:
    """A paragraph of plain text (``$...$`` inside it is inline math)."""

    text: str


@dataclass
class Items:
    """A bulleted list of prose items."""

    items: list


@dataclass
class Table:
    """Rows of cells, each a :class:`Math` or a prose ``str``.

    ``only`` restricts the table to some formats (None: all). Column widths are the
    emitter's business (LaTeX sizes its ``p{}`` columns from the content).
    """

    header: list
    rows: list
    only: frozenset | None = None


@dataclass
class Row:
    """``lhs = rhs[0] = rhs[1] = ...`` with a remark in words."""

    lhs: Math
    rhs: list
    note: str = ""
    oneline: bool = False  # set by passes.join_short: the whole chain fits on one line


@dataclass
class Equations:
    """Aligned chains of equalities, one :class:`Row` per chain."""

    rows: list


@dataclass
class GraphNode:
    name: str
    tex: str


@dataclass
class GraphEdge:
    src: str
    dst: str
    label: str | None = None  # LaTeX of the local partial, None when it does not fit


@dataclass
class Graph:
    """The computational graph in topological layers (only LaTeX draws it)."""

    layers: list  # list of lists of GraphNode, inputs first
    edges: list  # GraphEdge, in the order of the Derivation


@dataclass
class Document:
    """A title and the blocks under it, in reading order."""

    title: str
    blocks: list = field(default_factory=list)


_INLINE_MATH = re.compile(r"(\$[^$]+\$)")


def segments(text):
    """Prose split into ``(is_math, piece)`` pairs; math pieces keep their ``$``."""
    return [(bool(_INLINE_MATH.fullmatch(p)), p) for p in _INLINE_MATH.split(text) if p]


def lay_out(doc, rules, fmt):
    """Each block of ``doc`` through its rule (``rules[type(block)]``), empty ones dropped.

    A table meant for other formats (``Table.only``) is skipped here, in one place.
    """
    out = []
    for block in doc.blocks:
        if isinstance(block, Table) and block.only is not None and fmt not in block.only:
            continue
        rule = rules.get(type(block))
        if rule is None:
            raise TypeError(f"no {fmt} rule for {type(block).__name__}")
        text = rule(block)
        if text:
            out.append(text)
    return out


def rows_of(doc):
    """Every Row of every Equations block of ``doc``, in order."""
    for block in doc.blocks:
        if isinstance(block, Equations):
            yield from block.rows
