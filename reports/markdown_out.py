r"""Emit a Document as Markdown with ``$...$`` / ``$$...$$`` math (GitHub, Jupyter).

Display math is one ``$$`` block per chain, ``\begin{aligned}`` inside it (GitHub and
Jupyter render ``aligned``, not a bare ``align``). The graph is shown as its edge table.
"""
from __future__ import annotations

import base64
import re

from reports.document_model import Equations, Graph, Heading, Items, Prose, Table, lay_out, segments
from reports.latex_out import chain
from reports.parts import Plot

# Not [ and ]: "\[" would open display math in Jupyter (math is found before Markdown).
_MD_SPECIALS = re.compile(r"([\\`*_<>|])")


def escape(text):
    """Plain text made literal in Markdown."""
    return _MD_SPECIALS.sub(r"\\\1", text)


def prose(text):
    return "".join(p if is_math else escape(p) for is_math, p in segments(text))


def cell(c):
    if isinstance(c, str):
        return prose(c) if c else " "
    # a bare | would end the table cell, even inside math
    return "$%s$" % c.tex.strip().replace("|", r"\vert ")


def table(block):
    lines = ["| " + " | ".join(escape(h) for h in block.header) + " |",
             "|" + "---|" * len(block.header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in block.rows]
    return "\n".join(lines)


def display(row):
    return "$$\n\\begin{aligned}\n%s\n\\end{aligned}\n$$" % chain(row)


def equations(block):
    out = []
    for row in block.rows:
        if row.note:
            out.append(prose(row.note))
        out.append(display(row))
    return "\n\n".join(out)


def plot(block, embed):
    """A figure: its image (the file beside the page, or the PNG itself as a data URI when
    the page stands alone) and its caption in italics."""
    src = ("data:image/png;base64," + base64.b64encode(block.png).decode("ascii")
           if embed else block.file)
    alt = re.sub(r"[\[\]\\]", "", block.title)
    caption = "*%s.*" % prose(block.title.rstrip("."))
    if block.caption:
        caption += " " + prose(block.caption)
    return f"![{alt}]({src})\n\n{caption}"


RULES = {
    Heading: lambda b: "#" * min(b.level, 6) + " " + prose(b.text),
    Prose: lambda b: prose(b.text),
    Items: lambda b: "\n".join("- " + prose(i) for i in b.items),
    Table: table,
    Equations: equations,
    Graph: lambda b: "",  # the edge table stands for it
}


def emit(doc, embed=True):
    """The Markdown text of a Document.

    Figures are data URIs when ``embed`` (a page shown on its own, as in Jupyter), else
    links to their files (``Plot.file``), which ``reports.write`` puts beside the page.
    """
    rules = {**RULES, Plot: lambda b: plot(b, embed)}
    return "\n\n".join(["# " + prose(doc.title)] + lay_out(doc, rules, "md")) + "\n"
