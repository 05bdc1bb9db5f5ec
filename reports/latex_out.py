r"""Emit a Document as a standalone LaTeX file (pdflatex, base/recommended/extra + TikZ).

Tables are ``longtable`` with ``p{}`` columns, so long tables break across pages and long
cells wrap (inline math breaks after ``+`` and ``=``; ``\left( \right)`` would forbid
that, so cells use plain brackets). Each chain of equalities is an ``align*`` with
``\allowdisplaybreaks``, so a long backward pass breaks across pages too.
"""
from __future__ import annotations

import re
import unicodedata

from derive.errors import DeriveError
from derive.latexsubset import MATH_COMMANDS, refusal

from reports.document_model import (Equations, Graph, Heading, Items, Math, Prose, Table, lay_out, rows_of,
                       segments)
from reports.latex_printer import visible_len
from reports.parts import Plot
from reports.tikz import tikz

PREAMBLE = r"""\documentclass[11pt,a4paper,fleqn]{article}
\usepackage[margin=2.2cm]{geometry}
\usepackage{amsmath,amssymb}
\usepackage{array,longtable,booktabs}
\usepackage{graphicx}
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
             "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
             "|": r"\textbar{}"}


# Unicode that notes, names and problem files are written with. pdflatex's utf8 input
# knows Latin-1 and Latin Extended-A letters in text (é, ĝ), nothing beyond (ȳ, ⊙, σ), and
# nothing non-ASCII in math: every such character is TeX from this table, a letter with a
# combining accent (x̄, x̂) or a precomposed one (ȳ, ā, ŷ) becomes \bar{y}, \hat{x}, and
# anything else prints as a visible box naming its code point (see unmapped()).
_GREEK = dict(zip("αβγδεζηθικλμνξπρςστυφχψωϵϕϑϖϱΓΔΘΛΞΠΣΥΦΨΩ", r"""\alpha \beta \gamma
    \delta \varepsilon \zeta \eta \theta \iota \kappa \lambda \mu \nu \xi \pi \rho \varsigma
    \sigma \tau \upsilon \varphi \chi \psi \omega \epsilon \phi \vartheta \varpi \varrho
    \Gamma \Delta \Theta \Lambda \Xi \Pi \Sigma \Upsilon \Phi \Psi \Omega""".split()))
_SYMBOLS = dict(zip("⊙⊗⊕∘∗⋅·×÷±∓−≈≤≥≠≡∼≃∝∈∉⊂⊆∪∩∅∀∃¬∧∨→←↔⇒⇐⇔↦∂∇∑∏∫√∞ℝℕℤℓ⋯⋮⋱′°‖⌊⌋⌈⌉⟨⟩½",
                    r"""\odot \otimes \oplus \circ \ast \cdot \cdot \times \div \pm \mp -
    \approx \le \ge \ne \equiv \sim \simeq \propto \in \notin \subset \subseteq \cup \cap
    \emptyset \forall \exists \neg \land \lor \to \leftarrow \leftrightarrow \Rightarrow
    \Leftarrow \Leftrightarrow \mapsto \partial \nabla \sum \prod \int \surd \infty
    \mathbb{R} \mathbb{N} \mathbb{Z} \ell \cdots \vdots \ddots ^{\prime} ^{\circ} \| \lfloor
    \rfloor \lceil \rceil \langle \rangle \tfrac{1}{2}""".split()))
_SUPERSCRIPTS = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁱⁿᵗᵀ", [*"0123456789+-=()int", r"\top"]))
_SUBSCRIPTS = dict(zip("₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₒₓₕₖₗₘₙₚₛₜᵢⱼᵣᵤᵥ", "0123456789+-=()aeoxhklmnpstijruv"))
_UNICODE_MATH = {**_GREEK, **_SYMBOLS,
                 **{c: "^{%s}" % t for c, t in _SUPERSCRIPTS.items()},
                 **{c: "_{%s}" % t for c, t in _SUBSCRIPTS.items()}}
#: Combining accents (after their base letter) and the math accent each becomes.
_ACCENTS = {"\u0304": r"\bar", "\u0305": r"\overline", "\u0302": r"\hat", "\u0303": r"\tilde",
            "\u0307": r"\dot", "\u0308": r"\ddot", "\u0301": r"\acute", "\u0300": r"\grave",
            "\u030c": r"\check", "\u0306": r"\breve", "\u20d7": r"\vec"}
#: Accents a precomposed Latin Extended-A letter is set as math with (ā, ĝ, ũ, ż): in this
#: code base they are notation (adjoints, estimates), not spelling.
_NOTATION_ACCENTS = frozenset("\u0304\u0302\u0303\u0307")

_UNICODE_TEXT = {"–": "--", "—": "---", "‘": "`", "’": "'", "“": "``", "”": "''",
                 "…": r"\dots{}", "\u00a0": "~"}


def _split(c, math):
    """A precomposed letter as (base, accent) when it is set as a math accent, else None."""
    if ord(c) < 0x80 or (not math and ord(c) <= 0xFF):
        return None
    parts = unicodedata.decomposition(c).split()
    if len(parts) != 2 or parts[0].startswith("<"):
        return None
    base, accent = (chr(int(p, 16)) for p in parts)
    if accent not in _ACCENTS or (not math and ord(c) <= 0x17F
                                  and accent not in _NOTATION_ACCENTS):
        return None
    return base, accent


def _tokens(text, math):
    """(character, accents) pairs: each character with the combining accents after it,
    a precomposed accented letter split into its base and accent."""
    i = 0
    while i < len(text):
        c, j = text[i], i + 1
        accents = []
        while j < len(text) and text[j] in _ACCENTS:
            accents.append(text[j])
            j += 1
        split = None if c in _UNICODE_MATH else _split(c, math)
        if split is not None:
            c, accents = split[0], [split[1]] + accents
        yield c, accents
        i = j


def _unmapped(c, accents, math):
    """True when ``c`` (with ``accents``) has no TeX here and prints as the fallback box."""
    if accents:
        return not (c.isascii() and c.isalnum() or c in _GREEK)
    if c in _UNICODE_MATH:
        return False
    if ord(c) < 0x80:
        return False
    if c in _UNICODE_TEXT:
        return math
    return math or ord(c) > 0x17F or unicodedata.category(c) == "Mn"


def _fallback(c):
    return r"\fbox{\scriptsize U+%04X}" % ord(c)


def _token(c, accents, math):
    if accents and not _unmapped(c, accents, math):
        tex = _UNICODE_MATH.get(c, c)
        for accent in accents:
            tex = "%s{%s}" % (_ACCENTS[accent], tex)
        return "{%s}" % tex if math else "$%s$" % tex
    if accents:  # an accent over what is not a letter: both shown as they are
        return _token(c, [], math) + "".join(_fallback(a) for a in accents)
    if c in _UNICODE_TEXT and not math:
        return _UNICODE_TEXT[c]
    if c in _UNICODE_MATH:
        return "{%s}" % _UNICODE_MATH[c] if math else "$%s$" % _UNICODE_MATH[c]
    if _unmapped(c, accents, math):
        return _fallback(c)
    return c if math else _SPECIALS.get(c, c)


def unmapped(text):
    """The characters of ``text`` the LaTeX writer has no TeX for, sorted (each prints as a
    box naming its code point; a test keeps this empty for everything we write)."""
    return sorted({ch for c, accents in _tokens(text, False) if _unmapped(c, accents, False)
                   for ch in [c] + accents if not ch.isascii()})


def escape(text):
    """Plain text made safe for LaTeX (Unicode mathematics becomes LaTeX math)."""
    return "".join(_token(c, accents, False) for c, accents in _tokens(text, False))


def prose(text):
    """Prose with ``$...$`` math kept and everything else escaped.

    Prose may carry user text (titles, notes, labels), so its mathematics is kept only
    when it stays within :data:`derive.latexsubset.MATH_COMMANDS`; any other ``$...$``
    is printed as the characters it is.
    """
    return "".join(_math(p) if is_math else escape(p) for is_math, p in segments(text))


def _math(segment):
    tex = "".join(_token(c, accents, True) for c, accents in _tokens(segment, True))
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


#: The one line that includes a figure: an image file beside the .tex, named by us
#: (``figure-1.png``, ``notes-figure-1.png``), never by user text. :func:`emit` checks the
#: body for forbidden commands with these exact lines taken out.
_INCLUDE = r"\includegraphics[width=%.2f\linewidth,height=0.42\textheight,keepaspectratio]{%s}"
_INCLUDE_LINE = re.compile(r"^\\includegraphics\[width=[0-9.]+\\linewidth,height=0\.42\\textheight,"
                           r"keepaspectratio\]\{[A-Za-z0-9_-]+\.png\}$", re.M)
_PLOT_FILE = re.compile(r"[A-Za-z0-9_-]+\.png")


def plot(block):
    """A figure: the image file ``block.file`` centred, its title and caption below."""
    if not _PLOT_FILE.fullmatch(block.file):
        raise DeriveError(f"refusing to include the image file {block.file!r:.60}")
    caption = r"\textbf{%s.}" % prose(block.title.rstrip("."))
    if block.caption:
        caption += " " + prose(block.caption)
    return "\n".join([r"\begin{center}", _INCLUDE % (min(max(block.width, 0.1), 1.0), block.file),
                      r"\par\smallskip{\small %s}" % caption, r"\end{center}"])


RULES = {
    Plot: plot,
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
    bad = forbidden(_INCLUDE_LINE.sub("", body))
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
