r"""Emit a Document as a standalone HTML page that works offline: no script, no network.

Mathematics is MathML, converted from the one printer's LaTeX when the page is written
(``reports.mathml``), so a current browser draws it natively. Each chain of equalities
is one aligned table (``\begin{aligned}``, as in Markdown). ``$...$`` in prose is math
only when it stays within :data:`derive.latexsubset.MATH_COMMANDS`, as in LaTeX; every
text is HTML-escaped, and the MathML is written with its text escaped too. The graph is
inline SVG (``reports.svg_graph``) when the PDF draws it; its edge table follows.
"""
from __future__ import annotations

import base64
import html

from derive.latexsubset import MATH_COMMANDS, refusal

from reports.document_model import (Equations, Graph, Heading, Items, Prose, Table, lay_out,
                                    segments)
from reports.latex_out import chain
from reports.mathml import mathml
from reports.parts import Plot
from reports.svg_graph import svg

STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       max-width: 52rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.55;
       color: #1f2328; background: #fff; }
h1 { font-size: 1.8rem; border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
h2 { font-size: 1.35rem; margin-top: 2rem; border-bottom: 1px solid #eaeef2; }
h3 { font-size: 1.1rem; margin-top: 1.5rem; }
table { border-collapse: collapse; margin: .8rem 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .35rem .7rem; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfcfd; }
math { font-family: "Latin Modern Math", "STIX Two Math", "Cambria Math",
       "TeX Gyre Pagella Math", "DejaVu Math TeX Gyre", math; font-size: 1.1em; }
math [mathvariant="bold"] { font-weight: bold; }
mtd[columnalign="left"] { text-align: left; }
mtd[columnalign="right"] { text-align: right; }
mtable[columnspacing="0em"] > mtr > mtd { padding-left: 0; padding-right: 0; }
.chain { overflow-x: auto; overflow-y: hidden; margin: .4rem 0 1rem; padding: .2rem 0; }
.chain > math { display: inline math; margin-left: 1em; }  /* block math is centred */
p.note { color: #57606a; font-style: italic; margin-bottom: 0; }
.tex-fallback code { background: #fff8c5; padding: 0 .2em; }
.tex-fallback small { color: #9a6700; }
.figure { overflow-x: auto; margin: .8rem 0; }
figure.plot { margin: 1rem 0; text-align: center; }
figure.plot img { max-width: 100%; height: auto; }
figure.plot figcaption { color: #57606a; font-size: .95em; }
svg.graph { max-width: 100%; height: auto; display: block; margin: 0 auto; }
svg.graph .gedges { fill: #1f2328; stroke: #1f2328; stroke-width: 1.2; }
svg.graph .gedges path { fill: none; }
svg.graph .gnode-box { fill: #fff; stroke: #1f2328; stroke-width: 1.6; }
svg.graph .glabel-bg { fill: #fff; }
svg.graph foreignObject div { display: flex; align-items: center; justify-content: center;
                              width: 100%; height: 100%; line-height: 1; }
svg.graph .gnode { font-size: 15px; }
svg.graph .glabel { font-size: 12px; }
"""

HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
"""


def prose(text):
    """Plain text escaped; its ``$...$`` as MathML when within the allowed commands."""
    out = []
    for is_math, piece in segments(text):
        if is_math and refusal(piece[1:-1], MATH_COMMANDS, braces=True) is None:
            out.append(mathml(piece[1:-1]))
        else:
            out.append(html.escape(piece))
    return "".join(out)


def cell(c):
    if isinstance(c, str):
        return prose(c)
    return mathml(c.tex)


def table(block):
    head = "".join(f"<th>{prose(h)}</th>" for h in block.header)
    rows = "\n".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>"
                     for row in block.rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"


def equations(block):
    out = []
    for row in block.rows:
        if row.note:
            out.append(f'<p class="note">{prose(row.note)}</p>')
        body = mathml("\\begin{aligned}\n%s\n\\end{aligned}" % chain(row), display=True)
        out.append(f'<div class="chain">{body}</div>')
    return "\n".join(out)


def items(block):
    return "<ul>\n" + "\n".join(f"<li>{prose(i)}</li>" for i in block.items) + "\n</ul>"


def heading(block):
    level = min(block.level, 6)
    return f"<h{level}>{prose(block.text)}</h{level}>"


def plot(block):
    """A figure: the PNG embedded as a data URI (the page stays one offline file)."""
    data = base64.b64encode(block.png).decode("ascii")
    width, height = block.size
    caption = f"<strong>{prose(block.title.rstrip('.'))}.</strong>"
    if block.caption:
        caption += " " + prose(block.caption)
    # at most 800 px wide on the page (the text column); a dense screen uses every pixel
    shown = round(width * min(1.0, 800 / width))
    return (f'<figure class="plot"><img src="data:image/png;base64,{data}" '
            f'alt="{html.escape(block.title)}" width="{shown}" '
            f'height="{round(height * shown / width)}">\n'
            f"<figcaption>{caption}</figcaption></figure>")


RULES = {
    Plot: plot,
    Heading: heading,
    Prose: lambda b: f"<p>{prose(b.text)}</p>",
    Items: items,
    Table: table,
    Equations: equations,
    Graph: lambda b: f'<div class="figure">{svg(b)}</div>',
}


def emit(doc):
    """The standalone HTML page of a Document."""
    body = "\n".join(lay_out(doc, RULES, "html"))
    return (HEAD.format(title=html.escape(doc.title), style=STYLE)
            + f"<h1>{prose(doc.title)}</h1>\n" + body + "\n</body>\n</html>\n")
