"""The regularised loss by hand: data loss plus a weight penalty, and its gradient in W.

``regularised_loss`` writes the full loss as the lecture slides do,

    L(W) = (1/N) Σ_i L_i(W x_i, y_i) + λ R(W),

evaluates it on the given numbers and gives ∇_W L = ∇_W L_data + λ ∇_W R exactly.

* ``penalty``: ``l2`` (R = Σ W²), ``l1`` (R = Σ |W|, sign(0) = 0) or ``elastic_net``
  (R = Σ (β W² + |W|), the slides' form with ``beta``);
* ``scale`` says which textbook form the squared term takes: ``lambda`` (λ Σ W², gradient
  2λW, as the slides write it) or ``lambda/2`` ((λ/2) Σ W², gradient λW, PyTorch's weight
  decay). The derivation states the one used;
* the data part is computed from a linear classifier ``s = W x`` (``x``, ``labels``,
  ``loss: svm`` or ``softmax``), or given (``data_loss`` and ``data_grad``), or absent
  (the penalty alone).
"""
from __future__ import annotations

import sympy as sp

from derive.derivation import Derivation, Section, Step
from derive.errors import InputError, ShapeError
from derive.problem import check_keys, get, problem_kind
from derive.stepforms import over, plus, power, times, written
from derive.tensor.ops import L2_SCALES
from derive.worked.common import (EXACT_NOTE, all_exact, array, dims, key_choice, key_number,
                                  said, symbol, tidy, with_approx)

_KEYS = {"kind", "title", "W", "penalty", "lambda", "beta", "scale", "x", "labels", "loss",
         "margin", "data_loss", "data_grad"}
_W = sp.Symbol("W")


@problem_kind("regularised_loss")
def regularised_loss(spec, where):
    """Data loss + λ R(W) on given numbers, and ∇_W of both (exact where inputs are)."""
    check_keys(spec, _KEYS, where)
    W = sp.Matrix(array(get(spec, "W", where), f"{where}: W", ndim=2, name="W"))
    kind = key_choice(spec, "penalty", where, ("l2", "l1", "elastic_net"), "l2")
    scale = key_choice(spec, "scale", where, tuple(L2_SCALES), "lambda")
    lam = _weight(spec, "lambda", where, None)
    beta = _weight(spec, "beta", where, sp.Integer(1))
    if "beta" in spec and kind != "elastic_net":
        raise InputError("'beta' is the elastic net's weight of the squared term; this "
                         f"penalty is {kind}", where=f"{where}: beta")
    d = Derivation(title=get(spec, "title", where, types=str, default="Regularised loss"),
                   kind="regularised_loss")
    data = _data_part(d, spec, where, W)
    if all_exact(W.tolist(), lam, beta, *(data[:1] if data else [])):
        d.notes.insert(0, EXACT_NOTE)
    d.note(_statement(kind, scale, lam, beta))
    penalty, penalty_grad = _penalty_section(d, W, kind, scale, lam, beta)
    d.result = _total_section(d, data, penalty, penalty_grad)
    return d


def _weight(spec, key, where, default):
    value = key_number(spec, key, where, default)
    if value is None:
        raise InputError("missing (the regularisation strength)", where=f"{where}: {key}")
    if value.is_negative:
        raise InputError(f"must not be negative, got {said(value)}", where=f"{where}: {key}")
    return value


def _statement(kind, scale, lam, beta):
    half = scale == "lambda/2"
    square = {"l2": "(lambda/2) sum W^2" if half else "lambda sum W^2",
              "l1": "lambda sum |W|",
              "elastic_net": ("lambda sum ((beta/2) W^2 + |W|)" if half
                              else "lambda sum (beta W^2 + |W|)")}[kind]
    grad = {"l2": "lambda W" if half else "2 lambda W",
            "l1": "lambda sign(W), with sign(0) = 0",
            "elastic_net": ("lambda (beta W + sign(W))" if half
                            else "lambda (2 beta W + sign(W))")}[kind]
    text = (f"Penalty {kind} with lambda = {said(lam)}"
            + (f", beta = {said(beta)}" if kind == "elastic_net" else "") + f": {square}, "
            f"so its gradient is {grad}.")
    if kind != "l1":
        text += (f" Convention scale = {scale}: the squared term is written "
                 + ("(lambda/2) W^2 (PyTorch's weight decay; the slides' lambda W^2 would "
                    "give 2 lambda W)." if half else
                    "lambda W^2 as the slides write it ((lambda/2) W^2 would give lambda W)."))
    return text


# -- the data part ------------------------------------------------------------------------------
def _data_part(d, spec, where, W):
    """(L_data, ∇_W L_data) from the linear classifier or as given; None when absent."""
    has_x, has_given = "x" in spec, "data_loss" in spec or "data_grad" in spec
    if has_x and has_given:
        raise InputError("give either 'x' (computed from s = W x) or 'data_loss' and "
                         "'data_grad' (given), not both", where=where)
    for key in ("labels", "loss", "margin"):
        if key in spec and not has_x:
            raise InputError("only read with 'x' (the examples of s = W x)",
                             where=f"{where}: {key}")
    if has_given:
        return _given(d, spec, where, W)
    if has_x:
        return _classifier(d, spec, where, W)
    return None


def _given(d, spec, where, W):
    if "data_loss" not in spec or "data_grad" not in spec:
        missing = "data_grad" if "data_loss" in spec else "data_loss"
        raise InputError("missing (give data_loss and data_grad together)",
                         where=f"{where}: {missing}")
    loss = key_number(spec, "data_loss", where)
    grad = sp.Matrix(array(spec["data_grad"], f"{where}: data_grad", ndim=2, name="data_grad"))
    if grad.shape != W.shape:
        raise ShapeError(f"the data gradient is {dims(grad.shape)} but W is {dims(W.shape)}",
                         where=f"{where}: data_grad")
    d.sections.append(Section("Data loss (given)", [
        Step(sp.Symbol("L_data"), [loss]),
        Step(sp.Derivative(sp.Symbol("L_data"), _W), [grad])]))
    return loss, grad


def _classifier(d, spec, where, W):
    x = array(spec["x"], f"{where}: x", ndim=(1, 2), name="x")
    xs = [x] if not isinstance(x[0], list) else x
    if len(xs[0]) != W.shape[1]:
        raise ShapeError(f"an example has {len(xs[0])} features but W is {dims(W.shape)} "
                         f"(s = W x needs {W.shape[1]})", where=f"{where}: x")
    labels = get(spec, "labels", where, default=None)
    labels = [labels] if isinstance(labels, int) and not isinstance(labels, bool) else labels
    if not isinstance(labels, list) or len(labels) != len(xs) or any(
            isinstance(y, bool) or not isinstance(y, int) or not 0 <= y < W.shape[0]
            for y in labels):
        raise InputError(f"expected {len(xs)} class indices in 0..{W.shape[0] - 1} (one per "
                         f"example), got {labels!r:.40}", where=f"{where}: labels")
    loss = key_choice(spec, "loss", where, ("svm", "softmax"), "svm")
    margin = key_number(spec, "margin", where, sp.Integer(1))
    if "margin" in spec and loss != "svm":
        raise InputError("the margin belongs to the svm loss", where=f"{where}: margin")
    d.note("Scores s_i = W x_i; " + (
        f"multiclass SVM L_i = sum over j != y_i of max(0, s_j - s_(y_i) + {said(margin)}); "
        "a term's slope at exactly 0 is taken as 0 (max(0, t)'(0) = 0, as ReLU'(0) = 0)."
        if loss == "svm" else
        "softmax cross-entropy L_i = -log p_(y_i), dL_i/ds = p - onehot(y_i).")
        + " The gradient of an example is the outer product (dL_i/ds) x_i^T.")
    losses, grads = [], []
    for i, (xi, y) in enumerate(zip(xs, labels)):
        li, gi = _example(d, W, sp.Matrix(xi), y, loss, margin, i)
        losses.append(li)
        grads.append(gi)
    return _mean_section(d, losses, grads)


def _example(d, W, x, y, loss, margin, i):
    s = (W * x).applyfunc(tidy)
    product = written(sp.MatMul(sp.ImmutableMatrix(W), sp.ImmutableMatrix(x), evaluate=False))
    steps = [Step(symbol("s", i + 1), [product, s],
                  f"scores of example {i + 1}; its class is {y + 1} (index {y})")]
    more, value, ds, why = (_svm(s, y, margin, i) if loss == "svm" else _softmax(s, y, i))
    steps += more
    ds = sp.Matrix(ds)
    grad = (ds * x.T).applyfunc(tidy)
    steps.append(Step(sp.Derivative(symbol("L", i + 1), symbol("s", i + 1)), [ds], why))
    steps.append(Step(sp.Derivative(symbol("L", i + 1), _W), [
        written(sp.MatMul(sp.ImmutableMatrix(ds), sp.ImmutableMatrix(x.T), evaluate=False)),
        grad], "(dL_i/ds) x_i^T"))
    d.sections.append(Section(f"Example {i + 1}", steps))
    return value, grad


def _svm(s, y, margin, i):
    """Steps, loss, dL/ds and its reason for the hinge loss of one example."""
    others = [j for j in range(len(s)) if j != y]
    terms = [tidy(sp.Max(0, s[j] - s[y] + margin)) for j in others]
    value = tidy(sp.Add(*terms))
    written_terms = [sp.Max(0, plus(s[j], sp.Mul(-1, s[y], evaluate=False), margin),
                            evaluate=False) for j in others]
    steps = [Step(symbol("L", i + 1), [plus(*written_terms), plus(*terms), value])]
    ds = [sp.Integer(1 if j != y and s[j] - s[y] + margin > 0 else 0) for j in range(len(s))]
    ds[y] = -sp.Add(*ds)
    return steps, value, ds, ("1 for each class whose margin is positive; the true class "
                              "gets minus their count")


def _softmax(s, y, i):
    """Steps, loss, dL/ds and its reason for the softmax cross-entropy of one example."""
    exps = [sp.exp(v) for v in s]
    probs = [tidy(e / sp.Add(*exps)) for e in exps]
    value = tidy(sp.log(sp.Add(*exps)) - s[y])
    decimals = [] if all(p.is_Rational or p.is_Float for p in probs) else \
        [sp.Matrix([[sp.Float(sp.N(p, 15), 15) for p in probs]])]
    steps = [Step(symbol("p", i + 1), [sp.Matrix([probs]), *decimals], "softmax of the scores"),
             Step(symbol("L", i + 1), [-sp.log(symbol("p", i + 1, y + 1)), *with_approx(value)])]
    ds = [tidy(p - (1 if j == y else 0)) for j, p in enumerate(probs)]
    return steps, value, ds, "softmax: the probabilities minus the one-hot label"


def _mean_section(d, losses, grads):
    n = len(losses)
    loss = tidy(sp.Add(*losses) / n)
    grad = (sum(grads, sp.zeros(*grads[0].shape)) / n).applyfunc(tidy)
    steps = [Step(sp.Symbol("L_data"), [over(plus(*losses), n), *with_approx(loss)],
                  "the mean over the examples") if n > 1 else
             Step(sp.Symbol("L_data"), [*with_approx(loss)], "one example: its loss")]
    summed = sp.MatAdd(*[sp.ImmutableMatrix(g) for g in grads], evaluate=False) \
        if n > 1 else sp.ImmutableMatrix(grads[0])
    steps.append(Step(sp.Derivative(sp.Symbol("L_data"), _W), [
        written(sp.MatMul(sp.Rational(1, n), summed, evaluate=False)) if n > 1 else summed, grad]))
    d.sections.append(Section("Data loss", steps))
    return loss, grad


# -- the penalty --------------------------------------------------------------------------------
def _penalty_section(d, W, kind, scale, lam, beta):
    factor = L2_SCALES[scale]
    entries = list(W)
    squares = tidy(sp.Add(*[w ** 2 for w in entries]))
    absolutes = tidy(sp.Add(*[abs(w) for w in entries]))
    R, steps = sp.Symbol("L_penalty"), []
    if kind in ("l2", "elastic_net"):
        steps.append(Step(sp.Symbol("S_2"), [plus(*[power(w, 2) for w in entries]), squares],
                          "S_2 = sum of the squared entries of W"))
    if kind in ("l1", "elastic_net"):
        steps.append(Step(sp.Symbol("S_1"), [plus(*[sp.Abs(w, evaluate=False)
                                                    for w in entries]), absolutes],
                          "S_1 = sum of the absolute entries of W"))
    sign = W.applyfunc(sp.sign)
    lam_s, beta_s, S1, S2 = sp.symbols("lambda beta S_1 S_2")
    f = factor  # the factor of the squared term: 1 (lambda) or 1/2 (lambda/2)
    lam_f, beta_f = (lam_s, beta_s) if f == 1 else (over(lam_s, 2), over(beta_s, 2))
    if kind == "l2":
        value, grad = lam * f * squares, 2 * f * lam * W
        form = times(lam_f, S2)
        grad_formula = times(2, lam_s, _W) if f == 1 else times(lam_s, _W)
        numbers = times(*_drop_one(lam * f), squares)
        grad_form = sp.MatMul(times(*_drop_one(2 * f, lam)) if f == 1 else lam,
                              sp.ImmutableMatrix(W),
                              evaluate=False)
    elif kind == "l1":
        value, grad = lam * absolutes, lam * sign
        form, grad_formula = times(lam_s, S1), times(lam_s, sp.sign(_W))
        numbers = times(lam, absolutes)
        grad_form = sp.MatMul(lam, sp.ImmutableMatrix(sign), evaluate=False)
    else:
        value, grad = lam * (beta * f * squares + absolutes), lam * (2 * f * beta * W + sign)
        form = times(lam_s, plus(times(beta_f, S2), S1))
        grad_formula = times(lam_s, plus(times(*_drop_one(2 * f, beta_s, _W)), sp.sign(_W)))
        numbers = times(lam, plus(times(*_drop_one(beta * f, squares)), absolutes))
        scaled = sp.ImmutableMatrix(W) if _is_one(2 * f * beta) else \
            sp.MatMul(tidy(2 * f * beta), sp.ImmutableMatrix(W), evaluate=False)
        grad_form = sp.MatMul(lam, sp.MatAdd(scaled, sp.ImmutableMatrix(sign), evaluate=False),
                              evaluate=False)
    value, grad = tidy(value), grad.applyfunc(tidy)
    grad_form = [grad_formula, written(grad_form)]
    steps.append(Step(R, [form, numbers, *with_approx(value)],
                      "the penalty term lambda R(W), as the convention writes it"))
    steps.append(Step(sp.Derivative(R, _W), [*grad_form, grad],
                      "sign(0) = 0" if kind != "l2" and any(w == 0 for w in entries) else ""))
    d.sections.append(Section("Penalty", steps))
    return value, grad


def _is_one(value):
    """True for the number one, exact or float (1.0 == 1 is False in SymPy)."""
    value = sp.sympify(value, strict=True)
    return bool(value.is_number and value - 1 == 0)


def _drop_one(*factors):
    """The factors without the ones (``1 * λ`` reads ``λ``); at least one kept."""
    kept = [f for f in factors if not _is_one(f)]
    return kept or [sp.Integer(1)]


def _total_section(d, data, penalty, penalty_grad):
    if data is None:
        return {"penalty": penalty, "penalty_grad": penalty_grad.tolist(),
                "loss": penalty, "grad": penalty_grad.tolist()}
    loss, grad = tidy(data[0] + penalty), (data[1] + penalty_grad).applyfunc(tidy)
    L = sp.Symbol("L")
    d.sections.append(Section("Regularised loss", [
        Step(L, [plus(sp.Symbol("L_data"), sp.Symbol("L_penalty")), plus(data[0], penalty),
                 *with_approx(loss)]),
        Step(sp.Derivative(L, _W), [plus(sp.Derivative(sp.Symbol("L_data"), _W),
                                         sp.Derivative(sp.Symbol("L_penalty"), _W)),
                                    written(sp.MatAdd(sp.ImmutableMatrix(data[1]),
                                                      sp.ImmutableMatrix(penalty_grad),
                                                      evaluate=False)), grad])]))
    return {"data_loss": data[0], "data_grad": data[1].tolist(), "penalty": penalty,
            "penalty_grad": penalty_grad.tolist(), "loss": loss, "grad": grad.tolist()}
