r"""Emit a Document as a standalone LaTeX file (pdflatex, base/recommended/extra + TikZ).

Tables are ``longtable`` with ``p{}`` columns, so long tables break across pages and long
cells wrap (inline math breaks after ``+`` and ``=``; ``\left( \right)`` would forbid
that, so cells use plain brackets). Each chain of equalities is an ``align*`` with
``\allowdisplaybreaks``, so a long backward pass breaks across pages too.
"""
from __future__ import annotations

import re

from derive.errors import DeriveError
from derive.latexsubset import MATH_COMMANDS, refusal

from reports.document_model import (Equations, Graph, Heading, Items, Math, Prose, Table, lay_out, rows_of,
                       segments)
from reports.latex_printer import visible_len
from reports.tikz import tikz

PREAMBLE = r"""\documentclass[11pt,a4paper,fleqn]{article}
\usepackage[margin=2.2cm]{geometry}
\usepackage{amsmath,amssymb}
\usepackage{array,longtable,booktabs}
\usepackage{tikz}
\usetikzlibrary{arrows.meta}
\allowdisplaybreaks
\setlength{\parindent}{0pt}
\setlength{\parskip}{4pt plus 2pt}
\setlength{\LTpre}{4pt}
\setlength{\LTpost}{4pt}
\renewcommand{\arraystretch}{1.3}
\setlength{\mathindent}{1.5em}
"""

SECTIONS = {2: "section*", 3: "subsection*", 4: "subsubsection*"}

_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
             "_": r"\_\allowbreak{}", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
             "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}"}


# Unicode mathematics that notes are written with; pdflatex's utf8 input knows none of it.
_UNICODE_MATH = dict(zip(
    "⊙ᵀ∂Σσαβγδεηθλμπρτφω∇≈≤≥≠×·−→←⇒∈ℝ√∞∑∏²³₁₂ŷ",
    [r"\odot", r"^{\top}", r"\partial", r"\Sigma", r"\sigma", r"\alpha", r"\beta",
     r"\gamma", r"\delta", r"\varepsilon", r"\eta", r"\theta", r"\lambda", r"\mu",
     r"\pi", r"\rho", r"\tau", r"\varphi", r"\omega", r"\nabla", r"\approx", r"\le",
     r"\ge", r"\ne", r"\times", r"\cdot", "-", r"\to", r"\leftarrow", r"\Rightarrow",
     r"\in", r"\mathbb{R}", r"\surd", r"\infty", r"\sum", r"\prod", "^{2}", "^{3}",
     "_{1}", "_{2}", r"\hat{y}"]))


_UNICODE_TEXT = {"–": "--", "—": "---", "‘": "`", "’": "'", "“": "``", "”": "''",
                 "…": r"\dots{}", "\u00a0": "~"}


def _char(c, math):
    if c in _UNICODE_TEXT and not math:
        return _UNICODE_TEXT[c]
    if c in _UNICODE_MATH:
        return "{%s}" % _UNICODE_MATH[c] if math else "$%s$" % _UNICODE_MATH[c]
    if ord(c) > 0x17F:  # beyond Latin Extended-A pdflatex has no glyph: say so visibly
        return "?"
    return c if math else _SPECIALS.get(c, c)


def escape(text):
    """Plain text made safe for LaTeX (Unicode mathematics becomes LaTeX math)."""
    return "".join(_char(c, False) for c in text)


def prose(text):
    """Prose with ``$...$`` math kept and everything else escaped.

    Prose may carry user text (titles, notes, labels), so its mathematics is kept only
    when it stays within :data:`derive.latexsubset.MATH_COMMANDS`; any other ``$...$``
    is printed as the characters it is.
    """
    return "".join(_math(p) if is_math else escape(p) for is_math, p in segments(text))


def _math(segment):
    tex = "".join(_char(c, True) for c in segment)
    if refusal(tex[1:-1], MATH_COMMANDS, braces=True) is not None:
        return escape(segment)
    return tex


def _flat(tex):
    """Math for a table cell: brackets TeX may break inside."""
    for big, plain in ((r"\left(", "("), (r"\right)", ")"), (r"\left[", "["),
                       (r"\right]", "]")):
        tex = tex.replace(big, plain)
    return tex


def cell(c):
    if isinstance(c, str):
        return prose(c)
    if visible_len(c.tex) <= 12:  # short: keep it on one line (x \to y must not break)
        return r"\mbox{$%s$}" % c.tex
    return "$%s$" % _flat(c.tex)


#: Width of the text block in units of ``visible_len`` (about 5.3 pt each at 11 pt).
LINE_UNITS = 84
HEADER, TEXT = 1.3, 1.1
PAD = 2.5  # 2\tabcolsep, taken off every column
_BREAKS = re.compile(r" [-+=] |, | \\approx | \\cdot ")


def _widths(block):
    """Shares of the line per column: first each column's widest unbreakable piece, then
    what the cells would like beyond that, then any room left in proportion."""
    columns = [[row[j] for row in block.rows] for j in range(len(block.header))]
    # bold header words are about 1.3 units a letter, text 1.1, math as measured
    need = [max([_unbreakable(c) for c in col] + [HEADER * len(h)]) + PAD
            for h, col in zip(block.header, columns)]
    want = [max(min(_natural(c), LINE_UNITS) for c in col) + PAD for col in columns]
    extra = [max(w - n, 0) for w, n in zip(want, need)]
    spare = LINE_UNITS - sum(need)
    if spare > 0 and sum(extra) > 0:
        grant = min(spare / sum(extra), 1)
        need = [n + e * grant for n, e in zip(need, extra)]
    total = sum(need)
    return [n / total for n in need]


def _natural(cell):
    if isinstance(cell, Math):
        return matrix_width(cell.tex) if "bmatrix" in cell.tex else visible_len(cell.tex)
    return TEXT * visible_len(cell)


def _unbreakable(cell):
    """Width of the widest part TeX cannot break (a word, a term, a matrix row)."""
    if not isinstance(cell, Math):
        return TEXT * max(map(visible_len, cell.split()), default=0)
    if "bmatrix" in cell.tex:  # a matrix cannot break: all of it is the minimum
        return matrix_width(cell.tex)
    return max(visible_len(p) for p in _BREAKS.split(_flat(cell.tex)))


_BMATRIX = re.compile(r"\\begin\{bmatrix\}(.*?)\\end\{bmatrix\}", re.S)


def matrix_width(tex):
    """Width of math holding ``bmatrix`` es: widest entry per column, plus column gaps."""
    width = visible_len(_BMATRIX.sub("", tex))
    for body in _BMATRIX.findall(tex):
        rows = [row.split("&") for row in body.split(r"\\")]
        cols = max(map(len, rows))
        widest = [max(visible_len(r[j]) if j < len(r) else 0 for r in rows) for j in range(cols)]
        width += sum(widest) + 2 * (cols - 1) + 2  # \arraycolsep gaps and the brackets
    return width


def table(block):
    cols = "".join(r">{\raggedright\arraybackslash}p{\dimexpr %.4f\linewidth-2\tabcolsep\relax}"
                   % w for w in _widths(block))
    head = " & ".join(r"\textbf{%s}" % escape(h) for h in block.header)
    lines = [r"\begin{longtable}{%s}" % cols, r"\toprule", head + r" \\", r"\midrule",
             r"\endhead", r"\bottomrule", r"\endfoot"]
    lines += [" & ".join(cell(c) for c in row) + r" \\" for row in block.rows]
    lines.append(r"\end{longtable}")
    return "\n".join(lines)


def chain(row):
    """``lhs &= r0 \\ &= r1 ...``: the body of one aligned chain of equalities."""
    if not row.rhs:
        return row.lhs.tex
    if row.oneline:
        rest = " ".join(f"{item.rel} {item.tex}".strip() for item in row.rhs[1:])
        first = row.rhs[0]
        return f"{row.lhs.tex} &{first.rel} {first.tex} {rest}".rstrip()
    lines = []
    for k, item in enumerate(row.rhs):
        first = (row.lhs.tex + " " if k == 0 else "") + "&" + item.rel + " " + item.lines[0]
        lines.append(first.strip())
        lines += [r"&\quad " + more for more in item.lines[1:]]
    return " \\\\\n".join(lines)


def equations(block):
    """One ``align*`` for a block of chains; notes between them as ``\\intertext``."""
    before, body = [], []
    for row in block.rows:
        if row.note and body:
            body[-1] += r" \\[4pt]"
            body.append(r"\intertext{%s}" % prose(row.note))
        elif row.note:
            before.append(prose(row.note))
        elif body:
            body[-1] += r" \\[8pt]"
        body.append(chain(row))
    return "\n".join(before + ["\\begin{align*}"] + body + ["\\end{align*}"])


def items(block):
    return "\\begin{itemize}\n%s\n\\end{itemize}" % "\n".join(
        r"\item " + prose(i) for i in block.items)


RULES = {
    Heading: lambda b: "\\%s{%s}" % (SECTIONS.get(b.level, "paragraph*"), prose(b.text)),
    Prose: lambda b: prose(b.text),
    Items: items,
    Table: table,
    Equations: equations,
    Graph: tikz,
}


def emit(doc):
    """The complete ``.tex`` source of a Document.

    Raises DeriveError if the body holds a command that reads, writes or redefines (see
    :func:`forbidden`): whatever let it through, it is not written or compiled.
    """
    body = "\n\n".join(lay_out(doc, RULES, "tex"))
    title = r"{\LARGE\bfseries %s\par}" % prose(doc.title)
    body = title + "\n\n" + body
    bad = forbidden(body)
    if bad is not None:
        raise DeriveError(f"refusing to write LaTeX that contains {bad} (display names and "
                          "problem text may not use it)")
    return PREAMBLE + "\n\\begin{document}\n" + body + "\n\n\\end{document}\n"


# Commands that read or write files, run programs, or change how TeX reads what follows.
# User text is whitelisted where it enters (derive.latexsubset, prose above); this list is
# the last check on the finished body, so a path that forgot to check cannot leak a file.
_FORBIDDEN = frozenset("""input include InputIfFileExists IfFileExists includeonly endinput
    openin openout read readline write immediate closein closeout newread newwrite message
    catcode lccode uccode mathcode sfcode delcode def edef gdef xdef let futurelet
    csname endcsname expandafter noexpand scantokens lowercase uppercase special shipout
    jobname everyjob everypar everymath everydisplay afterassignment aftergroup toks
    usepackage RequirePackage documentclass newcommand renewcommand providecommand
    DeclareRobustCommand makeatletter makeatother includegraphics verbatiminput
    lstinputlisting pdffiledump pdfmdfivesum pdffilesize pdffilemoddate pdfximage pdfobj
    pdfliteral pdfstrcmp directlua write18 ShellEscape""".split())
_CONTROL_WORD = re.compile(r"\\([A-Za-z@]+|.)", re.S)


def forbidden(body):
    """The first forbidden command of a LaTeX body (or ``^^``), None if there is none."""
    if "^^" in body:
        return "^^"
    for match in _CONTROL_WORD.finditer(body):
        if match.group(1) in _FORBIDDEN or "@" in match.group(1):
            return "\\" + match.group(1)
    return None


def display_math(d):
    r"""A ``$$\begin{aligned}...\end{aligned}$$`` block of a Derivation (Jupyter).

    Every chain of equalities of the worked solution (adjoints, gradients, worked
    steps), one under the other; tables, the graph and prose are left to the documents.
    """
    from reports import document_of  # late: reports/__init__ imports this module

    doc = document_of(d)
    rows = list(rows_of(doc))
    body = " \\\\\n".join(chain(r) if r.rhs else "& " + r.lhs.tex for r in rows)
    return "$$\n\\begin{aligned}\n%s\n\\end{aligned}\n$$" % body
