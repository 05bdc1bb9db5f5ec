r"""Emit a Document as a standalone HTML page; MathJax 3 (from a CDN) typesets the math.

Everything is HTML-escaped, mathematics included: MathJax reads the decoded text, so
``a < b`` arrives intact. The graph is shown as its edge table.
"""
from __future__ import annotations

import html

from reports.document_model import Equations, Graph, Heading, Items, Prose, Table, lay_out
from reports.latex_out import chain

MATHJAX = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"

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
.chain { overflow-x: auto; overflow-y: hidden; margin: .4rem 0 1rem; }
p.note { color: #57606a; font-style: italic; margin-bottom: 0; }
"""

HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<script>
window.MathJax = {{tex: {{inlineMath: [['$', '$'], ['\\\\(', '\\\\)']]}},
                  chtml: {{displayAlign: 'left', displayIndent: '1em'}}}};
</script>
<script id="MathJax-script" async src="{mathjax}"></script>
<style>{style}</style>
</head>
<body>
"""


def cell(c):
    if isinstance(c, str):
        return html.escape(c)
    return r"\(%s\)" % html.escape(c.tex)


def table(block):
    head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
    rows = "\n".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>"
                     for row in block.rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"


def equations(block):
    out = []
    for row in block.rows:
        if row.note:
            out.append(f'<p class="note">{html.escape(row.note)}</p>')
        body = html.escape("\\[\\begin{aligned}\n%s\n\\end{aligned}\\]" % chain(row))
        out.append(f'<div class="chain">{body}</div>')
    return "\n".join(out)


def items(block):
    return "<ul>\n" + "\n".join(f"<li>{html.escape(i)}</li>" for i in block.items) + "\n</ul>"


RULES = {
    Heading: lambda b: f"<h{min(b.level, 6)}>{html.escape(b.text)}</h{min(b.level, 6)}>",
    Prose: lambda b: f"<p>{html.escape(b.text)}</p>",
    Items: items,
    Table: table,
    Equations: equations,
    Graph: lambda b: "",  # the edge table stands for it
}


def emit(doc):
    """The standalone HTML page of a Document."""
    title = html.escape(doc.title)
    body = "\n".join(lay_out(doc, RULES, "html"))
    return (HEAD.format(title=title, mathjax=MATHJAX, style=STYLE) + f"<h1>{title}</h1>\n"
            + body + "\n</body>\n</html>\n")
