"""Random scalar graphs for fuzzing derive.grad, and what the fuzzers share.

One generator serves two drivers: the hypothesis suite (tests/test_fuzz_*.py, which
shrinks a failure to a small case) and the long runner (bench/fuzz.py, plain seeded
``random``). Generators take a *source* with ``integer(lo, hi)`` and ``real(lo, hi)``;
:class:`RandomSource` answers from ``random.Random``, :class:`DrawSource` from a
hypothesis ``draw``.

A scalar case is a :class:`Term` tree that prints itself as the text derivekit reads and
evaluates itself with mpmath at 40 digits (and with torch's autograd, when installed),
independently of derivekit. Points are chosen while the tree is built, so every
function is inside its real domain and every kink (relu, abs, max/min ties) is at least
``MARGIN`` away: the gradient exists and a finite difference finds it.

Every check returns an :class:`Outcome` instead of raising, so a driver can count
mismatches, crashes (an unexpected exception), refusals (a DeriveError) and slow cases.
"""
from __future__ import annotations

import os
import random
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import mpmath as mp

#: No input may take longer than this to be answered or refused (issue 20, "Must show").
TIME_LIMIT = 10.0
DPS = 40
MARGIN = mp.mpf("1e-3")   # distance kept from kinks and domain edges
BIG = mp.mpf("1e6")       # bound on every intermediate value
H = mp.mpf("1e-15")       # central-difference step at 40 digits


# -- sources of randomness ----------------------------------------------------------------
class RandomSource:
    """Choices from ``random.Random(seed)`` (the long runner)."""

    def __init__(self, seed):
        self.rng = random.Random(seed)

    def integer(self, lo, hi):
        return self.rng.randint(lo, hi)

    def real(self, lo, hi):
        return self.rng.uniform(lo, hi)


class DrawSource:
    """Choices from a hypothesis ``draw`` (shrinkable)."""

    def __init__(self, draw):
        from hypothesis import strategies as st

        self.draw, self.st = draw, st

    def integer(self, lo, hi):
        return self.draw(self.st.integers(lo, hi))

    def real(self, lo, hi):
        return self.draw(self.st.floats(lo, hi, allow_nan=False, allow_infinity=False))


def pick(src, items):
    return items[src.integer(0, len(items) - 1)]


def chance(src, percent):
    return src.integer(0, 99) < percent


# -- profiles ----------------------------------------------------------------------------
def examples(fast, factor=None):
    """``fast`` cases per test in the CI profile; ``factor`` times as many (default 50,
    or $DERIVEKIT_FUZZ_FACTOR) when DERIVEKIT_FUZZ=long (pytest --fuzz-long)."""
    if os.environ.get("DERIVEKIT_FUZZ") != "long":
        return fast
    return fast * (factor or int(os.environ.get("DERIVEKIT_FUZZ_FACTOR", "50")))


# -- outcomes and time limits -------------------------------------------------------------
@dataclass
class Outcome:
    """What one case gave: status ok | mismatch | crash | refused | slow | oracle."""

    kind: str
    status: str
    repro: str
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self):
        return self.status == "ok"

    def report(self):
        return f"[{self.kind}] {self.status} ({self.seconds:.2f} s): {self.repro}\n  {self.detail}"


class FuzzFailure(AssertionError):
    """A case that did not give the right answer; one subclass per status, so hypothesis
    reports each kind of failure of a test separately."""


class Mismatch(FuzzFailure):
    pass


class Crash(FuzzFailure):
    pass


class Refused(FuzzFailure):
    pass


class Slow(FuzzFailure):
    pass


class OracleDisagreement(FuzzFailure):
    pass


FAILURES = {"mismatch": Mismatch, "crash": Crash, "refused": Refused, "slow": Slow,
            "oracle": OracleDisagreement}


def expect_ok(outcome):
    """Raise the outcome's failure class unless it is ok."""
    if not outcome.ok:
        raise FAILURES[outcome.status](outcome.report())
    return outcome


class CaseTimeout(BaseException):
    """Raised by :func:`time_limit` (a BaseException, so no ``except Exception`` eats it)."""


@contextmanager
def time_limit(seconds):
    """Interrupt the block after ``seconds`` with CaseTimeout (SIGALRM; main thread)."""
    if seconds is None or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise CaseTimeout()

    try:
        previous = signal.signal(signal.SIGALRM, on_alarm)
    except ValueError:  # not the main thread: no limit here (the runner has its own)
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def timed(kind, repro, body, limit=TIME_LIMIT):
    """Run ``body()`` -> (status, detail) under the time limit; unexpected exceptions are
    crashes, DeriveErrors refusals."""
    from derive.errors import DeriveError

    start = time.perf_counter()
    try:
        with time_limit(limit):
            status, detail = body()
    except CaseTimeout:
        status, detail = "slow", f"no answer within {limit:g} s"
    except DeriveError as exc:
        status, detail = "refused", f"{type(exc).__name__}: {exc}"
    except RecursionError:
        status, detail = "crash", "RecursionError"
    except Exception as exc:  # noqa: BLE001 -- an unexpected exception is the finding
        status, detail = "crash", f"{type(exc).__name__}: {str(exc)[:300]}"
    return Outcome(kind, status, repro, detail, time.perf_counter() - start)


# -- the expression tree ------------------------------------------------------------------
def _torch():
    import torch

    return torch


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
    Op("exp", 1, "exp({0})", mp.exp, lambda a: _torch().exp(a), lambda a: a < 12),
    Op("log", 1, "{f}({0})", mp.log, lambda a: _torch().log(a), lambda a: a > MARGIN,
       ("log", "ln")),
    Op("sqrt", 1, "sqrt({0})", mp.sqrt, lambda a: _torch().sqrt(a), lambda a: a > MARGIN),
    Op("sigmoid", 1, "{f}({0})", lambda a: 1 / (1 + mp.exp(-a)),
       lambda a: _torch().sigmoid(a), spellings=("sigmoid", "sigma")),
    Op("tanh", 1, "tanh({0})", mp.tanh, lambda a: _torch().tanh(a)),
    Op("relu", 1, "relu({0})", lambda a: max(a, 0), lambda a: _torch().relu(a),
       lambda a: abs(a) > MARGIN),
    Op("abs", 1, "abs({0})", abs, lambda a: _torch().abs(a), lambda a: abs(a) > MARGIN),
    Op("sin", 1, "sin({0})", mp.sin, lambda a: _torch().sin(a)),
    Op("cos", 1, "cos({0})", mp.cos, lambda a: _torch().cos(a)),
    Op("softplus", 1, "softplus({0})", _softplus,
       lambda a: _torch().nn.functional.softplus(a)),
    Op("max", 2, "{f}({0}, {1})", max, lambda a, b: _torch().maximum(a, b), _pairwise_apart,
       ("max", "maximum")),
    Op("max3", 3, "max({0}, {1}, {2})", max,
       lambda a, b, c: _torch().maximum(_torch().maximum(a, b), c), _pairwise_apart, weight=1),
    Op("min", 2, "min({0}, {1})", min, lambda a, b: _torch().minimum(a, b), _pairwise_apart),
    Op("min3", 3, "min({0}, {1}, {2})", min,
       lambda a, b, c: _torch().minimum(_torch().minimum(a, b), c), _pairwise_apart, weight=1),
    # a variable that cancels ("x/x + y"): its gradient is 0, and it was still asked for
    Op("cancel_div", 1, "({0}/{0})", lambda a: a / a, lambda a: a / a,
       lambda a: abs(a) > MARGIN, weight=1),
    Op("cancel_sub", 1, "({0} - {0})", lambda a: a - a, lambda a: a - a, weight=1),
]
OP = {op.name: op for op in OPS}
#: The documented functions (README, derive/parse.py FUNCTIONS) the generator covers.
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
                torch = _torch()
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


@dataclass
class ScalarCase:
    """A random graph, a point and how it is handed to derivekit."""

    root: Term
    mode: str                # exact | float
    form: str                # expression | nodes | problem
    given: dict              # variable -> value as given to derivekit
    env: dict                # variable -> mpmath value
    wrt: list

    def expression(self):
        return self.root.text()

    def __repr__(self):
        return self.repro()

    def assignments(self):
        """``{name: definition}`` in order: every op term a node unless drawn inline."""
        named, out = set(), {}
        for t in self.root.walk():
            if t.op in ("var", "const") or (t.inline and t is not self.root):
                continue
            t.label = f"h{len(out) + 1}"
            out[t.label] = t.text(named)
            named.add(t)
        return out

    def spec(self):
        """The problem-file mapping (``derivekit solve``)."""
        nodes = self.assignments()
        return {"title": "fuzz", "nodes": nodes, "output": list(nodes)[-1],
                "wrt": list(self.wrt), "values": dict(self.given)}

    def at_text(self):
        return ",".join(f"{k}={v}" for k, v in self.given.items())

    def repro(self):
        if self.form == "expression":
            return (f'derivekit grad "{self.expression()}" --wrt {",".join(self.wrt)} '
                    f'--at {self.at_text()}')
        if self.form == "nodes":
            return (f"dv.grad({self.assignments()!r}, wrt={self.wrt!r}, "
                    f"at={self.given!r})")
        return f"dv.solve({self.spec()!r})"

    def derive(self):
        import yaml

        import derive as dv

        if self.form == "expression":
            return dv.grad(self.expression(), wrt=self.wrt, at=dict(self.given))
        if self.form == "nodes":
            return dv.grad(self.assignments(), wrt=self.wrt, at=dict(self.given))
        return dv.solve(problem_file(yaml.safe_dump(self.spec(), sort_keys=False)))[0]


UNARY = [op for op in OPS if op.arity == 1 and op.name not in CANCELLING]


def chain(ctx, length, require=None, ops=None):
    """fk(...f2(f1(a))) of unary functions over a variable, maybe shifted or scaled (the
    textbook shape: sigmoid(sin(x)), log(sigmoid(2*x)), ...); ``require`` is one of them.
    ``ops`` (names, innermost first) fixes the functions."""
    src = ctx.src
    inner = Term("var", name=pick(src, ctx.names))
    if chance(src, 30):
        inner = Term(pick(src, ["add", "mul"]), [inner, Term("const", const=constant(src,
                                                                                  ctx.mode))])
    ops = [OP[n] for n in ops] if ops else [pick(src, UNARY) for _ in range(length)]
    if require:
        ops[src.integer(0, length - 1)] = OP[require]
    out = inner
    for op in ops:
        made = _try(ctx, op, [out, out, out], 1) if op.arity == 1 else forced(ctx, op, 1)
        out = made if made is not None else out
    return out


def _combine(ctx, a, b):
    start = ctx.src.integer(0, len(ctx.ops) - 1)
    for i in range(len(ctx.ops)):
        op = ctx.ops[(start + i) % len(ctx.ops)]
        if op.arity == 2 and op.name != "pow":
            made = _try(ctx, op, [a, b], 1)
            if made is not None:
                return made
    return a


def problem_file(text, name="problem.yaml"):
    """Write ``text`` to a file in this process's scratch folder; its path."""
    global _SCRATCH
    if _SCRATCH is None:
        import tempfile

        _SCRATCH = tempfile.mkdtemp(prefix="derivekit-fuzz-")
    path = os.path.join(_SCRATCH, name)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


_SCRATCH = None


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


def scalar_case(src, mode=None, form=None, depth=None, require=None, ops=None, chain_of=None):
    """A random smooth scalar case (``mode``/``form`` drawn when not given), with an
    ``require`` node somewhere near the top when given, drawing from ``ops`` (names);
    ``chain_of`` (function names, innermost first) asks for exactly that composition."""
    mode = mode or pick(src, ["exact", "float"])
    form = form or pick(src, ["expression", "nodes", "problem"])
    names = variable_names(src)
    given, env = point(src, mode, names)
    depth = depth if depth is not None else src.integer(1, 4)
    with mp.workdps(DPS):
        ctx = Context(src, mode, env, names, ops=weighted(ops))
        if chain_of:
            root = chain(ctx, len(chain_of), ops=chain_of)
        elif chance(src, 35):
            root = chain(ctx, src.integer(1, 3), require)
        elif require:
            root = forced(ctx, OP[require], depth)
            if chance(src, 60):
                root = _combine(ctx, root, term(ctx, depth - 1))
        else:
            root = term(ctx, depth)
        if root.op in ("var", "const") or not root.variables():
            root = Term("add", [root, Term("var", name=names[-1])])
    for t in root.walk():
        t.inline = form != "expression" and chance(src, 25)
    used = root.variables()
    return ScalarCase(root, mode, form, {n: given[n] for n in used},
                      {n: env[n] for n in used}, used or names[:1])


# -- oracles ------------------------------------------------------------------------------
def mp_gradient(root, env, name):
    """d root / d name by a central difference at 40 digits."""
    with mp.workdps(DPS):
        def at(delta):
            shifted = dict(env)
            shifted[name] = env[name] + delta
            return root.mp(shifted)
        return (at(H) - at(-H)) / (2 * H)


def mp_scale(root, env, name):
    """Sum over paths of |products of local partials| (the size of the terms a float
    evaluation of the gradient adds up: the floor of its rounding error)."""
    with mp.workdps(DPS):
        memo, out = {}, {}
        for t in root.walk():
            if t.op == "var":
                out[id(t)] = mp.mpf(t.name == name)
            elif t.op == "const":
                out[id(t)] = mp.mpf(0)
            else:
                vals = [a.mp(env, memo) for a in t.args]
                f = OP[t.op].mp
                out[id(t)] = sum(abs(_local_partial(f, vals, i)) * out[id(a)]
                                 for i, a in enumerate(t.args))
        return out[id(root)]


def _local_partial(f, vals, i):
    def along(delta):
        v = list(vals)
        v[i] += delta
        return f(*v)
    return (along(H) - along(-H)) / (2 * H)


def torch_gradients(root, env, names):
    torch = _torch()
    leaves = {n: torch.tensor(float(env[n]), dtype=torch.float64, requires_grad=True)
              for n in names}
    out = root.torch(leaves)
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        return {n: 0.0 for n in names}
    out.backward()
    return {n: 0.0 if leaves[n].grad is None else float(leaves[n].grad) for n in names}


def as_real(value, digits=30):
    """A derivekit value as an mpmath number; raises ValueError if it is not real."""
    import sympy as sp

    if value is None:
        raise ValueError("no value")
    v = sp.N(sp.sympify(value), digits)
    if not v.is_number:
        raise ValueError(f"not a number: {value}")
    c = complex(v)
    # a tiny imaginary part is SymPy's evalf noise (it rewrites some functions through
    # complex exponentials), not part of the value
    if abs(c.imag) > 1e-20 * (1 + abs(c.real)) or c.real != c.real or \
            abs(c.real) == float("inf"):
        raise ValueError(f"not a finite real number: {value}")
    return mp.mpf(str(sp.re(v))) if not v.is_real else mp.mpf(str(v))


def tolerance(mode, want, scale):
    if mode == "exact":
        return mp.mpf("1e-12") * abs(want) + mp.mpf("1e-20") * (1 + scale)
    return mp.mpf("1e-7") * abs(want) + mp.mpf("1e-10") * (1 + scale)


def check_scalar(case, use_torch=False, limit=TIME_LIMIT):
    """derive.grad on ``case`` against mpmath (and torch): an Outcome."""

    def body():
        d = case.derive()
        problems = []
        with mp.workdps(DPS):
            want_f = case.root.mp(case.env)
            scale_f = max(abs(t.mp(case.env)) for t in case.root.walk())
            value = next((n.value for n in d.nodes if n.name == d.output), None)
            try:
                got_f = as_real(value)
            except ValueError as exc:
                got_f, value = None, f"{value} ({exc})"
            if got_f is None or abs(got_f - want_f) > tolerance(case.mode, want_f, scale_f):
                problems.append(f"value: expected {mp.nstr(want_f, 12)}, got {value}")
        for name in case.wrt:
            try:
                got = as_real(d.gradients[name].value)
            except (KeyError, ValueError) as exc:
                problems.append(f"d/d{name}: expected {_n(mp_gradient(case.root, case.env, name))}"
                                f", got {d.gradients.get(name)!r:.200} ({exc})")
                continue
            want = mp_gradient(case.root, case.env, name)
            if abs(got - want) > tolerance(case.mode, want, mp_scale(case.root, case.env, name)):
                problems.append(f"d/d{name}: expected {_n(want)}, got {_n(got)} "
                                f"(derivekit: {d.gradients[name].value})")
        if use_torch and not problems:
            problems += _torch_disagreements(case)
        if problems:
            return ("oracle" if problems[0].startswith("oracle") else "mismatch",
                    "; ".join(problems))
        return "ok", ""

    return timed("scalar", case.repro(), body, limit)


def _torch_disagreements(case):
    """torch autograd against the mpmath difference: they must agree (an oracle check)."""
    got = torch_gradients(case.root, case.env, case.wrt)
    out = []
    for name in case.wrt:
        want = mp_gradient(case.root, case.env, name)
        tol = tolerance("float", want, mp_scale(case.root, case.env, name))
        if abs(mp.mpf(got[name]) - want) > 10 * tol:
            out.append(f"oracle: torch d/d{name} = {got[name]!r}, mpmath {_n(want)}")
    return out


def _n(v):
    return mp.nstr(v, 12)


# -- points outside the real domain, and kinks ---------------------------------------------
#: Out-of-domain constructions: name -> (text of the bad node from the text of a term
#: whose value is negative or zero, whether it needs an exact zero).
OUT_OF_DOMAIN = {
    "sqrt of a negative": ("sqrt({0})", False),
    "log of a negative": ("log({0})", False),
    "fractional power of a negative": ("({0})**(1/2)", False),
    "fractional power 3/2 of a negative": ("({0})**(3/2)", False),
    "log of zero": ("log({0})", True),
    "division by zero": ("(1/{0})", True),
    "negative power of zero": ("({0})**(-2)", True),
    "sqrt at zero (infinite slope)": ("sqrt({0})", True),
}
#: Smooth wrappers an out-of-domain or kink node is embedded in: (text with {0} that node
#: and {1} a smooth term, its mpmath value).
WRAPPERS = [
    ("{0}", lambda a, b: a),
    ("({0} + {1})", lambda a, b: a + b),
    ("({0}*{1})", lambda a, b: a * b),
    ("sin(({0} + {1}))", lambda a, b: mp.sin(a + b)),
    # not around out-of-domain nodes: these can map a complex value back to a real one
    # (tanh(log(-a)) = tanh(log(a)), sqrt(-a)**2 = -a)
    ("tanh({0})", lambda a, b: mp.tanh(a)),
    ("(exp({0})*{1})", lambda a, b: mp.exp(a) * b),
    ("sigmoid({0})", lambda a, b: 1 / (1 + mp.exp(-a))),
    ("(({0})**2 + {1})", lambda a, b: a ** 2 + b),
]
KEEPS_COMPLEX = 4  # the first four keep a complex value complex


class Raw(Term):
    """A term given as text around other terms (for the out-of-domain and kink nodes,
    which are evaluated by their own oracle, not by mpmath through the tree)."""

    def __init__(self, fmt, args, value=None):
        super().__init__("raw", args)
        self.fmt, self.value = fmt, value

    def text(self, named=frozenset()):
        return self.fmt.format(*[a.text(named) for a in self.args])

    def _mp(self, env, memo):
        return self.value(*[a.mp(env, memo) for a in self.args])


def rational_point(src, mode):
    """A point with a rational (exact) or float value: (value as given, the constant)."""
    if mode == "float":
        v = src.integer(-3000, 3000) / 1000
        return v, v
    q = pick(src, DENOMINATORS)
    p = src.integer(-3 * q, 3 * q)
    return (f"{p}/{q}" if p % q else p // q), Fraction(p, q)


def _shifted(var, c):
    """``(var - c)``, exactly zero at var = c."""
    if c == 0:
        return Term("var", name=var)
    return Raw("({0} - " + const_text(c) + ")", [Term("var", name=var)])


@dataclass
class SpecialCase(ScalarCase):
    """An out-of-domain or kink case; ``info`` names the construction."""

    info: str = ""
    sides: dict = field(default_factory=dict)   # kink: variable -> left | right | average


def _smooth_context(src, mode, names):
    given, env = point(src, mode, names)
    return Context(src, mode, env, names), given


def ood_case(src, mode=None, form=None, info=None):
    """A smooth graph with one node outside the real domain (or at an infinite slope)."""
    mode = mode or pick(src, ["exact", "float"])
    form = form or pick(src, ["expression", "nodes", "problem"])
    names = variable_names(src)
    info = info or pick(src, list(OUT_OF_DOMAIN))
    fmt, zero = OUT_OF_DOMAIN[info]
    with mp.workdps(DPS):
        ctx, given = _smooth_context(src, mode, names)
        if zero:
            given[names[0]], c = rational_point(src, mode)
            ctx.env[names[0]] = mp.mpf(given[names[0]]) if mode == "float" else const_mp(c)
            inner = _shifted(names[0], c)
        else:
            t = term(ctx, src.integer(0, 3))
            v = t.mp(ctx.env)
            c = Fraction(int(mp.ceil(v)) + src.integer(1, 3))
            inner = Raw("({0} - " + const_text(c) + ")", [t])
        root = wrap(src, ctx, Raw(fmt, [inner]), keep_complex=True)
    return _special(root, mode, form, given, ctx.env, names, info)


def wrap(src, ctx, node, keep_complex=False):
    """``node`` inside a random smooth wrapper (with a smooth term when it takes one)."""
    fmt, value = pick(src, WRAPPERS[:KEEPS_COMPLEX] if keep_complex else WRAPPERS)
    args = [node, term(ctx, src.integer(0, 2))] if "{1}" in fmt else [node]
    return Raw(fmt, args, value=lambda *v: value(*v, None) if len(v) == 1 else value(*v))


def _special(root, mode, form, given, env, names, info, sides=None):
    for t in root.walk():
        t.inline = isinstance(t, Raw)  # the special node and its wrapper: one assignment
    used = [n for n in root.variables() if n in given] or names[:1]
    return SpecialCase(root, mode, form, {n: given[n] for n in used},
                       {n: env[n] for n in used}, used, info=info, sides=sides or {})


def check_out_of_domain(case, limit=TIME_LIMIT):
    """derivekit must refuse with a one-line DeriveError: no complex number, no crash."""
    from derive.errors import DeriveError

    def body():
        try:
            d = case.derive()
        except DeriveError as exc:
            if "\n" in str(exc).strip():
                return "mismatch", f"refused, but in {len(str(exc).splitlines())} lines: {exc}"
            return "ok", str(exc)
        got = {n: getattr(d.gradients.get(n), "value", None) for n in case.wrt}
        value = next((x.value for x in d.nodes if x.name == d.output), None)
        return "mismatch", (f"{case.info}: answered instead of refusing: value {value}, "
                            f"gradients {got}")

    return timed("out-of-domain", case.repro(), body, limit)


#: Kinks at the point: (text with {v} the variable and {c} the kink, the side whose slope
#: the stated convention picks for the variable).
KINKS = {
    "relu": ("relu(({v} - {c}))", "left"),      # ReLU'(0) = 0
    "abs": ("abs(({v} - {c}))", "average"),     # |x|'(0) = 0
    "max first": ("max({v}, {c})", "right"),    # routes to the first maximum
    "max second": ("max({c}, {v})", "left"),
    "min first": ("min({v}, {c})", "left"),     # routes to the first minimum
    "min second": ("min({c}, {v})", "right"),
}


def kink_case(src, mode=None, form=None, info=None):
    """A smooth graph with one kink exactly at the point, used once."""
    mode = mode or pick(src, ["exact", "float"])
    form = form or pick(src, ["expression", "nodes", "problem"])
    names = variable_names(src)
    info = info or pick(src, list(KINKS))
    fmt, side = KINKS[info]
    with mp.workdps(DPS):
        ctx, given = _smooth_context(src, mode, names)
        var = names[0]
        given[var], c = rational_point(src, mode)
        ctx.env[var] = mp.mpf(given[var]) if mode == "float" else const_mp(c)
        op = info.split()[0]
        kink = Raw(fmt.format(v="{0}", c=const_text(c)), [Term("var", name=var)],
                   value=_kink_value(op, c))
        root = wrap(src, ctx, kink)
    return _special(root, mode, form, given, ctx.env, names, info, {var: side})


def _kink_value(op, c):
    c = const_mp(c) if not isinstance(c, float) else mp.mpf(c)
    return {"relu": lambda a: max(a - c, 0), "abs": lambda a: abs(a - c),
            "max": lambda a: max(a, c), "min": lambda a: min(a, c)}[op]


def one_sided(root, env, name, side):
    """The slope of ``root`` in ``name`` from one side (second order), or both averaged."""
    if side == "average":
        return (one_sided(root, env, name, "left") + one_sided(root, env, name, "right")) / 2
    sign = 1 if side == "right" else -1
    with mp.workdps(DPS):
        def at(k):
            shifted = dict(env)
            shifted[name] = env[name] + sign * k * H
            return root.mp(shifted)
        return sign * (-3 * at(0) + 4 * at(1) - at(2)) / (2 * H)


def check_kink(case, limit=TIME_LIMIT):
    """At a kink the stated convention gives the slope (ReLU'(0) = 0, |x|'(0) = 0, max/min
    route to the first argument), and the derivation says it used a convention."""

    def body():
        d = case.derive()
        problems = []
        for name in case.wrt:
            side = case.sides.get(name)
            want = (one_sided(case.root, case.env, name, side) if side
                    else mp_gradient(case.root, case.env, name))
            try:
                got = as_real(d.gradients[name].value)
            except (KeyError, ValueError) as exc:
                problems.append(f"d/d{name}: expected {_n(want)}, got "
                                f"{d.gradients.get(name)!r:.200} ({exc})")
                continue
            if abs(got - want) > tolerance(case.mode, want, mp_scale_raw(case, name)):
                problems.append(f"d/d{name} ({case.info} convention): expected {_n(want)}, "
                                f"got {_n(got)}")
        if not any("convention" in n or "routes" in n for n in d.notes):
            problems.append(f"no convention stated in the notes ({d.notes})")
        return ("mismatch", "; ".join(problems)) if problems else ("ok", "")

    return timed("kink", case.repro(), body, limit)


def mp_scale_raw(case, name):
    """A rounding scale for trees with Raw nodes: the largest value in the tree."""
    with mp.workdps(DPS):
        return max(abs(t.mp(case.env)) for t in case.root.walk()) * 10
