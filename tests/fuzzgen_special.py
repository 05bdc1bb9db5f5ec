"""Points where there is no real gradient, and kinks where a convention gives one.

An out-of-domain case puts one node outside the real domain (sqrt or log of a negative,
a fractional power of a negative, log of 0, division by 0, sqrt at 0) inside a smooth
graph: derivekit must refuse it with a one-line DeriveError, never print a complex
number. A kink case puts relu, abs, max or min exactly at its kink, used once: the
gradient must be the one the stated convention gives (ReLU'(0) = 0, |x|'(0) = 0, max/min
route to the first argument), found as the matching one-sided difference.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import mpmath as mp

from fuzzgen import TIME_LIMIT, pick, timed
from fuzzgen_scalar import ScalarCase, gradient_problem, mp_gradient
from fuzzgen_terms import (DENOMINATORS, DPS, H, Term, const_mp, const_text, term,
                           variable_names, point, Context)


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


def _choices(src, mode, form, info, table):
    """The case's number mode, input form, variable names and table row (random unless given)."""
    mode = mode or pick(src, ["exact", "float"])
    form = form or pick(src, ["expression", "nodes", "problem"])
    return mode, form, variable_names(src), info or pick(src, list(table))


def _smooth_context(src, mode, names):
    given, env = point(src, mode, names)
    return Context(src, mode, env, names), given


def ood_case(src, mode=None, form=None, info=None):
    """A smooth graph with one node outside the real domain (or at an infinite slope)."""
    mode, form, names, info = _choices(src, mode, form, info, OUT_OF_DOMAIN)
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
    if keep_complex and fmt == "({0}*{1})" and abs(args[1].mp(ctx.env)) < 1e-3:
        # a factor that vanishes there (y, or x - x, which SymPy cancels at once) can
        # make sqrt(y)*y differentiable at 0 or remove the bad node: not a refusal case
        fmt, value, args = "{0}", WRAPPERS[0][1], [node]
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
            return "ok", f"refused: {exc}"
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
    mode, form, names, info = _choices(src, mode, form, info, KINKS)
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
            problem = gradient_problem(d, case, name, want, mp_scale_raw(case, name),
                                       f" ({case.info} convention)")
            if problem:
                problems.append(problem)
        if not any("convention" in n or "routes" in n for n in d.notes):
            problems.append(f"no convention stated in the notes ({d.notes})")
        return ("mismatch", "; ".join(problems)) if problems else ("ok", "")

    return timed("kink", case.repro(), body, limit)


def mp_scale_raw(case, name):
    """A rounding scale for trees with Raw nodes: the largest value in the tree."""
    with mp.workdps(DPS):
        return max(abs(t.mp(case.env)) for t in case.root.walk()) * 10
