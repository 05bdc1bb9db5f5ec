"""Printed = computed for what a reader reads: the LaTeX and the CLI text, read back.

Every formula a document prints is written by the one LaTeX printer
(:func:`reports.latex_printer.latex`), read back by derivekit's own answer reader (the one
students' LaTeX answers go through, ``derive.verify.answers.parse_answer``) and evaluated:

* scalar derivations (here): every node definition, every edge's local partial and
  contribution, every adjoint (its contributions added as the backward pass writes them,
  and its forms in node and input terms) and every gradient, as the document prints them
  (after the passes: a form a document drops is not read). Each is evaluated at a random
  probe point against the SymPy object printed and, when the derivation has values, at
  the derivation's own point against its recorded values (a partial times the adjoint
  above it against the edge's value);
* tensor derivations (:mod:`reports.readback_tensor`): every matrix form, read in matrix
  mode and evaluated at the random instance ``derive.tensor.printed`` uses, against the
  program's arrays.

:func:`text_readback` does the same for the ``derivekit`` summary's plain text (each
gradient as ``reports.text_printer.text`` writes it), read by the plain-text answer reader.

A disagreement raises :class:`~derive.tensor.printed.PrintedFormError` naming the formula.
A form the reader cannot read, or that has no number to compare with, is skipped, counted
and listed with the reason: ``{"read": n, "skipped": m, "skips": [(what, why), ...]}``.
"""
from __future__ import annotations

import random
import re

import sympy as sp

from derive.errors import DeriveError
from derive.tensor.printed import PrintedFormError

from reports.latex_printer import latex

RTOL = 1e-9  # at the random probe point, evaluated with 30 digits
VALUE_RTOL = 1e-7  # at the derivation's own point (its values may be 15-digit floats)
#: ... where the formula holds a decimal, printed to 6 significant digits (decimal_tex)
FLOAT_RTOL = 1e-4
#: what the reader may raise on text it cannot read (everything else is a bug to see)
UNREADABLE = (DeriveError, TypeError, ValueError, ZeroDivisionError, RecursionError)


def new_counts():
    return {"read": 0, "skipped": 0, "skips": []}


def skip(counts, what, why):
    """Count one form not read, saying which and why."""
    counts["skipped"] += 1
    counts["skips"].append((what, why))


def merged(*all_counts):
    """The counts of several read-backs added up."""
    out = new_counts()
    for c in all_counts:
        out["read"] += c["read"]
        out["skipped"] += c["skipped"]
        out["skips"] += c["skips"]
    return out


def reason(exc):
    """One line saying why the reader gave up."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]


def names_of(d):
    """The display names of ``d`` (``meta["latex_names"]``), as the document prints them."""
    from derive.latexsubset import check_display_names

    return check_display_names(d.meta.get("latex_names") or {}, "latex_names")


def printed_tex(document):
    """Every mathematics text a Document shows, after every pass (a table cell
    ``\\frac{..}{..} = p`` also gives its right side ``p``)."""
    from reports.document_model import Equations, Graph, Math, Table

    out = set()
    for block in document.blocks:
        if isinstance(block, Table):
            cells = [c.tex for row in block.rows for c in row if isinstance(c, Math)]
            out.update(cells)
            out.update(c.split(" = ", 1)[1] for c in cells if " = " in c)
        elif isinstance(block, Equations):
            out.update(m.tex for row in block.rows for m in [row.lhs] + list(row.rhs))
        elif isinstance(block, Graph):
            out.update(e.label for e in block.edges if e.label)
    return out


def shown_in(d, shown=None):
    """``shown`` (the texts of the document being written), or those of d's own document."""
    if shown is not None:
        return shown
    from reports import document_of

    return printed_tex(document_of(d))


class DisplayNames:
    """The problem's display names (``latex_names``) as the reader of a page takes them: as
    names, never as notation (``w^{1}`` standing for ``w`` is w, not w to the power 1).
    :meth:`literal` writes each one, and its adjoint, as ``\\mathrm{name}`` before reading."""

    def __init__(self, names):
        from reports.latex_printer import accent

        subs = {}
        for name, tex in (names or {}).items():
            subs[accent(tex)] = r"\bar{\mathrm{%s}}" % name
            subs.setdefault(tex, r"\mathrm{%s}" % name)
        self.subs = subs
        self.pattern = re.compile("|".join(
            r"(?<![A-Za-z\\])" + re.escape(t) + r"(?![A-Za-z])"
            for t in sorted(subs, key=len, reverse=True))) if subs else None

    def literal(self, tex):
        if self.pattern is None:
            return tex
        return self.pattern.sub(lambda m: self.subs[m.group()], tex)


class Printed:
    """LaTeX of SymPy objects over one derivation's names, each object printed once."""

    def __init__(self, names):
        self.names, self.memo = names, {}

    def __call__(self, expr):
        if id(expr) not in self.memo:  # (the object is kept, so its id is not reused)
            self.memo[id(expr)] = (expr, latex(expr, self.names))
        return self.memo[id(expr)][1]


# -- scalar derivations ------------------------------------------------------------------------


class Form:
    """One printed scalar formula: ``tex`` as printed, the SymPy ``expr`` it was printed
    from, the derivation's value of it (``want``) and, for a local partial, the adjoint
    whose value it is multiplied by to give ``want`` (``times``)."""

    def __init__(self, what, tex, expr, want=None, times=None):
        self.what, self.tex, self.expr, self.want, self.times = what, tex, expr, want, times


def scalar_forms(d, names=None):
    """Every Form a scalar document of ``d`` may print (printed or not: see printed_tex)."""
    from reports.backward_chains import contribution_tex, signed_sum

    names = names_of(d) if names is None else names
    tex_of, forms = Printed(names), []

    def add(what, tex, expr, want=None, times=None):
        if isinstance(expr, sp.Basic) and not getattr(expr, "is_Matrix", False):
            forms.append(Form(what, tex, expr, want, times))

    for n in d.nodes:
        if n.definition is not None and not isinstance(n.definition, str):
            add(f"{n.name} (forward definition)", tex_of(n.definition), n.definition,
                n.value)
    for e in d.edges:
        if not isinstance(e.partial, str):
            add(f"∂{e.dst}/∂{e.src} (local partial)", tex_of(e.partial),
                sp.sympify(e.partial), e.value, f"{e.dst}_bar")
        add(f"contribution of {e.dst} to {e.src}_bar", contribution_tex(e, names),
            e.contribution, e.value)
    for a in d.adjoints:
        edges = d.edges_from(a.name)
        if edges and not any(isinstance(e.partial, str) for e in edges):
            add(f"{a.name}_bar (adjoint, contributions added)",
                signed_sum([contribution_tex(e, names) for e in edges]).tex,
                sp.Add(*[e.contribution for e in edges]), a.value)
        for field in ("as_sum", "in_nodes", "in_inputs"):
            expr = getattr(a, field, None)
            if expr is not None and (field != "as_sum" or not edges):
                add(f"{a.name}_bar (adjoint, {field})", tex_of(expr), expr, a.value)
    for w, g in d.gradients.items():
        if g.expression is not None:
            add(f"d/d{w} (gradient)", tex_of(g.expression), g.expression, g.value)
    return forms


class Probe:
    """A random point (each name a value in (0.2, 0.8), drawn the first time it is seen)
    and the derivation's own point (its nodes' and adjoints' recorded values)."""

    def __init__(self, d, seed=0):
        self.rng = random.Random(seed)
        self.point = {}
        self.own = {n.name: n.value for n in d.nodes if _is_number(n.value)}
        self.own.update({f"{a.name}_bar": a.value for a in d.adjoints if _is_number(a.value)})

    def random(self, expr):
        subs = {s: self.point.setdefault(s.name, sp.Float(self.rng.uniform(0.2, 0.8), 30))
                for s in sorted(expr.free_symbols, key=lambda s: s.name)}
        return _real(expr.xreplace(subs))

    def at_values(self, expr):
        """``expr`` at the derivation's own point (None when a name has no value there)."""
        if any(s.name not in self.own for s in expr.free_symbols):
            return None
        return _real(expr.xreplace({s: sp.sympify(self.own[s.name], strict=True)
                                    for s in expr.free_symbols}))


def _is_number(v):
    return isinstance(v, (int, float, sp.Number)) and not isinstance(v, bool) or \
        isinstance(v, sp.Expr) and v.is_number


def _real(expr):
    v = complex(sp.N(expr, 30))
    return v.real if abs(v.imag) < 1e-20 * max(1.0, abs(v.real)) else None


def as_printed(expr):
    """``expr`` with each decimal as the printer writes it (6 significant digits)."""
    from reports.latex_printer import decimal

    floats = expr.atoms(sp.Float)
    return expr.xreplace({f: sp.Float(decimal(f), 30) for f in floats}) if floats else expr


def _close(got, want, rtol):
    return abs(got - want) <= rtol * max(1.0, abs(want))


def scalar_latex_readback(d, seed=0, shown=None):
    """Read back every scalar formula the document of ``d`` prints (see the module)."""
    from derive.verify.answers import Vocabulary, parse_answer

    counts = new_counts()
    names = names_of(d)
    shown = shown_in(d, shown)
    vocab = Vocabulary([n.name for n in d.nodes], d.meta.get("latex_names"))
    probe, parsed, display = Probe(d, seed), {}, DisplayNames(names)
    for form in scalar_forms(d, names):
        if form.tex not in shown:
            continue  # dropped by a pass (too wide, or a repeat): not printed
        try:
            if form.tex not in parsed:
                parsed[form.tex] = parse_answer(display.literal(form.tex), vocab, latex=True)
            back = parsed[form.tex]
            want, got = probe.random(as_printed(form.expr)), probe.random(back)
        except UNREADABLE as e:
            skip(counts, form.what, reason(e))
            continue
        if want is None or got is None:
            skip(counts, form.what, "not real at the random point")
            continue
        if not _close(got, want, RTOL):
            raise _mismatch(d, form, back, f"{got:.6g} where the formula gives {want:.6g}")
        wrong = value_disagreement(form, back, probe)
        if wrong:
            raise _mismatch(d, form, back, wrong)
        counts["read"] += 1
    return counts


def value_disagreement(form, back, probe):
    """How the read-back, at the derivation's own point, disagrees with the value the
    derivation records (None when it agrees or there is nothing to compare)."""
    if not _is_number(form.want):
        return None
    got = probe.at_values(back)
    scale = 1.0
    if form.times is not None:
        scale = probe.own.get(form.times)
        scale = None if scale is None else _real(sp.sympify(scale))
    want = _real(sp.sympify(form.want))
    rtol = FLOAT_RTOL if back.atoms(sp.Float) else VALUE_RTOL
    if got is None or scale is None or want is None or _close(got * scale, want, rtol):
        return None
    times = f" times {form.times}" if form.times else ""
    return (f"{got * scale:.6g} at the derivation's values{times}, where it records "
            f"{want:.6g}")


def _mismatch(d, form, back, detail):
    return PrintedFormError(f"the LaTeX of printed {form.what}, {form.tex}, reads back as "
                            f"{back}: {detail}", where=d.title)


def latex_readback(d, seed=0, shown=None):
    """Read back every formula the document of ``d`` prints: scalar forms here, a tensor
    derivation's matrix forms by :func:`reports.readback_tensor.matrix_readback`.
    ``shown`` is the set of texts of the document being written (:func:`printed_tex`);
    by default d's own document is built.

    Returns ``{"read": n, "skipped": m, "skips": [(what, why), ...]}``; raises
    PrintedFormError naming the formula on a disagreement.
    """
    if d.program is not None:
        from reports.readback_tensor import matrix_readback

        return matrix_readback(d, seed, shown)
    return scalar_latex_readback(d, seed, shown)


# -- the CLI summary -------------------------------------------------------------------------


_INDEX_TEXT = re.compile(r"Σ_|δ\(|\]_\(")


def text_readback(d, seed=0):
    """Read back the ``derivekit`` summary's text of each gradient of ``d``
    (``lhs = text(expression) = value``, text from :func:`reports.text_printer.text`) with
    the plain-text answer reader, and compare it with the gradient: for a scalar
    derivation at a random point (and at the derivation's values), for a tensor one with
    the program's arrays (:func:`reports.readback_tensor.matrix_text_readback`).

    Returns ``{"read": n, "skipped": m, "skips": [(what, why), ...]}``; raises
    PrintedFormError naming the formula on a disagreement.
    """
    if d.program is not None:
        from reports.readback_tensor import matrix_text_readback

        return matrix_text_readback(d, seed)
    from derive.verify.answers import Vocabulary, parse_answer
    from reports.text_printer import text

    counts = new_counts()
    vocab = Vocabulary([n.name for n in d.nodes], d.meta.get("latex_names"))
    probe = Probe(d, seed)
    for w, g in d.gradients.items():
        what = f"d/d{w} (gradient, summary text)"
        if not isinstance(g.expression, sp.Expr) or g.expression.is_Matrix:
            skip(counts, what, f"the summary prints {type(g.expression).__name__}, "
                 "not a scalar formula")
            continue
        line = text(g.expression)
        if _INDEX_TEXT.search(line):
            skip(counts, what, "index notation (Σ, δ): the text reader does not read it")
            continue
        form = Form(what, line, g.expression, g.value)
        try:
            back = parse_answer(line, vocab, latex=False)
            want, got = probe.random(g.expression), probe.random(back)
        except UNREADABLE as e:
            skip(counts, what, reason(e))
            continue
        if want is None or got is None:
            skip(counts, what, "not real at the random point")
            continue
        if not _close(got, want, RTOL):
            raise _text_mismatch(d, form, back, f"{got:.6g} where the gradient gives "
                                 f"{want:.6g}")
        wrong = value_disagreement(form, back, probe)
        if wrong:
            raise _text_mismatch(d, form, back, wrong)
        counts["read"] += 1
    return counts


def _text_mismatch(d, form, back, detail):
    return PrintedFormError(f"the summary text of {form.what}, {form.tex}, reads back as "
                            f"{back}: {detail}", where=d.title)
