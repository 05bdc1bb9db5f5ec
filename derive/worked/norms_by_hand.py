"""LayerNorm and BatchNorm by hand: means, variances and normalised values, entry by entry.

LayerNorm normalises each *row* (one example's features); BatchNorm in train mode
normalises each *column* (one feature across the batch), in eval mode it uses running
statistics. Both use the biased variance (divide by the count ``n``), as PyTorch does when
normalising. The running variance is updated with the unbiased batch variance (``n - 1``,
PyTorch's) or, with ``running_var_update: biased``, the biased one (needle's, CS231n's).

Entries of ``X``, ``gamma``, ``beta`` and the running statistics may be expressions in
symbols the file declares (``symbols: [a, b, c]``, real numbers); ``eps`` and ``momentum``
are numbers.
"""
from __future__ import annotations

import sympy as sp

from derive.derivation import Derivation, Section, Step
from derive.errors import InputError, ShapeError
from derive.problem import check_keys, get, problem_kind
from derive.stepforms import minus, over, plus, power, root, times
from derive.layers.norms import RUNNING_VAR
from derive.worked.common import (EXACT_NOTE, SYMBOLS_NOTE, all_exact, declared_symbols, dims,
                                  entry, key_choice, key_constant, matrix, said, shape, symbol,
                                  symbolic, symbolic_array, tidy_symbolic)

EPS, M = sp.symbols("epsilon m")

_NORM_KEYS = {"kind", "title", "X", "eps", "gamma", "beta", "symbols"}
_BN_KEYS = _NORM_KEYS | {"mode", "running_mean", "running_var", "momentum", "running_var_update"}


@problem_kind("layernorm")
def layernorm(spec, where):
    """LayerNorm of each row of ``X``: ``y = gamma * (x - mu) / sqrt(var + eps) + beta``."""
    check_keys(spec, _NORM_KEYS, where)
    names = declared_symbols(spec, where, real=True)
    X, eps, gamma, beta = _read_common(spec, where, names)
    d = _derivation(spec, where, "layernorm", "LayerNorm by hand", X, eps)
    d.note("LayerNorm normalises each row (one example) over its features.")
    _symbols_note(d, X, gamma, beta)
    rows = []
    for i, row in enumerate(X):
        steps, normed = _normalise(row, i, "row", eps, f"{where}: X row {i + 1}")
        d.sections.append(Section(f"Row {i + 1}", steps))
        rows.append(normed)
    Y = _affine(d, rows, gamma, beta, where)
    d.result = Y
    return d


@problem_kind("batchnorm")
def batchnorm(spec, where):
    """BatchNorm of ``X`` (rows are examples) in train mode (batch statistics) or eval mode."""
    check_keys(spec, _BN_KEYS, where)
    names = declared_symbols(spec, where, real=True)
    X, eps, gamma, beta = _read_common(spec, where, names)
    mode = key_choice(spec, "mode", where, ("train", "eval"), "train")
    d = _derivation(spec, where, "batchnorm", f"BatchNorm ({mode} mode) by hand", X, eps)
    n_feat = len(X[0])
    running = _running(spec, where, n_feat, names)
    update = _update_option(spec, where, mode)
    _symbols_note(d, X, gamma, beta, *running)
    if mode == "train":
        cols = _train_columns(d, X, eps, where)
        if any(k in spec for k in ("running_mean", "running_var", "momentum",
                                   "running_var_update")):
            momentum = key_constant(spec, "momentum", where, sp.Rational(1, 10), names)
            _running_update(d, X, running, momentum, update)
    else:
        cols = _eval_columns(d, X, eps, running, where)
    Y = _affine(d, _transpose(cols), gamma, beta, where)
    if mode == "eval":
        _training_false_section(d, X, eps, running, spec)
    d.result = Y
    return d


# -- reading -----------------------------------------------------------------------------
def _read_common(spec, where, names):
    X = symbolic_array(get(spec, "X", where), f"{where}: X", names, ndim=(1, 2), name="X")
    if not isinstance(X[0], list):
        X = [X]
    eps = key_constant(spec, "eps", where, sp.Integer(0), names)
    if eps < 0:
        raise InputError(f"eps must be non-negative, got {eps}", where=f"{where}: eps")
    gamma = _per_feature(spec, "gamma", where, len(X[0]), names)
    beta = _per_feature(spec, "beta", where, len(X[0]), names)
    return X, eps, gamma, beta


def _per_feature(spec, key, where, n, names):
    """A per-feature vector (a scalar is broadcast); None when absent."""
    if key not in spec:
        return None
    value = symbolic_array(spec[key], f"{where}: {key}", names, ndim=(0, 1), name=key)
    if not isinstance(value, list):
        return [value] * n
    if len(value) != n:
        raise ShapeError(f"has {len(value)} entries but X has {n} features",
                         where=f"{where}: {key}")
    return value


def _running(spec, where, n, names):
    if spec.get("running_var") in RUNNING_VAR:
        raise InputError(f"running_var holds the running variances (numbers); the batch "
                         f"variance the update uses is chosen with 'running_var_update: "
                         f"{spec['running_var']}'", where=f"{where}: running_var")
    mean = _per_feature(spec, "running_mean", where, n, names) or [sp.Integer(0)] * n
    var = _per_feature(spec, "running_var", where, n, names) or [sp.Integer(1)] * n
    return mean, var


def _update_option(spec, where, mode):
    """Which batch variance the running variance is updated with (train mode only)."""
    if mode == "eval" and "running_var_update" in spec:
        raise InputError("eval mode does not update the running statistics; "
                         "running_var_update applies in train mode",
                         where=f"{where}: running_var_update")
    return key_choice(spec, "running_var_update", where, RUNNING_VAR, "unbiased")


def _derivation(spec, where, kind, title, X, eps):
    d = Derivation(title=get(spec, "title", where, types=str, default=title), kind=kind)
    d.sections.append(Section("Input", [Step(sp.Symbol("X"), [matrix(X)],
                                             f"shape {dims(shape(X))}"),
                                        Step(EPS, [eps])]))
    if all_exact(X, eps):
        d.note(EXACT_NOTE)
    d.note("The variance is the biased one (divide by n), as PyTorch uses to normalise.")
    if eps == 0:
        d.note("eps = 0" + ("" if "eps" in spec else " (none given)")
               + ", so the normalised values are exact z-scores.")
    return d


def _symbols_note(d, *arrays):
    found = symbolic(*arrays)
    if found:
        d.note(SYMBOLS_NOTE.format(names=", ".join(map(str, found))) + " A square root of a "
               "square is an absolute value: sqrt((a - b)^2) = |a - b|.")


# -- the arithmetic, one group (row or column) at a time ---------------------------------
def _normalise(values, k, what, eps, where):
    """Steps for mean, variance and normalised values of one group; (steps, normalised)."""
    n = len(values)
    idx = (lambda j: (k, j)) if what == "row" else (lambda j: (j, k))
    mu_sym, sigma = symbol("mu", k + 1), symbol("sigma", k + 1)
    group = sp.Symbol("j" if what == "row" else "i", integer=True, positive=True)
    x_sym = sp.Indexed("x", k + 1, group) if what == "row" else sp.Indexed("x", group, k + 1)
    mu = tidy_symbolic(sp.Add(*values) / n)
    var = tidy_symbolic(sp.Add(*[(v - mu) ** 2 for v in values]) / n)
    steps = [
        Step(mu_sym, [times(sp.Rational(1, n), sp.Sum(x_sym, (group, 1, n))),
                      over(plus(*values), n), mu]),
        Step(sigma ** 2, [times(sp.Rational(1, n),
                                sp.Sum(power(minus(x_sym, mu_sym), 2), (group, 1, n))),
                          over(plus(*[power(minus(v, mu), 2) for v in values]), n), var]),
    ]
    if var + eps == 0:
        raise InputError(f"division by zero: the {what} is constant (variance 0 and eps = 0)",
                         where=where)
    denom = sp.sqrt(var + eps)
    normed = []
    for j, v in enumerate(values):
        x_hat = tidy_symbolic((v - mu) / denom)
        normed.append(x_hat)
        steps.append(Step(entry("xhat", *idx(j)), [
            over(minus(entry("x", *idx(j)), mu_sym), root(plus(sigma ** 2, EPS))),
            over(minus(v, mu), root(plus(var, eps))), x_hat]))
    return steps, normed


def _train_columns(d, X, eps, where):
    cols = []
    for j, col in enumerate(_transpose(X)):
        steps, normed = _normalise(col, j, "column", eps, f"{where}: X column {j + 1}")
        d.sections.append(Section(f"Feature {j + 1} (column {j + 1}, over the batch)", steps))
        cols.append(normed)
    return cols


def _eval_columns(d, X, eps, running, where):
    mean, var = running
    cols = []
    for j, col in enumerate(_transpose(X)):
        if not (var[j] + eps).free_symbols and var[j] + eps <= 0:
            raise InputError(f"division by zero: running variance {var[j]} + eps is not "
                             f"positive", where=f"{where}: running_var[{j}]")
        steps, normed = [], []
        for i, v in enumerate(col):
            x_hat = tidy_symbolic((v - mean[j]) / sp.sqrt(var[j] + eps))
            normed.append(x_hat)
            steps.append(Step(entry("xhat", i, j), [
                over(minus(entry("x", i, j), symbol("muhat", j + 1)),
                     root(plus(symbol("sigmahat", j + 1) ** 2, EPS))),
                over(minus(v, mean[j]), root(plus(var[j], eps))), x_hat]))
        d.sections.append(Section(f"Feature {j + 1} with running statistics", steps))
        cols.append(normed)
    d.note("Eval mode normalises with the running statistics, not the batch's: each "
           "example's output does not depend on the rest of the batch.")
    return cols


def _affine(d, rows, gamma, beta, where):
    if gamma is None and beta is None:
        d.sections.append(Section("Output", [Step(sp.Symbol("Y"), [matrix(rows)],
                                                  "no gamma or beta given: Y = X-hat")]))
        return rows
    gamma = gamma or [sp.Integer(1)] * len(rows[0])
    beta = beta or [sp.Integer(0)] * len(rows[0])
    steps, out = [], []
    for i, row in enumerate(rows):
        out.append([])
        for j, x_hat in enumerate(row):
            y = tidy_symbolic(gamma[j] * x_hat + beta[j])
            out[-1].append(y)
            steps.append(Step(entry("y", i, j), [
                plus(times(symbol("gamma", j + 1), entry("xhat", i, j)), symbol("beta", j + 1)),
                plus(times(gamma[j], x_hat), beta[j]), y]))
    steps.append(Step(sp.Symbol("Y"), [matrix(out)]))
    d.sections.append(Section("Scale and shift", steps))
    return out


def _running_update(d, X, running, momentum, update):
    """``r <- (1 - m) r + m * stat``; the variance fed in is the unbiased batch variance
    (PyTorch's) or, with ``update == "biased"``, the biased one (needle's, CS231n's)."""
    n = len(X)
    steps = []
    for j, col in enumerate(_transpose(X)):
        mu = tidy_symbolic(sp.Add(*col) / n)
        new_mean = tidy_symbolic((1 - momentum) * running[0][j] + momentum * mu)
        muhat = symbol("muhat", j + 1)
        steps.append(Step(muhat, [
            plus(times(minus(1, M), muhat), times(M, symbol("mu", j + 1))),
            plus(times(1 - momentum, running[0][j]), times(momentum, mu)), new_mean]))
        if update == "biased" or n > 1:
            steps.append(_variance_update(col, mu, j, running[1][j], momentum, update))
    d.sections.append(Section("Running statistics after this batch", steps,
                              text=_update_text(momentum, update, n)))


def _variance_update(col, mu, j, running_var, momentum, update):
    """The step of the running variance of feature ``j``."""
    n, n_ = len(col), sp.Symbol("n")
    biased = tidy_symbolic(sp.Add(*[(v - mu) ** 2 for v in col]) / n)
    sigma2, sigmahat2 = symbol("sigma", j + 1) ** 2, symbol("sigmahat", j + 1) ** 2
    if update == "unbiased":
        fed, fed_n = (times(M, over(n_, minus(n_, 1)), sigma2),
                      times(momentum, over(n, n - 1), biased))
        batch_var = biased * n / (n - 1)
    else:
        fed, fed_n, batch_var = times(M, sigma2), times(momentum, biased), biased
    return Step(sigmahat2, [
        plus(times(minus(1, M), sigmahat2), fed), plus(times(1 - momentum, running_var), fed_n),
        tidy_symbolic((1 - momentum) * running_var + momentum * batch_var)])


def _update_text(momentum, update, n):
    if update == "biased":
        which = ("the biased batch variance sigma^2 (divide by n), as needle and CS231n do "
                 "(running_var_update: biased)")
    else:
        which = ("the unbiased batch variance n/(n - 1) sigma^2 (divide by n - 1), as PyTorch "
                 "does (running_var_update: unbiased, the default)")
    text = f"Momentum m = {said(momentum)}, n = {n}. The running variance is updated with {which}."
    if update == "unbiased" and n == 1:
        text += (" With one example the unbiased variance is undefined (0/0), so only the "
                 "running mean is updated; PyTorch refuses such a batch in train mode.")
    return text


def _training_false_section(d, X, eps, running, spec):
    """What goes wrong when a model is trained in eval mode (training=False) by mistake."""
    given = "running_mean" in spec or "running_var" in spec
    text = ("If a model is trained with training=False (model.eval()) by mistake, BatchNorm "
            "uses the running statistics at every step and never updates them. They stay at "
            "their initial values, mean 0 and variance 1, so y = gamma * x / sqrt(1 + eps) + "
            "beta: the layer does not normalise at all, the gradient does not flow through "
            "batch statistics, and the network trains as if BatchNorm were an affine layer.")
    x = sp.Symbol("x")
    steps = [Step(sp.Symbol("xhat"), [over(minus(x, 0), root(plus(1, EPS))),
                                      over(x, root(1 + eps))],
                  "initial running statistics")]
    try:
        contrast = [[tidy_symbolic(v) for v in col] for col in
                    [_normalise(c, j, "column", eps, "")[1] for j, c in enumerate(_transpose(X))]]
        steps.append(Step(sp.Symbol("Xhat_train"), [matrix(_transpose(contrast))],
                          "the same batch normalised with its own statistics, for contrast"))
    except InputError:
        pass  # a constant column: train mode would divide by zero, nothing to contrast
    if not given:
        text += " The running statistics here were not given, so the initial ones were used."
    d.sections.append(Section("Trained with training=False by mistake", steps, text=text))


def _transpose(rows):
    return [list(col) for col in zip(*rows)]
