"""An independent float evaluation that every exact value is confirmed against.

SymPy's simplification is exact in principle, but its zero tests evaluate numerically
and can be fooled (a sigmoid of sin(x) once "simplified" to 0 that way). So the sweep in
derive.scalar.backprop runs twice: exactly, with the simplified forms a person reads, and here,
with :data:`DIGITS`-digit floats and no simplification at all. Before a value is put in
a Derivation it must agree with its float twin; a disagreement is a loud
:class:`ConsistencyError`, never a quiet number.

The float twin also finds the inputs that have no real answer (``sqrt(-1)``, ``log(0)``,
``1/0``) and values too large to compute with (``exp(exp(exp(10)))``), and names the
function and the value in a one-line error.
"""
from __future__ import annotations

import mpmath
import sympy as sp

from derive.errors import DeriveError, InputError

DIGITS = 30
MAX_MAGNITUDE = sp.Float("1e300")  # beyond float64's range: refused, not computed


class ConsistencyError(DeriveError):
    """An exact value disagreed with its independent float evaluation (a derivekit bug)."""


def approx(expr, fsubs):
    """``expr`` with the float values ``fsubs`` put in, to DIGITS digits (a SymPy number)."""
    if not isinstance(expr, sp.Basic):
        expr = sp.Integer(expr) if isinstance(expr, int) else sp.Float(expr, DIGITS)
    return expr.xreplace(fsubs).evalf(DIGITS)


class Evaluator:
    """``approx`` at fixed values, remembered per sub-expression.

    A sweep evaluates many forms that share sub-trees (each adjoint in node terms holds
    the later ones); remembering every sub-expression's value makes evaluating all of
    them linear in their total size instead of quadratic.
    """

    def __init__(self, fsubs):
        self.memo = dict(fsubs)

    def __call__(self, expr):
        if not isinstance(expr, sp.Basic):
            return approx(expr, {})
        stack = [expr]
        while stack:
            e = stack[-1]
            if e in self.memo:
                stack.pop()
                continue
            todo = [a for a in e.args if a not in self.memo]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            value = e.func(*[self.memo[a] for a in e.args]) if e.args else e
            # conditions (Piecewise's True, x > 0) are not numbers: kept as they are
            self.memo[e] = value.evalf(DIGITS) if isinstance(value, sp.Expr) else value
        return self.memo[expr]


def real_value(expr, fsubs, what, where, shown=None):
    """The float value of ``expr`` at ``fsubs``; InputError when it is not a real number.

    ``what`` names the value in messages ("node 'v3' = sqrt(v2)"; text, or a function
    giving it, so large expressions are printed only for a message); ``shown`` is the
    mapping of names to the values a person gave, for the message.
    """
    value = fsubs(expr) if isinstance(fsubs, Evaluator) else approx(expr, fsubs)
    if value.is_Number and value.is_finite:
        if abs(value) > MAX_MAGNITUDE:
            raise InputError(f"{_text(what)} is about {_magnitude(value)} at {_at(shown or fsubs)}, "
                             f"too large to compute with (|value| < 1e300)", where=where)
        return value
    if isinstance(fsubs, Evaluator):
        fsubs = {k: v for k, v in fsubs.memo.items() if isinstance(k, sp.Symbol)}
    culprit = _culprit(expr, fsubs)
    if culprit:
        raise InputError(f"{_text(what)} is undefined at {_at(shown or fsubs)}: {culprit}",
                         where=where)
    raise InputError(f"{_text(what)} is not a real number at {_at(shown or fsubs)}", where=where)


def _culprit(expr, fsubs):
    """The first sub-expression of ``expr`` that leaves the real line, as a sentence."""
    for sub in sp.postorder_traversal(expr):
        if isinstance(sub, sp.log):
            arg = approx(sub.args[0], fsubs)
            if arg.is_Number and arg <= 0:
                return f"{sub} needs {sub.args[0]} > 0, and here {sub.args[0]} = {_num(arg)}"
        elif isinstance(sub, sp.Pow) and sub.exp.is_number:
            base = approx(sub.base, fsubs)
            if not base.is_Number:
                continue
            if base == 0 and sub.exp.is_negative:
                return f"division by zero in {sub} ({sub.base} = 0)"
            if base < 0 and not sub.exp.is_integer:
                return f"{sub} needs {sub.base} >= 0, and here {sub.base} = {_num(base)}"
    return None


def confirm(exact, twin, what, scale=None):
    """Raise ConsistencyError unless the exact value ``exact`` matches its float twin.

    ``scale`` is the size of the terms summed into ``twin`` (round-off grows with it).
    """
    if exact is None or twin is None:
        return
    value = approx(exact, {})
    if not value.is_Number:
        raise ConsistencyError(f"{_text(what)}: the value {exact} could not be evaluated to "
                               "confirm it (please report this)")
    floating = isinstance(exact, sp.Float) or exact.has(sp.Float)
    tol = sp.Float("1e-9" if floating else "1e-20") * (1 + abs(twin) + abs(scale or 0))
    if abs(value - twin) > tol:
        raise ConsistencyError(f"{_text(what)}: the exact value {exact} = {_num(value)} disagrees "
                               f"with its direct evaluation {_num(twin)}; derivekit will "
                               "not print it (please report this)")


def _magnitude(value):
    """"1.6e+38" or, past what a float prints, "10^(1.9e+38)" (never formats the huge number)."""
    exponent = mpmath.log10(abs(mpmath.mpf(value._mpf_)))
    if exponent < 300:
        return f"{float(value):.2g}"
    return f"10^{int(exponent)}" if exponent < 1e15 else f"10^({float(exponent):.2g})"


def _text(what):
    return what() if callable(what) else what


def _num(value):
    return f"{float(value):.6g}"


def _at(subs):
    items = [f"{k} = {_num(v) if isinstance(v, sp.Float) else v}" for k, v in subs.items()]
    return ", ".join(str(i) for i in items[:6]) + (", ..." if len(items) > 6 else "")
