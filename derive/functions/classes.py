"""The SymPy classes of the elementwise functions SymPy lacks (rows of the registry).

Each class holds only mathematics: its value at exact points, its derivative (``fdiff``)
and its rewrites. Names, conventions, NumPy, kernel and LaTeX forms are columns of
:mod:`derive.functions.registry`; no class here typesets itself.

* ``sigmoid(x) = 1 / (1 + exp(-x))``, with sigma' = sigma (1 - sigma) so derivatives
  stay in terms of sigma (as exam answers are written).
* ``relu(x) = max(x, 0)``; ReLU'(0) = 0 (``Heaviside(x, 0)``).
* ``maximum(a, b)`` / ``minimum(a, b)``: the derivative routes to the first extreme on a
  tie (d/da = H(a - b) with H(0) = 1, d/db = H(b - a) with H(0) = 0).
* ``softplus(x) = log(1 + exp(x))``, softplus' = sigmoid.
* ``step(x) = H(x)`` with H(0) = 0; zero gradient almost everywhere.
* ``leaky_relu(x, k)``: the derivative at 0 is ``k``; ``elu(x, a)``: at 0 it is ``a``.
* :func:`defined` makes the class of a smooth function from its definition and
  derivative (SiLU and Mish are made this way).

Every numeric evaluation (``evalf``) stays on the real line: a rewrite into complex
exponentials would leave round-off imaginary parts that make SymPy's zero tests lie
(sigmoid(sin(x)) once simplified to 0 that way).
"""
from __future__ import annotations

import sympy as sp
from mpmath.libmp import prec_to_dps


class sigmoid(sp.Function):
    """The logistic function ``1 / (1 + exp(-x))``.

    >>> x = sp.Symbol("x"); sigmoid(x).diff(x)
    (1 - sigmoid(x))*sigmoid(x)
    """

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.S.Half
        return None

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sp.exp(-x))

    def _eval_evalf(self, prec):
        # Only this function is rewritten: rewrite(exp) would also turn an inner sin or
        # cos into complex exponentials and leave an imaginary round-off part.
        x = self.args[0]._eval_evalf(prec)
        if x is None:
            return None
        return (1 / (1 + sp.exp(-x)))._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return True if self.args[0].is_real else None


class relu(sp.Function):
    """The rectifier ``max(x, 0)`` with ReLU'(0) = 0.

    >>> relu(sp.Integer(-3)), relu(sp.Rational(1, 2))
    (0, 1/2)
    """

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_number and x.is_extended_real:
            return x if x > 0 else sp.S.Zero
        return None

    def fdiff(self, argindex=1):
        return sp.Heaviside(self.args[0], 0)

    def _eval_rewrite_as_Max(self, x, **kwargs):
        return sp.Max(x, 0)

    def _eval_evalf(self, prec):
        return sp.Max(self.args[0], 0)._eval_evalf(prec)


class _FirstExtreme(sp.Function):
    """max or min of two values whose derivative goes to the FIRST extreme on a tie.

    ``direction`` is +1 for max, -1 for min: d/da = H(±(a - b)) with H(0) = 1 and
    d/db = H(±(b - a)) with H(0) = 0, so a tie routes everything to ``a``.
    """

    nargs = 2
    direction = 1
    twin = sp.Max  # SymPy's own function, for numeric evaluation and rewrites

    @classmethod
    def eval(cls, a, b):
        if a.is_number and b.is_number and a.is_extended_real and b.is_extended_real:
            return a if cls.direction * (a - b) >= 0 else b
        return None

    def fdiff(self, argindex=1):
        a, b = self.args
        if argindex == 1:
            return sp.Heaviside(self.direction * (a - b), 1)
        return sp.Heaviside(self.direction * (b - a), 0)

    def _eval_evalf(self, prec):
        return self.twin(*self.args)._eval_evalf(prec)


class maximum(_FirstExtreme):
    """``max(a, b)`` whose derivative goes to the first maximum on a tie."""

    def _eval_rewrite_as_Max(self, a, b, **kwargs):
        return sp.Max(a, b)


class minimum(_FirstExtreme):
    """``min(a, b)`` whose derivative goes to the first minimum on a tie."""

    direction, twin = -1, sp.Min

    def _eval_rewrite_as_Min(self, a, b, **kwargs):
        return sp.Min(a, b)


class softplus(sp.Function):
    """``log(1 + exp(x))``.

    >>> x = sp.Symbol("x"); softplus(x).diff(x)
    sigmoid(x)
    """

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.log(2)
        return None

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return sp.log(1 + sp.exp(x))

    def _eval_evalf(self, prec):
        x = self.args[0]._eval_evalf(prec)
        if x is None:
            return None
        return sp.log(1 + sp.exp(x))._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return True if self.args[0].is_real else None


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


def gelu_tanh(x):
    """GELU, tanh approximation: ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    c = sp.sqrt(2 / sp.pi)
    return x / 2 * (1 + sp.tanh(c * (x + sp.Rational(44715, 1000000) * x ** 3)))


def defined(name, definition, derivative):
    """The SymPy class of a smooth one-argument function given as a composition.

    ``definition(x)`` and ``derivative(x)`` are SymPy expressions in ``x``. The class
    stays one symbol in a derivation (``silu(z)``, not ``z sigma(z)``), differentiates
    to ``derivative``, rewrites to ``definition`` (``rewrite(sp.exp)``), is 0 at 0 when
    the definition is, and evaluates through the definition on the real line.

    >>> silu = defined("silu", lambda x: x * sigmoid(x),
    ...                lambda x: sigmoid(x) * (1 + x * (1 - sigmoid(x))))
    >>> x = sp.Symbol("x"); silu(x).diff(x) == sigmoid(x) * (1 + x * (1 - sigmoid(x)))
    True
    """

    def eval(cls, x):
        if x.is_zero:
            return definition(sp.S.Zero)
        return None

    def fdiff(self, argindex=1):
        return derivative(self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return definition(x).rewrite(sp.exp)

    def _eval_evalf(self, prec):
        x = self.args[0]._eval_evalf(prec)
        if x is None:
            return None
        return definition(x).evalf(prec_to_dps(prec))

    def _eval_is_real(self):
        return self.args[0].is_real

    return type(name, (sp.Function,), {
        # importable (and picklable) as derive.functions.<name>
        "nargs": 1, "eval": classmethod(eval), "fdiff": fdiff,
        "__module__": __name__.rpartition(".")[0],
        "__doc__": f"``{name}``, defined as a composition (see :func:`defined`).",
        "_eval_rewrite_as_exp": _eval_rewrite_as_exp, "_eval_evalf": _eval_evalf,
        "_eval_is_real": _eval_is_real, "definition": staticmethod(definition)})


class _RealAbs(sp.Function):
    """|u| of a real u while differentiating: d|u|/du = sign(u) (sign(0) = 0)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sp.sign(self.args[0])


def real_abs(x):
    """``|x|`` for real quantities, simplified as such: |exp(z)| is exp(z), not exp(re(z)).

    SymPy's symbols are complex, so ``Abs`` would bring re() and im() into a derivation
    of real inputs; its automatic simplification runs here on real stand-ins instead.
    """
    real = {s: sp.Dummy(s.name, real=True) for s in x.free_symbols
            if isinstance(s, sp.Symbol) and not s.is_real}
    return sp.Abs(x.xreplace(real)).xreplace({d: s for s, d in real.items()})


def real_diff(expr, symbol):
    """``d expr / d symbol`` with every quantity real.

    Graph inputs are real numbers; SymPy's symbols are complex by default, which makes
    d|x|/dx come out as ``(re(x) re'(x) + im(x) im'(x)) sign(x) / x``. Each |u| is
    differentiated as a real function instead: sign(u) u' (so |x|'(0) = sign(0) = 0, the
    stated convention).
    """
    if not expr.has(sp.Abs):  # only |x| differentiates differently over the reals
        return sp.diff(expr, symbol)
    real = expr.replace(sp.Abs, _RealAbs)
    return sp.diff(real, symbol).replace(_RealAbs, sp.Abs)
