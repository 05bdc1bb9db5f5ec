"""Analysis derivations: stacked linear maps collapse, and initialisation variances.

* ``linear_collapse``: ``W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2)``, proved with
  matrix symbols (any sizes) and checked entry by entry at given sizes; with numbers,
  the collapsed ``W*`` and ``b*``.
* ``conv_collapse`` (in :mod:`.stacked_convolutions`): stacked convolutions (no
  nonlinearity between) are one convolution whose kernel is the composition of the kernels,
  per pair of channels; with zero padding, the positions where that holds.
* ``init_variance``: the Xavier/Glorot and Kaiming/He variance derivations.

The gradient-flow derivations (products of Jacobians) live in :mod:`.jacobians`.
"""
from __future__ import annotations

import sympy as sp

from derive.derivation import Derivation, Section, Step
from derive.errors import ShapeError
from derive.functions import relu
from derive.problem import check_keys, get, problem_kind
from derive.stepforms import Expectation, Variance, Word, plus, times, written
from derive.worked.common import array, dims, key_choice, key_int, shape, tidy, with_approx
from derive.worked.stacked_convolutions import NONLINEAR_NOTE  # (and registers conv_collapse)


# -- stacked linear layers ------------------------------------------------------------------
@problem_kind("linear_collapse")
def linear_collapse(spec, where):
    """Prove that stacked Linear layers equal one Linear layer; collapse given numbers."""
    check_keys(spec, {"kind", "title", "layers", "sizes", "weights", "biases"}, where)
    d = Derivation(title=get(spec, "title", where, default="Stacked linear layers collapse"),
                   kind="linear_collapse")
    if "weights" in spec:
        Ws, bs = _numeric_layers(spec, where)
        n = len(Ws)
    else:
        n = key_int(spec, "layers", where, 2, minimum=2)
        Ws = bs = None
    sizes = get(spec, "sizes", where, types=list, default=None)
    if sizes is None:
        sizes = [shape(Ws[0])[1]] + [shape(W)[0] for W in Ws] if Ws else [2] * (n + 1)
    if len(sizes) != n + 1:
        raise ShapeError(f"{n} layers need {n + 1} sizes (input, then each output), got "
                         f"{len(sizes)}", where=f"{where}: sizes")
    W_star, b_star = _prove_linear(d, n, sizes)
    d.note(NONLINEAR_NOTE)
    d.result = {"W": W_star, "b": b_star}
    if Ws is not None:
        d.result = _collapse_numbers(d, Ws, bs)
    return d


def _numeric_layers(spec, where):
    Ws = get(spec, "weights", where, types=list)
    Ws = [array(W, f"{where}: weights[{i}]", ndim=2, name="a weight") for i, W in enumerate(Ws)]
    bs = get(spec, "biases", where, types=list, default=None)
    bs = [[sp.Integer(0)] * shape(W)[0] for W in Ws] if bs is None else \
        [array(b, f"{where}: biases[{i}]", ndim=1, name="a bias") for i, b in enumerate(bs)]
    if len(Ws) < 2 or len(bs) != len(Ws):
        raise ShapeError(f"need at least two layers and one bias per layer (got {len(Ws)} "
                         f"weights, {len(bs)} biases)", where=f"{where}: biases")
    for i in range(len(Ws)):
        if len(bs[i]) != shape(Ws[i])[0]:
            raise ShapeError(f"bias {i + 1} has {len(bs[i])} entries but W{i + 1} is "
                             f"{dims(shape(Ws[i]))}", where=f"{where}: biases[{i}]")
        if i and shape(Ws[i])[1] != shape(Ws[i - 1])[0]:
            raise ShapeError(f"W{i + 1} is {dims(shape(Ws[i]))} but layer {i} outputs "
                             f"{shape(Ws[i - 1])[0]} values", where=f"{where}: weights[{i}]")
    return Ws, bs


def _prove_linear(d, n, sizes):
    """Matrix-symbol proof, then an entry-wise check at ``sizes``; returns (W*, b*)."""
    x = sp.MatrixSymbol("x", sizes[0], 1)
    Ws = [sp.MatrixSymbol(f"W_{i + 1}", sizes[i + 1], sizes[i]) for i in range(n)]
    bs = [sp.MatrixSymbol(f"b_{i + 1}", sizes[i + 1], 1) for i in range(n)]
    steps, h = [], x
    for i in range(n):
        prev = sp.MatrixSymbol(f"h_{i}", sizes[i], 1) if i else x
        h = Ws[i] * h + bs[i]
        steps.append(Step(sp.MatrixSymbol(f"h_{i + 1}", sizes[i + 1], 1),
                          [Ws[i] * prev + bs[i], h] if i else [h]))
    expanded = sp.expand(h)
    W_star = sp.MatMul(*reversed(Ws))
    b_star = sp.Add(*[sp.MatMul(*reversed(Ws[k + 1:]), bs[k]) if k + 1 < n else bs[k]
                      for k in range(n)])
    h_n = sp.MatrixSymbol(f"h_{n}", sizes[n], 1)
    w_sym, b_sym = sp.MatrixSymbol("W^*", sizes[n], sizes[0]), sp.MatrixSymbol("b^*", sizes[n], 1)
    difference = written(sp.MatAdd(h_n, sp.MatMul(-1, sp.MatAdd(w_sym * x, b_sym, evaluate=False),
                                                  evaluate=False), evaluate=False))
    steps.append(Step(h_n, [expanded],
                      "expand the products (matrix products distribute over sums)"))
    steps.append(Step(w_sym, [W_star]))
    steps.append(Step(b_sym, [b_star]))
    residual = sp.expand(expanded - (W_star * x + b_star))
    steps.append(Step(difference, [residual],
                      "zero for every size: one Linear layer with W* and b* computes the same map"))
    d.sections.append(Section("Proof with matrix symbols", steps))
    check = sp.simplify(sp.Matrix(expanded.as_explicit() - (W_star * x + b_star).as_explicit()))
    d.sections.append(Section(f"Entry-by-entry check at sizes {' -> '.join(map(str, sizes))}", [
        Step(difference, [check],
             "every entry expands to 0")]))
    if any(v != 0 for v in check):
        raise AssertionError("the collapse check failed")  # cannot happen: a proof, kept honest
    return W_star, b_star


def _collapse_numbers(d, Ws, bs):
    W = sp.Matrix(Ws[0])
    b = sp.Matrix(bs[0])
    steps = []

    def name(text):  # a factor of a product of matrices, kept in its order
        return sp.Symbol(text, commutative=False)

    for i in range(1, len(Ws)):
        Wi = sp.Matrix(Ws[i])
        b = Wi * b + sp.Matrix(bs[i])
        W = Wi * W
        w_prev, b_prev = (f"W^*_{i}", f"b^*_{i}") if i > 1 else ("W_1", "b_1")
        steps.append(Step(name(f"W^*_{i + 1}"), [name(f"W_{i + 1}") * name(w_prev),
                                                 W.applyfunc(tidy)]))
        steps.append(Step(name(f"b^*_{i + 1}"), [plus(name(f"W_{i + 1}") * name(b_prev),
                                                      name(f"b_{i + 1}")),
                                                 b.T.applyfunc(tidy)]))
    d.sections.append(Section("With the given numbers", steps))
    return {"W": W.applyfunc(tidy).tolist(), "b": [tidy(v) for v in b]}


# -- initialisation --------------------------------------------------------------------------
_INIT_NOTE = ("Weights and inputs are independent with zero mean, so Var(w x) = Var(w) Var(x) "
              "and the variances of a sum of independent terms add. n_in (fan-in) is the "
              "number of inputs of a unit, n_out (fan-out) the number of units an input feeds; "
              "PyTorch stores a Linear weight as [n_out, n_in], so fan_in is its second size.")
#: the result keys, each a textbook form: (variance as a function of n_in, n_out, what it is)
_FORMS = ("xavier_fan_in", "xavier", "kaiming", "kaiming_fan_out")


@problem_kind("init_variance")
def init_variance(spec, where):
    """Xavier/Glorot and Kaiming/He: the weight variance that keeps signals at unit scale,
    in each textbook form, with its normal std and uniform bound (as torch.nn.init)."""
    check_keys(spec, {"kind", "title", "n_in", "n_out", "init", "depth"}, where)
    which = key_choice(spec, "init", where, ("xavier", "kaiming", "both"), "both")
    n_in_v, n_out_v = key_int(spec, "n_in", where), key_int(spec, "n_out", where)
    depth = key_int(spec, "depth", where)
    n_in, n_out = sp.symbols("n_in n_out", positive=True)
    s2 = sp.Symbol("sigma_w^2", positive=True)
    subs = {k: v for k, v in ((n_in, n_in_v), (n_out, n_out_v)) if v is not None}
    d = Derivation(title=get(spec, "title", where, default="Initialisation variance"),
                   kind="init_variance")
    d.note(_INIT_NOTE)
    d.note("Each variance is shown as a normal N(0, sigma_w^2) (std sigma_w) and as a uniform "
           "U(-a, a) (a = sqrt(3) sigma_w, since a uniform's variance is a^2/3), the "
           "formulas torch.nn.init uses: xavier_normal_ std = sqrt(2/(fan_in + fan_out)), "
           "xavier_uniform_ a = sqrt(6/(fan_in + fan_out)), kaiming_normal_ std = "
           "sqrt(2/fan), kaiming_uniform_ a = sqrt(6/fan) (gain 1 and sqrt(2) for ReLU).")
    result = {}
    if which in ("xavier", "both"):
        result.update(_xavier(d, n_in, n_out, s2, subs, depth))
    if which in ("kaiming", "both"):
        result.update(_kaiming(d, n_in, n_out, s2, subs, depth))
    d.result = result
    return d


def _summary(var, subs):
    """variance, std and uniform bound (U(-a, a) has variance a^2/3), substituted."""
    values = {"variance": var, "std": sp.sqrt(var), "uniform_bound": sp.sqrt(3 * var)}
    return {k: tidy(v.subs(subs)) for k, v in values.items()}


def _summary_steps(var, subs, normal, uniform):
    """sigma_w and the uniform bound a of variance ``var``, each named by its torch call."""
    out = _summary(var, subs)
    numbers = bool(subs) and not out["variance"].free_symbols
    steps = [Step(sp.Symbol("sigma_w"), [sp.sqrt(var), *(with_approx(out["std"]) if numbers
                                                         else [])],
                  f"normal N(0, sigma_w^2): {normal}"),
             Step(sp.Symbol("a"), [sp.sqrt(3 * var), *(with_approx(out["uniform_bound"])
                                                       if numbers else [])],
                  f"uniform U(-a, a), a^2 / 3 = sigma_w^2: {uniform}")]
    return steps, out


def _variance_step(s2, var, subs, why):
    value = tidy(var.subs(subs))
    return Step(s2, [var, *([value] if subs and not value.free_symbols else [])], why)


def _xavier(d, n_in, n_out, s2, subs, depth):
    var_x = Variance(sp.Symbol("x"))
    i, j = sp.symbols("i j", integer=True, positive=True)
    loss = sp.Symbol("L")
    fan_in, glorot = 1 / n_in, 2 / (n_in + n_out)
    steps = [
        Step(Variance(sp.Symbol("y_j")), [
            sp.Sum(Variance(times(sp.Indexed("w", j, i), sp.Indexed("x", i))), (i, 1, n_in)),
            n_in * s2 * var_x], "forward pass, y = W x"),
        _variance_step(s2, sp.solve(sp.Eq(n_in * s2, 1), s2)[0], subs,
                       "keep Var(y) = Var(x): n_in sigma_w^2 = 1 (the slides' Xavier, "
                       "W = randn(n_in, n_out) / sqrt(n_in); also called LeCun)"),
    ]
    more, out_fan_in = _summary_steps(fan_in, subs, "randn / sqrt(n_in); kaiming_normal_ "
                                      "with nonlinearity='linear'",
                                      "kaiming_uniform_ with nonlinearity='linear'")
    steps += more + [
        Step(Variance(sp.Derivative(loss, sp.Symbol("x_i"))),
             [times(n_out, s2, Variance(sp.Derivative(loss, sp.Symbol("y"))))],
             "backward pass: the gradient is a sum over the n_out outputs"),
        _variance_step(s2, sp.solve(sp.Eq(n_out * s2, 1), s2)[0], subs,
                       "keep the gradient variance: n_out sigma_w^2 = 1"),
        _variance_step(s2, glorot, subs, "Xavier/Glorot: the harmonic mean of the two "
                       "conditions' variances 1/n_in and 1/n_out")]
    more, out = _summary_steps(glorot, subs, "xavier_normal_", "xavier_uniform_")
    steps += more + _depth_steps(n_in * s2, s2, glorot, subs, depth)
    d.sections.append(Section("Xavier / Glorot (linear or tanh units)", steps))
    return {"xavier_fan_in": out_fan_in, "xavier": out}


def _kaiming(d, n_in, n_out, s2, subs, depth):
    var_z = Variance(sp.Symbol("z"))
    x_i, z_i, loss = sp.symbols("x_i z_i L")
    steps = [
        Step(Expectation(x_i ** 2), [Expectation(relu(z_i) ** 2), var_z / 2],
             "z symmetric about 0: half its mass is zeroed, the other half keeps its square"),
        Step(Variance(sp.Symbol("y_j")), [times(n_in, s2, Expectation(x_i ** 2)),
                                          n_in * s2 * var_z / 2]),
        _variance_step(s2, sp.solve(sp.Eq(n_in * s2 / 2, 1), s2)[0], subs,
                       "keep Var(y) = Var(z): n_in sigma_w^2 / 2 = 1 (Kaiming/He, fan_in "
                       "mode: the forward signal keeps its scale)"),
    ]
    more, out = _summary_steps(2 / n_in, subs, "kaiming_normal_(mode='fan_in', "
                               "nonlinearity='relu')", "kaiming_uniform_(mode='fan_in', "
                               "nonlinearity='relu')")
    steps += more + [
        Step(Variance(sp.Derivative(loss, z_i)),
             [times(sp.Rational(1, 2), n_out, s2, Variance(sp.Derivative(loss, sp.Symbol("y"))))],
             "backward pass: a sum over n_out outputs, then ReLU' passes half the units"),
        _variance_step(s2, sp.solve(sp.Eq(n_out * s2 / 2, 1), s2)[0], subs,
                       "keep the gradient variance: n_out sigma_w^2 / 2 = 1 (Kaiming/He, "
                       "fan_out mode: the backward signal keeps its scale)")]
    more, out_fan_out = _summary_steps(2 / n_out, subs, "kaiming_normal_(mode='fan_out', "
                                       "nonlinearity='relu')", "kaiming_uniform_(mode="
                                       "'fan_out', nonlinearity='relu')")
    steps += more + _depth_steps(n_in * s2 / 2, s2, 2 / n_in, subs, depth)
    d.sections.append(Section("Kaiming / He (ReLU units)", steps))
    return {"kaiming": out, "kaiming_fan_out": out_fan_out}


def _depth_steps(gain, s2, var, subs, depth):
    """Var after L layers = gain^L Var(input): 1 at the chosen variance, else explodes/vanishes."""
    L = sp.Symbol("L", positive=True, integer=True)
    steps = [Step(Variance(sp.Symbol("y_L")), [gain ** L * Variance(sp.Symbol("y_0"))],
                  "the per-layer factor compounds over L layers")]
    if depth is not None and subs.get(sp.Symbol("n_in", positive=True)) is not None:
        for name, value in (("chosen", var), ("sigma_w^2 = 1", sp.Integer(1))):
            factor = tidy((gain.subs(s2, value) ** depth).subs(subs))
            if factor.free_symbols:  # a size the problem did not give (n_out for Glorot)
                continue
            steps.append(Step(Word(f"factor after {depth} layers"),
                              [*with_approx(factor)], f"with {name}"))
    return steps
