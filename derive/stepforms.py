"""What a worked Step holds besides ordinary SymPy expressions.

A Step's sides are SymPy objects; ``reports`` typesets them, so derive holds no
notation. Two things a worked example needs have no SymPy form, and are made here:

* arithmetic *as written*: ``0.9 * 0 + 0.1 * 3`` before it is worked out. SymPy would
  evaluate it (to ``0.3``) and put sums in its own order, so :func:`plus`, :func:`minus`,
  :func:`times`, :func:`over`, :func:`power`, :func:`root` and :func:`substitute` build
  the tree unevaluated and wrap it in ``sympy.UnevaluatedExpr``: printers keep its terms
  in the order given;
* a few objects of the subject that SymPy has no class for: :class:`Word` (words inside
  mathematics: a class name, a token, a label), :class:`Approx` (the decimal of the
  exact value before it), :class:`ArgMax`, :class:`MaxOf`, :class:`Expectation`, :class:`Variance`,
  :class:`Norm` and :class:`Grad` (the gradient of ``f`` at a point).

Each prints through a rule in ``reports.latex_printer``; ``str()`` of each is SymPy-readable
text (the JSON of a step).
"""
from __future__ import annotations

import sympy as sp

__all__ = ["Word", "Approx", "ArgMax", "MaxOf", "Expectation", "Variance", "Norm", "Grad", "plus",
           "minus", "times", "over", "power", "root", "written", "substitute", "approx"]


# -- arithmetic as written -------------------------------------------------------------------
def written(expr):
    """``expr`` marked as written: its sum keeps the order of its terms when printed."""
    return sp.UnevaluatedExpr(expr)


def plus(*terms):
    """``a + b + ...`` as written (a negative term reads ``a - b``); one term is itself."""
    terms = [sp.sympify(t, strict=True) for t in terms]
    return terms[0] if len(terms) == 1 else written(sp.Add(*terms, evaluate=False))


def minus(a, b):
    """``a - b`` as written (``0.1 - 0`` too: the minus is kept, not folded into ``b``)."""
    return plus(a, sp.Mul(-1, sp.sympify(b, strict=True), evaluate=False))


def times(*factors):
    """``a b ...`` (``a \\cdot b`` between numbers) as written; one factor is itself."""
    factors = [sp.sympify(f, strict=True) for f in factors]
    return factors[0] if len(factors) == 1 else written(sp.Mul(*factors, evaluate=False))


def over(numerator, denominator):
    """The fraction ``numerator / denominator`` as written."""
    den = sp.Pow(sp.sympify(denominator, strict=True), -1, evaluate=False)
    return written(sp.Mul(sp.sympify(numerator, strict=True), den, evaluate=False))


def power(base, exponent):
    """``base ** exponent`` as written (``1.5^2``, not ``2.25``)."""
    return written(sp.Pow(sp.sympify(base, strict=True), exponent, evaluate=False))


def root(value):
    """``sqrt(value)`` as written."""
    return power(value, sp.Rational(1, 2))


def substitute(expr, values):
    """``expr`` with numbers in place of its symbols, as written (``2 * 3``, not ``6``).

    ``values`` maps symbols to numbers.
    """
    return sp.sympify(expr, strict=True).xreplace(
        {s: sp.UnevaluatedExpr(sp.sympify(v, strict=True)) for s, v in values.items()})


# -- objects SymPy has no class for ------------------------------------------------------------
class Word(sp.Symbol):
    """Words inside mathematics (``Word("cat")``, ``Word("parameters")``): printed as text,
    never read as notation."""


class Blank(Word):
    """A blank on a question paper, where a student writes an answer (``Blank("1")``)."""


class _Form(sp.Function):
    """An unevaluated function of the subject: never evaluated, never turned into a float."""

    @classmethod
    def _should_evalf(cls, arg):
        return -1


class Approx(_Form):
    """``Approx(x)``: approximately ``x``, the decimal of the exact value before it."""

    nargs = 1

    def _eval_evalf(self, prec):
        return self.args[0].evalf(sp.core.evalf.prec_to_dps(prec))


def approx(value):
    """``Approx`` of the decimal of an exact ``value`` (full precision; printers shorten)."""
    return Approx(sp.Float(sp.N(value, 15), 15))


class ArgMax(_Form):
    """``ArgMax(expr, j)``: the ``j`` at which ``expr`` is largest."""

    nargs = 2


class MaxOf(_Form):
    """``MaxOf(a, b, ...)``: the largest of the values as written (order and repeats kept,
    unlike ``sympy.Max``)."""


class Expectation(_Form):
    """``Expectation(x)``: the expected value of a random quantity ``x``."""

    nargs = 1


class Variance(_Form):
    """``Variance(x)``: the variance of a random quantity ``x``."""

    nargs = 1


class Norm(_Form):
    """``Norm(x)``: the (spectral) norm of ``x``."""

    nargs = 1


class Grad(_Form):
    """``Grad(f, at)``: the gradient of ``f`` at the point ``at``."""

    nargs = 2
