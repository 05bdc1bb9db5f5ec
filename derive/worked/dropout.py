"""Dropout by hand: a given mask in train mode, the expectation, and eval mode.

``p`` is the probability of *dropping* a unit (PyTorch's convention); ``keep_prob``
(the original paper's and TensorFlow 1's) may be given instead, never both. Inverted
dropout (the default, as every library does) scales kept units by ``1/(1 - p)`` during
training so that evaluation is the identity; classic dropout scales by ``1 - p`` at
evaluation instead. Either way the expected training output equals the eval output.
"""
from __future__ import annotations

import sympy as sp

from derive.derivation import Derivation, Section, Step
from derive.errors import InputError, ShapeError
from derive.problem import check_keys, get, problem_kind
from derive.stepforms import Expectation, Variance, minus, over, plus, power, times
from derive.worked.common import (EXACT_NOTE, all_exact, array, entry, key_bool, key_choice, matrix, number,
                     said, shape, tidy, tolist)

P, M, X = sp.symbols("p m x")
X_I = sp.Symbol("x_i")
Y_TRAIN, Y_EVAL = sp.symbols("y_train y_eval")


@problem_kind("dropout")
def dropout(spec, where):
    """Dropout of ``x``: output for a given mask, expectation and variance, eval output."""
    check_keys(spec, {"kind", "title", "x", "p", "keep_prob", "mask", "mode", "inverted"}, where)
    x = array(get(spec, "x", where), f"{where}: x", ndim=(1, 2), name="x")
    rows = x if isinstance(x[0], list) else [x]
    p = _drop_probability(spec, where)
    q = 1 - p
    inverted = key_bool(spec, "inverted", where, True)
    mode = key_choice(spec, "mode", where, ("train", "eval"), "train")
    mask = _mask(spec, where, x)
    d = Derivation(title=get(spec, "title", where, default="Dropout by hand"), kind="dropout")
    if all_exact(x, p):
        d.note(EXACT_NOTE)
    d.note(f"p = {said(p)} is the probability of dropping a unit; each unit is kept with "
           f"probability 1 - p = {said(q)}.")
    d.note("Inverted dropout: kept units are scaled by 1/(1 - p) during training; evaluation "
           "is the identity." if inverted else
           "Classic dropout: training only masks; evaluation scales every unit by 1 - p.")
    scale = 1 / q if inverted else sp.Integer(1)
    train = None
    if mask is not None:
        train = _train_section(d, rows, mask, scale, inverted)
    expected = _expectation_section(d, rows, p, q, scale, inverted)
    evaluated = _eval_section(d, rows, q, inverted)
    d.sections.append(Section("Why the two modes agree", [Step(
        Expectation(Y_TRAIN), [X if inverted else times(minus(1, P), X), Y_EVAL],
        "the expected training output equals the eval output, so the next layer sees the "
        "same scale in both modes")]))
    answer = evaluated if mode == "eval" else (train if train is not None else expected)
    d.result = answer if isinstance(x[0], list) else answer[0]
    return d


def _drop_probability(spec, where):
    if "p" in spec and "keep_prob" in spec:
        raise InputError("give either p (drop probability) or keep_prob, not both", where=where)
    if "keep_prob" in spec:
        p = 1 - number(spec["keep_prob"], f"{where}: keep_prob")
        key = "keep_prob"
    else:
        p = number(get(spec, "p", where), f"{where}: p")
        key = "p"
    if not 0 <= p < 1:
        raise InputError(f"the drop probability must be in [0, 1), got p = {p}",
                         where=f"{where}: {key}")
    return p


def _mask(spec, where, x):
    if "mask" not in spec:
        return None
    m = array(spec["mask"], f"{where}: mask", ndim=(1, 2), name="mask")
    if shape(m) != shape(x):
        raise ShapeError(f"mask has shape {shape(m)} but x has {shape(x)}", where=f"{where}: mask")
    if any(v not in (0, 1) for row in (m if isinstance(m[0], list) else [m]) for v in row):
        raise InputError("mask entries must be 0 (dropped) or 1 (kept)", where=f"{where}: mask")
    return m if isinstance(m[0], list) else [m]


def _train_section(d, rows, mask, scale, inverted):
    steps, out = [], []
    for i, (row, mrow) in enumerate(zip(rows, mask)):
        out.append([])
        for j, (v, m) in enumerate(zip(row, mrow)):
            y = tidy(m * v * scale)
            out[-1].append(y)
            idx = (i, j) if len(rows) > 1 else (j,)
            steps.append(Step(entry("y", *idx), [
                over(times(M, X), minus(1, P)) if inverted else times(M, X),
                over(times(m, v), 1 / scale) if inverted else times(m, v), y],
                "kept" if m else "dropped"))
    steps.append(Step(Y_TRAIN, [matrix(out if len(out) > 1 else out[0])]))
    d.sections.append(Section("Train mode with the given mask", steps))
    return out


def _expectation_section(d, rows, p, q, scale, inverted):
    kept = over(X_I, minus(1, P)) if inverted else X_I
    y_i = sp.Symbol("y_i")
    steps = [
        Step(Expectation(y_i), [plus(times(minus(1, P), kept), times(P, 0)),
                                X_I if inverted else times(minus(1, P), X_I)]),
        Step(Variance(y_i), [
            minus(Expectation(y_i ** 2), Expectation(y_i) ** 2),
            *([minus(over(X_I ** 2, minus(1, P)), X_I ** 2),
               times(over(P, minus(1, P)), X_I ** 2)] if inverted
              else [minus(times(minus(1, P), X_I ** 2), times(power(minus(1, P), 2), X_I ** 2)),
                    times(P, minus(1, P), X_I ** 2)])])]
    expected = tolist(rows, lambda v: tidy(v * q * scale))
    var_factor = p / q if inverted else p * q
    variance = tolist(rows, lambda v: tidy(var_factor * v ** 2))
    steps.append(Step(Expectation(Y_TRAIN), [matrix(_flat1(expected))]))
    steps.append(Step(Variance(Y_TRAIN), [matrix(_flat1(variance))]))
    d.sections.append(Section("Train mode in expectation (over random masks)", steps))
    return expected


def _eval_section(d, rows, q, inverted):
    out = tolist(rows, lambda v: tidy(v if inverted else q * v))
    d.sections.append(Section("Eval mode", [Step(Y_EVAL, [
        X if inverted else times(minus(1, P), X), matrix(_flat1(out))],
        "no units are dropped at evaluation")]))
    return out


def _flat1(rows):
    return rows if len(rows) > 1 else rows[0]
