"""Tensor answers in matrix notation (``@`` matrix product, ``*`` elementwise, ``.T``).

A tensor answer is parsed by the same whitelist into a small expression tree (not
SymPy matrices: ``*`` must stay elementwise and a mistake must stay representable, e.g.
a shape that does not fit), and evaluated with NumPy at a few sample points where the
derivation's own program (``Derivation.program``, the float64 oracle) gives every forward
array and every adjoint. Vectors are rows, as in the derivation's matrix display:
``x.T @ v4_bar`` is the outer product; an answer that is the same vector as a column is
accepted.

Diagnoses replay mistakes on the answer's tree or on the recorded edges and compare at
the same points: a transpose added or removed anywhere (or the whole answer transposed),
the operands of a matrix product swapped, ``@`` and ``*`` exchanged, the batch sum left
out, one fan-out edge dropped, an upstream adjoint left out (chain not applied), a sign,
a constant factor (a missing 2/d or 1/B).

A correct answer is proved symbolically when it and the adjoint reach one entry-wise
normal form (:mod:`derive.verify.tensor.entry_proof`), else it "agrees entry by entry at N
points". Tables judge later steps against the student's earlier answers
(:mod:`derive.verify.tensor.tensor_table`).
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from derive.derivation import BAR_SUFFIX
from derive.errors import DeriveError, InputError
from derive.verify.answers import Vocabulary, parse_answer
from derive.verify.scalar.judge import circular_bars
from derive.verify.guard import Timeout, deadline, guarded
from derive.verify.tensor.answer_eval import ShapeMismatch, Tree, display_value, tree_builders
from derive.verify.tensor.entry_proof import entry_or_none, prove, substitute_bars
from derive.verify.verdict import EXPLAIN, Verdict

RTOL, ATOL = 1e-8, 1e-10


class TensorChecker:
    """A tensor-graph Derivation prepared for checking matrix-notation answers."""

    def __init__(self, d, n_points=3, seed=0):
        self.d = d
        self.prog = d.program
        self.adjoint = {a.name: a for a in d.adjoints}
        names = [n.name for n in d.nodes] + [str(s) for s in self.prog.dims]
        self.vocab = Vocabulary(names, d.meta.get("latex_names"))
        self.points = self._points(n_points, seed)
        self._parsed = {}

    # -- sample points -------------------------------------------------------------------
    def _points(self, n_points, seed):
        rng = np.random.default_rng(seed)
        given = {n.name: n.value for n in self.d.nodes if n.definition is None}
        points = []
        if all(v is not None for v in given.values()):
            points.append(self._run(given))
        sizes = {s: 3 + k for k, s in enumerate(self.prog.dims)}
        if points:
            sizes = points[0][1]
        for _ in range(n_points):
            values = {}
            for t in self.prog.tensors.values():
                if t.role in ("node", "adjoint", "mask"):
                    continue
                shape = [int(s.xreplace(sizes) if isinstance(s, sp.Basic) else s)
                         for s in t.shape]
                values[t.name] = (rng.integers(0, 2, shape) if t.dtype == "int"
                                  else rng.uniform(-1.5, 1.5, shape))
            points.append(self._run(values))
        return points

    def _run(self, values):
        arrays = self.prog.run(values)
        dims = self.prog.bind({k: v for k, v in values.items()})
        env = {k: _row(np.asarray(v, dtype=float)) for k, v in arrays.items()}
        env.update({str(k): float(v) for k, v in dims.items()})
        for a in self.d.adjoints:  # aliases (v5_bar = v6_bar) are not stored by the program
            if a.name + BAR_SUFFIX not in env:
                env[a.name + BAR_SUFFIX] = display_value(a.in_nodes, env)
        return env, dims

    # -- names and parsing ---------------------------------------------------------------
    def node_of(self, key):
        from derive.verify.scalar.judge import Checker

        return Checker.node_of(self, key)

    def parse(self, answer):
        key = answer if isinstance(answer, str) else repr(answer)
        if key not in self._parsed:
            try:
                with deadline(1.0):
                    self._parsed[key] = _parse_tree(answer, self.vocab)
            except DeriveError as exc:
                self._parsed[key] = exc
            except (Timeout, RecursionError, MemoryError):
                self._parsed[key] = InputError("the answer is too complex to read")
        if isinstance(self._parsed[key], Exception):
            raise self._parsed[key]
        return self._parsed[key]

    # -- judging -------------------------------------------------------------------------
    def judge(self, node, answer, carried=None):
        """A Verdict on a matrix-notation answer for ``node`` (never raises).

        ``carried`` (adjoint tables, see :mod:`derive.verify.tensor.tensor_table`) holds the
        student's earlier answers as they bear on this node: ``{"envs": per point,
        "target": per point, "expr": the expected entry form, "display": the expected
        display, "bars": adjoint symbol -> entry form, "from": [node names]}``.
        """
        return guarded(lambda: self._judge(node, answer, carried),
                       lambda message: Verdict(node=node, answer=answer, verdict="unreadable",
                                               expected=self.adjoint[node].in_nodes,
                                               message=message), 5.0)

    def _judge(self, node, answer, carried=None):
        adjoint = self.adjoint[node]
        verdict = Verdict(node=node, answer=answer, verdict="unreadable",
                          expected=adjoint.in_nodes)
        try:
            tree = self.parse(answer)
        except DeriveError as exc:
            verdict.message = str(exc)
            return verdict
        circular = circular_bars(tree.symbols(), node, self.downstream(node))
        if circular:
            verdict.message = circular
            return verdict
        verdict.parsed = tree
        verdict.points = len(self.points)
        envs = carried["envs"] if carried else [env for env, _ in self.points]
        bars = carried["bars"] if carried else self.true_bars
        true_target = [env[node + BAR_SUFFIX] for env, _ in self.points]
        values = [_try(tree, env) for env in envs]
        if all(_same(v, t) for v, t in zip(values, true_target)):
            return self._correct(verdict, tree, self.true_entry(node), bars, values,
                                 true_target)
        if carried and all(_same(v, t) for v, t in zip(values, carried["target"])):
            verdict.judged_against, verdict.carried_from = carried["display"], carried["from"]
            return self._correct(verdict, tree, carried["expr"], bars, values,
                                 carried["target"])
        target = carried["target"] if carried else true_target
        verdict.verdict, verdict.proof = "wrong", "numeric"
        verdict.counterexample = self._counterexample(values, target)
        kind, detail = self._diagnose(node, tree, values, target, envs)
        verdict.diagnosis, verdict.message = kind, detail or EXPLAIN[kind]
        if carried:
            verdict.judged_against, verdict.carried_from = carried["display"], carried["from"]
            verdict.message += (f" (judged against your earlier answer(s) for "
                                f"{', '.join(carried['from'])})")
        return verdict

    def _correct(self, verdict, tree, expected, bars, values, target):
        verdict.verdict = "correct"
        column = np.shape(values[0]) != np.shape(target[0])
        if expected is not None and prove(tree, expected, bars, self.arrays, column):
            verdict.proof = "symbolic"
            verdict.message = ("proved: both sides have the same entry-wise normal form "
                               "(the difference simplifies to 0)")
        else:
            verdict.proof = "numeric"
            verdict.message = (f"agrees entry by entry at {len(self.points)} points "
                               "(the problem's values and random ones); no symbolic proof "
                               "was found")
        if verdict.carried_from:
            verdict.message += (f"; judged against your earlier answer(s) for "
                                f"{', '.join(verdict.carried_from)} (an error carried "
                                "forward is not counted twice)")
        return verdict

    # -- symbolic forms --------------------------------------------------------------------
    @property
    def arrays(self):
        """The array symbols of entry forms (nodes and adjoints; sizes are scalars)."""
        if not hasattr(self, "_arrays"):
            names = [n.name for n in self.d.nodes]
            self._arrays = {sp.Symbol(n) for n in names + [n + BAR_SUFFIX for n in names]}
        return self._arrays

    @property
    def true_bars(self):
        """Adjoint symbol -> the derivation's adjoint as an entry form (in the nodes)."""
        if not hasattr(self, "_true_bars"):
            bars = {}
            for a in self.d.adjoints:  # reverse sweep order: earlier bars come first
                entry = entry_or_none(a.in_nodes)
                if entry is not None:
                    bars[sp.Symbol(a.name + BAR_SUFFIX)] = substitute_bars(entry, bars)
            self._true_bars = bars
        return self._true_bars

    def true_entry(self, node):
        """The adjoint of ``node`` as an entry form in the nodes (None without one)."""
        return self.true_bars.get(sp.Symbol(node + BAR_SUFFIX))

    def downstream(self, node):
        """``node`` and every node it feeds into (their adjoints may appear in its answer)."""
        below, frontier = {node}, [node]
        while frontier:
            current = frontier.pop()
            for e in self.d.edges:
                if e.src == current and e.dst not in below:
                    below.add(e.dst)
                    frontier.append(e.dst)
        return below

    def _counterexample(self, values, target):
        p = next(i for i, (v, t) in enumerate(zip(values, target)) if not _same(v, t))
        env, _ = self.points[p]
        leaves = [n.name for n in self.d.nodes if n.definition is None]
        point = {k: np.round(env[k], 4).tolist() for k in leaves}
        got, want = values[p], target[p]
        if isinstance(got, ShapeMismatch) or np.shape(got) != np.shape(want):
            shape = got.message if isinstance(got, ShapeMismatch) else f"shape {np.shape(got)}"
            return {"point": point, "answer": shape, "expected": f"shape {np.shape(want)}"}
        diff = np.abs(np.asarray(got, float) - want)
        index = tuple(int(i) for i in np.unravel_index(int(np.nanargmax(diff)), diff.shape)) \
            if diff.ndim else ()
        return {"point": point, "index": list(index),
                "answer": round(float(np.asarray(got)[index]), 6),
                "expected": round(float(np.asarray(want)[index]), 6)}

    def _diagnose(self, node, tree, values, target, envs):
        ok = [not isinstance(v, ShapeMismatch) for v in values]
        if all(ok):
            if all(_same(-np.asarray(v), t) for v, t in zip(values, target)):
                return "sign", "the answer is the negative of the expected adjoint"
            if all(_batch_sum(v, t) for v, t in zip(values, target)):
                return "missing_batch_sum", ("summing the answer over the batch (axis 0) "
                                             "gives the expected adjoint")
        for kind, text, fn in self._edge_hypotheses(node):
            if all(_same(v, _attempt(fn, env)) for v, env in zip(values, envs)):
                return kind, text
        for kind, text, mutant in tree.mutations():
            if all(_same(_try(mutant, env), t) for env, t in zip(envs, target)):
                return kind, text
        if all(ok):
            ratio = _ratio(values, target)
            if ratio is not None:
                return "factor", (f"off by a constant factor: the answer is {ratio} times "
                                  "the expected")
        if not all(ok):
            bad = next(v for v in values if isinstance(v, ShapeMismatch))
            return "transpose", f"the shapes do not fit: {bad.message}"
        if any(np.shape(v) != np.shape(t) for v, t in zip(values, target)):
            return "transpose", (f"the answer has shape {np.shape(values[0])}, the adjoint "
                                 f"{np.shape(target[0])}")
        return "other", ""

    def _edge_hypotheses(self, node):
        """Sums of some of ``node``'s edge contributions; contributions with ū_dst -> 1;
        the upstream adjoint ū_dst alone (its local partial left out)."""
        edges = [e for e in self.d.edges if e.src == node]
        if len(edges) > 1:
            for skip in edges:
                kept = [e for e in edges if e is not skip]
                yield ("missing_edge", f"the contribution through the edge {node} -> "
                       f"{skip.dst} is missing",
                       lambda env, kept=kept: sum(display_value(e.contribution, env)
                                                  for e in kept))
        if edges:
            yield ("chain_not_applied", "the upstream adjoints are not multiplied in (the "
                   "local derivative was given where the adjoint was asked)",
                   lambda env: sum(display_value(e.contribution, _ones_for_bars(env))
                                   for e in edges))
        if len(edges) == 1:  # the chain stops at the upstream adjoint
            dst = edges[0].dst
            yield ("missing_local_partial", f"this is the adjoint of {dst}; the local "
                   f"partial d{dst}/d{node} is not multiplied in",
                   lambda env: env[dst + BAR_SUFFIX])

    # -- tables ----------------------------------------------------------------------------
    def table(self, answers, student=None):
        """Judge ``{node: answer}``, errors carried forward counted once (tensor_table)."""
        from derive.verify.tensor.tensor_table import check_tensor_table

        return check_tensor_table(self, answers, student=student)


def _parse_tree(answer, vocab):
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        return Tree("num", [float(answer)])
    builders = tree_builders()
    expr = parse_answer(answer, vocab, matrix=builders["matmul"],
                        transpose=builders["T"], functions=builders["functions"],
                        combine=builders["combine"])
    return expr if isinstance(expr, Tree) else Tree.leaf(expr)


def _ones_for_bars(env):
    return {k: (np.ones_like(v) if k.endswith(BAR_SUFFIX) else v) for k, v in env.items()}


def _row(a):
    return a.reshape(1, -1) if a.ndim == 1 else a


def _try(tree, env):
    try:
        with np.errstate(all="ignore"):
            return tree.value(env)
    except ShapeMismatch as exc:
        return exc
    except (ArithmeticError, ValueError, TypeError, KeyError, DeriveError) as exc:
        return ShapeMismatch(f"cannot be evaluated ({exc})")


def _attempt(fn, env):
    """A hypothesis' value, or a failure (an edge the display cannot evaluate)."""
    try:
        with np.errstate(all="ignore"):
            return fn(env)
    except (ArithmeticError, ValueError, TypeError, KeyError, DeriveError, ShapeMismatch) as exc:
        return ShapeMismatch(str(exc))


def _same(a, b):
    if isinstance(a, ShapeMismatch) or isinstance(b, ShapeMismatch):
        return False
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        if a.size != b.size or 1 not in a.shape or 1 not in b.shape:
            return False  # only a row given as a column (or back) is the same vector
        a, b = a.ravel(), b.ravel()
    return bool(np.all(np.isfinite(a)) and np.allclose(a, b, rtol=RTOL, atol=ATOL))


def _batch_sum(a, t):
    a = np.asarray(a, float)
    return a.ndim == 2 and a.shape[0] > 1 and _same(a.sum(axis=0, keepdims=True), t) or \
        (a.ndim == 2 and _same(a.mean(axis=0, keepdims=True), t) and a.shape[0] > 1)


def _ratio(values, target):
    ratios = []
    for v, t in zip(values, target):
        v, t = np.asarray(v, float), np.asarray(t, float)
        if v.shape != t.shape:
            return None
        mask = np.abs(t) > 1e-12
        if not mask.any() or np.any(np.abs(v[~mask]) > 1e-12):
            continue
        ratios.extend((v[mask] / t[mask]).ravel().tolist())
    if not ratios or not np.allclose(ratios, ratios[0], rtol=1e-8) or np.isclose(ratios[0], 1):
        return None
    from derive.verify.verdict import ratio_text

    return ratio_text(ratios[0])
