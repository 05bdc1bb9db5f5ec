"""Double-precision evaluation of SymPy expressions, bounded in time by construction.

``expr.evalf()`` works in arbitrary precision: for ``exp(exp(exp(exp(exp(x)))))`` at
x = 1 it tries to represent a number with ~10^10^7 digits in its exponent and runs for
minutes. Answers are untrusted, so they are evaluated here instead: one pass over the
tree with Python complex arithmetic, where an overflow is simply ``inf``. The cost is
linear in the size of the expression, which the parser already bounds.

Only the node types the whitelist can produce (and their derivatives: Heaviside, sign)
are handled directly; anything else falls back to ``evalf`` under a time limit.
"""
from __future__ import annotations

import cmath
import math

import sympy as sp

from derive.functions import FUNCTIONS
from derive.functions.numeric import INF, NAN
from derive.verify.guard import Timeout, deadline

FALLBACK_SECONDS = 0.5


def fvalue(expr, env):
    """``expr`` with Symbols from ``env`` (Symbol -> complex) as a complex; nan if undefined."""
    try:
        return _walk(expr, env)
    except (OverflowError, ZeroDivisionError, ValueError, TypeError, KeyError,
            RecursionError):
        return NAN


def _walk(e, env):
    if e.is_Symbol:
        return env[e] if e in env else NAN
    if e.is_Number or isinstance(e, sp.NumberSymbol) or e is sp.I:
        return _number(e)
    rule = _RULES.get(type(e))
    if rule is not None:
        return rule(*[_walk(a, env) for a in e.args])
    return _fallback(e, env)


def _number(e):
    if e in (sp.zoo, sp.oo, sp.S.NegativeInfinity):
        return INF
    if e is sp.nan:
        return NAN
    try:
        return complex(e)
    except OverflowError:
        return INF


def _mul(*args):
    out = 1 + 0j
    for a in args:
        out *= a
    return out


def _pow(base, exp):
    if exp == 0:
        return 1 + 0j
    if base == 0:
        return NAN if exp.real < 0 else 0j
    if exp.imag == 0 and exp.real == int(exp.real) and abs(exp.real) < 2 ** 31:
        n = int(exp.real)
        if base.imag == 0:
            return complex(_float_pow(base.real, n))
        return base ** n
    return cmath.exp(exp * cmath.log(base))


def _float_pow(base, n):
    try:
        return math.pow(base, n)
    except OverflowError:
        return float("inf") if base > 0 or n % 2 == 0 else float("-inf")


#: arithmetic here; every function's complex form is its function registry row's
_RULES = {sp.Add: lambda *args: sum(args, 0j), sp.Mul: _mul, sp.Pow: _pow}
_RULES.update({r.cls: r.complex for r in FUNCTIONS if r.cls and r.complex})


def _fallback(e, env):
    """Rare node types: SymPy's evalf, given a short time limit."""
    try:
        with deadline(FALLBACK_SECONDS):
            subs = {k: sp.Float(v.real) if v.imag == 0 else sp.Float(v.real) + sp.I * v.imag
                    for k, v in env.items() if k in e.free_symbols}
            return complex(e.xreplace(subs).evalf())
    except (Timeout, TypeError, ValueError, ArithmeticError, AttributeError):
        return NAN
