"""Scaled dot-product attention by hand: scores, softmax weights, argmax weights, outputs.

``O = softmax(Q K^T / sqrt(d_k)) V`` row by row (one row per query). The argmax
("hard attention") variant puts all weight on the key with the largest score; on a tie,
on the first such key (the same convention as max-pooling).
"""
from __future__ import annotations

import sympy as sp

from derive.derivation import Derivation, Section, Step
from derive.errors import InputError, ShapeError
from derive.problem import check_keys, get, problem_kind
from derive.stepforms import ArgMax, over, plus, root, times
from derive.worked.common import (EXACT_NOTE, all_exact, array, dims, entry, matrix, number, products, shape,
                     tidy, with_approx)

_j = sp.Symbol("j", integer=True, positive=True)


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
    scale, scale_form = _scale(spec, where, len(Q[0]))
    allowed = _mask(spec, where, len(Q), len(K))
    d = Derivation(title=get(spec, "title", where, default="Attention by hand"), kind="attention")
    if all_exact(Q, K, V):
        d.note(EXACT_NOTE)
    d.note("Scores S = Q K^T scaled by " + (f"1/sqrt(d_k) with d_k = {len(Q[0])}"
                                            if "scale" not in spec else f"{scale}")
           + "; weights are the row-wise softmax of S; the output is O = A V.")
    S = _scores(d, Q, K, scale, scale_form, allowed)
    A = _softmax(d, S, allowed)
    out = _output(d, A, V, "A", "O", "Output with softmax weights")
    A_hard = _argmax(d, S, allowed)
    out_hard = _output(d, A_hard, V, "A^max", "O^max", "Output with argmax weights")
    d.result = {"weights": A, "output": out, "argmax_weights": A_hard,
                "argmax_output": out_hard}
    return d


def _rows(spec, key, where):
    value = array(get(spec, key, where), f"{where}: {key}", ndim=(1, 2), name=key)
    return value if isinstance(value[0], list) else [value]


def _scale(spec, where, d_k):
    """(the scale, the scale as written or None when there is none)."""
    value = spec.get("scale", "sqrt_dk")
    if value == "sqrt_dk":
        return 1 / sp.sqrt(d_k), over(1, root(d_k))
    if value in ("none", None):
        return sp.Integer(1), None
    s = number(value, f"{where}: scale")
    return s, s


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


def _scores(d, Q, K, scale, scale_form, allowed):
    steps, S = [], []
    for i, q in enumerate(Q):
        S.append([])
        for j, k in enumerate(K):
            if not allowed[i][j]:
                S[-1].append(None)
                steps.append(Step(entry("S", i, j), [-sp.oo], "masked"))
                continue
            value = tidy(scale * sp.Add(*[a * b for a, b in zip(q, k)]))
            S[-1].append(value)
            dot = products(list(zip(q, k)))
            q_dot_k = sp.DotProduct(sp.MatrixSymbol(f"q_{i + 1}", len(q), 1),
                                    sp.MatrixSymbol(f"k_{j + 1}", len(k), 1))
            steps.append(Step(entry("S", i, j), [
                q_dot_k if scale_form is None else times(scale_form, q_dot_k),
                dot if scale_form is None else times(scale_form, dot), *with_approx(value)]))
    d.sections.append(Section("Scores", steps))
    return S


def _softmax(d, S, allowed):
    steps, A = [], []
    for i, row in enumerate(S):
        live = [s for s in row if s is not None]
        total = sp.Add(*[sp.exp(s) for s in live])
        z_i = sp.Symbol(f"Z_{i + 1}")
        steps.append(Step(z_i, [
            sp.Sum(sp.exp(sp.Indexed("S", i + 1, _j)), (_j, 1, len(row))),
            plus(*[sp.exp(s, evaluate=False) for s in live]), *with_approx(total)]))
        A.append([])
        for j, s in enumerate(row):
            a = sp.Integer(0) if s is None else tidy(sp.exp(s) / total)
            A[-1].append(a)
            steps.append(Step(entry("A", i, j), [
                over(sp.exp(entry("S", i, j)), z_i),
                *([over(sp.exp(s, evaluate=False), z_i)] if s is not None else []),
                *with_approx(a)]))
    steps.append(Step(sp.Symbol("A"), [matrix(A)]))
    d.sections.append(Section("Softmax weights (row by row)", steps))
    return A


def _argmax(d, S, allowed):
    steps, A = [], []
    for i, row in enumerate(S):
        best = max((j for j, s in enumerate(row) if s is not None),
                   key=lambda j: (row[j], -j))
        A.append([sp.Integer(1 if j == best else 0) for j in range(len(row))])
        steps.append(Step(ArgMax(sp.Indexed("S", i + 1, _j), _j), [best + 1],
                          "the first maximum on a tie"))
    steps.append(Step(sp.Symbol("A^max"), [matrix(A)]))
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
            steps.append(Step(sp.Indexed(o_name, i + 1, c + 1), [
                sp.Sum(times(sp.Indexed(a_name, i + 1, _j), sp.Indexed("V", _j, c + 1)),
                       (_j, 1, len(arow))), products(pairs), *with_approx(value)]))
    steps.append(Step(sp.Symbol(o_name), [matrix(out)]))
    d.sections.append(Section(title, steps))
    return out
