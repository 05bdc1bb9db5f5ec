"""Adjoint tables: every answer judged, the first wrong step found, errors not counted twice.

A table answers the adjoints of several nodes. They are judged in the order of the
reverse sweep (output first). A later step is judged *as if the earlier ones were
right*: its expected value is recomputed through the recorded edges from the student's
own earlier answers, v̄ᵢ = Σⱼ (student's v̄ⱼ)·∂vⱼ/∂vᵢ, so a mistake made once and carried
forward faithfully costs one step, not every step after it. A step that matches the true
adjoint is of course correct too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from derive.derivation import bar
from derive.errors import InputError
from derive.notebook import Shown
from derive.verify.verdict import Verdict


@dataclass(repr=False)
class Report(Shown):
    """The verdicts on one set of answers, with a score (truthy when all are correct).

    ``print`` gives the score and each verdict; ``repr`` one line; Jupyter the check
    document (:meth:`derivation`) through the registered renderer (:mod:`derive.notebook`).

    Attributes
    ----------
    verdicts : list of Verdict
        In the order of the reverse sweep (output first), unknown keys last.
    title : str
        The problem's title.
    student : str or None
    """

    verdicts: list = field(default_factory=list)
    title: str = ""
    student: str | None = None
    source: str | None = None

    @property
    def correct(self):
        return sum(1 for v in self.verdicts if v.correct)

    @property
    def total(self):
        return len(self.verdicts)

    @property
    def score(self):
        """Fraction of answers judged correct (0 when there are none)."""
        return self.correct / self.total if self.total else 0.0

    @property
    def first_wrong(self):
        """The node of the first answer that is not correct, in sweep order (or None)."""
        return next((v.node for v in self.verdicts if not v.correct), None)

    def __bool__(self):
        return self.total > 0 and self.correct == self.total

    def to_dict(self):
        """The verdict JSON: ``{"score", "answers": [...]}`` plus counts and first_wrong."""
        return {"score": round(self.score, 4), "correct": self.correct, "total": self.total,
                "first_wrong": self.first_wrong, "student": self.student,
                "answers": [v.to_dict() for v in self.verdicts]}

    def derivation(self):
        """This report as a Derivation of kind "check" (rendered by ``reports``)."""
        from derive.verify.check_document import report_derivation

        return report_derivation(self)

    def _document(self):
        return self.derivation()

    def _line(self):
        return f"<Report {self.headline()}>"

    def headline(self):
        """``title (student): 2/3 correct, score 0.67; first wrong step: w``."""
        who = f" ({self.student})" if self.student else ""
        head = (f"{self.title}{who}: {self.correct}/{self.total} correct, "
                f"score {self.score:.2f}")
        if self.first_wrong:
            head += f"; first wrong step: {self.first_wrong}"
        return head

    def __str__(self):
        return "\n".join([self.headline()] + [str(v) for v in self.verdicts])


def check_table(checker, answers, student=None):
    """Judge an adjoint table (``{node: answer}``) against ``checker``'s derivation.

    Parameters
    ----------
    checker : derive.verify.scalar.judge.Checker
    answers : dict
        Node (or input/parameter) name -> answer text. Keys are matched leniently
        (``w``, ``w_bar``, ``\\bar{w}``); an unknown key is an unreadable answer.

    Returns
    -------
    Report
    """
    if hasattr(checker, "table"):  # tensor answers: derive.verify.tensor.tensor_table
        return checker.table(answers, student=student)
    entries, verdicts = _entries(checker, answers)
    ordered = judge_carried(checker, reversed(checker.replay.order), entries,
                            _Sweep(checker))
    return Report(ordered + verdicts, title=checker.d.title, student=student,
                  source=checker.d.meta.get("source"))


def judge_carried(checker, order, entries, sweep):
    """Judge answers in reverse-sweep ``order``, each against the student's earlier ones.

    ``sweep`` replays the backward pass with the student's answers in place of the true
    adjoints (``expect`` / ``context`` / ``record``), so an error carried forward is
    judged as if the earlier step were right and counted once.
    """
    verdicts = []
    for name in order:
        sweep.expect(name)
        if name in entries:
            verdict = checker.judge(name, entries[name], carried=sweep.context(name))
            sweep.record(name, verdict)
            verdicts.append(verdict)
    return verdicts


def _entries(checker, answers):
    """Answer keys resolved to nodes; unknown or repeated keys become unreadable verdicts."""
    if not isinstance(answers, dict):
        raise InputError("answers must be a mapping of node: answer")
    entries, bad, seen = {}, [], {}
    for key, text in answers.items():
        try:
            node = checker.node_of(key)
        except InputError as exc:
            bad.append(Verdict(node=str(key), answer=text, verdict="unreadable",
                               message=str(exc)))
            continue
        if node in entries:
            bad.append(Verdict(node=str(key), answer=text, verdict="unreadable",
                               message=f"{node} is answered twice (as {seen[node]!r} and "
                                       f"{key!r}); the first is judged"))
            continue
        entries[node], seen[node] = text, key
    return entries, bad


class _Sweep:
    """The reverse sweep carried out with the student's answers in place of the adjoints."""

    def __init__(self, checker):
        self.c = checker
        self.replay = checker.replay
        n = len(self.replay)
        self.exprs = {}                      # node -> adjoint implied by the answers
        self.values = [{} for _ in range(n)]  # per point: node -> that adjoint's value
        self.answered = [{} for _ in range(n)]  # per point: readable answers only
        self.wrong = []

    def expect(self, name):
        """The adjoint of ``name`` implied by the answers so far (through the edges)."""
        if name == self.c.d.output:
            self.exprs[name] = sp.S.One
            for vals in self.values:
                vals[name] = 1.0
            return
        edges = [(k, self.c.d.edges[k]) for k in self.replay.out_edges[name]]
        edges = [(k, e) for k, e in edges if e.dst in self.exprs]
        self.exprs[name] = sp.Add(*[self.exprs[e.dst] * e.partial for _, e in edges])
        for p, vals in enumerate(self.values):
            vals[name] = sum((vals[e.dst] * self.replay.partials[p][k] for k, e in edges), 0.0)

    def context(self, name):
        """What :meth:`Checker.judge` needs to judge ``name`` against earlier answers."""
        below = set(self.replay.downstream(name)) - {name}
        carried_from = [w for w in self.wrong if w in below]
        if not carried_from:
            return None
        adjoints = []
        for p, vals in enumerate(self.values):
            adj = dict(self.replay.adjoints[p])
            adj.update(vals)
            adjoints.append(adj)
        bars = {bar(n): e for n, e in self.exprs.items()}
        bars.update({bar(n): a.in_nodes for n, a in self.c.adjoint.items()
                     if n not in self.exprs})
        return {"expr": self.exprs[name], "values": [v[name] for v in self.values],
                "adjoints": adjoints, "overrides": [dict(a) for a in self.answered],
                "bars": bars, "from": carried_from}

    def record(self, name, verdict):
        """Carry a readable answer forward in place of the adjoint it answers."""
        if verdict.verdict == "unreadable" or not verdict.parsed.free_symbols:
            return  # a bare number is a value at the problem's point, not a formula
        if verdict.verdict == "wrong":
            self.wrong.append(name)
        bars = {bar(n): e for n, e in self.exprs.items() if n != name}
        self.exprs[name] = verdict.parsed.xreplace(bars)
        values = self.replay.evaluate(verdict.parsed, self._adjoints())
        for p, vals in enumerate(self.values):
            vals[name] = values[p].real
            self.answered[p][name] = values[p].real

    def _adjoints(self):
        out = []
        for p, vals in enumerate(self.values):
            adj = dict(self.replay.adjoints[p])
            adj.update(vals)
            out.append(adj)
        return out
