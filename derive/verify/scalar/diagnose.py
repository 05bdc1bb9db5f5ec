"""Naming the mistake in a wrong scalar answer.

Each diagnosis is a *hypothesis replayed in numbers*: the mistake is made on purpose in
the recorded derivation (the answer negated, one fan-out edge dropped, the sweep stopped
at an intermediate node, ...) and the result compared with the student's answer at the
same sample points. The first hypothesis that reproduces the answer at every point is
the diagnosis. Nothing is guessed from the answer's syntax, so ``-(yhat - y)`` and
``y - yhat`` are the same sign error.

Order matters only when two hypotheses give the same numbers. A missing contribution is
preferred over "a local partial was given" when the dropped edges leave exactly the
local partial (the adjoint of the output is 1, so both describe the answer ``t`` for
``dy/dw`` in the RNN); "a local partial was given" comes before its mirror image, "a
local partial was left out" (the sweep run with one edge's partial taken as 1: the
answer ``dl/dyhat`` for ``dl/dz`` after a sigmoid stops at the upstream adjoint); a
constant factor comes last among the specific kinds because a dropped edge or a partial
can happen to be proportional to the adjoint. A bare number, compared at the problem's
values only, is matched as the judge accepts it: to about 4 significant digits.
"""
from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

from derive.verify.scalar.points import RTOL, Replay, close
from derive.verify.verdict import ratio_text

TINY = 1e-12
NUMBER_RTOL = 5e-4  # the judge's: a bare number may be rounded to about 4 digits


def diagnose(replay, node, answer, target, overrides=None, pts=None):
    """The kind of mistake in a wrong answer, with a sentence saying what it is.

    Parameters
    ----------
    replay : derive.verify.scalar.points.Replay
    node : str
        The node whose adjoint was asked.
    answer, target : list of complex
        The answer's and the expected values at every sample point.
    overrides : list of dict, optional
        Per point, adjoints fixed to the student's earlier answers (adjoint tables).
    pts : list of int, optional
        The points to use (a bare number is compared at the problem's values only).

    Returns
    -------
    (kind, detail) : (str, str)
    """
    pts = list(range(len(replay))) if pts is None else pts
    overrides = overrides or [None] * len(replay)
    a = [answer[p] for p in pts]
    t = [target[p] for p in pts]
    rounded = len(pts) == 1  # a bare number, perhaps rounded by hand

    def _matches(xs, ys):
        return _close_all(xs, ys, NUMBER_RTOL if rounded else RTOL)

    if _matches(a, [-v for v in t]) and any(abs(v) > TINY for v in t):
        return "sign", "the answer is the negative of the expected value"
    for drop, text in _dropped_edges(replay, node):
        values = [replay.sweep(p, drop, overrides[p]).get(node, 0.0) for p in pts]
        if not _matches(values, t) and _matches(a, values):
            return "missing_edge", text
    for values, text in _local_partials(replay, node, pts):
        if not _matches(values, t) and _matches(a, values):
            return "chain_not_applied", text
    for k, text in _partials_left_out(replay, node):
        values = [_sweep_unit_partial(replay, p, k, overrides[p]).get(node, 0.0) for p in pts]
        if not _matches(values, t) and _matches(a, values):
            return "missing_local_partial", text
    ratio = _constant_ratio(a, t, simple=len(pts) == 1)
    if ratio is not None:
        return "factor", f"off by a constant factor: the answer is {ratio} times the expected value"
    return "other", ""


def _close_all(xs, ys, rtol):
    return all(close(complex(x), complex(y), rtol=rtol) for x, y in zip(xs, ys))


def _dropped_edges(replay, node):
    """(edges dropped, sentence): the node's own fan-out subsets, then fan-outs below it."""
    edges = replay.d.edges
    for drop in replay.edge_subsets(node):
        kept = [edges[k].dst for k in replay.out_edges[node] if k not in drop]
        lost = ", ".join(f"{node} -> {edges[k].dst}" for k in drop)
        yield drop, (f"only the contribution(s) through {', '.join(kept)} are summed; "
                     f"the edge(s) {lost} are missing")
    for other in replay.downstream(node):
        if other == node or len(replay.out_edges[other]) < 2:
            continue
        for k in replay.out_edges[other]:
            yield (k,), (f"the contribution of the edge {other} -> {edges[k].dst} to "
                         f"the adjoint of {other} is missing")


def _local_partials(replay, node, pts):
    """(values, sentence) for answers that stop the chain early."""
    edges = replay.d.edges
    out = replay.d.output
    own = replay.out_edges[node]
    for k in own:
        values = [replay.partials[p][k] for p in pts]
        upstream = [replay.adjoints[p].get(edges[k].dst, 0.0) for p in pts]
        if all(close(complex(u), 1) for u in upstream):
            continue  # the partial IS the contribution: not a chain omission
        yield values, (f"this is the local partial d{edges[k].dst}/d{node}; the adjoint "
                       f"d{out}/d{node} multiplies it by the adjoint of {edges[k].dst}")
    if len(own) > 1:
        values = [sum(replay.partials[p][k] for k in own) for p in pts]
        yield values, (f"this is the sum of the local partials of {node}'s edges, without "
                       "the adjoints of the nodes they lead to")
    for mid in replay.downstream(node):
        if mid in (node, out):
            continue
        values = [replay.sweep(p, output=mid).get(node, 0.0) for p in pts]
        yield values, (f"this is d{mid}/d{node}: the chain stops at {mid} instead of "
                       f"going on to {out}")


def _partials_left_out(replay, node):
    """(edge, sentence) for every edge on a path from ``node`` to the output: its local
    partial, left out of the chain, is the hypothesis. ``node``'s own edges first (the
    answer is then the upstream adjoint itself when ``node`` has one edge)."""
    edges, below = replay.d.edges, set(replay.downstream(node))
    own = replay.out_edges[node]
    inner = [k for m in replay.downstream(node) if m != node for k in replay.out_edges[m]
             if edges[k].dst in below]
    for k in own:
        dst = edges[k].dst
        if len(own) == 1:
            yield k, (f"this is d{replay.d.output}/d{dst}, the adjoint of {dst}; the local "
                      f"partial d{dst}/d{node} is not multiplied in")
        else:
            yield k, (f"the local partial d{dst}/d{node} is not multiplied into the "
                      f"contribution through {dst}")
    for k in inner:
        e = edges[k]
        yield k, (f"the local partial d{e.dst}/d{e.src} is left out of the chain from "
                  f"{node} to {replay.d.output}")


def _sweep_unit_partial(replay, p, k, override):
    """The reverse sweep at point ``p`` with edge ``k``'s local partial taken as 1."""
    part = list(replay.partials[p])
    part[k] = 1.0
    view = SimpleNamespace(d=replay.d, order=replay.order, out_edges=replay.out_edges,
                           partials={p: part})
    return Replay.sweep(view, p, override=override)


def _constant_ratio(a, t, simple=False):
    """The constant c with a = c t at every point (c not 1), as text; None if there is none."""
    ratios = []
    for x, y in zip(a, t):
        x, y = complex(x), complex(y)
        if abs(y) <= TINY:
            if abs(x) > TINY:
                return None
            continue
        ratios.append(x / y)
    if not ratios or any(not close(r, ratios[0], rtol=1e-8) for r in ratios):
        return None
    r = ratios[0]
    if abs(r.imag) > 1e-9 or close(r, 1) or abs(r) <= TINY:
        return None
    text = ratio_text(r.real)
    if simple and not _small_fraction(r.real):
        return None  # one bare number: only a simple ratio (2, 1/2, 3/4 ...) is telling
    return text


def _small_fraction(r):
    frac = Fraction(r).limit_denominator(4)
    return abs(float(frac) - r) <= 1e-9 * abs(r) and abs(frac.numerator) <= 4
