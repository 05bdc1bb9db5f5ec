"""Numbers for the registry's rows: float64 NumPy forms and complex double forms.

The NumPy forms are what ``evaluate`` (the oracle kernels and tests are checked
against) and the tensor answer checker compute with, so each is stable for large |x|:
an ``exp`` only ever sees a non-positive argument. The complex forms are the answer
checker's double-precision walk (:mod:`derive.verify.floats`): a function of the reals
given a value off the real line is ``nan`` (undefined), never a quiet real part.
"""
from __future__ import annotations

import cmath
import functools
import math

import numpy as np

NAN = complex(float("nan"), 0.0)
INF = complex(float("inf"), 0.0)


# -- NumPy, float64 ------------------------------------------------------------------------
def sigmoid(x):
    """``1 / (1 + e^-x)``: exp of a non-positive number only, no overflow for large |x|."""
    x = np.asarray(x, dtype=float)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(x):
    """``log(1 + e^x)`` as ``logaddexp(0, x)`` (= max(x, 0) + log1p(e^-|x|))."""
    return np.logaddexp(0.0, x)


def relu(x):
    return np.maximum(x, 0.0)


def heaviside(x, h0=0.5):
    """H(x) with the stated value ``h0`` at 0 (SymPy's 1/2 when none is stated)."""
    return np.heaviside(x, h0)


def step(x):
    return np.heaviside(x, 0.0)


def leaky_relu(x, k):
    return np.where(x > 0, x, k * x)


def elu(x, a):
    return np.where(x > 0, x, a * np.expm1(np.minimum(x, 0.0)))


def fold(binary):
    """``f(a, b, c) = f(f(a, b), c)``: NumPy's third positional argument is ``out``."""
    return lambda *xs: functools.reduce(binary, xs)


# -- complex doubles (the answer checker) ----------------------------------------------------
def off_real_line(z):
    return abs(z.imag) > 1e-12 * max(1.0, abs(z.real)) or not cmath.isfinite(z)


def real_only(fn):
    """A complex rule from a real function of real arguments: nan off the real line."""
    def rule(*zs):
        if any(off_real_line(z) for z in zs):
            return NAN
        return complex(fn(*[z.real for z in zs]))
    return rule


def c_exp(z):
    return INF if z.real > 709 else cmath.exp(z)


def c_log(z, base=None):
    if z == 0:
        return complex(float("-inf"), 0.0)
    out = cmath.log(z)
    return out if base is None else out / cmath.log(base)


def r_sigmoid(v):
    return 1 / (1 + math.exp(-v)) if v > -700 else 0.0


def r_softplus(v):
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


def r_sign(v):
    return (v > 0) - (v < 0)
