"""Derivation -> Document: one builder per part of a worked solution.

The parts, in reading order, each skipped when the Derivation has nothing for it: the
forward table, the graph, the backward pass, the final gradients, the notes
(conventions), the worked sections, and the result. No heading stands without content:
a part (or worked section) with nothing to show has no heading, and the graph part is
headed "Computational graph" only when it draws the graph ("Edges of the computational
graph" when the graph is too large to draw and its edge table stands alone).
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.latexsubset import check_display_names

from reports.backward_chains import backward_blocks, expr_math, shape_math
from reports.document_model import (Document, Equations, Graph, Heading, Items, Math, Prose, Row,
                                    Table)
from reports.graph_layers import graph_blocks
from reports.latex_printer import latex, shape_tex, symbol_tex, visible_len
from reports.values import array_tex, classify, text_math, value_tex

ROLE_WORDS = {"input": "input", "param": "parameter"}
#: A result's text longer than this many characters is a sentence, shown as prose
LONG_TEXT = 60


@dataclass
class Plot:
    """A figure of a worked section (derive.derivation.Figure) as a block.

    ``file`` is the name the image has beside a written document (``figure-1.png``,
    numbered in reading order by :func:`build`; ``write`` puts the document's name in
    front); LaTeX and a written Markdown file link it, HTML embeds ``png`` itself.
    """

    title: str
    caption: str
    png: bytes
    width: float
    size: tuple
    file: str = ""


def plots(doc):
    """Every Plot of a Document, in reading order."""
    return [b for b in doc.blocks if isinstance(b, Plot)]


def build(derivations):
    """The Document of one Derivation, or of a list of them (one part per problem)."""
    if not isinstance(derivations, (list, tuple)):
        return _numbered(Document(derivations.title, problem_blocks(derivations, level=2)))
    if len(derivations) == 1:
        return build(derivations[0])
    doc = Document(_collection_title(derivations))
    for d in derivations:
        doc.blocks += [Heading(d.title, 2)] + problem_blocks(d, level=3)
    return _numbered(doc)


def _numbered(doc):
    for n, plot in enumerate(plots(doc), 1):
        plot.file = f"figure-{n}.png"
    return doc


def _collection_title(derivations):
    # a collection may name itself (an exam's paper or key: meta["document_title"])
    named = {d.meta.get("document_title") for d in derivations}
    if len(named) == 1 and None not in named:
        return named.pop()
    sources = {d.meta.get("source") for d in derivations}
    if len(sources) == 1 and None not in sources:
        return f"Worked solutions: {sources.pop()}"
    return "Worked solutions"


def problem_blocks(d, level):
    """Every part of one Derivation, headings at ``level``.

    Display names are checked again here (InputError outside the subset), since a
    Derivation may come from Python rather than from a checked problem file.
    """
    names = check_display_names(d.meta.get("latex_names") or {}, "latex_names")
    graph = graph_blocks(d, names)
    drawn = any(isinstance(b, Graph) for b in graph)
    parts = [
        ("Forward pass", forward_blocks(d, names)),
        ("Computational graph" if drawn else "Edges of the computational graph", graph),
        ("Backward pass", backward_blocks(d, names)),
        ("Gradients", gradient_blocks(d, names)),
        ("Notes", [Items(list(d.notes))] if d.notes else []),
    ]
    blocks = [Prose(_summary(d, names))] if d.output else []
    for title, part in parts:
        blocks += headed(title, level, part)
    for section in d.sections:
        blocks += section_blocks(section, names, level)
    if d.result is not None:
        blocks += headed("Result", level, result_blocks(d.result, names))
    return blocks


def _has_content(block):
    """Whether a block shows anything (an empty prose, list, table or chain does not)."""
    if isinstance(block, Prose):
        return bool(block.text.strip())
    if isinstance(block, Items):
        return any(str(i).strip() for i in block.items)
    if isinstance(block, (Table, Equations)):
        return bool(block.rows)
    return True


def headed(title, level, blocks):
    """``blocks`` under a heading ``title``, or nothing when none of them shows anything."""
    blocks = [b for b in blocks if _has_content(b)]
    return [Heading(title, level)] + blocks if blocks else []


def _summary(d, names):
    out = symbol_tex(d.output, names)
    wrt = ", ".join(f"${symbol_tex(w, names)}$" for w in d.wrt)
    return f"Output ${out}$" + (f"; gradients with respect to {wrt}." if wrt else ".")


def forward_blocks(d, names):
    """The forward table: node, (shape,) definition, inputs, value."""
    if not d.nodes:
        return []
    shapes = any(n.shape for n in d.nodes)
    values = any(n.value is not None for n in d.nodes)
    header = ["Node"] + ["Shape"] * shapes + ["Definition", "Inputs"] + ["Value"] * values
    rows = []
    for n in d.nodes:
        row = [Math(symbol_tex(n.name, names))]
        if shapes:
            row.append(Math(shape_tex(n.shape, names)) if n.shape else "scalar")
        if n.definition is None:
            row += [ROLE_WORDS.get(n.role, n.role), ""]
        else:
            # one $..$ per input: TeX may break a table cell between them, not inside
            row += [Math(latex(n.definition, names)),
                    ", ".join(f"${symbol_tex(i, names)}$" for i in n.inputs)]
        if values:
            row.append(Math(value_tex(n.value, names)) if n.value is not None else "")
        rows.append(row)
    return [Table(header, rows)]


def gradient_blocks(d, names):
    r"""``\partial y / \partial w = \bar w = expression = value`` per gradient."""
    if not d.gradients:
        return []
    out = symbol_tex(d.output, names) if d.output else "f"
    rows = []
    for name, g in d.gradients.items():
        lhs = Math(r"\frac{\partial %s}{\partial %s}" % (out, symbol_tex(name, names)))
        rhs = [Math(symbol_tex(name, names, adjoint=True))]
        if g.expression is not None:
            rhs.append(expr_math(g.expression, names, optional=True))
        if g.value is not None:
            rhs.append(Math(value_tex(g.value, names)))
        if g.shape:
            rhs.append(shape_math(g.shape, names))
        rows.append(Row(lhs, rhs))
    return [Equations(rows)]


def section_blocks(section, names, level):
    """A worked Section: heading, prose, then its steps as chains of equalities."""
    blocks = [Prose(section.text)] if section.text else []
    rows = [Row(expr_math(s.lhs, names), [_rhs(r, names) for r in s.rhs], s.note)
            for s in section.steps]
    if rows:
        blocks.append(Equations(rows))
    blocks += [Plot(f.title, f.caption, f.png, f.width, f.size)
               for f in getattr(section, "figures", ())]
    return headed(section.title, level, blocks)


def _rhs(item, names):
    """A step's right-hand side, printed as given (a step states its own decimals)."""
    if classify(item) == "array":
        return Math(array_tex(item, names, approx=False))
    return expr_math(item, names)


def result_blocks(result, names):
    """The final answer: a table of short values, else one displayed equation per entry."""
    tables = []
    if isinstance(result, dict):
        # records (a detection's cells): a table each, with a column per field
        for key, v in result.items():
            if isinstance(v, (list, tuple)) and v and all(isinstance(x, dict) for x in v):
                fields = list(dict.fromkeys(k for x in v for k in x))
                tables += [Prose(f"{key}:"), Table(fields, [[_cell(x.get(k), names)
                                                             for k in fields] for x in v])]
        if tables:
            rest = {k: v for k, v in result.items() if not (
                isinstance(v, (list, tuple)) and v and all(isinstance(x, dict) for x in v))}
            return (result_blocks(rest, names) if rest else []) + tables
        result = [result]
    if isinstance(result, str):
        return [Prose(result)]
    if not (isinstance(result, (list, tuple)) and result
            and all(isinstance(r, dict) for r in result)):
        return [Equations([Row(Math(value_tex(result, names)), [])])]
    keys = list(dict.fromkeys(k for r in result for k in r))
    cells = [[_cell(r.get(k), names) for k in keys] for r in result]
    if all(isinstance(c, str) or visible_len(c.tex) <= 24 for row in cells for c in row):
        return [Table([str(k) for k in keys], cells)]
    # a sentence (a claim, its evidence) is prose: TeX cannot break a line inside \text{}
    words = [f"{k}: {r[k]}" for r in result for k in keys
             if isinstance(r.get(k), str) and len(r[k]) > LONG_TEXT]
    rows = [Row(Math(_key_tex(k, names)), [c if isinstance(c, Math) else Math(text_math(c))])
            for r in result for k, c in zip(keys, (_cell(r.get(k), names) for k in keys))
            if k in r and not (isinstance(r[k], str) and len(r[k]) > LONG_TEXT)]
    return ([Items(words)] if words else []) + ([Equations(rows)] if rows else [])


def _key_tex(key, names):
    key = str(key)
    if key.isidentifier() and (len(key) == 1 or key in names or key[1:].isdigit()):
        return latex(sp.Symbol(key), names)
    return text_math(key)


def _cell(v, names):
    if v is None or isinstance(v, str):
        return "" if v is None else v
    return Math(_nested_tex(v, names))


def _nested_tex(v, names):
    """A value of a result, mappings and lists of words included (``score: -1.20397``)."""
    if isinstance(v, dict):
        return r",\ ".join("%s: %s" % (text_math(k), _nested_tex(x, names)) for k, x in v.items())
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, str) for x in v):
        return text_math(" ".join(v))  # a sequence of words (tokens)
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, dict) for x in v):
        # records inside a record: one per line, not a matrix of their reprs
        return r"\begin{array}{l} %s \end{array}" % r" \\ ".join(
            _nested_tex(x, names) for x in v)
    return text_math(v) if isinstance(v, str) else value_tex(v, names)
