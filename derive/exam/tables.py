"""The steps of an exam problem that depend on earlier ones, judged with derive's own code.

* The adjoints and gradients of a graph are one adjoint table, judged by
  :mod:`derive.verify` (:func:`~derive.verify.scalar.scalar_table.judge_carried` for a
  scalar graph, :class:`~derive.verify.tensor.matrix_answers.TensorChecker` for a tensor
  one), so a later step right from the student's own earlier wrong answer is correct and
  says so (``carried_from``). On an exam paper the graph's values are given and a student
  writes numbers: a bare number is carried forward at the problem's values (the scalar
  sweep below), and a numeric array is judged by a TensorChecker at the problem's values
  only (its answer a constant; the edges, diagnoses and carried sweep are the checker's).
* An optimizer's ``theta_k`` is recomputed from the student's ``theta_{k-1}`` by the
  optimizer kind itself: the problem solved for ``k - 1`` steps gives the state (moments)
  after step ``k - 1``, and solved again from the student's parameters with that state
  gives ``theta_k``.
"""
from __future__ import annotations

import copy

import numpy as np
import sympy as sp

from derive.errors import DeriveError
from derive.exam import numbers
from derive.verify.scalar.scalar_table import _entries, _Sweep, judge_carried
from derive.verify.verdict import Verdict


def judge_table(d, answers):
    """``{node: Verdict}`` for ``answers`` (``{node: raw answer}``) of a graph's adjoints."""
    if d.program is not None or d.meta.get("kind") == "tensor_graph":
        return _tensor_table(d, answers)
    return _scalar_table(d, answers)


def _scalar_table(d, answers):
    from derive.verify import checker_for

    checker = checker_for(d)
    texts = {k: v for k, v in answers.items() if not isinstance(v, (list, dict))}
    entries, bad = _entries(checker, texts)
    bad += [Verdict(node=k, answer=v, verdict="unreadable",
                    message=f"a {'list' if isinstance(v, list) else 'mapping'} where one "
                            "number or formula was asked")
            for k, v in answers.items() if k not in texts]
    verdicts = judge_carried(checker, reversed(checker.replay.order), entries,
                             NumberSweep(checker))
    return {v.node: v for v in verdicts + bad}


class NumberSweep(_Sweep):
    """The scalar adjoint-table sweep, also carrying a bare number forward: at the
    problem's values (point 0), in place of the adjoint it answers."""

    def record(self, name, verdict):
        parsed = verdict.parsed
        if verdict.verdict == "unreadable" or parsed is None or parsed.free_symbols \
                or not self.replay.given:
            return super().record(name, verdict)
        if verdict.verdict == "wrong":
            self.wrong.append(name)
        value = complex(parsed.evalf()).real
        self.values[0][name] = value
        self.answered[0][name] = value
        self.exprs[name] = parsed
        return None


def _tensor_table(d, answers):
    from derive.derivation import BAR_SUFFIX
    from derive.verify import checker_for
    from derive.verify.tensor.answer_eval import Tree
    from derive.verify.tensor.matrix_answers import TensorChecker

    numeric = {node for node, raw in answers.items()
               if isinstance(raw, (list, int, float)) and not isinstance(raw, bool)
               or isinstance(raw, str) and raw.strip().startswith("[")}
    if not numeric:
        return {v.node: v for v in checker_for(d).table(answers).verdicts}
    arrays, rounding = {}, {}

    class GivenValues(TensorChecker):
        """At the problem's values only; numeric answers are constants."""

        def parse(self, answer):
            if isinstance(answer, str) and answer in arrays:
                found = arrays[answer]
                if isinstance(found, DeriveError):
                    raise found
                return Tree("num", [found])
            return super().parse(answer)

    checker = GivenValues(d, n_points=0)
    texts = dict(answers)
    for node in numeric:
        key = texts[node] = f"[numbers for {node}]"
        try:
            value, rounded = numbers.read(answers[node])
        except DeriveError as exc:
            arrays[key] = exc
            continue
        value = value.reshape(1, -1) if value.ndim == 1 else value
        target = checker.points[0][0].get(node + BAR_SUFFIX) if checker.points else None
        if rounded and target is not None and numbers.same(value, np.asarray(target), True):
            value = np.asarray(target, dtype=float)  # decimals to ~4 digits: the value
        arrays[key], rounding[key] = value, rounded
    out = {}
    for v in checker.table(texts).verdicts:
        if isinstance(v.answer, str) and v.answer in arrays:
            v.answer = answers.get(v.node, v.answer)
        v.message = v.message.replace("at 1 points (the problem's values and random ones)",
                                      "at the problem's values")
        given = arrays.get(texts.get(v.node))
        if v.diagnosis == "other" and isinstance(given, np.ndarray) and not v.carried_from:
            target = checker.points[0][0].get(v.node + BAR_SUFFIX)
            v.diagnosis, v.message = numbers.diagnose(
                given, np.asarray(target, float), rounding[texts[v.node]])
        out[v.node] = v
    return out


def optimizer_step_from(spec, k, previous):
    """theta_k of the optimizer problem ``spec`` worked from ``previous`` as theta_{k-1}
    (a float array), by the optimizer kind; None when it cannot be worked."""
    from derive.problem import solve_spec

    if k < 2 or "grads" not in spec and "function" not in spec:
        return None
    try:
        earlier = dict(copy.deepcopy(spec), steps=k - 1)
        before = solve_spec(earlier, "carried forward", ".")
        theta = [_plain(x) for x in np.ravel(previous)]
        if len(theta) != len(before.meta["trajectory"][0]):
            return None
        state = {name: [_plain(x) for x in values] if len(theta) > 1 else _plain(values[0])
                 for name, values in before.meta["state"].items() if name != "t"}
        again = dict(copy.deepcopy(spec), theta=theta if len(theta) > 1 else theta[0],
                     state=dict(state, t=k - 1), steps=1)
        again.pop("start_step", None)
        if "grads" in spec:
            again["grads"] = _rows(spec["grads"])[k - 1:]
        d = solve_spec(again, "carried forward", ".")
    except (DeriveError, KeyError, TypeError, ValueError, IndexError):
        return None
    result = d.result
    return sp.Matrix(result) if isinstance(result, list) else result


def _plain(x):
    """A value for a problem spec: exact text for SymPy numbers, else the float."""
    if isinstance(x, sp.Basic):
        return sp.sstr(x) if x.is_Rational else float(x.evalf())
    return float(x)


def _rows(grads):
    return grads if isinstance(grads, list) and grads and isinstance(grads[0], list) \
        else [[g] for g in grads] if isinstance(grads, list) else grads
