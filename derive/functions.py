"""SymPy functions the courses use that SymPy lacks, each with its convention stated.

* ``sigmoid(x) = 1 / (1 + exp(-x))``, with sigma' = sigma (1 - sigma) so derivatives
  stay in terms of sigma (as exam answers are written).
* ``relu(x) = max(x, 0)``; ReLU'(0) = 0 by convention (``Heaviside(x, 0)``).
* ``maximum(a, b)``: the derivative routes to the first maximum on a tie, as max-pool
  does (d/da = H(a - b) with H(0) = 1, d/db = H(b - a) with H(0) = 0); ``minimum(a, b)``
  likewise routes to the first minimum.
* ``|x|``: inputs are real, so d|x|/dx = sign(x) with sign(0) = 0 (:func:`real_diff`).

Every numeric evaluation (``evalf``) of these functions stays on the real line: a
rewrite into complex exponentials would leave round-off imaginary parts that make
SymPy's zero tests lie (sigmoid(sin(x)) once simplified to 0 that way).
"""
import sympy as sp

#: Conventions a derivation states when it meets a non-differentiable point.
CONVENTIONS = {
    "relu": "ReLU'(0) = 0 by convention (the subgradient 0 is used at the kink).",
    "maximum": "max(a, b) routes the gradient to the first maximum on a tie.",
    "Abs": "|x|'(0) = 0 by convention (sign(0) = 0).",
    "Max": "max(a, b) routes the gradient to the first maximum on a tie.",
    "Min": "min(a, b) routes the gradient to the first minimum on a tie.",
    "minimum": "min(a, b) routes the gradient to the first minimum on a tie.",
}


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

    def _latex(self, printer, exp=None):
        text = r"\sigma\left(%s\right)" % printer._print(self.args[0])
        return text if exp is None else r"%s^{%s}" % (text, exp)


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

    def _latex(self, printer, exp=None):
        text = r"\operatorname{ReLU}\left(%s\right)" % printer._print(self.args[0])
        return text if exp is None else r"%s^{%s}" % (text, exp)


class _FirstExtreme(sp.Function):
    """max or min of two values whose derivative goes to the FIRST extreme on a tie.

    ``direction`` is +1 for max, -1 for min: d/da = H(±(a - b)) with H(0) = 1 and
    d/db = H(±(b - a)) with H(0) = 0, so a tie routes everything to ``a``.
    """

    nargs = 2
    direction = 1
    twin = sp.Max  # SymPy's own function, for numeric evaluation and rewrites
    tex = r"\max"

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

    def _latex(self, printer, exp=None):
        text = r"%s\left(%s, %s\right)" % ((self.tex,)
                                             + tuple(printer._print(a) for a in self.args))
        return text if exp is None else r"%s^{%s}" % (text, exp)


class maximum(_FirstExtreme):
    """``max(a, b)`` whose derivative goes to the first maximum on a tie."""

    def _eval_rewrite_as_Max(self, a, b, **kwargs):
        return sp.Max(a, b)


class minimum(_FirstExtreme):
    """``min(a, b)`` whose derivative goes to the first minimum on a tie."""

    direction, twin, tex = -1, sp.Min, r"\min"

    def _eval_rewrite_as_Min(self, a, b, **kwargs):
        return sp.Min(a, b)


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


def softplus(x):
    """``log(1 + exp(x))``, composed (its derivative is sigmoid)."""
    return sp.log(1 + sp.exp(x))


def kinks(expr, subs):
    """Conventions that apply where ``expr`` sits on a kink once ``subs`` are put in.

    Returns the CONVENTIONS keys of the functions in ``expr`` whose argument, with the
    values ``subs`` substituted, is exactly at a non-differentiable point (ReLU at 0, a
    tie in max, |0|).
    """
    found = []
    for f in expr.atoms(relu, maximum, minimum, sp.Abs, sp.Max, sp.Min):
        args = [a.xreplace(subs) for a in f.args]
        at_kink = args[0].is_zero if len(args) == 1 else (args[0] - args[1]).is_zero
        if at_kink:
            found.append(type(f).__name__)
    return sorted(set(found))
