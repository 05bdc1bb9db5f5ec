"""Scaled dot-product attention by hand: scores, softmax weights, argmax weights, outputs.

``O = softmax(Q K^T / sqrt(d_k)) V`` row by row (one row per query). The argmax
("hard attention") variant puts all weight on the key with the largest score; on a tie,
on the first such key (the same convention as max-pooling).
"""
from __future__ import annotations

import sympy as sp

from ..derivation import Derivation, Section, Step
from ..errors import InputError, ShapeError
from ..problem import check_keys, get, problem_kind
from .common import (EXACT_NOTE, all_exact, array, dims, ltx, matrix, number, products_tex, shape,
                     sum_tex, tex, tidy, with_approx)


@problem_kind("attention")
def attention(spec, where):
    """Attention of queries ``Q`` over keys ``K`` and values ``V``, every entry shown."""
    check_keys(spec, {"kind", "title", "Q", "K", "V", "scale", "mask"}, where)
    Q, K, V = (_rows(spec, k, where) for k in ("Q", "K", "V"))
    if len(Q[0]) != len(K[0]):
        raise ShapeError(f"queries have d_k = {len(Q[0])} but keys have {len(K[0])} "
                         f"(Q {dims(shape(Q))}, K {dims(shape(K))})", where=f"{where}: K")
    if len(K) != len(V):
        raise ShapeError(f"{len(K)} keys but {len(V)} values (K {dims(shape(K))}, "
                         f"V {dims(shape(V))})", where=f"{where}: V")
    scale, scale_tex = _scale(spec, where, len(Q[0]))
    allowed = _mask(spec, where, len(Q), len(K))
    d = Derivation(title=get(spec, "title", where, default="Attention by hand"), kind="attention")
    if all_exact(Q, K, V):
        d.note(EXACT_NOTE)
    d.note("Scores S = Q K^T scaled by " + (f"1/sqrt(d_k) with d_k = {len(Q[0])}"
                                            if "scale" not in spec else f"{scale}")
           + "; weights are the row-wise softmax of S; the output is O = A V.")
    S = _scores(d, Q, K, scale, scale_tex, allowed)
    A = _softmax(d, S, allowed)
    out = _output(d, A, V, "A", "O", "Output with softmax weights")
    A_hard = _argmax(d, S, allowed)
    out_hard = _output(d, A_hard, V, r"A^{\max}", r"O^{\max}", "Output with argmax weights")
    d.result = {"weights": A, "output": out, "argmax_weights": A_hard,
                "argmax_output": out_hard}
    return d


def _rows(spec, key, where):
    value = array(get(spec, key, where), f"{where}: {key}", ndim=(1, 2), name=key)
    return value if isinstance(value[0], list) else [value]


def _scale(spec, where, d_k):
    value = spec.get("scale", "sqrt_dk")
    if value == "sqrt_dk":
        return 1 / sp.sqrt(d_k), rf"\frac{{1}}{{\sqrt{{{d_k}}}}}"
    if value in ("none", None):
        return sp.Integer(1), ""
    s = number(value, f"{where}: scale")
    return s, tex(s)


def _mask(spec, where, n_q, n_k):
    """allowed[i][j]: may query i attend to key j ('causal' or a 0/1 matrix)."""
    value = spec.get("mask")
    if value is None:
        return [[True] * n_k for _ in range(n_q)]
    if value == "causal":
        return [[j <= i for j in range(n_k)] for i in range(n_q)]
    m = array(value, f"{where}: mask", ndim=2, name="mask")
    if shape(m) != (n_q, n_k):
        raise ShapeError(f"mask must be {n_q}x{n_k} (queries x keys), got {dims(shape(m))}",
                         where=f"{where}: mask")
    allowed = [[v == 1 for v in row] for row in m]
    for i, row in enumerate(allowed):
        if not any(row):
            raise InputError(f"query {i + 1} may attend to no key", where=f"{where}: mask")
    return allowed


def _scores(d, Q, K, scale, scale_tex, allowed):
    steps, S = [], []
    for i, q in enumerate(Q):
        S.append([])
        for j, k in enumerate(K):
            if not allowed[i][j]:
                S[-1].append(None)
                steps.append(Step(f"S_{{{i + 1},{j + 1}}}", [r"-\infty"], "masked"))
                continue
            value = tidy(scale * sp.Add(*[a * b for a, b in zip(q, k)]))
            S[-1].append(value)
            dot = products_tex(list(zip(q, k)))
            steps.append(Step(f"S_{{{i + 1},{j + 1}}}", [
                rf"{scale_tex} q_{{{i + 1}}} \cdot k_{{{j + 1}}}",
                rf"{scale_tex}\left({dot}\right)" if scale_tex else dot, *with_approx(value)]))
    d.sections.append(Section("Scores", steps))
    return S


def _softmax(d, S, allowed):
    steps, A = [], []
    for i, row in enumerate(S):
        live = [s for s in row if s is not None]
        total = sp.Add(*[sp.exp(s) for s in live])
        steps.append(Step(rf"Z_{{{i + 1}}}", [
            rf"\sum_j e^{{S_{{{i + 1},j}}}}", sum_tex([f"e^{{{ltx(s)}}}" for s in live]),
            *with_approx(total)]))
        A.append([])
        for j, s in enumerate(row):
            a = sp.Integer(0) if s is None else tidy(sp.exp(s) / total)
            A[-1].append(a)
            steps.append(Step(f"A_{{{i + 1},{j + 1}}}", [
                rf"\frac{{e^{{S_{{{i + 1},{j + 1}}}}}}}{{Z_{{{i + 1}}}}}",
                *([rf"\frac{{e^{{{ltx(s)}}}}}{{Z_{{{i + 1}}}}}"] if s is not None else []),
                *with_approx(a)]))
    steps.append(Step("A", [matrix(A)]))
    d.sections.append(Section("Softmax weights (row by row)", steps))
    return A


def _argmax(d, S, allowed):
    steps, A = [], []
    for i, row in enumerate(S):
        best = max((j for j, s in enumerate(row) if s is not None),
                   key=lambda j: (row[j], -j))
        A.append([sp.Integer(1 if j == best else 0) for j in range(len(row))])
        steps.append(Step(rf"\arg\max_j S_{{{i + 1},j}}", [best + 1],
                          "the first maximum on a tie"))
    steps.append(Step(r"A^{\max}", [matrix(A)]))
    d.sections.append(Section("Argmax weights", steps))
    return A


def _output(d, A, V, a_name, o_name, title):
    steps, out = [], []
    for i, arow in enumerate(A):
        out.append([])
        for c in range(len(V[0])):
            pairs = [(a, V[j][c]) for j, a in enumerate(arow) if a != 0]
            value = tidy(sp.Add(*[a * v for a, v in pairs]))
            out[-1].append(value)
            steps.append(Step(f"{o_name}_{{{i + 1},{c + 1}}}", [
                rf"\sum_j {a_name}_{{{i + 1},j}} V_{{j,{c + 1}}}", products_tex(pairs),
                *with_approx(value)]))
    steps.append(Step(o_name, [matrix(out)]))
    d.sections.append(Section(title, steps))
    return out
