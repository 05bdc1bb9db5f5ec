"""The recorded derivation replayed in numbers, at a few sample points.

A verdict needs numbers in three places: to test an answer where a symbolic proof is out
of reach, to find a counterexample, and to recognise a mistake (one fan-out edge
dropped, a local partial given instead of the adjoint, earlier table answers carried
forward). All three are the reverse sweep of :mod:`derive.scalar.backprop` run again with
floats, from the *recorded* edges, with small changes: edges dropped, some adjoints
overridden (by a student's answers), or a different node as the output. Nothing is
differentiated here: the partials are the Derivation's own.

Sample points are drawn with a fixed seed (so a class gets the same points and a report
can be reproduced), rounded to three decimals (so a counterexample is readable), with
mixed signs so that ReLU-like kinks are exercised on both sides; a point where a node is
undefined or complex (log of a negative number) is replaced by another. The problem's
own ``values:`` come first when they are given and no kink convention was needed there.
"""
from __future__ import annotations

import cmath
import itertools
import random

import sympy as sp

from derive.derivation import bar
from derive.verify.floats import fvalue

N_POINTS = 6
MAX_TRIES = 60
RTOL, ATOL = 1e-8, 1e-11


def num(expr, env):
    """``expr`` at ``env`` (Symbol -> number) as a Python complex; nan when undefined.

    Evaluated in double precision by :mod:`derive.verify.floats` (an overflow gives inf
    at once; ``exp(exp(exp(exp(exp(x)))))`` would keep arbitrary precision busy for
    minutes), with SymPy's evalf under a time limit only for rare function types.
    """
    if isinstance(expr, (int, float, complex)):
        return complex(expr)
    return fvalue(expr, {k: complex(v) for k, v in env.items()})


def finite(z):
    return cmath.isfinite(z)


def real(z, tol=1e-9):
    return finite(z) and abs(z.imag) <= tol * max(1.0, abs(z.real))


def close(a, b, rtol=RTOL, atol=ATOL):
    """Equal within a relative tolerance (both finite)."""
    if not (finite(a) and finite(b)):
        return False
    return abs(a - b) <= atol + rtol * max(abs(a), abs(b))


class Replay:
    """Forward values, edge partials and adjoints of a Derivation at sample points.

    Parameters
    ----------
    d : Derivation
        A scalar-graph derivation (nodes, edges, adjoints recorded by backprop).
    n_points : int
        Random points besides the problem's own values.
    seed : int
    """

    def __init__(self, d, n_points=N_POINTS, seed=0):
        self.d = d
        self.order = [n.name for n in d.nodes]
        self.leaves = [n.name for n in d.nodes if n.definition is None]
        self.defs = {n.name: n.definition for n in d.nodes if n.definition is not None}
        self.sym = {name: sp.Symbol(name) for name in self.order}
        self.out_edges = {name: [] for name in self.order}
        for k, e in enumerate(d.edges):
            self.out_edges[e.src].append(k)
        self.points, self.values, self.partials = [], [], []
        self.given = False
        self._sample(n_points, seed)
        self.adjoints = [self.sweep(p) for p in range(len(self.points))]

    # -- points ----------------------------------------------------------------------------
    def _sample(self, n_points, seed):
        given = self._given_point()
        if given is not None and self._add(given):
            self.given = True
        rng = random.Random(seed)
        for attempt in range(MAX_TRIES):
            if len(self.points) >= n_points + self.given:
                break
            positive = attempt >= MAX_TRIES // 2  # fall back to a positive domain
            point = {name: _draw(rng, positive) for name in self.leaves}
            self._add(point)

    def _given_point(self):
        nodes = self.d.nodes
        if self.d.notes or any(n.value is None for n in nodes if n.definition is None):
            return None
        return {n.name: n.value for n in nodes if n.definition is None}

    def _add(self, point):
        values = {k: num(v, {}) for k, v in point.items()}
        env = {self.sym[k]: v for k, v in values.items()}
        for name, definition in self.defs.items():
            values[name] = num(definition, env)
            if not real(values[name]):
                return False
            env[self.sym[name]] = values[name]
        partials = [num(e.partial, env) for e in self.d.edges]
        if not all(real(v) for v in partials):
            return False
        self.points.append(point)
        self.values.append({k: v.real for k, v in values.items()})
        self.partials.append([v.real for v in partials])
        return True

    def __len__(self):
        return len(self.points)

    # -- the reverse sweep, with changes ------------------------------------------------------
    def sweep(self, p, drop=(), override=None, output=None):
        """Adjoints at point ``p``: edges in ``drop`` skipped, ``override`` adjoints fixed.

        ``output`` seeds a different node with 1 (derivatives of an intermediate node).
        Nodes that do not reach the output get no entry.
        """
        out = output or self.d.output
        override = override or {}
        part = self.partials[p]
        adj = {out: 1.0}
        for name in reversed(self.order):
            if name == out:
                continue
            if name in override:
                adj[name] = override[name]
                continue
            terms = [adj[self.d.edges[k].dst] * part[k] for k in self.out_edges[name]
                     if k not in drop and self.d.edges[k].dst in adj]
            if terms:
                adj[name] = sum(terms)
        return adj

    def env(self, p, adjoints=None):
        """Symbol -> value at point ``p``: every node, and every adjoint ``<name>_bar``."""
        adjoints = self.adjoints[p] if adjoints is None else adjoints
        env = {self.sym[k]: v for k, v in self.values[p].items()}
        for name in self.order:
            env[bar(name)] = adjoints.get(name, 0.0)
        return env

    def evaluate(self, expr, adjoints_per_point=None):
        """``expr`` (nodes, leaves, adjoint symbols) at every point, as complex numbers."""
        out = []
        for p in range(len(self)):
            adj = None if adjoints_per_point is None else adjoints_per_point[p]
            out.append(num(expr, self.env(p, adj)))
        return out

    # -- structure used by the diagnoses --------------------------------------------------
    def downstream(self, name):
        """Nodes on some path from ``name`` to the output (``name`` included)."""
        reach = {self.d.output}
        for node in reversed(self.order):
            if any(self.d.edges[k].dst in reach for k in self.out_edges[node]):
                reach.add(node)
        below = {name}
        for node in self.order[self.order.index(name):]:
            if node in below:
                below.update(self.d.edges[k].dst for k in self.out_edges[node])
        return [n for n in self.order if n in below and n in reach]

    def edge_subsets(self, name, limit=6):
        """Proper, non-empty sets of ``name``'s own outgoing edges to drop."""
        edges = self.out_edges[name]
        if len(edges) < 2 or len(edges) > limit:
            return [(k,) for k in edges] if len(edges) > limit else []
        return [c for r in range(1, len(edges)) for c in itertools.combinations(edges, r)]


def _draw(rng, positive):
    """A readable random value: three decimals, |x| in [0.2, 1.8] (or (0.1, 0.9) if positive)."""
    if positive:
        return round(rng.uniform(0.1, 0.9), 3)
    return round(rng.choice((-1, 1)) * rng.uniform(0.2, 1.8), 3)
