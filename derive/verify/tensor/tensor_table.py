"""Tensor adjoint tables: the first wrong step found, an error carried forward counted once.

The tensor counterpart of :mod:`derive.verify.scalar.scalar_table`. Answers are judged in the order of
the reverse sweep (the derivation's adjoints, output first). A later step is judged *as
if the earlier ones were right*: its expected value is recomputed through the recorded
edges from the student's own earlier answers, v̄ᵢ = Σⱼ contribution(i -> j) with each
``<j>_bar`` in a contribution replaced by the student's answer for j, evaluated with NumPy
at the same sample points (:func:`~derive.verify.tensor.answer_eval.display_value`). A step that
matches the true adjoint is correct as well. The same is done symbolically (entry forms,
:mod:`derive.verify.tensor.entry_proof`) so such a step can still get a symbolic proof.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from derive.derivation import BAR_SUFFIX
from derive.errors import DeriveError
from derive.verify.scalar.scalar_table import Report, _entries, judge_carried
from derive.verify.tensor.answer_eval import ShapeMismatch, display_value
from derive.verify.tensor.entry_proof import NoNormalForm, entry_or_none, substitute_bars, tree_entry


def check_tensor_table(checker, answers, student=None):
    """Judge a tensor adjoint table ``{node: answer}`` against ``checker``'s derivation.

    Parameters
    ----------
    checker : derive.verify.tensor.matrix_answers.TensorChecker
    answers : dict
        Node (or input/parameter) name -> matrix-notation answer text.

    Returns
    -------
    Report
        Verdicts in sweep order (unknown keys last); a step that follows faithfully from
        an earlier wrong answer is correct, with ``carried_from`` naming that answer.
    """
    entries, bad = _entries(checker, answers)
    verdicts = judge_carried(checker, [a.name for a in checker.d.adjoints], entries,
                             _TensorSweep(checker))
    return Report(verdicts + bad, title=checker.d.title, student=student,
                  source=checker.d.meta.get("source"))


class _TensorSweep:
    """The reverse sweep carried out with the student's answers in place of the adjoints."""

    def __init__(self, checker):
        self.c = checker
        self.envs = [dict(env) for env, _ in checker.points]  # student's adjoint values
        self.bars = {}      # adjoint symbol -> entry form implied by the answers so far
        self.exprs = {}     # node -> expected entry form from the answers (None: unknown)
        self.displays = {}  # node -> the recorded contributions summed (for people)
        self.exact = {}     # node -> its expected values could be recomputed
        self.wrong = []

    def expect(self, name):
        """The adjoint of ``name`` implied by the answers so far (through the edges)."""
        key = name + BAR_SUFFIX
        edges = [e for e in self.c.d.edges if e.src == name]
        contributions = [e.contribution for e in edges]
        self.displays[name] = contributions[0] if len(contributions) == 1 else \
            sp.MatAdd(*contributions) if contributions else None
        values = [_implied(edges, env) for env in self.envs]
        self.exact[name] = bool(edges) and all(v is not None for v in values)
        if self.exact[name]:
            for env, v in zip(self.envs, values):
                env[key] = _as_shape(v, env[key])
        entries = [entry_or_none(c) for c in contributions]
        if edges and all(e is not None for e in entries):
            self.exprs[name] = substitute_bars(sp.Add(*entries), self.bars)
        else:
            self.exprs[name] = self.c.true_entry(name)
        if self.exprs[name] is not None:
            self.bars[sp.Symbol(key)] = self.exprs[name]

    def context(self, name):
        """What :meth:`TensorChecker.judge` needs to judge ``name`` against earlier answers."""
        below = self.c.downstream(name) - {name}
        carried_from = [w for w in self.wrong if w in below]
        if not carried_from or not self.exact[name]:
            return None
        key = name + BAR_SUFFIX
        return {"envs": self.envs, "target": [env[key] for env in self.envs],
                "expr": self.exprs[name], "display": self.displays[name],
                "bars": dict(self.bars), "from": carried_from}

    def record(self, name, verdict):
        """Carry a readable answer forward in place of the adjoint it answers."""
        if verdict.verdict == "unreadable" or verdict.parsed is None:
            return
        if verdict.verdict == "wrong":
            self.wrong.append(name)
        key = name + BAR_SUFFIX
        values = [_value(verdict.parsed, env) for env in self.envs]
        fits = all(v is not None and v.size == np.size(env[key])
                   for v, env in zip(values, self.envs))
        if fits:
            for env, v in zip(self.envs, values):
                env[key] = v.reshape(np.shape(env[key]))
        symbol = sp.Symbol(key)
        try:
            entry = substitute_bars(tree_entry(verdict.parsed), self.bars)
        except (NoNormalForm, DeriveError, TypeError, ValueError):
            entry = None
        if fits and entry is not None and not _is_column(values[0], self.envs[0][key]):
            self.bars[symbol] = entry
        else:
            self.bars.pop(symbol, None)  # later answers keep the symbol: both sides alike


def _implied(edges, env):
    """The sum of ``edges``' contributions at one point (None if it cannot be evaluated)."""
    try:
        with np.errstate(all="ignore"):
            total = sum(display_value(e.contribution, env) for e in edges)
    except (ArithmeticError, ValueError, TypeError, KeyError, DeriveError, ShapeMismatch):
        return None
    total = np.asarray(total, dtype=float)
    return total if np.all(np.isfinite(total)) else None


def _value(tree, env):
    try:
        with np.errstate(all="ignore"):
            v = np.asarray(tree.value(env), dtype=float)
    except (ArithmeticError, ValueError, TypeError, KeyError, DeriveError, ShapeMismatch):
        return None
    return v if np.all(np.isfinite(v)) else None


def _as_shape(value, like):
    like = np.asarray(like)
    if value.shape == like.shape:
        return value
    if value.size == like.size:
        return value.reshape(like.shape)
    return np.broadcast_to(value, like.shape).copy() if value.ndim == 0 else value


def _is_column(value, like):
    return np.shape(value) != np.shape(like)
