"""The Verdict on one answer: what was given, what was expected, and why it is judged so.

A verdict is data (reports render it, the CLI prints it, JSON carries it). Its JSON entry
has this shape (documented in reports/JSON.md)::

    {"node", "answer", "verdict": "correct" | "wrong" | "unreadable",
     "proof": "symbolic" | "numeric" | null, "diagnosis": null | KIND, "expected",
     "counterexample": null | {"point": {name: value}, "answer": value, "expected": value},
     "message": str | null}

``proof`` says how a verdict was reached: "symbolic" when the difference was shown to be
exactly zero (or, for a wrong answer at the problem's exact values, exactly non-zero),
"numeric" when it rests on sample points ("agrees at N random points") or on a
counterexample found numerically.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import sympy as sp

from derive.notebook import Shown

#: The diagnoses a wrong answer can get, most specific first.
DIAGNOSES = ("sign", "factor", "transpose", "swapped_operands", "elementwise_vs_matrix",
             "missing_edge", "missing_batch_sum", "chain_not_applied",
             "missing_local_partial", "other")

#: One line per diagnosis for people.
EXPLAIN = {
    "sign": "sign error: the answer is the negative of the expected adjoint",
    "factor": "a constant factor is off",
    "transpose": "a transpose is missing or misplaced (or the shape is wrong)",
    "swapped_operands": "the operands of a product are swapped",
    "elementwise_vs_matrix": "an elementwise product and a matrix product are confused",
    "missing_edge": "a fan-out contribution is missing (one edge of the sum was dropped)",
    "missing_batch_sum": "the sum over the batch is missing",
    "chain_not_applied": "a local partial was given where the adjoint was asked "
                         "(the chain rule was not applied)",
    "missing_local_partial": "the chain stops at an upstream adjoint: a local partial "
                             "(e.g. σ'(z) after a sigmoid) was not multiplied in",
    "other": "no common mistake fits",
}


@dataclass(repr=False)
class Verdict(Shown):
    """The judgement of one answer (truthy when correct).

    ``print`` gives the explanation below; ``repr`` one line (``<Verdict w: wrong
    [missing_edge]>``); Jupyter shows the given and expected adjoints typeset, through the
    registered renderer (see :mod:`derive.notebook`).

    Attributes
    ----------
    node : str
        The node (or input/parameter) whose adjoint ``d output / d node`` was asked.
    answer : str
        The answer as given.
    verdict : {"correct", "wrong", "unreadable"}
    proof : {"symbolic", "numeric"} or None
    diagnosis : str or None
        One of :data:`DIAGNOSES` for a wrong answer.
    expected : sympy expression
        The derived adjoint.
    counterexample : dict or None
        ``{"point": {...}, "answer": value, "expected": value}`` for a wrong answer.
    message : str
        A sentence for people: how it was proved, what the mistake is, why unreadable.
    """

    node: str
    answer: Any
    verdict: str
    proof: str | None = None
    diagnosis: str | None = None
    expected: Any = None
    counterexample: dict | None = None
    message: str = ""
    parsed: Any = None
    judged_against: Any = None  # the carried-forward expectation, when it differs
    carried_from: list = field(default_factory=list)
    points: int = 0

    def __bool__(self):
        return self.verdict == "correct"

    @property
    def correct(self):
        return self.verdict == "correct"

    def to_dict(self):
        """The JSON entry of this answer (see the module docstring)."""
        return {
            "node": self.node,
            "answer": self.answer if isinstance(self.answer, (str, int, float)) or
            self.answer is None else str(self.answer),
            "verdict": self.verdict,
            "proof": self.proof,
            "diagnosis": self.diagnosis,
            "expected": None if self.expected is None else expression_text(self.expected),
            "counterexample": self.counterexample,
            "message": self.message or None,
        }

    def derivation(self):
        """This verdict as a Derivation of kind "check" (rendered by ``reports``)."""
        from derive.verify.check_document import verdict_derivation

        return verdict_derivation(self)

    def _document(self):
        return self.derivation()

    def _line(self):
        return f"<Verdict {self.headline()}>"

    def headline(self):
        """``node: verdict`` with the proof of a correct answer or the diagnosis."""
        head = f"{self.node}: {self.verdict}"
        if self.verdict == "correct":
            head += f" ({self.proof} proof)" if self.proof else ""
        elif self.diagnosis:
            head += f" [{self.diagnosis}]"
        return head

    def __str__(self):
        head = self.headline()
        lines = [head, f"  given:    {self.answer}"]
        if self.expected is not None:
            lines.append(f"  expected: {expression_text(self.expected)}")
        if self.judged_against is not None:
            lines.append(f"  from your earlier answers: {expression_text(self.judged_against)}")
        if self.counterexample:
            ce = self.counterexample
            point = ", ".join(f"{k}={v}" for k, v in ce["point"].items())
            lines.append(f"  at {point}: your answer gives {ce['answer']}, "
                         f"expected {ce['expected']}")
        if self.message:
            lines.append(f"  {self.message}")
        return "\n".join(lines)


def expression_text(expr):
    """An expression as text: SymPy's for scalars, ``@`` / ``*`` / ``.T`` for matrices."""
    if isinstance(expr, str):
        return expr
    if getattr(expr, "is_Matrix", False):
        from derive.verify.tensor.answer_eval import display_text

        return display_text(expr)
    return sp.sstr(expr)


def number_out(value):
    """A value for JSON and reports: int, float (6 significant digits) or exact text."""
    if isinstance(value, sp.Integer):
        return int(value)
    if isinstance(value, sp.Rational):
        return str(value)
    if isinstance(value, sp.Basic):
        if value.is_number and len(sp.sstr(value)) <= 24 and not value.has(sp.Float):
            return sp.sstr(value)
        try:
            value = complex(value.evalf())
        except (TypeError, ValueError):
            return sp.sstr(value)
    if isinstance(value, complex):
        if value.imag and abs(value.imag) > 1e-12 * max(1.0, abs(value.real)):
            return str(value)
        value = value.real
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        return float(f"{value:.6g}")
    return value


def ratio_text(r):
    """A constant factor for people: 1/2, 2, -3/4, or a decimal."""
    frac = Fraction(r).limit_denominator(1000)
    if abs(float(frac) - r) <= 1e-9 * max(1.0, abs(r)):
        return str(frac)
    return f"{r:.6g}"
