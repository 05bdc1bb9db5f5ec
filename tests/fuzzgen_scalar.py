"""Random scalar cases for derive.grad and their oracles.

A :class:`ScalarCase` is a random tree (fuzzgen_terms), a point, and the way it is
handed to derivekit: one expression, ``nodes:`` assignments, or a problem file. Its
forward value and gradients are compared with a 40-digit mpmath central difference of
the same tree, and (an oracle check) torch's autograd with the mpmath difference.
"""
from __future__ import annotations

from dataclasses import dataclass

import mpmath as mp

from fuzzgen import TIME_LIMIT, chance, pick, problem_file, timed
from fuzzgen_terms import (DPS, OP, H, Context, Term, combine, load_torch, chain, forced, point,
                           term, variable_names, weighted)


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
                root = combine(ctx, root, term(ctx, depth - 1))
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
    torch = load_torch()
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
    """How far a value may be from the mpmath one: exact values to 12 digits (room for a
    float fallback of 15 digits that a long simplification may take), float values to 7,
    and both to a multiple of the rounding floor ``scale`` where terms cancel."""
    if mode == "exact":
        return mp.mpf("1e-12") * abs(want) + mp.mpf("1e-13") * (1 + scale)
    return mp.mpf("1e-7") * abs(want) + mp.mpf("1e-10") * (1 + scale)


def gradient_problem(d, case, name, want, scale, label=""):
    """What is wrong with derivekit's d/d``name`` in ``d`` against ``want`` ("" if right)."""
    try:
        got = as_real(d.gradients[name].value)
    except (KeyError, ValueError) as exc:
        return (f"d/d{name}: expected {short(want)}, got "
                f"{d.gradients.get(name)!r:.200} ({exc})")
    if abs(got - want) > tolerance(case.mode, want, scale):
        return (f"d/d{name}{label}: expected {short(want)}, got {short(got)} "
                f"(derivekit: {d.gradients[name].value})")
    return ""


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
            want = mp_gradient(case.root, case.env, name)
            problem = gradient_problem(d, case, name, want, mp_scale(case.root, case.env, name))
            if problem:
                problems.append(problem)
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
            out.append(f"oracle: torch d/d{name} = {got[name]!r}, mpmath {short(want)}")
    return out


def short(v):
    return mp.nstr(v, 12)
