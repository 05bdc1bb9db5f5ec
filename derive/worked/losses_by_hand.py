"""Losses by hand: softmax cross-entropy, multiclass SVM (hinge), binary cross-entropy, MSE.

Scores are one example (a list) or several (a list of lists, one example per row; use
``layout: columns`` for a table whose columns are the examples, as in the classic
cat/car/frog table). Labels are 0-based class indices, or class names when ``classes``
is given. Logarithms are natural.
"""
from __future__ import annotations

import sympy as sp

from derive.derivation import Derivation, Section, Step
from derive.errors import InputError, ShapeError
from derive.functions import sigmoid
from derive.problem import check_keys, get, problem_kind
from derive.stepforms import minus, over, plus, power, times
from derive.worked.common import (EXACT_NOTE, SYMBOLS_NOTE, all_exact, array, declared_symbols,
                                  key_bool, key_choice, key_number, matrix, mean, said, shape,
                                  shown, symbol, symbolic, symbolic_array, tidy, tidy_symbolic,
                                  with_approx)

_j, _i, _N = sp.symbols("j i N", integer=True, positive=True)

_CLASS_KEYS = {"kind", "title", "scores", "label", "labels", "classes", "layout"}


@problem_kind("softmax_loss")
def softmax_loss(spec, where):
    """Softmax probabilities and the cross-entropy loss ``-log p_y`` per example."""
    check_keys(spec, _CLASS_KEYS, where)
    scores, labels, classes, single = _classification(spec, where)
    d = _start(spec, where, "softmax_loss", "Softmax cross-entropy loss by hand", scores)
    d.note("Softmax: p_k = exp(s_k) / sum_j exp(s_j); the loss is L = -log p_y "
           "= log sum_j exp(s_j) - s_y (libraries subtract max_j s_j first so exp cannot "
           "overflow; the value is the same).")
    losses = [_softmax_example(d, s, y, i, classes, single) for i, (s, y) in
              enumerate(zip(scores, labels))]
    return _finish(d, losses, single)


@problem_kind("svm_loss")
def svm_loss(spec, where):
    """Multiclass SVM (hinge) loss ``sum_{j != y} max(0, s_j - s_y + margin)`` per example."""
    check_keys(spec, _CLASS_KEYS | {"margin"}, where)
    scores, labels, classes, single = _classification(spec, where)
    margin = key_number(spec, "margin", where, sp.Integer(1))
    d = _start(spec, where, "svm_loss", "Multiclass SVM loss by hand", scores)
    d.note(f"Multiclass SVM (hinge) loss with margin Delta = {said(margin)}: "
           "L_i = sum over j != y_i of max(0, s_j - s_{y_i} + Delta).")
    losses = [_svm_example(d, s, y, margin, i, classes, single) for i, (s, y) in
              enumerate(zip(scores, labels))]
    return _finish(d, losses, single)


@problem_kind("bce")
def bce(spec, where):
    """Binary cross-entropy of probabilities (or logits, through the sigmoid) and targets.

    Probabilities or logits may be expressions in symbols the file declares
    (``symbols: [b, c]``); the losses are then exact expressions in them."""
    check_keys(spec, {"kind", "title", "probs", "logits", "targets", "reduction", "symbols"},
               where)
    if ("probs" in spec) == ("logits" in spec):
        raise InputError("give exactly one of 'probs' and 'logits'", where=where)
    key = "probs" if "probs" in spec else "logits"
    names = declared_symbols(spec, where, real=True)
    values = _vector(spec, key, where, names=names)
    targets = _vector(spec, "targets", where, like=values, names=names)
    reduction = key_choice(spec, "reduction", where, ("mean", "sum", "none"), "mean")
    d = _start(spec, where, "bce", "Binary cross-entropy by hand", values + targets)
    d.note("BCE: l_i = -[y_i log p_i + (1 - y_i) log(1 - p_i)].")
    _symbols_note(d, values, key)
    if key == "logits":
        values = _sigmoid_section(d, values)
    losses = []
    steps = []
    for i, (p, y) in enumerate(zip(values, targets)):
        _check_bce_entry(p, y, f"{where}: {key}[{i}]", f"{where}: targets[{i}]")
        terms = [t for t, c in ((y * sp.log(p) if y != 0 else 0, y),
                                ((1 - y) * sp.log(1 - p) if y != 1 else 0, 1 - y)) if c != 0]
        loss = _log_tidy(-sp.Add(*terms))
        losses.append(loss)
        y_i, p_i = symbol("y", i + 1), symbol("p", i + 1)
        steps.append(Step(symbol("l", i + 1), [
            -plus(times(y_i, sp.log(p_i)), times(minus(1, y_i), sp.log(minus(1, p_i)))),
            -plus(times(y, sp.log(p, evaluate=False)),
                  times(1 - y, sp.log(1 - p, evaluate=False))),
            *shown(loss)]))
    d.sections.append(Section("Per-example losses", steps))
    return _reduce(d, losses, reduction, "l")


def _check_bce_entry(p, y, p_where, y_where):
    """A target is a number in [0, 1]; a numeric probability must keep the logs finite (a
    symbolic one is taken to lie in (0, 1), as the note says)."""
    if not y.is_number:
        raise InputError(f"a target must be a number in [0, 1], not an expression in the "
                         f"declared symbols ({y})", where=y_where)
    if not 0 <= y <= 1:
        raise InputError(f"target {y} is not in [0, 1]", where=y_where)
    if p.free_symbols:
        return
    if (p <= 0 and y != 0) or (p >= 1 and y != 1) or not 0 <= p <= 1:
        raise InputError(f"probability {p} gives log(0) or is outside [0, 1]", where=p_where)


def _log_tidy(loss):
    """The loss in its simplest form; in symbols, logs of quotients are also split
    (``-log(1/(1 + exp(-z)))`` is ``log(1 + exp(-z))``), which holds because every log here
    is of a probability, a positive number."""
    tidied = tidy_symbolic(loss)
    if not tidied.free_symbols:
        return tidied
    return min([sp.expand_log(loss, force=True), tidied], key=sp.count_ops)


def _symbols_note(d, values, key):
    found = symbolic(values)
    if not found:
        return
    names = ", ".join(map(str, found))
    d.note(SYMBOLS_NOTE.format(names=names))
    if key == "probs":
        d.note(f"The probabilities in {names} are taken to lie strictly between 0 and 1, so "
               "every logarithm is defined.")


@problem_kind("mse")
def mse(spec, where):
    """Mean squared error of predictions and targets (optionally with the factor 1/2)."""
    check_keys(spec, {"kind", "title", "predictions", "targets", "reduction", "half"}, where)
    preds = array(get(spec, "predictions", where), f"{where}: predictions", ndim=(1, 2),
                  name="predictions")
    targets = array(get(spec, "targets", where), f"{where}: targets", ndim=(1, 2), name="targets")
    if shape(preds) != shape(targets):
        raise ShapeError(f"predictions have shape {shape(preds)} but targets {shape(targets)}",
                         where=f"{where}: targets")
    reduction = key_choice(spec, "reduction", where, ("mean", "sum"), "mean")
    half = key_bool(spec, "half", where, False)
    flat_p, flat_t = _flat(preds), _flat(targets)
    d = _start(spec, where, "mse", "Mean squared error by hand", flat_p + flat_t)
    steps, sq = [], []
    for i, (p, t) in enumerate(zip(flat_p, flat_t)):
        sq.append(tidy((p - t) ** 2))
        steps.append(Step(power(minus(symbol("yhat", i + 1), symbol("y", i + 1)), 2),
                          [power(minus(p, t), 2), sq[-1]]))
    d.sections.append(Section("Squared errors", steps,
                              text="Entries are taken in row-major order." if
                              isinstance(preds[0], list) else ""))
    factor = sp.Rational(1, 2) if half else 1
    total = sp.Add(*sq)
    value = tidy(factor * (total / len(sq) if reduction == "mean" else total))
    n = len(sq)
    terms = sp.Sum(power(minus(sp.Indexed("yhat", _i), sp.Indexed("y", _i)), 2), (_i, 1, n))
    summed = plus(*sq)
    if reduction == "mean":
        terms, summed = times(sp.Rational(1, n), terms), over(summed, n)
    if half:
        terms, summed = times(sp.Rational(1, 2), terms), times(sp.Rational(1, 2), summed)
    d.sections.append(Section("Loss", [Step(sp.Symbol("L"), [terms, summed, value])]))
    d.result = value
    return d


# -- shared -------------------------------------------------------------------------------
def _classification(spec, where):
    """(scores per example, label index per example, class names, single-example flag)."""
    scores = array(get(spec, "scores", where), f"{where}: scores", ndim=(1, 2), name="scores")
    single = not isinstance(scores[0], list)
    if single:
        scores = [scores]
    elif key_choice(spec, "layout", where, ("rows", "columns"), "rows") == "columns":
        scores = [list(col) for col in zip(*scores)]
    n_classes = len(scores[0])
    classes = get(spec, "classes", where, types=list, default=None)
    if classes is not None and len(classes) != n_classes:
        raise ShapeError(f"{len(classes)} class names for {n_classes} scores per example",
                         where=f"{where}: classes")
    if n_classes < 2:
        raise ShapeError("need at least two classes", where=f"{where}: scores")
    key = "label" if "label" in spec else "labels"
    raw = get(spec, key, where)
    raw = raw if isinstance(raw, list) else [raw]
    if len(raw) != len(scores):
        raise ShapeError(f"{len(raw)} label(s) for {len(scores)} example(s)",
                         where=f"{where}: {key}")
    labels = [_label(v, classes, n_classes, f"{where}: {key}") for v in raw]
    return scores, labels, classes, single


def _label(value, classes, n, where):
    if isinstance(value, str):
        if classes is None or value not in classes:
            raise InputError(f"unknown class {value!r} (give 'classes' to use names)",
                             where=where)
        return classes.index(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
        raise InputError(f"label must be a class index 0..{n - 1}, got {value!r:.40}",
                         where=where)
    return value


def _start(spec, where, kind, title, values):
    d = Derivation(title=get(spec, "title", where, types=str, default=title), kind=kind)
    if all_exact(values):
        d.note(EXACT_NOTE)
    return d


def _loss_symbol(i, single):
    return sp.Symbol("L") if single else symbol("L", i + 1)


def _softmax_example(d, s, y, i, classes, single):
    exps = [sp.exp(v) for v in s]
    total = sp.Add(*exps)
    steps = [Step(sp.Symbol("s"), [matrix(list(s))], "the scores")]
    steps += [Step(sp.exp(symbol("s", k + 1)), [sp.exp(v, evaluate=False), *with_approx(e)])
              for k, (v, e) in enumerate(zip(s, exps))]
    norm = sp.Sum(sp.exp(sp.Indexed("s", _j)), (_j, 1, len(s)))
    steps.append(Step(norm, [plus(*exps), *with_approx(total)]))
    probs = []
    for k, e in enumerate(exps):
        p = tidy(e / total)
        probs.append(p)
        steps.append(Step(symbol("p", k + 1), [over(sp.exp(symbol("s", k + 1)), norm),
                                               *with_approx(p)], _class(k, classes)))
    loss = tidy(sp.log(total) - s[y])
    steps.append(Step(_loss_symbol(i, single), [
        -sp.log(symbol("p", y + 1)), -sp.UnevaluatedExpr(sp.log(probs[y], evaluate=False)),
        *with_approx(loss)],
        f"the correct class is {_class(y, classes)}"))
    d.sections.append(Section(f"Example {i + 1}" if not single else "Softmax and loss", steps))
    return loss


def _svm_example(d, s, y, margin, i, classes, single):
    steps, terms = [Step(sp.Symbol("s"), [matrix(list(s))], "the scores")], []
    s_y, delta = symbol("s", y + 1), sp.Symbol("Delta")
    for j, v in enumerate(s):
        if j == y:
            continue
        term = sp.Max(0, v - s[y] + margin)
        terms.append(term)
        steps.append(Step(sp.Max(0, plus(symbol("s", j + 1), -s_y, delta), evaluate=False), [
            sp.Max(0, plus(v, sp.Mul(-1, s[y], evaluate=False), margin), evaluate=False), term],
            _class(j, classes)))
    loss = tidy(sp.Add(*terms))
    steps.append(Step(_loss_symbol(i, single), [plus(*terms), loss],
                      f"the correct class is {_class(y, classes)}"))
    d.sections.append(Section(f"Example {i + 1}" if not single else "Hinge terms", steps))
    return loss


def _class(k, classes):
    return str(classes[k]) if classes else f"class {k + 1} (index {k})"


def _finish(d, losses, single):
    if single:
        d.result = losses[0]
        return d
    avg = tidy(mean(losses))
    d.sections.append(Section("Mean over the examples", [Step(sp.Symbol("L"), [
        times(over(1, _N), sp.Sum(sp.Indexed("L", _i), (_i, 1, _N))),
        over(plus(*losses), len(losses)), *with_approx(avg)])]))
    d.meta["mean"] = avg
    d.result = losses
    return d


def _reduce(d, losses, reduction, name):
    if reduction == "none":
        d.result = losses
        return d
    total = tidy_symbolic(sp.Add(*losses))
    value = tidy_symbolic(total / len(losses)) if reduction == "mean" else total
    if symbolic(losses):  # simplified only where that is shorter than the losses added up
        added = sp.Add(*losses) / (len(losses) if reduction == "mean" else 1)
        value = min([added, value], key=sp.count_ops)
    summed = sp.Sum(sp.Indexed(name, _i), (_i, 1, _N))
    written = []  # in symbols, the sum of the losses as written before it is simplified
    if symbolic(losses):
        written = [over(plus(*losses), len(losses)) if reduction == "mean" else plus(*losses)]
    d.sections.append(Section("Loss", [Step(sp.Symbol("L"), [
        times(over(1, _N), summed) if reduction == "mean" else summed, *written,
        *shown(value)])]))
    d.result = value
    return d


def _vector(spec, key, where, like=None, names=None):
    v = symbolic_array(get(spec, key, where), f"{where}: {key}", names, ndim=(0, 1), name=key)
    v = v if isinstance(v, list) else [v]
    if like is not None and len(v) != len(like):
        raise ShapeError(f"{len(v)} entries but {len(like)} predictions", where=f"{where}: {key}")
    return v


def _sigmoid_section(d, logits):
    probs, steps = [], []
    for i, z in enumerate(logits):
        p = tidy_symbolic(1 / (1 + sp.exp(-z)))
        probs.append(p)
        z_i = symbol("z", i + 1)
        steps.append(Step(symbol("p", i + 1), [
            sigmoid(z_i), over(1, plus(1, sp.exp(-z_i))),
            over(1, plus(1, sp.exp(-z, evaluate=False))), *shown(p)]))
    d.sections.append(Section("Probabilities from the logits", steps))
    return probs


def _flat(nested):
    return [v for row in nested for v in row] if isinstance(nested[0], list) else list(nested)
