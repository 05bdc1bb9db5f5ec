"""Random expression trees that print themselves as derivekit text and evaluate
themselves with mpmath (and torch), independently of derivekit.

A :class:`Term` is a variable, a constant or an :class:`Op` of Terms; the ops are one
table (printing, mpmath, torch, where the op is smooth and real). Trees are built
together with their point: every candidate node is evaluated at 40 digits and kept only
if it is inside its real domain, at least ``MARGIN`` from any kink (relu, abs, max/min
ties) and bounded, so the gradient exists and a finite difference finds it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import mpmath as mp

from fuzzgen import chance, pick

DPS = 40
MARGIN = mp.mpf("1e-3")   # distance kept from kinks and domain edges
BIG = mp.mpf("1e6")       # bound on every intermediate value
H = mp.mpf("1e-15")       # central-difference step at 40 digits


# -- the expression tree ------------------------------------------------------------------
def load_torch():
    import torch

    return torch


def _max3(a, b, c):
    torch = load_torch()
    return torch.maximum(torch.maximum(a, b), c)


def _min3(a, b, c):
    torch = load_torch()
    return torch.minimum(torch.minimum(a, b), c)


def _softplus(a):
    return mp.log1p(mp.exp(a)) if a < 30 else a + mp.log1p(mp.exp(-a))


def _pairwise_apart(*v):
    return all(abs(a - b) > MARGIN for i, a in enumerate(v) for b in v[i + 1:])


@dataclass(frozen=True)
class Op:
    """One row per operation: how it prints, evaluates (mpmath, torch) and where it is
    smooth and real (``smooth(*argument values)``, with MARGIN kept)."""

    name: str
    arity: int
    fmt: str                     # "{0}", "{1}" are the arguments, "{f}" the spelling
    mp: Callable
    torch: Callable
    smooth: Callable = lambda *v: True
    spellings: tuple = ()
    weight: int = 2


OPS = [
    Op("add", 2, "({0} + {1})", lambda a, b: a + b, lambda a, b: a + b, weight=3),
    Op("sub", 2, "({0} - {1})", lambda a, b: a - b, lambda a, b: a - b),
    Op("mul", 2, "({0}*{1})", lambda a, b: a * b, lambda a, b: a * b, weight=3),
    Op("div", 2, "({0}/{1})", lambda a, b: a / b, lambda a, b: a / b,
       lambda a, b: abs(b) > MARGIN),
    Op("neg", 1, "(-{0})", lambda a: -a, lambda a: -a, weight=1),
    Op("pow", 2, "({0})**({1})", lambda a, b: a ** b, lambda a, b: a ** b),
    Op("exp", 1, "exp({0})", mp.exp, lambda a: load_torch().exp(a), lambda a: a < 12),
    Op("log", 1, "{f}({0})", mp.log, lambda a: load_torch().log(a), lambda a: a > MARGIN,
       ("log", "ln")),
    Op("sqrt", 1, "sqrt({0})", mp.sqrt, lambda a: load_torch().sqrt(a), lambda a: a > MARGIN),
    Op("sigmoid", 1, "{f}({0})", lambda a: 1 / (1 + mp.exp(-a)),
       lambda a: load_torch().sigmoid(a), spellings=("sigmoid", "sigma")),
    Op("tanh", 1, "tanh({0})", mp.tanh, lambda a: load_torch().tanh(a)),
    Op("relu", 1, "relu({0})", lambda a: max(a, 0), lambda a: load_torch().relu(a),
       lambda a: abs(a) > MARGIN),
    Op("abs", 1, "abs({0})", abs, lambda a: load_torch().abs(a), lambda a: abs(a) > MARGIN),
    Op("sin", 1, "sin({0})", mp.sin, lambda a: load_torch().sin(a)),
    Op("cos", 1, "cos({0})", mp.cos, lambda a: load_torch().cos(a)),
    Op("softplus", 1, "softplus({0})", _softplus,
       lambda a: load_torch().nn.functional.softplus(a)),
    Op("max", 2, "{f}({0}, {1})", max, lambda a, b: load_torch().maximum(a, b), _pairwise_apart,
       ("max", "maximum")),
    Op("max3", 3, "max({0}, {1}, {2})", max,
       _max3, _pairwise_apart, weight=1),
    Op("min", 2, "min({0}, {1})", min, lambda a, b: load_torch().minimum(a, b), _pairwise_apart),
    Op("min3", 3, "min({0}, {1}, {2})", min,
       _min3, _pairwise_apart, weight=1),
    # a variable that cancels ("x/x + y"): its gradient is 0, and it was still asked for
    Op("cancel_div", 1, "({0}/{0})", lambda a: a / a, lambda a: a / a,
       lambda a: abs(a) > MARGIN, weight=1),
    Op("cancel_sub", 1, "({0} - {0})", lambda a: a - a, lambda a: a - a, weight=1),
]
OP = {op.name: op for op in OPS}
#: The documented functions (README, derive/scalar/parse.py FUNCTIONS) the generator covers.
DOCUMENTED = ("exp", "log", "sqrt", "sigmoid", "tanh", "relu", "max", "min", "abs", "sin",
              "cos", "softplus")
CANCELLING = ("cancel_div", "cancel_sub")


def weighted(names=None):
    """The ops to draw from (by name; default every op but the cancelling ones), each
    repeated by its weight."""
    chosen = [op for op in OPS if (op.name in names if names else op.name not in CANCELLING)]
    return [op for op in chosen for _ in range(op.weight)]


class Term:
    """A node of a random expression: a variable, a constant, or an Op of Terms."""

    def __init__(self, op, args=(), name=None, const=None, spelling=None):
        self.op, self.args, self.name, self.const = op, tuple(args), name, const
        self.spelling = spelling
        self.label = None  # the node name when written as ``nodes:``
        self.inline = False

    # printing
    def text(self, named=frozenset()):
        if self.label and self in named:
            return self.label
        if self.op == "var":
            return self.name
        if self.op == "const":
            return const_text(self.const)
        op = OP[self.op]
        parts = [a.text(named) for a in self.args]
        return op.fmt.format(*parts, f=self.spelling or op.name)

    # evaluation
    def mp(self, env, memo=None):
        memo = {} if memo is None else memo
        if id(self) not in memo:
            memo[id(self)] = self._mp(env, memo)
        return memo[id(self)]

    def _mp(self, env, memo):
        if self.op == "var":
            return env[self.name]
        if self.op == "const":
            return const_mp(self.const)
        return OP[self.op].mp(*[a.mp(env, memo) for a in self.args])

    def torch(self, leaves, memo=None):
        memo = {} if memo is None else memo
        if id(self) not in memo:
            if self.op == "var":
                memo[id(self)] = leaves[self.name]
            elif self.op == "const":
                torch = load_torch()
                memo[id(self)] = torch.tensor(float(const_mp(self.const)), dtype=torch.float64)
            else:
                memo[id(self)] = OP[self.op].torch(*[a.torch(leaves, memo) for a in self.args])
        return memo[id(self)]

    def walk(self, seen=None):
        """Every distinct term, children first."""
        seen = set() if seen is None else seen
        if id(self) in seen:
            return
        seen.add(id(self))
        for a in self.args:
            yield from a.walk(seen)
        yield self

    def variables(self):
        return list(dict.fromkeys(t.name for t in self.walk() if t.op == "var"))

    def __repr__(self):
        return f"Term({self.text()!r})"


def const_text(c):
    if isinstance(c, str):
        return c  # pi, or a float written as text
    if isinstance(c, float):
        return repr(c) if c >= 0 else f"({c!r})"
    if c.denominator == 1:
        return str(c.numerator) if c >= 0 else f"({c.numerator})"
    return f"({c.numerator}/{c.denominator})"


def const_mp(c):
    if c == "pi":
        return +mp.pi
    if isinstance(c, (str, float)):
        return mp.mpf(c)
    return mp.mpf(c.numerator) / c.denominator


# -- values -------------------------------------------------------------------------------
#: Variable names: plain first (shrinking goes there), then names SymPy or the decomposer
#: also use (``v1`` is the decomposer's own prefix, ``E``/``I``/``S``/``N`` are SymPy names).
NAMES = ["x", "y", "z", "w1", "x_2", "theta", "u", "v1", "E", "I", "S", "N", "gamma", "beta"]
DENOMINATORS = [2, 3, 4, 5, 7, 8, 16]
RADICALS = {"sqrt(2)": mp.sqrt(2), "sqrt(3)/2": mp.sqrt(3) / 2, "1 - sqrt(5)": 1 - mp.sqrt(5)}


def exact_value(src):
    """An int, a fraction "p/q" or (rarely) a radical: (value as given, mpmath value)."""
    kind = src.integer(0, 19)
    if kind < 6:
        n = src.integer(-3, 3)
        return n, mp.mpf(n)
    if kind < 19:
        q = pick(src, DENOMINATORS)
        p = src.integer(-4 * q, 4 * q)
        return (f"{p}/{q}" if p % q else p // q), mp.mpf(p) / q
    text = pick(src, list(RADICALS))
    return text, RADICALS[text]


def float_value(src):
    if chance(src, 70):
        v = src.integer(-4000, 4000) / 1000
    else:
        v = src.real(-4.0, 4.0)
    return v, mp.mpf(v)


def constant(src, mode):
    k = src.integer(0, 9)
    if k < 5:
        return Fraction(src.integer(1, 5))
    if k < 8:
        return Fraction(src.integer(-7, 7) or 1, pick(src, [2, 3, 4]))
    if mode == "float" and k == 8:
        return float(src.integer(-300, 300) / 100 or 0.5)
    return "pi"


# -- building a valid tree ----------------------------------------------------------------
@dataclass
class Context:
    src: object
    mode: str          # "exact" | "float"
    env: dict          # variable -> mpmath value
    names: list
    pool: list = field(default_factory=list)
    size: int = 0
    ops: list = field(default_factory=weighted)


def _finite_and_bounded(v):
    return mp.isfinite(v) and abs(v) <= BIG


def leaf(ctx):
    if chance(ctx.src, 80):
        return Term("var", name=pick(ctx.src, ctx.names))
    return Term("const", const=constant(ctx.src, ctx.mode))


def exponent(ctx, base_value, tree_arg):
    """An exponent for ``base**e``: a small int, a fraction, or any term when base > 0."""
    k = ctx.src.integer(0, 9)
    if k < 6 or base_value <= MARGIN:
        e = pick(ctx.src, [2, 3, -1, -2, 4, 5])
        if e < 0 and abs(base_value) <= MARGIN:
            e = 2
        return Term("const", const=Fraction(e))
    if k < 8:
        return Term("const", const=pick(ctx.src, [Fraction(1, 2), Fraction(3, 2),
                                                  Fraction(-1, 2), Fraction(1, 3)]))
    return tree_arg


def term(ctx, depth):
    """A random Term whose every node is smooth, real and bounded at ctx.env."""
    src = ctx.src
    if depth <= 0 or ctx.size > 40 or chance(src, 20):
        return leaf(ctx)
    if ctx.pool and chance(src, 10):
        return pick(src, ctx.pool)  # fan-out: one node used twice
    start = src.integer(0, len(ctx.ops) - 1)
    args = [term(ctx, depth - 1) for _ in range(2)]
    for i in range(len(ctx.ops)):
        made = _try(ctx, ctx.ops[(start + i) % len(ctx.ops)], args, depth)
        if made is not None:
            return made
    return args[0]


def forced(ctx, op, depth):
    """A term whose top is ``op``: random arguments while they fit its domain, else
    arguments exp(tanh(t)) + i, which fit every op (>= e^-1, pairwise 1 apart, bounded)."""
    for _ in range(6):
        made = _try(ctx, op, [term(ctx, depth - 1) for _ in range(op.arity)], depth)
        if made is not None:
            return made
    args = []
    for i in range(op.arity):
        t = Term("exp", [Term("tanh", [term(ctx, depth - 1)])])
        args.append(Term("add", [t, Term("const", const=Fraction(i))]) if i else t)
    return _try(ctx, op, args, depth) or args[0]


def _try(ctx, op, args, depth):
    args = list(args[:op.arity])
    while len(args) < op.arity:
        args.append(term(ctx, depth - 1))
    memo = {}
    values = [a.mp(ctx.env, memo) for a in args]
    if op.name == "pow":
        args[1] = exponent(ctx, values[0], args[1])
        values[1] = args[1].mp(ctx.env, memo)
        if values[0] <= MARGIN and (args[1].op != "const" or const_mp(args[1].const) % 1):
            return None
        if abs(values[1]) > 6:
            return None
    if not op.smooth(*values):
        return None
    spelling = pick(ctx.src, op.spellings) if op.spellings else None
    made = Term(op.name, args, spelling=spelling)
    with mp.workdps(DPS):
        v = made.mp(ctx.env)
    if not _finite_and_bounded(v):
        return None
    ctx.size += 1
    ctx.pool.append(made)
    return made


UNARY = [op for op in OPS if op.arity == 1 and op.name not in CANCELLING]


def chain(ctx, length, require=None, ops=None):
    """fk(...f2(f1(a))) of unary functions over a variable, maybe shifted or scaled (the
    textbook shape: sigmoid(sin(x)), log(sigmoid(2*x)), ...); ``require`` is one of them.
    ``ops`` (names, innermost first) fixes the functions."""
    src = ctx.src
    inner = Term("var", name=pick(src, ctx.names))
    if chance(src, 30):
        c = Term("const", const=constant(src, ctx.mode))
        inner = Term(pick(src, ["add", "mul"]), [inner, c])
    ops = [OP[n] for n in ops] if ops else [pick(src, UNARY) for _ in range(length)]
    if require:
        ops[src.integer(0, length - 1)] = OP[require]
    out = inner
    for op in ops:
        made = _try(ctx, op, [out, out, out], 1) if op.arity == 1 else forced(ctx, op, 1)
        out = made if made is not None else out
    return out


def combine(ctx, a, b):
    start = ctx.src.integer(0, len(ctx.ops) - 1)
    for i in range(len(ctx.ops)):
        op = ctx.ops[(start + i) % len(ctx.ops)]
        if op.arity == 2 and op.name != "pow":
            made = _try(ctx, op, [a, b], 1)
            if made is not None:
                return made
    return a


def point(src, mode, names):
    given, env = {}, {}
    for n in names:
        given[n], env[n] = exact_value(src) if mode == "exact" else float_value(src)
    return given, env


def variable_names(src):
    count = src.integer(1, 3)
    names = []
    for _ in range(count):
        name = NAMES[src.integer(0, 3)] if chance(src, 85) else pick(src, NAMES)
        if name not in names:
            names.append(name)
    return names
