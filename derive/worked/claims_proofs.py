"""Claims decided by derivation: each a worked problem, every step shown, exact on exact input.

* ``layernorm_linear``: LayerNorm is not linear -- a counterexample *searched for* over
  small integer vectors, then shown with exact numbers (refuted);
* ``shift_invariance``: circular padding + convolution + global average pooling does not
  see circular shifts -- proved on a symbolic image of a given size, shown on numbers;
* ``dropout_ridge``: inverted dropout on a linear model's inputs is ridge (Tikhonov)
  regularisation in expectation, ``E[(y - w.(m*x)/p)^2] = (y - w.x)^2 + (1-p)/p sum w_i^2 x_i^2``;
* ``stationary_point``: ``df/dtheta = 0`` solved for an expression in declared symbols,
  each root classified by the second derivative (``sigma(z)(1 - sigma(z))`` peaks at 0).

The gradient-flow claims are in :mod:`.claims_gradients`. Symbolic steps run under
:func:`derive.budget.deadline` (key ``seconds``): out of time, a claim is undecided and says
what it tried.
"""
from __future__ import annotations

import itertools

import numpy as np
import sympy as sp

from derive.budget import Timeout, deadline
from derive.derivation import Section, Step
from derive.errors import InputError, ShapeError
from derive.problem import get
from derive.stepforms import (Expectation, Variance, Word, approx, minus, over, plus, power,
                              times)
from derive.worked.claims import Verdict, claim
from derive.worked.common import (array, declared_symbols, key_int, key_number, matrix, tidy,
                                  value, with_approx)

_SECONDS = 20  # default budget of one symbolic check


def read_seconds(spec, where):
    s = key_number(spec, "seconds", where, default=_SECONDS)
    if not s > 0:
        raise InputError(f"expected a positive number of seconds, got {s}",
                         where=f"{where}: seconds")
    return float(s)


def read_vector(spec, key, where, default):
    raw = get(spec, key, where, default=default)
    return array(raw, f"{where}: {key}", ndim=1, name=key)


# -- LayerNorm is not linear ---------------------------------------------------------------------
def _layernorm(x):
    """Exact LN without affine parameters and eps = 0: (mean, variance, LN(x))."""
    n = len(x)
    mu = sp.Add(*x) / n
    var = sp.Add(*[(v - mu) ** 2 for v in x]) / n
    return mu, var, [sp.radsimp((v - mu) / sp.sqrt(var)) for v in x]


def _ln_float(x):
    x = np.asarray(x, float)
    return (x - x.mean()) / x.std()


def _search_counterexample(n, r):
    """The first pair (x, y) of integer vectors in [-r, r]^n, smallest entries first, with
    LN(x + y) != LN(x) + LN(y) (floats to search, exact arithmetic to confirm); also how
    many pairs were tried."""
    vectors = sorted((v for v in itertools.product(range(-r, r + 1), repeat=n)
                      if len(set(v)) > 1), key=lambda v: (sum(map(abs, v)), v))
    tried = 0
    for x, y in itertools.product(vectors, repeat=2):
        s = [a + b for a, b in zip(x, y)]
        if len(set(s)) == 1 or _parallel(x, y):  # LN of a constant vector divides by
            continue  # zero (eps = 0); y = a x is homogeneity, shown separately
        tried += 1
        if np.allclose(_ln_float(s), _ln_float(x) + _ln_float(y)):
            continue
        xs, ys = [sp.Integer(v) for v in x], [sp.Integer(v) for v in y]
        ln_s = _layernorm([p + q for p, q in zip(xs, ys)])[2]
        gap = [sp.radsimp(a - b - c) for a, b, c in
               zip(ln_s, _layernorm(xs)[2], _layernorm(ys)[2])]
        if any(g != 0 for g in gap):
            return xs, ys, tried
    return None, None, tried


def _parallel(x, y):
    return all(a * d == b * c for (a, b), (c, d) in itertools.combinations(zip(x, y), 2))


def _ln_steps(name, x):
    mu, var, ln = _layernorm(x)
    sym = sp.Symbol(name)
    return [Step(sp.Symbol(f"mu_{name}"), [over(plus(*x), len(x)), mu]),
            Step(sp.Symbol(f"sigma^2_{name}"), [var]),
            Step(sp.Function("LN")(sym), [matrix(ln)])], ln


@claim("layernorm_linear", "LayerNorm is a linear map", keys={"size", "range"})
def layernorm_linear(spec, where, d):
    n = key_int(spec, "size", where, 3, minimum=2)
    r = key_int(spec, "range", where, 2)
    if (2 * r + 1) ** n > 2000:
        raise InputError(f"searching {2 * r + 1}^{n} vectors is too many; take a smaller "
                         "size or range", where=f"{where}: range")
    d.note("LN(x) = (x - mu) / sqrt(sigma^2), mu the mean and sigma^2 the biased variance of "
           "the entries, without gamma and beta and with eps = 0, so every value is exact. "
           "A linear map f satisfies f(x + y) = f(x) + f(y) and f(a x) = a f(x).")
    x, y, tried = _search_counterexample(n, r)
    if x is None:
        return Verdict("undecided", f"no counterexample among {tried} pairs of integer "
                       f"vectors in [-{r}, {r}]^{n}")
    d.sections.append(Section("Search", [Step(Word("pairs tried"), [tried],
                                              f"integer vectors with entries in [-{r}, {r}], "
                                              "smallest first; the first pair that breaks "
                                              "additivity (confirmed exactly)")]))
    s = [a + b for a, b in zip(x, y)]
    steps, ln_x = _ln_steps("x", x)
    more, ln_y = _ln_steps("y", y)
    steps += more
    d.sections.append(Section(f"LN of x = {list(x)} and y = {list(y)}", steps))
    steps, ln_s = _ln_steps("s", s)
    total = [sp.radsimp(a + b) for a, b in zip(ln_x, ln_y)]
    gap = [sp.radsimp(a - b) for a, b in zip(ln_s, total)]
    LN = sp.Function("LN")
    steps = [Step(sp.Symbol("s"), [plus(sp.Symbol("x"), sp.Symbol("y")), matrix(s)])] + steps
    steps += [Step(plus(LN(sp.Symbol("x")), LN(sp.Symbol("y"))), [matrix(total)]),
              Step(minus(LN(sp.Symbol("s")), plus(LN(sp.Symbol("x")), LN(sp.Symbol("y")))),
                   [matrix(gap), matrix([approx(g) if g != 0 else g for g in gap])],
                   "not zero: LN(x + y) != LN(x) + LN(y)")]
    d.sections.append(Section("Additivity fails", steps))
    two = [2 * v for v in x]
    ln_two = _layernorm(two)[2]
    d.sections.append(Section("Homogeneity fails too", [
        Step(LN(2 * sp.Symbol("x")), [matrix(ln_two)], "the mean and the standard deviation "
             "both double, so the scale cancels: LN(2x) = LN(x)"),
        Step(2 * LN(sp.Symbol("x")), [matrix([sp.radsimp(2 * v) for v in ln_x])],
             "differs from LN(2x)")]))
    d.note("LayerNorm subtracts the mean (a linear step) but divides by the standard "
           "deviation, which depends on the input: that division is what breaks linearity.")
    k = next(i for i, g in enumerate(gap) if g != 0)
    return Verdict("refuted", f"x = {list(x)}, y = {list(y)}: entry {k + 1} of LN(x + y) - "
                   f"(LN(x) + LN(y)) is {float(gap[k]):.4g}, not 0"), \
        {"x": x, "y": y, "difference": gap}


# -- circular padding + global average pooling ---------------------------------------------------
def _circular_conv(x, k):
    """'same'-size cross-correlation with circular padding (centre of an odd kernel)."""
    H, W, kh, kw = len(x), len(x[0]), len(k), len(k[0])
    ch, cw = kh // 2, kw // 2
    return [[sp.expand(sp.Add(*[x[(i + a - ch) % H][(j + b - cw) % W] * k[a][b]
                                for a in range(kh) for b in range(kw)]))
             for j in range(W)] for i in range(H)]


def _shift(x, di, dj):
    H, W = len(x), len(x[0])
    return [[x[(i - di) % H][(j - dj) % W] for j in range(W)] for i in range(H)]


def _image(spec, where, H, W):
    raw = get(spec, "image", where, default="symbolic")
    if raw == "symbolic":
        return [[sp.Symbol(f"x_{i + 1}{j + 1}") for j in range(W)] for i in range(H)], False
    if raw == "random":
        seed = key_int(spec, "seed", where, 0, minimum=0)
        rng = np.random.default_rng(seed)
        return [[sp.Integer(int(v)) for v in row] for row in rng.integers(-9, 10, (H, W))], True
    if isinstance(raw, str):
        raise InputError(f"expected 'symbolic', 'random' or a 2-D array, got {raw!r:.40}",
                         where=f"{where}: image")
    x = array(raw, f"{where}: image", ndim=2, name="the image")
    if [len(x), len(x[0])] != [H, W]:
        raise ShapeError(f"the image is {len(x)} x {len(x[0])} but size is {H} x {W}",
                         where=f"{where}: image")
    return x, True


@claim("shift_invariance", "circular padding, a convolution and global average pooling give "
       "the same output for every circular shift of the input",
       keys={"size", "kernel", "shift", "image", "seed", "seconds"})
def shift_invariance(spec, where, d):
    H, W = _pair(spec, "size", where, [3, 3], 1)
    di, dj = _pair(spec, "shift", where, [1, 1], 0)
    raw_k = get(spec, "kernel", where, default=None)
    k = [[sp.Symbol(f"k_{a + 1}{b + 1}") for b in range(3)] for a in range(3)] if raw_k is None \
        else array(raw_k, f"{where}: kernel", ndim=2, name="the kernel")
    if len(k) % 2 == 0 or len(k[0]) % 2 == 0:
        raise ShapeError("the kernel needs odd sizes (its centre is the output position)",
                         where=f"{where}: kernel")
    x, numeric = _image(spec, where, H, W)
    seconds = read_seconds(spec, where)
    d.note(f"Convolution is cross-correlation with circular padding (the image wraps around: "
           f"rows and columns are indices mod {H} and {W}), output the size of the input; "
           f"global average pooling is g = (1/{H * W}) sum_ij y_ij; the shift moves every "
           f"entry {di} down and {dj} right, wrapping around.")
    i, j, a, b = sp.symbols("i j a b", integer=True)
    X, K, Y = sp.IndexedBase("x"), sp.IndexedBase("k"), sp.IndexedBase("y")
    ch, cw = len(k) // 2, len(k[0]) // 2
    conv = sp.Sum(times(X[sp.Mod(i + a - ch, H), sp.Mod(j + b - cw, W)], K[a, b]),
                  (a, 0, len(k) - 1), (b, 0, len(k[0]) - 1))
    d.sections.append(Section("The layers", [
        Step(Y[i, j], [conv]),
        Step(sp.Symbol("g"), [over(sp.Sum(Y[i, j], (i, 0, H - 1), (j, 0, W - 1)), H * W)]),
        Step(sp.IndexedBase("x'")[i, j],
             [X[sp.Mod(i - di, H), sp.Mod(j - dj, W)]], "the shifted image")]))
    try:
        with deadline(seconds):
            return _decide_shift(d, x, k, di, dj, numeric, H, W)
    except Timeout:
        return Verdict("undecided", f"expanding the {H} x {W} symbolic image's outputs ran "
                       f"out of time ({seconds:g} s); nothing was proved")


def _pair(spec, key, where, default, minimum):
    raw = get(spec, key, where, types=list, default=default)
    if len(raw) != 2 or any(not isinstance(v, int) or isinstance(v, bool) or v < minimum
                            for v in raw):
        raise InputError(f"expected two integers >= {minimum}, got {raw!r:.40}",
                         where=f"{where}: {key}")
    return raw


def _decide_shift(d, x, k, di, dj, numeric, H, W):
    y = _circular_conv(x, k)
    xs = _shift(x, di, dj)
    ys = _circular_conv(xs, k)
    g = sp.factor(sp.Add(*[v for row in y for v in row]) / (H * W))
    gs = sp.factor(sp.Add(*[v for row in ys for v in row]) / (H * W))
    equiv = [[sp.expand(p - q) for p, q in zip(r1, r2)] for r1, r2 in zip(ys, _shift(y, di, dj))]
    ksum, xsum = sp.Add(*[v for row in k for v in row]), sp.Add(*[v for row in x for v in row])
    closed = sp.expand(ksum * xsum / (H * W))
    steps = [Step(sp.Symbol("x"), [sp.Matrix(x)]), Step(sp.Symbol("x'"), [sp.Matrix(xs)])]
    if numeric:
        steps += [Step(sp.Symbol("y"), [sp.Matrix(y)]), Step(sp.Symbol("y'"), [sp.Matrix(ys)])]
    else:
        steps.append(Step(sp.Symbol("y_11"), [y[0][0]], "the first output, written out"))
    steps += [Step(minus(sp.Symbol("y'"), sp.Function("shift")(sp.Symbol("y"))),
                   [sp.Matrix(equiv)], "circular convolution commutes with the circular shift "
                   "(the output shifts with the input)"),
              Step(sp.Symbol("S_k"), [ksum], "the sum of the kernel's entries"),
              Step(sp.Symbol("S_x"), [xsum], "the sum of the image's entries")]
    sk, sx = sp.Symbol("S_k"), sp.Symbol("S_x")
    short = (lambda v: v) if numeric else (lambda v: v.subs({ksum: sk}).subs({xsum: sx}))
    steps += [Step(sp.Symbol("g"), [short(g), times(over(1, H * W), sk, sx)],
                   "every input entry meets every kernel entry exactly once, so g = S_k S_x "
                   "/ (H W), and no permutation of the image changes S_x"),
              Step(sp.Symbol("g'"), [short(gs)]),
              Step(minus(sp.Symbol("g'"), sp.Symbol("g")), [sp.expand(gs - g)])]
    d.sections.append(Section("On a numeric image" if numeric else
                              f"On a symbolic {H} x {W} image", steps))
    if sp.expand(gs - g) != 0 or sp.expand(g - closed) != 0:
        return Verdict("refuted", f"g' - g = {sp.expand(gs - g)}"), {"g": g, "g_shifted": gs}
    if not numeric:
        g = gs = times(over(1, H * W), sk, sx)
    if numeric:
        return Verdict("shown", f"g = g' = {g} on the given {H} x {W} image (numbers, not a "
                       "proof)"), {"g": g, "g_shifted": gs}
    return Verdict("proved", f"g' - g expands to 0 for every {H} x {W} image and kernel; "
                   f"g = (sum of kernel)(sum of image)/{H * W}"), {"g": g, "g_shifted": gs}


# -- dropout is ridge in expectation -------------------------------------------------------------
@claim("dropout_ridge", "dropout on a linear model's inputs equals ridge (Tikhonov) "
       "regularisation in expectation", keys={"size", "p", "w", "x", "y", "seconds"})
def dropout_ridge(spec, where, d):
    n = key_int(spec, "size", where, 2)
    if n > 4:
        raise ShapeError("at most 4 inputs (the expectation enumerates 2^size masks)",
                         where=f"{where}: size")
    p_raw = get(spec, "p", where, default=None)
    p = sp.Symbol("p", positive=True) if p_raw is None else value(p_raw, f"{where}: p", None)
    if p_raw is not None and not 0 < p <= 1:
        raise InputError(f"the keep probability must be in (0, 1], got {p}", where=f"{where}: p")
    seconds = read_seconds(spec, where)
    w = [sp.Symbol(f"w_{i + 1}", real=True) for i in range(n)]
    x = [sp.Symbol(f"x_{i + 1}", real=True) for i in range(n)]
    y, m, u = sp.Symbol("y", real=True), sp.Symbol("m_i"), sp.Symbol("u")
    d.note("Inverted dropout: each input is kept with probability p (m_i ~ Bernoulli(p), "
           "independent) and scaled by 1/p, so the model sees u = sum_i w_i m_i x_i / p. The "
           "expectation is over the masks; w, x and y are fixed.")
    wx = sp.Add(*[a * b for a, b in zip(w, x)])
    penalty = (1 - p) / p * sp.Add(*[a ** 2 * b ** 2 for a, b in zip(w, x)])
    i, N = sp.Symbol("i", integer=True, positive=True), sp.Symbol("n", integer=True)
    Wi, Xi = sp.IndexedBase("w")[i], sp.IndexedBase("x")[i]
    dot, squares = sp.Sum(times(Wi, Xi), (i, 1, N)), sp.Sum(times(power(Wi, 2), power(Xi, 2)),
                                                            (i, 1, N))
    d.sections.append(Section("For any number of inputs", [
        Step(Expectation(m / p), [over(p, p), 1]),
        Step(Expectation((m / p) ** 2), [over(p, p ** 2), 1 / p], "m_i^2 = m_i"),
        Step(Variance(m / p), [minus(1 / p, 1), (1 - p) / p]),
        Step(u, [sp.Sum(over(times(Wi, sp.Indexed("m", i), Xi), p), (i, 1, N))]),
        Step(Expectation(u), [dot], "linearity of E"),
        Step(Variance(u), [times((1 - p) / p, squares)],
             "the masks are independent: variances add, Var(c Z) = c^2 Var(Z)"),
        Step(Expectation((y - u) ** 2), [plus(power(minus(y, Expectation(u)), 2), Variance(u)),
                                         plus(power(minus(y, dot), 2),
                                              times((1 - p) / p, squares))],
             "E[Z^2] = (E Z)^2 + Var Z: the squared error of the full model plus a weighted "
             "L2 penalty")]))
    try:
        with deadline(seconds):
            terms, gap = _dropout_enumerate(w, x, y, p, n)
    except Timeout:
        return Verdict("undecided", f"summing the 2^{n} masks symbolically ran out of time "
                       f"({seconds:g} s); the general steps stand but were not checked")
    steps = [Step(Word(f"mask {''.join(map(str, mask))}"), [term],
                  "P(mask) (y - u(mask))^2" if k == 0 else "") for k, (mask, term) in
             enumerate(terms)]
    steps.append(Step(minus(Expectation((y - u) ** 2), plus((y - wx) ** 2, penalty)), [gap],
                      f"the sum of the {2 ** n} terms minus the claimed form expands to 0"))
    d.sections.append(Section(f"Check by summing the {2 ** n} masks ({n} inputs)", steps))
    answer = {"penalty": penalty}
    if gap != 0:
        return Verdict("refuted", f"the difference is {gap}"), answer
    nums = _dropout_numbers(spec, where, d, w, x, y, p, penalty, wx)
    if nums:
        answer.update(nums)
    d.note("Over a data set the penalty is sum_i w_i^2 (1-p)/p sum_n x_ni^2: ridge with a "
           "per-feature weight (Tikhonov), strongest where the inputs are large; smaller p "
           "(more dropping) is a stronger penalty.")
    return Verdict("proved", f"E over the {2 ** n} masks minus (y - w.x)^2 + (1-p)/p sum "
                   "w_i^2 x_i^2 expands to 0 for every w, x, y and p"), answer


def _dropout_enumerate(w, x, y, p, n):
    """Each mask's term P(mask) (y - u(mask))^2, and the sum minus the claimed form."""
    terms = []
    for mask in itertools.product((1, 0), repeat=n):
        prob = times(*[p if k else 1 - p for k in mask])
        u = sp.Add(*[wi * k * xi for wi, k, xi in zip(w, mask, x)]) / p
        terms.append((mask, times(prob, power(y - u, 2))))
    total = sp.Add(*[sp.expand(sp.Mul(*[p if k else 1 - p for k in mask]) *
                               (y - sp.Add(*[wi * k * xi for wi, k, xi in zip(w, mask, x)]) / p)
                               ** 2) for mask, _ in terms])
    wx = sp.Add(*[a * b for a, b in zip(w, x)])
    rhs = (y - wx) ** 2 + (1 - p) / p * sp.Add(*[a ** 2 * b ** 2 for a, b in zip(w, x)])
    return terms, sp.simplify(sp.expand(total - rhs))


def _dropout_numbers(spec, where, d, w, x, y, p, penalty, wx):
    if not any(k in spec for k in ("w", "x", "y")):
        return None
    wn, xn = read_vector(spec, "w", where, None), read_vector(spec, "x", where, None)
    if len(wn) != len(w) or len(xn) != len(x):
        raise ShapeError(f"w and x need {len(w)} entries (size)", where=f"{where}: w")
    yn = value(get(spec, "y", where), f"{where}: y", None)
    at = {**dict(zip(w, wn)), **dict(zip(x, xn)), y: yn}
    err, pen = ((y - wx) ** 2).subs(at), penalty.subs(at)
    d.sections.append(Section("With the given numbers", [
        Step(power(minus(y, sp.Symbol("w.x")), 2), [err], "w.x = sum_i w_i x_i"),
        Step(Word("penalty"), [pen]),
        Step(Expectation((y - sp.Symbol("u")) ** 2), [plus(err, pen), *with_approx(tidy(err + pen))]
             if not (err + pen).free_symbols else [tidy(err + pen)])]))
    return {"expected_loss": tidy(err + pen), "squared_error": err, "penalty_value": tidy(pen)}


# -- stationary points ---------------------------------------------------------------------------
def _value_forms(v):
    return [v] if v.free_symbols else with_approx(v)


def _real_roots(f1, t, d):
    """The real roots of ``f1`` in ``t`` as a FiniteSet; with other symbols (parameters), the
    roots as functions of them, on the parameters' values where they are real and defined."""
    roots = sp.solveset(f1, t, sp.Reals)
    if not isinstance(roots, sp.FiniteSet) and f1.free_symbols - {t}:
        found = sp.solve(f1, t)
        if found and all(r.is_real is not False for r in found):
            d.note("With parameters, the roots are given as functions of them, for parameter "
                   "values where they are real and defined.")
            return sp.FiniteSet(*found)
    if not isinstance(roots, sp.FiniteSet):
        raise NotImplementedError(f"SymPy returned {roots}")
    return roots


@claim("stationary_point", "the extrema of f are among the points where df/dtheta = 0; solving "
       "it and reading the second derivative finds and classifies them",
       keys={"symbols", "expression", "variable", "at", "seconds"})
def stationary_point(spec, where, d):
    symbols = declared_symbols(spec, where, real=True)
    if not symbols:
        raise InputError("declare the variable under 'symbols: [...]'", where=f"{where}: symbols")
    f = value(get(spec, "expression", where, types=str), f"{where}: expression", symbols)
    name = get(spec, "variable", where, types=str, default=next(iter(symbols)))
    if name not in symbols:
        raise InputError(f"{name!r:.40} is not declared under 'symbols'",
                         where=f"{where}: variable")
    t = symbols[name]
    seconds = read_seconds(spec, where)
    d.note(f"f is the given expression in {', '.join(symbols)}; its stationary points are the "
           f"real solutions of df/d{name} = 0, and f''< 0 there is a maximum, f'' > 0 a "
           "minimum.")
    tried = "differentiating"
    try:
        with deadline(seconds):
            f1 = sp.diff(f, t)
            if f1 == 0:
                return Verdict("undecided", f"f does not depend on {name}: every point is "
                               "stationary, and none is a strict extremum")
            tried = "solving df/d" + name + " = 0 over the reals (SymPy's solveset)"
            shown = sp.factor(f1)
            roots = _real_roots(f1.rewrite(sp.exp), t, d)
            tried = "classifying the roots by the second derivative"
            f2 = sp.diff(f1, t)
            points = [(r, tidy(f2.subs(t, r)), tidy(f.subs(t, r))) for r in roots]
    except Timeout:
        return Verdict("undecided", f"ran out of time ({seconds:g} s) while {tried}")
    except Exception as e:  # noqa: BLE001 - SymPy gave up: the claim is undecided, said why
        why = "SymPy gave a condition, not a list of roots" if "ConditionSet" in str(e) \
            else f"SymPy could not ({str(e)[:60]})"
        return Verdict("undecided", f"{tried}: {why}")
    fn = sp.Function("f")(t)
    steps = [Step(fn, [f]), Step(sp.Derivative(fn, t), [f1, *([shown] if shown != f1 else [])]),
             Step(Word("solutions"), [sp.FiniteSet(*roots) if roots else sp.EmptySet],
                  f"real {name} with df/d{name} = 0"),
             Step(sp.Derivative(fn, (t, 2)), [tidy(f2)])]
    kinds = []
    for r, curv, val in points:
        kind = "maximum" if curv.is_negative else "minimum" if curv.is_positive else \
            "not decided by f''"
        kinds.append(kind)
        steps += [Step(sp.Subs(sp.Derivative(fn, (t, 2)), t, r), [curv], f"a local {kind}"
                       if kind != "not decided by f''" else "f'' = 0: the test is silent"),
                  Step(sp.Function("f")(r), _value_forms(val))]
    d.sections.append(Section(f"Solving df/d{name} = 0", steps))
    answer = {"points": list(roots), "values": [v for _, _, v in points], "kinds": kinds}
    at = get(spec, "at", where, types=list, default=[])
    if at:
        vals = [value(v, f"{where}: at[{i}]", None) for i, v in enumerate(at)]
        answer["at"] = [tidy(f.subs(t, v)) for v in vals]
        d.sections.append(Section("Values elsewhere", [
            Step(sp.Function("f")(v), _value_forms(fv)) for v, fv in zip(vals, answer["at"])]))
    if not points:
        return Verdict("proved", f"df/d{name} = 0 has no real solution: no interior "
                       "extremum"), answer
    said = "; ".join(f"{k} at {name} = {r}, f = {v}" for (r, _, v), k in zip(points, kinds))
    return Verdict("proved", said), answer
