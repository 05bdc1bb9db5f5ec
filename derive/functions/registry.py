r"""The function registry: one row per elementwise function, every fact about it.

A row (:class:`Function`) holds what a function IS everywhere in derivekit:

========== ===============================================================================
name       the name the parsers read; ``aliases`` are other spellings (``swish``)
sympy      its SymPy class (derivative in ``fdiff``) or, for a composition such as
           GELU, the builder of its expression
inputs     names of its elementwise arguments; ``params`` its numeric options
           (:class:`Param`: LeakyReLU's slope ``k``)
kink       the sentence a derivation states at its non-differentiable point
numpy      float64 NumPy form (stable for large |x|): ``evaluate`` and the answer checker
kernel     numba source: a template (``{x}``, ``{one}``, ``{zero}``, ``{tanh}``) or a hook
           ``(printer, *args) -> str`` (:func:`composed` prints a composition)
complex    the answer checker's complex double form (:mod:`derive.verify.floats`)
tex        LaTeX head (``\sigma``; ``<k>`` stands for the option k), typeset by reports/;
           None: SymPy's own notation. ``tex_commands``: commands a LaTeX answer may use
activation class name of its activation layer (``ReLU``), if it is one
torch      its reference in ``torch.nn.functional`` (name, keyword arguments), for tests
========== ===============================================================================

Rows with ``parse=False`` (SymPy's Heaviside, sign, Max, Min) appear in derivatives and
rewrites only; parsers do not offer them. A composition row (``sympy`` not a class) needs
only ``numpy``: its kernel, complex and LaTeX forms are those of what it is made of.
"""
from __future__ import annotations

import cmath
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import numpy as np
import sympy as sp

from derive.errors import InputError
from derive.functions import numeric as N
from derive.functions.classes import (defined, elu, gelu_tanh, leaky_relu, maximum, minimum, real_abs, relu,
                      sigmoid, softplus, step)


@dataclass(frozen=True)
class Param:
    """A numeric option of a function after its inputs (LeakyReLU's slope)."""

    name: str
    default: object
    what: str  # how messages name it: "leaky_relu's slope"


@dataclass(frozen=True)
class Function:
    """One elementwise function (see the module docstring for the columns)."""

    name: str
    sympy: Callable
    numpy: Callable
    kernel: object = None
    complex: Callable | None = None
    tex: str | None = None
    kink: str | None = None
    aliases: tuple = ()
    inputs: tuple = ("x",)
    params: tuple = ()
    tex_commands: tuple = ()
    activation: str | None = None
    torch: tuple | None = None
    parse: bool = True
    make: Callable | None = None  # how parsers build it, when not ``sympy(*args)``
    doc: str = ""

    @property
    def cls(self):
        """The SymPy class (None for a composition)."""
        return self.sympy if isinstance(self.sympy, type) else None

    @property
    def names(self):
        return (self.name,) + self.aliases

    def options(self, args=(), kwargs=None):
        """The numeric options as SymPy numbers: positional ``args``, then ``kwargs``,
        then the defaults (TypeError on too many or unknown ones)."""
        kwargs = dict(kwargs or {})
        if len(args) > len(self.params):
            raise TypeError(f"expected {len(self.inputs)} argument(s) and at most "
                            f"{len(self.params)} option(s), got {len(self.inputs) + len(args)}")
        unknown = set(kwargs) - {p.name for p in self.params[len(args):]}
        if unknown:
            raise TypeError(f"unexpected option {sorted(unknown)[0]!r}")
        values = list(args) + [kwargs.get(p.name, p.default) for p in self.params[len(args):]]
        return [constant(v, f"{self.name}'s {p.what}") for p, v in zip(self.params, values)]

    def build(self, *args, **kwargs):
        """The SymPy expression of this function of ``args`` (as the parsers read it)."""
        if self.make is not None:
            return self.make(*args, **kwargs)
        n = len(self.inputs)
        if len(args) < n:
            raise TypeError(f"expected {n} argument(s), got {len(args)}")
        return self.sympy(*args[:n], *self.options(args[n:], kwargs))

    def numeric(self, *arrays):
        """The NumPy form of ``arrays``, options not given at their defaults."""
        missing = self.params[max(len(arrays) - len(self.inputs), 0):]
        return self.numpy(*arrays, *[float(p.default) for p in missing])

    def at_kink(self, args):
        """True when ``args`` (numbers) sit exactly on the kink (0, or a tie)."""
        point = args[0] if len(self.inputs) == 1 else args[0] - args[1]
        return bool(point.is_zero)


def constant(value, what="a constant"):
    """An option (slope, margin, λ, ...) as a SymPy number: an int, a float, a SymPy
    expression, or a string holding one number (``"1/2"``, ``"1e-3"``, read without
    evaluating anything: options may come from a config file); InputError naming
    ``what`` otherwise."""
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, str):
        try:
            value = Fraction(value.strip())
        except (ValueError, ZeroDivisionError):
            raise InputError(f"{what} must be a number, got {value!r:.40}") from None
        return sp.Rational(value.numerator, value.denominator)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{what} must be a number, got {value!r:.40}")
    return sp.Integer(value) if isinstance(value, int) else sp.Float(value)


def composed(fn):
    """A kernel hook printing the composition ``fn(*args)`` (SiLU as x·σ(x))."""
    return lambda printer, *args: printer._print(fn(*args))


def _fold(fn):
    """max(a, b, c) = max(max(a, b), c); one argument is itself."""
    def build(*args):
        if not args:
            raise TypeError("expected at least 1 argument, got 0")
        out = args[0]
        for a in args[1:]:
            out = fn(out, a)
        return out
    return build


def _heaviside_kernel(p, x, h0=sp.S.Half):
    x = p._print(x)
    # H(0) is the stated convention (ReLU'(0) = 0 gives H(x, 0))
    if h0 == 0:
        return f"({p._one()} if {x} > 0 else {p._zero()})"
    if h0 == 1:
        return f"({p._one()} if {x} >= 0 else {p._zero()})"
    return f"({p._one()} if {x} > 0 else ({p._print(h0)} if {x} == 0 else {p._zero()}))"


def _variadic(name):
    return lambda p, *args: f"{name}(" + ", ".join(p._print(a) for a in args) + ")"


_ZERO_GRADIENT = ("The step function H (H(0) = 0) has zero gradient almost everywhere "
                  "(it is undefined at 0); no gradient flows through it.")


silu = defined("silu", lambda x: x * sigmoid(x),
               lambda x: sigmoid(x) * (1 + x * (1 - sigmoid(x))))
mish = defined("mish", lambda x: x * sp.tanh(softplus(x)),
               lambda x: sp.tanh(softplus(x)) + x * sigmoid(x) * (1 - sp.tanh(softplus(x)) ** 2))

FUNCTIONS = (
    # -- functions ------------------------------------------------------------------------------
    Function("exp", sp.exp, np.exp, "np.exp({x})", N.c_exp, tex_commands=(r"\exp",)),
    Function("log", sp.log, np.log, "np.log({x})", N.c_log, aliases=("ln",),
             tex_commands=(r"\log", r"\ln"), make=sp.log),
    Function("sqrt", sp.sqrt, np.sqrt),  # x**(1/2): a power to SymPy, np.sqrt to kernels
    Function("sin", sp.sin, np.sin, "np.sin({x})", cmath.sin, tex_commands=(r"\sin",)),
    Function("cos", sp.cos, np.cos, "np.cos({x})", cmath.cos, tex_commands=(r"\cos",)),
    Function("abs", sp.Abs, np.abs, "abs({x})", lambda z: complex(abs(z)),
             kink="|x|'(0) = 0 by convention (sign(0) = 0).", make=real_abs),
    Function("sign", sp.sign, np.sign, "np.sign({x})", N.real_only(N.r_sign),
             kink="sign(x) has zero gradient almost everywhere.", parse=False),
    Function("Heaviside", sp.Heaviside, N.heaviside, _heaviside_kernel,
             N.real_only(lambda v, h0=0.5: 1.0 if v > 0 else (0.0 if v < 0 else h0)),
             tex="H", kink=_ZERO_GRADIENT, params=(Param("h0", sp.S.Half, "value at 0"),),
             parse=False),
    Function("Max", sp.Max, N.fold(np.maximum), _variadic("max"),
             N.real_only(lambda *v: max(v)), parse=False, make=sp.Max,
             kink="max(a, b) routes the gradient to the first maximum on a tie.",
             inputs=("a", "b")),
    Function("Min", sp.Min, N.fold(np.minimum), _variadic("min"),
             N.real_only(lambda *v: min(v)), parse=False, make=sp.Min,
             kink="min(a, b) routes the gradient to the first minimum on a tie.",
             inputs=("a", "b")),
    Function("max", maximum, N.fold(np.maximum), "max({a}, {b})",
             N.real_only(lambda a, b: a if a >= b else b), r"\max",
             "max(a, b) routes the gradient to the first maximum on a tie.",
             aliases=("maximum",), inputs=("a", "b"), tex_commands=(r"\max",),
             make=_fold(maximum)),
    Function("min", minimum, N.fold(np.minimum), "min({a}, {b})",
             N.real_only(lambda a, b: a if a <= b else b), r"\min",
             "min(a, b) routes the gradient to the first minimum on a tie.",
             aliases=("minimum",), inputs=("a", "b"), tex_commands=(r"\min",),
             make=_fold(minimum)),
    # -- activations: each is also a layer (catalogue order) -----------------------------------
    Function("sigmoid", sigmoid, N.sigmoid, "({one}/({one} + np.exp(-({x}))))",
             N.real_only(N.r_sigmoid), r"\sigma", aliases=("sigma",),
             tex_commands=(r"\sigma",), activation="Sigmoid", torch=("sigmoid", {}),
             doc="``a = σ(x) = 1/(1 + e^{-x})``."),
    Function("tanh", sp.tanh, np.tanh, "{tanh}({x})", cmath.tanh, tex_commands=(r"\tanh",),
             activation="Tanh", torch=("tanh", {}), doc="``a = tanh(x)``."),
    Function("relu", relu, N.relu, "max({x}, {zero})", N.real_only(lambda v: max(v, 0.0)),
             r"\operatorname{ReLU}",
             "ReLU'(0) = 0 by convention (the subgradient 0 is used at the kink).",
             activation="ReLU", torch=("relu", {}), doc="``a = max(x, 0)`` with ReLU'(0) = 0."),
    Function("leaky_relu", leaky_relu, N.leaky_relu, "({x} if {x} > 0 else {k}*{x})",
             N.real_only(lambda v, k: v if v > 0 else k * v),
             r"\operatorname{LeakyReLU}_{<k>}",
             "LeakyReLU'(0) = k (the slope of the x <= 0 side), as in PyTorch.",
             aliases=("lrelu", "leakyrelu"), params=(Param("k", 0.01, "slope"),),
             activation="LeakyReLU", torch=("leaky_relu", {}),
             doc="``a = x if x > 0 else k x``; ``k = -1`` gives |x|."),
    Function("gelu", gelu_tanh, lambda x: 0.5 * x * (1 + np.tanh(
                 math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
             activation="GELU", torch=("gelu", {"approximate": "tanh"}),
             doc="GELU, tanh approximation ``x/2 (1 + tanh(√(2/π)(x + 0.044715 x³)))``."),
    Function("elu", elu, N.elu, "({x} if {x} > 0 else {alpha}*np.expm1({x}))",
             N.real_only(lambda v, a: v if v > 0 else a * math.expm1(v)),
             r"\operatorname{ELU}_{<alpha>}",
             "ELU'(0) = alpha (the x <= 0 branch), as in PyTorch.",
             params=(Param("alpha", 1.0, "alpha"),), activation="ELU", torch=("elu", {}),
             doc="``a = x if x > 0 else α(e^x - 1)``."),
    Function("softplus", softplus, N.softplus,
             # log(1 + e^x) = log1p(e^-|x|) + max(x, 0): no overflow for large |x|
             "(np.log1p(np.exp(-abs({x}))) + max({x}, {zero}))", N.real_only(N.r_softplus),
             r"\operatorname{softplus}", activation="Softplus", torch=("softplus", {}),
             doc="``a = log(1 + e^x)``."),
    Function("step", step, N.step, "({one} if {x} > 0 else {zero})",
             N.real_only(lambda v: 1.0 if v > 0 else 0.0), "H", _ZERO_GRADIENT,
             activation="Step", doc="``a = H(x)`` (H(0) = 0): zero gradient almost everywhere."),
    Function("silu", silu, lambda x: x * N.sigmoid(x), composed(silu.definition),
             N.real_only(lambda v: v * N.r_sigmoid(v)), r"\operatorname{SiLU}",
             aliases=("swish",), activation="SiLU", torch=("silu", {}),
             doc="``a = x σ(x)`` (SiLU, swish)."),
    Function("mish", mish, lambda x: x * np.tanh(N.softplus(x)), composed(mish.definition),
             N.real_only(lambda v: v * math.tanh(N.r_softplus(v))), r"\operatorname{Mish}",
             activation="Mish", torch=("mish", {}), doc="``a = x tanh(softplus(x))`` (Mish)."),
)

#: Conventions a derivation states, by SymPy class name (a Piecewise is not a function,
#: but a derivative through one states which branch it used).
CONVENTIONS = {r.cls.__name__: r.kink for r in FUNCTIONS if r.kink and r.cls}
CONVENTIONS["Piecewise"] = (
    "At a piecewise definition's break point the derivative of the branch that holds "
    "there is used (e.g. LeakyReLU'(0) and ELU'(0) take the x <= 0 branch, as PyTorch does).")

BY_NAME = {n: r for r in FUNCTIONS if r.parse for n in r.names}
BY_CLASS = {r.cls: r for r in FUNCTIONS if r.cls}
ACTIVATIONS = tuple(r for r in FUNCTIONS if r.activation)


def lookup(name):
    """The row a parser reads as ``name`` (``sigma`` -> sigmoid), or None."""
    return BY_NAME.get(name)


def row_of(expr):
    """The row of a SymPy function application or class, or None."""
    return BY_CLASS.get(expr if isinstance(expr, type) else type(expr))


def parser_table():
    """Every name a parser accepts -> its builder (``parse("relu(x)")``)."""
    return {n: r.build for n, r in BY_NAME.items()}


def kinks(expr, subs):
    """Conventions that apply where ``expr`` sits on a kink once ``subs`` are put in.

    Returns the CONVENTIONS keys of the functions in ``expr`` whose arguments, with the
    values ``subs`` substituted, are exactly at a non-differentiable point (ReLU at 0, a
    tie in max, |0|).
    """
    found = []
    kinked = tuple(r.cls for r in FUNCTIONS if r.kink and r.cls)
    for f in expr.atoms(*kinked):
        if row_of(f).at_kink([a.xreplace(subs) for a in f.args]):
            found.append(type(f).__name__)
    return sorted(set(found))
