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

from ..functions import maximum, minimum, relu, sigmoid
from .guard import Timeout, deadline

NAN = complex(float("nan"), 0.0)
INF = complex(float("inf"), 0.0)
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
    args = [_walk(a, env) for a in e.args] if not isinstance(e, sp.Heaviside) else None
    rule = _RULES.get(type(e))
    if rule is not None:
        return rule(args)
    if isinstance(e, sp.Heaviside):
        x = _walk(e.args[0], env)
        at0 = _walk(e.args[1], env).real if len(e.args) > 1 else 0.5
        return _real(x, lambda v: 1.0 if v > 0 else (0.0 if v < 0 else at0))
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


def _mul(args):
    out = 1 + 0j
    for a in args:
        out *= a
    return out


def _pow(args):
    base, exp = args
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


def _exp(args):
    (x,) = args
    if x.real > 709:
        return INF
    return cmath.exp(x)


def _log(args):
    x = args[0]
    if x == 0:
        return complex(float("-inf"), 0.0)
    out = cmath.log(x)
    if len(args) > 1:
        out = out / cmath.log(args[1])
    return out


def _real(x, fn):
    if abs(x.imag) > 1e-12 * max(1.0, abs(x.real)) or not cmath.isfinite(x):
        return NAN
    return complex(fn(x.real))


def _sigmoid(args):
    return _real(args[0], lambda v: 1 / (1 + math.exp(-v)) if v > -700 else 0.0)


def _real_args(args, fn):
    if any(abs(a.imag) > 1e-12 * max(1.0, abs(a.real)) or not cmath.isfinite(a)
           for a in args):
        return NAN
    return complex(fn([a.real for a in args]))


def _sign(v):
    return (v > 0) - (v < 0)


_RULES = {
    sp.Add: lambda args: sum(args, 0j),
    sp.Mul: _mul,
    sp.Pow: _pow,
    sp.exp: _exp,
    sp.log: _log,
    sp.tanh: lambda a: cmath.tanh(a[0]),
    sp.sin: lambda a: cmath.sin(a[0]),
    sp.cos: lambda a: cmath.cos(a[0]),
    sp.Abs: lambda a: complex(abs(a[0])),
    sp.sign: lambda a: _real(a[0], _sign),
    sigmoid: _sigmoid,
    relu: lambda a: _real(a[0], lambda v: max(v, 0.0)),
    maximum: lambda a: _real_args(a, lambda v: v[0] if v[0] >= v[1] else v[1]),
    minimum: lambda a: _real_args(a, lambda v: v[0] if v[0] <= v[1] else v[1]),
    sp.Max: lambda a: _real_args(a, max),
    sp.Min: lambda a: _real_args(a, min),
}


def _fallback(e, env):
    """Rare node types: SymPy's evalf, given a short time limit."""
    try:
        with deadline(FALLBACK_SECONDS):
            subs = {k: sp.Float(v.real) if v.imag == 0 else sp.Float(v.real) + sp.I * v.imag
                    for k, v in env.items() if k in e.free_symbols}
            return complex(e.xreplace(subs).evalf())
    except (Timeout, TypeError, ValueError, ArithmeticError, AttributeError):
        return NAN
