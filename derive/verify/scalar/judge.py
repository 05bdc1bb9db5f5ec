"""Judging one answer against a scalar Derivation: parse, compare, prove, diagnose.

The comparison is numeric first (the recorded sweep replayed at sample points, see
:mod:`derive.verify.scalar.points`) because that is fast, always terminates and yields the
counterexample. An answer that agrees everywhere is then given a *symbolic* proof if a
bounded attempt finds one (the difference expands or simplifies to 0 within a time
budget); otherwise the verdict says "agrees at N points". A disagreement is a
counterexample: an answer cannot be right if it differs anywhere.
"""
from __future__ import annotations

import sympy as sp

from derive.derivation import bar
from derive.errors import DeriveError, InputError
from derive.verify.answers import Vocabulary, parse_answer
from derive.verify.scalar.diagnose import diagnose
from derive.verify.guard import Timeout, attempt, deadline, guarded
from derive.verify.scalar.points import Replay, close
from derive.verify.verdict import EXPLAIN, Verdict, number_out

PARSE_SECONDS = 1.0
PROOF_SECONDS = 1.0
JUDGE_SECONDS = 5.0  # the whole judgement of one answer, a safety net
BIG_POWER = 64  # expand() is skipped past this integer exponent
NUMBER_RTOL = 5e-4  # a bare number may be rounded to about 4 significant digits


class Checker:
    """A scalar Derivation prepared for checking answers (sample points, names, caches).

    Parameters
    ----------
    d : Derivation
        Made by :func:`derive.grad` / :func:`derive.solve` (a scalar graph).
    n_points, seed : int
        Random sample points (the problem's own ``values:`` are used as well).
    """

    def __init__(self, d, n_points=6, seed=0):
        if not d.edges and not d.adjoints:
            raise InputError(f"'{d.title}' has no recorded backward pass to check against")
        self.d = d
        self.replay = Replay(d, n_points, seed)
        if len(self.replay) == 0:
            raise InputError("could not find a point where every node is defined "
                             "(is the problem's domain empty?)")
        names = [n.name for n in d.nodes]
        self.vocab = Vocabulary(names, d.meta.get("latex_names"))
        self.adjoint = {a.name: a for a in d.adjoints}
        self.expand = _expansions(d)
        self._parsed = {}
        self._proofs = {}

    # -- names ---------------------------------------------------------------------------
    def node_of(self, key):
        """The node an answer key names (``w``, ``w_bar``, ``\\bar{w}``); InputError if none."""
        text = str(key).strip()
        for suffix in ("_bar", "bar"):
            stem = text[:-len(suffix)] if text.endswith(suffix) else None
            if stem and self.vocab.lookup(stem.rstrip("_")) in self.adjoint:
                return self.vocab.lookup(stem.rstrip("_"))
        name = self.vocab.lookup(text) or self.vocab.lookup(text.replace("\\bar", "").strip("{}"))
        if name in self.adjoint:
            return name
        raise InputError(f"{text!r} is not a node of this problem (nodes: "
                         f"{', '.join(self.adjoint)})")

    def parse(self, answer):
        """The answer as SymPy (cached per text); raises InputError/UnsupportedError."""
        cache_key = answer if isinstance(answer, str) else repr(answer)
        if cache_key not in self._parsed:
            try:
                with deadline(PARSE_SECONDS):
                    self._parsed[cache_key] = parse_answer(answer, self.vocab)
            except DeriveError as exc:
                self._parsed[cache_key] = exc
            except (Timeout, RecursionError, MemoryError):
                self._parsed[cache_key] = InputError("the answer is too complex to read")
        result = self._parsed[cache_key]
        if isinstance(result, Exception):
            raise result
        return result

    # -- judging -------------------------------------------------------------------------
    def judge(self, node, answer, carried=None):
        """A Verdict on ``answer`` for the adjoint of ``node`` (never raises).

        ``carried`` (adjoint tables) holds the student's earlier answers as they bear on
        this node: ``{"expr": expected from them, "values": [per point],
        "overrides": [per point], "from": [node names]}``.
        """
        return guarded(lambda: self._judge(node, answer, carried),
                       lambda message: unreadable(node, answer, self.adjoint[node], message),
                       JUDGE_SECONDS)

    def _judge(self, node, answer, carried):
        expected = self.adjoint[node]
        verdict = Verdict(node=node, answer=answer, verdict="unreadable",
                          expected=_display_form(expected))
        try:
            expr = self.parse(answer)
        except DeriveError as exc:
            verdict.message = str(exc)
            return verdict
        circular = circular_bars(expr.free_symbols, node, self.replay.downstream(node))
        if circular:
            verdict.message = circular
            return verdict
        verdict.parsed = expr
        bars = carried["bars"] if carried else self._true_bars()
        overrides = carried["overrides"] if carried else None
        a = self.replay.evaluate(expr, carried["adjoints"] if carried else None)
        true_vals = [adj.get(node, 0.0) for adj in self.replay.adjoints]
        target = carried["values"] if carried else true_vals
        pts = self._points_for(expr)
        verdict.points = len(pts)
        if _agrees(a, true_vals, pts, expr):
            goal = expected.value if _bare(expr) and expected.value is not None \
                and pts == [0] else expected.in_nodes
            return self._correct(verdict, expr, goal, bars, pts)
        if carried and _agrees(a, target, pts, expr):
            verdict.judged_against = carried["expr"]
            verdict.carried_from = carried["from"]
            return self._correct(verdict, expr, carried["expr"], bars, pts)
        if carried and carried["from"]:
            verdict.judged_against = carried["expr"]
            verdict.carried_from = carried["from"]
        return self._wrong(verdict, node, expr, a, target, overrides, pts)

    def _true_bars(self):
        return {bar(name): adj.in_nodes for name, adj in self.adjoint.items()}

    def _points_for(self, expr):
        """A bare number is compared at the problem's values only (when it has them)."""
        if self.replay.given and _bare(expr):
            return [0]
        return list(range(len(self.replay)))

    def _correct(self, verdict, expr, target, bars, pts):
        verdict.verdict = "correct"
        if self.prove(expr, target, bars):
            verdict.proof = "symbolic"
            verdict.message = "proved: the difference simplifies to 0"
        else:
            verdict.proof = "numeric"
            verdict.message = _agreement_text(len(pts), self.replay.given, expr)
        if verdict.carried_from:
            verdict.message += (f"; judged against your earlier answer(s) for "
                                f"{', '.join(verdict.carried_from)} (an error carried "
                                "forward is not counted twice)")
        return verdict

    def _wrong(self, verdict, node, expr, a, target, overrides, pts):
        verdict.verdict = "wrong"
        verdict.proof = "numeric"
        verdict.counterexample = self._counterexample(expr, a, target, pts)
        kind, detail = diagnose(self.replay, node, a, target, overrides, pts)
        verdict.diagnosis = kind
        verdict.message = detail or EXPLAIN[kind]
        if verdict.carried_from:
            verdict.message += (f" (judged against your earlier answer(s) for "
                                f"{', '.join(verdict.carried_from)})")
        return verdict

    def _counterexample(self, expr, a, target, pts):
        """The problem's own values when the answer fails there, else the first failing point."""
        bad = [p for p in pts if not close(a[p], target[p])]
        p = bad[0]
        point = {k: number_out(v) if not isinstance(v, float) else v
                 for k, v in self.replay.points[p].items()}
        return {"point": point, "answer": number_out(a[p]), "expected": number_out(target[p])}

    # -- symbolic proof --------------------------------------------------------------------
    def prove(self, expr, target, bars):
        """True when ``expr - target`` is shown to be exactly 0 within the time budget."""
        cache_key = (expr, target)
        if cache_key not in self._proofs:
            self._proofs[cache_key] = attempt(lambda: self._prove(expr, target, bars),
                                              PROOF_SECONDS, default=False)
        return self._proofs[cache_key]

    def _prove(self, expr, target, bars):
        diff = expr.xreplace(bars) - target.xreplace(bars)
        if _cheap_zero(diff):
            return True
        diff = diff.xreplace(self.expand)
        if _cheap_zero(diff):
            return True
        if sp.count_ops(diff) > 200:
            return False
        return sp.simplify(diff.rewrite(sp.exp)) == 0


def unreadable(node, answer, adjoint, message):
    """The verdict on an answer that could not be read (or judged)."""
    return Verdict(node=node, answer=answer, verdict="unreadable",
                   expected=_display_form(adjoint), message=message)


def circular_bars(symbols, node, downstream):
    """A message when an answer uses an adjoint it may not (its own, or an earlier node's)."""
    allowed = set(downstream) - {node}
    bad = sorted(s.name for s in symbols if s.name.endswith("_bar")
                 and s.name[:-len("_bar")] not in allowed)
    if not bad:
        return ""
    later = ", ".join(f"{n}_bar" for n in sorted(allowed)) or "none"
    return (f"the answer uses {', '.join(bad)}; an adjoint may be written with the adjoints "
            f"of the nodes {node} feeds into ({later}), not with its own or earlier ones")


def _expansions(d):
    """Node symbol -> its expression in the leaves (forward definitions substituted)."""
    out = {}
    for n in d.nodes:
        if n.definition is not None:
            out[sp.Symbol(n.name)] = n.definition.xreplace(out)
    return out


def _cheap_zero(expr):
    if expr == 0:
        return True
    if any(p.exp.is_Integer and abs(p.exp) > BIG_POWER for p in expr.atoms(sp.Pow)):
        return False
    return sp.expand(expr) == 0


def _bare(expr):
    """A bare number (a value rather than a formula)."""
    return not expr.free_symbols


def _agrees(a, target, pts, expr):
    if len(pts) == 1 and _bare(expr) and expr.has(sp.Float):
        p = pts[0]
        return close(a[p], target[p], rtol=NUMBER_RTOL)
    return all(close(a[p], target[p]) for p in pts)


def _agreement_text(n, given, expr):
    if n == 1 and _bare(expr):
        rounded = " (to about 4 significant digits)" if expr.has(sp.Float) else ""
        return f"agrees with the adjoint's value at the problem's values{rounded}"
    extra = " (the problem's values and random ones)" if given else ""
    return f"agrees at {n} points{extra}; no symbolic proof was found within the time budget"


def _display_form(adjoint):
    """The adjoint in terms of the inputs, or in node terms when that is much shorter."""
    if len(sp.sstr(adjoint.in_inputs)) <= 60:
        return adjoint.in_inputs
    return min((adjoint.in_inputs, adjoint.in_nodes), key=lambda e: len(sp.sstr(e)))
