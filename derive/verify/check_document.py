"""A Report written as a Derivation (kind "check"), so ``reports`` renders it like any other.

One Section per answer: its verdict as the title, the explanation as prose, and the
given and expected adjoints as worked steps (SymPy expressions, typeset by the reports'
printer). ``result`` is a short table (node, verdict, how) that renders in every format;
the verdicts' full JSON (see reports/JSON.md) is kept in ``meta["check"]``.

Answer text is untrusted: it only reaches a document as plain words with ``$`` removed
(the reports treat ``$...$`` in prose as LaTeX), never as LaTeX. Parsed answers are SymPy
expressions over the problem's own names, so they are safe to typeset.
"""
from __future__ import annotations

import re

import sympy as sp

from derive.derivation import Derivation, Section, Step, bar
from derive.verify.verdict import EXPLAIN

MAX_SHOWN = 160


def plain(text):
    """User text as plain words for a document: no ``$``, no control characters, bounded."""
    text = re.sub(r"[\x00-\x1f\x7f$]", " ", str(text))
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + " ..."


def report_derivation(report):
    """The Derivation of a :class:`~derive.verify.scalar.scalar_table.Report`."""
    who = f" ({plain(report.student)})" if report.student else ""
    d = Derivation(title=f"Check: {report.title}{who}", kind="check",
                   meta={"check": report.to_dict(), "source": report.source})
    d.sections.append(Section("Score", text=_summary(report)))
    d.sections += [_section(v) for v in report.verdicts]
    d.result = [{"node": v.node, "verdict": v.verdict, "how": _how(v)} for v in report.verdicts]
    d.notes.append("Each answer is compared with the derived adjoint at sample points and, "
                   "when it agrees, proved symbolically where possible. In a table, later "
                   "steps are judged against the student's own earlier answers, so an error "
                   "carried forward is counted once.")
    return d


def verdict_derivation(v):
    """The Derivation of one :class:`~derive.verify.verdict.Verdict`: its section alone
    (how a single verdict shows in Jupyter)."""
    d = Derivation(title=f"Check of {plain(v.node)}", kind="check",
                   meta={"check": {"answers": [v.to_dict()]}})
    d.sections.append(_section(v))
    return d


def _summary(report):
    text = f"{report.correct} of {report.total} answers correct (score {report.score:.2f})."
    if report.first_wrong:
        text += f" The first wrong step is {plain(report.first_wrong)}."
    return text


def _how(v):
    if v.verdict == "correct":
        return f"{v.proof} proof" if v.proof else ""
    return v.diagnosis or "unreadable"


def _section(v):
    title = f"{plain(v.node)}: {v.verdict}"
    if v.diagnosis:
        title += f" ({v.diagnosis.replace('_', ' ')})"
    lines = [f"Given: {plain(v.answer)}."]
    if v.diagnosis and v.diagnosis != "other":
        lines.append(EXPLAIN[v.diagnosis].capitalize() + ".")
    if v.message:
        lines.append(plain(v.message[0].upper() + v.message[1:]) + ".")
    if v.counterexample:
        lines.append(_counterexample_text(v.counterexample))
    steps = []
    node_bar = bar(v.node) if v.node.isidentifier() else None
    if node_bar is not None and isinstance(v.parsed, sp.Basic):
        steps.append(Step(node_bar, [v.parsed], note="given"))
    if node_bar is not None and v.expected is not None:
        steps.append(Step(node_bar, [v.expected], note="expected"))
    if node_bar is not None and v.judged_against is not None:
        steps.append(Step(node_bar, [v.judged_against],
                          note="from your earlier answers"))
    return Section(title, steps=steps, text=" ".join(lines))


def _counterexample_text(ce):
    point = ", ".join(f"{k} = {plain(v)}" for k, v in ce["point"].items())
    return (f"Counterexample: at {point} the answer gives {plain(ce['answer'])}, "
            f"the expected value is {plain(ce['expected'])}.")
