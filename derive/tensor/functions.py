"""Elementwise functions the dense layers need beyond :mod:`derive.functions`.

Each states its convention at the non-smooth point, and its derivative is a SymPy
expression (``fdiff``), so the derivation engine differentiates through it like any
other function.

* ``softplus(x) = log(1 + exp(x))``, softplus' = sigmoid; evaluated as
  ``logaddexp(0, x)`` so large x does not overflow.
* ``step(x) = H(x)`` with H(0) = 0; its gradient is 0 almost everywhere.
* ``leaky_relu(x, k) = x if x > 0 else k*x``; the derivative at 0 is ``k`` (PyTorch's
  choice); ``k = -1`` gives |x| and any k the issue's max(-k x, x) family.
* ``elu(x, a) = x if x > 0 else a (exp(x) - 1)``; the derivative at 0 is ``a``.
"""
from __future__ import annotations

import sympy as sp

from ..functions import sigmoid


class softplus(sp.Function):
    """``log(1 + exp(x))``.

    >>> x = sp.Symbol("x"); softplus(x).diff(x)
    sigmoid(x)
    """

    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return sp.log(1 + sp.exp(x))

    def _eval_evalf(self, prec):
        return self.rewrite(sp.exp)._eval_evalf(prec)

    def _latex(self, printer):
        return r"\operatorname{softplus}\left(%s\right)" % printer._print(self.args[0])


class step(sp.Function):
    """The unit step ``H(x)`` with H(0) = 0 (zero gradient almost everywhere)."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_number and x.is_extended_real:
            return sp.S.One if x > 0 else sp.S.Zero
        return None

    def fdiff(self, argindex=1):
        return sp.S.Zero

    def _eval_rewrite_as_Heaviside(self, x, **kwargs):
        return sp.Heaviside(x, 0)

    def _latex(self, printer):
        return r"H\left(%s\right)" % printer._print(self.args[0])


class leaky_relu(sp.Function):
    """``x if x > 0 else k*x``; derivative ``1`` for x > 0, ``k`` otherwise."""

    nargs = 2

    @classmethod
    def eval(cls, x, k):
        if x.is_number and x.is_extended_real and k.is_number:
            return x if x > 0 else k * x
        return None

    def fdiff(self, argindex=1):
        x, k = self.args
        if argindex != 1:
            return sp.Piecewise((0, x > 0), (x, True))
        return sp.Piecewise((1, x > 0), (k, True))

    def _eval_rewrite_as_Piecewise(self, x, k, **kwargs):
        return sp.Piecewise((x, x > 0), (k * x, True))

    def _latex(self, printer):
        x, k = (printer._print(a) for a in self.args)
        return r"\operatorname{LeakyReLU}_{%s}\left(%s\right)" % (k, x)


class elu(sp.Function):
    """``x if x > 0 else a (exp(x) - 1)``; derivative ``1`` for x > 0, ``a exp(x)`` else."""

    nargs = 2

    @classmethod
    def eval(cls, x, a):
        if x.is_number and x.is_extended_real and a.is_number:
            return x if x > 0 else a * (sp.exp(x) - 1)
        return None

    def fdiff(self, argindex=1):
        x, a = self.args
        if argindex != 1:
            return sp.Piecewise((0, x > 0), (sp.exp(x) - 1, True))
        return sp.Piecewise((1, x > 0), (a * sp.exp(x), True))

    def _eval_rewrite_as_Piecewise(self, x, a, **kwargs):
        return sp.Piecewise((x, x > 0), (a * (sp.exp(x) - 1), True))

    def _latex(self, printer):
        x, a = (printer._print(v) for v in self.args)
        return r"\operatorname{ELU}_{%s}\left(%s\right)" % (a, x)


def gelu_tanh(x):
    """GELU, tanh approximation: ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    c = sp.sqrt(2 / sp.pi)
    return x / 2 * (1 + sp.tanh(c * (x + sp.Rational(44715, 1000000) * x ** 3)))
