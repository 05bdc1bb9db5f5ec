"""Claims shown with plots: vanishing and exploding gradients, saturating activations, and
what BatchNorm does to a distribution.

Each claim proves what can be proved symbolically (a bound, a limit, a mean and a variance)
and draws the picture an answer key would sketch (:class:`derive.derivation.Figure`, drawn
with matplotlib only when the claim is solved).

* ``vanishing_gradients``: the Jacobian of a deep net (or an RNN unrolled in time) is a
  product of ``diag(f'(z_l)) W_l``; sigma' <= 1/4 (proved: the maximum of s(1 - s)),
  tanh' <= 1, ReLU' in {0, 1}; its norm against depth for the three on one seeded net.
* ``activation_saturation``: sigma'(x) -> 0 as |x| -> oo (limits computed), ReLU' = 0 for
  x < 0 (a unit that is negative on every input learns nothing: it has died).
* ``batchnorm_distribution``: a 1-D or 2-D Gaussian before and after BatchNorm with a
  large batch: mean beta, variance gamma^2 per feature, correlations kept.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from derive.derivation import Figure, Section, Step, plot_png
from derive.errors import InputError, ShapeError
from derive.problem import get
from derive.stepforms import Expectation, Norm, Variance, Word, approx, minus, over, plus, times
from derive.worked.claims import Verdict, claim
from derive.worked.common import array, key_choice, key_int, key_number, number, tidy

x, s = sp.Symbol("x", real=True), sp.Symbol("s")
LOGISTIC = 1 / (1 + sp.exp(-x))  # sigma written out, so SymPy can take its limits
SIGMA, RELU, TANH = sp.Function("sigma"), sp.Function("ReLU"), sp.Function("tanh")
DIAG, FPRIME = sp.Function("diag"), sp.Function("fprime")
ACTIVATIONS = ("sigmoid", "tanh", "relu")
COLOURS = {"sigmoid": "tab:blue", "tanh": "tab:orange", "relu": "tab:green"}
MAX_DEPTH, MAX_WIDTH = 200, 256


def _float(v):
    return sp.Float(float(v), 15)


# -- vanishing and exploding gradients ------------------------------------------------------
def derivative_bounds():
    """The three derivative bounds, proved with SymPy: (steps, {name: sup |f'|})."""
    exact = sp.diff(LOGISTIC, x)
    assert sp.simplify(exact - LOGISTIC * (1 - LOGISTIC)) == 0
    # s = sigma(x) in (0, 1): s(1 - s) = 1/4 - (s - 1/2)^2, largest at s = 1/2 (x = 0)
    crit = sp.solve(sp.diff(s * (1 - s), s), s)
    peak = (s * (1 - s)).subs(s, crit[0])
    gap = sp.factor(sp.Rational(1, 4) - s * (1 - s))
    assert crit == [sp.Rational(1, 2)] and peak == sp.Rational(1, 4) and gap == (2 * s - 1) ** 2 / 4
    tanh_prime = sp.diff(sp.tanh(x), x)
    assert sp.simplify(tanh_prime - (1 - sp.tanh(x) ** 2)) == 0
    relu_prime = sp.Heaviside(sp.diff(sp.Max(x, 0), x).args[0], 0)  # H(0) = 0 at the kink
    steps = [
        Step(sp.Derivative(SIGMA(x), x), [exact, times(SIGMA(x), 1 - SIGMA(x))],
             "sigmoid: differentiate, then write it in σ itself"),
        Step(sp.Derivative(s * (1 - s), s), [1 - 2 * s, sp.Integer(0)],
             "with s = sigmoid(x) in (0, 1), $s(1 - s)$ is largest where its derivative is "
             "zero: at $s = 1/2$, i.e. $x = 0$"),
        Step(s * (1 - s), [minus(sp.Rational(1, 4), (s - sp.Rational(1, 2)) ** 2),
                           sp.Le(minus(sp.Rational(1, 4), (s - sp.Rational(1, 2)) ** 2),
                                 sp.Rational(1, 4))],
             "so σ′(x) ≤ 1/4 for every x (a square is never negative): proved"),
        Step(sp.Derivative(TANH(x), x), [1 - TANH(x) ** 2, sp.Le(1 - TANH(x) ** 2, 1)],
             "tanh: tanh′(x) ≤ 1, equal only at x = 0: proved"),
        Step(sp.Derivative(RELU(x), x), [relu_prime],
             "ReLU: the step function, 0 for x < 0 and 1 for x > 0 (taken as 0 at the kink): "
             "it neither shrinks nor grows a gradient that passes, but stops it where x < 0"),
    ]
    return steps, {"sigmoid": peak, "tanh": sp.Integer(1), "relu": sp.Integer(1)}


def jacobian_norms(weights, x0, activation):
    """Spectral norms of J_l = dh_l/dh_0 for l = 1..L (h_l = f(W_l h_{l-1}))."""
    f, fp = {"sigmoid": (lambda z: 1 / (1 + np.exp(-z)),
                         lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
             "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
             "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(float))}[activation]
    h, J, norms = x0, np.eye(len(x0)), []
    for W in weights:
        z = W @ h
        J = fp(z)[:, None] * (W @ J)
        h = f(z)
        norms.append(float(np.linalg.norm(J, 2)))
    return norms


def random_net(depth, width, seed, scale, through):
    """The seeded net: W_l with N(0, scale^2 / width) entries (one W for every step in
    time), input h_0 with N(0, 1) entries."""
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(width)
    draws = 1 if through == "time" else depth
    Ws = [rng.standard_normal((width, width)) * scale / np.sqrt(width) for _ in range(draws)]
    return (Ws * depth if through == "time" else Ws), x0


def _gradient_figure(norms, bound, depth, through):
    steps = list(range(1, depth + 1))

    def draw(ax):
        for name in ACTIVATIONS:
            ax.semilogy(steps, norms[name], marker=".", color=COLOURS[name], label=name)
        ax.semilogy(steps, bound, "--", color=COLOURS["sigmoid"], alpha=0.6,
                    label="sigmoid bound (1/4)^l prod ||W||")
        ax.set_xlabel("time steps t" if through == "time" else "depth l")
        ax.set_ylabel("||dh/dh0|| (spectral norm)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)

    return Figure("Gradient norm against " + ("time" if through == "time" else "depth"),
                  plot_png(draw), {"step": steps, **norms, "sigmoid_bound": bound},
                  caption="The norm of the product of Jacobians on the seeded net, log scale: "
                          "the same weights and input for each activation.")


@claim("vanishing_gradients", "the gradient through many sigmoid layers vanishes: it is a "
       "product of Jacobians and sigma' is at most 1/4, while tanh' is at most 1 and ReLU' is 0 "
       "or 1",
       keys={"depth", "width", "seed", "weight_scale", "through"})
def vanishing_gradients(spec, where, d):
    depth = key_int(spec, "depth", where, default=20)
    width = key_int(spec, "width", where, default=8)
    for key, value, top in (("depth", depth, MAX_DEPTH), ("width", width, MAX_WIDTH)):
        if value > top:
            raise ShapeError(f"at most {top}, got {value}", where=f"{where}: {key}")
    seed = key_int(spec, "seed", where, default=0, minimum=0)
    scale = key_number(spec, "weight_scale", where, default=sp.Integer(1))
    if not scale.is_positive:
        raise InputError(f"must be positive, got {scale}", where=f"{where}: weight_scale")
    through = key_choice(spec, "through", where, ("depth", "time"), "depth")
    bound_steps, _ = derivative_bounds()

    l, L = sp.Symbol("l", integer=True, positive=True), sp.Symbol("L", integer=True)
    J, W_l, z_l = sp.Symbol("J_L"), sp.Symbol("W_l"), sp.Symbol("z_l")
    chain = Section("The gradient is a product of Jacobians", [
        Step(J, [sp.Product(times(DIAG(FPRIME(z_l)), W_l), (l, L, 1))],
             "$h_l = f(z_l)$, $z_l = W_l h_{l-1}$: the chain rule multiplies one Jacobian per "
             "layer"),
        Step(Norm(J), [sp.Le(sp.Product(times(Norm(DIAG(FPRIME(z_l))), Norm(W_l)), (l, 1, L)),
                             sp.Product(times(sp.Symbol("gamma"), Norm(W_l)), (l, 1, L)))],
             "the norm of a product is at most the product of the norms; the norm of a "
             "diagonal matrix is its largest entry, at most γ, the largest |f′|"),
    ], text="With every |f′| at most 1/4 (sigmoid) the product shrinks like $(1/4)^L$ unless "
            "the weights grow; with |f′| ≤ 1 (tanh) the weights decide; ReLU passes 1 or 0.")
    d.sections += [chain, Section("Derivative bounds (proved symbolically)", bound_steps)]

    Ws, x0 = random_net(depth, width, seed, float(scale), through)
    norms = {name: jacobian_norms(Ws, x0, name) for name in ACTIVATIONS}
    w_norms = np.cumprod([np.linalg.norm(W, 2) for W in Ws])
    bound = [float(v) for v in w_norms * 0.25 ** np.arange(1, depth + 1)]
    net = (f"one {width} x {width} matrix W used at each of {depth} time steps (an RNN "
           "unrolled in time)" if through == "time" else
           f"{depth} layers of width {width}, a fresh $W_l$ for each")
    numbers = Section("On a seeded random net", [
        Step(Norm(sp.Symbol(f"J_{depth}^{name}")), [_float(norms[name][-1])],
             f"{name}: the spectral norm of the Jacobian after {depth} "
             f"{'steps' if through == 'time' else 'layers'}")
        for name in ACTIVATIONS] + [
        Step(sp.Symbol(f"B_{depth}^sigmoid"), [_float(bound[-1])],
             "the sigmoid bound: $(1/4)^L$ times the product of the norms of the W_l, above the "
             "sigmoid's norm")],
        text=f"{net}; weights drawn from N(0, {scale}²/{width}) and the input from N(0, 1) "
             f"with NumPy's default_rng(seed={seed}) (options depth, width, seed, "
             f"weight_scale, through: {through}). The same weights and input serve all three "
             "activations.",
        figures=[_gradient_figure(norms, bound, depth, through)])
    d.sections.append(numbers)
    assert all(n <= b * (1 + 1e-9) for n, b in zip(norms["sigmoid"], bound))
    evidence = (f"sigma' at most 1/4 and tanh' at most 1 proved; norms after {depth} "
                f"{'steps' if through == 'time' else 'layers'}: "
                + ", ".join(f"{n} {norms[n][-1]:.3g}" for n in ACTIVATIONS))
    return Verdict("shown", evidence), {n: _float(norms[n][-1]) for n in ACTIVATIONS}


# -- saturation and dying ReLU --------------------------------------------------------------
def _saturation_figure(reach):
    xs = np.linspace(-reach, reach, 401)
    sig = 1 / (1 + np.exp(-xs))
    relu, relu_prime = np.maximum(xs, 0), (xs > 0).astype(float)

    def draw(axes):
        left, right = axes
        left.plot(xs, sig, label="sigma(x)")
        left.plot(xs, sig * (1 - sig), label="sigma'(x)")
        left.axhline(0.25, ls=":", color="grey", label="1/4")
        right.plot(xs, relu, label="ReLU(x)")
        right.plot(xs, relu_prime, label="ReLU'(x)")
        for ax, title in ((left, "sigmoid: flat at both ends"), (right, "ReLU: flat for x < 0")):
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("x")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)

    data = {"x": xs.tolist(), "sigmoid": sig.tolist(),
            "sigmoid_prime": (sig * (1 - sig)).tolist(), "relu": relu.tolist(),
            "relu_prime": relu_prime.tolist()}
    return Figure("Sigmoid, ReLU and their derivatives", plot_png(draw, size=(8, 3.4), ncols=2),
                  data, caption="Where a curve is flat its derivative is near zero: almost no "
                                "gradient passes back through the unit.")


@claim("activation_saturation", "sigmoid saturates (sigma'(x) tends to 0 for large x of either "
       "sign) and a ReLU whose input is negative passes no gradient (dying ReLU)",
       keys={"at", "reach"})
def activation_saturation(spec, where, d):
    points = array(get(spec, "at", where, default=[-10, -5, 0, 5, 10]), f"{where}: at", ndim=1)
    reach = key_number(spec, "reach", where, default=sp.Integer(10))
    if not (reach.is_positive and reach <= 100):
        raise InputError(f"must be in (0, 100], got {reach}", where=f"{where}: reach")
    prime = sp.diff(LOGISTIC, x)
    lim_hi, lim_lo = sp.limit(prime, x, sp.oo), sp.limit(prime, x, -sp.oo)
    relu_prime = sp.Heaviside(sp.diff(sp.Max(x, 0), x).args[0], 0)  # H(0) = 0 at the kink
    lim_relu = sp.limit(relu_prime, x, -sp.oo)
    assert lim_hi == 0 and lim_lo == 0 and lim_relu == 0
    at = [Step(sp.Subs(sp.Derivative(SIGMA(x), x), x, a),
               [prime.subs(x, a), approx(prime.subs(x, a))]) for a in points]
    d.sections += [
        Section("Sigmoid saturates", [
            Step(sp.Derivative(SIGMA(x), x), [prime, times(SIGMA(x), 1 - SIGMA(x))]),
            Step(sp.Limit(prime, x, sp.oo), [lim_hi], "the limits, computed symbolically"),
            Step(sp.Limit(prime, x, -sp.oo), [lim_lo]),
        ] + at, text="σ′(x) peaks at 1/4 at x = 0 and falls off like $e^{-|x|}$; at |x| = 5 it "
                     "is already under 3% of its peak (options at, reach)."),
        Section("ReLU dies for negative inputs", [
            Step(sp.Derivative(RELU(x), x), [relu_prime],
                 "0 for x < 0 and 1 for x > 0 (taken as 0 at the kink)"),
            Step(sp.Limit(sp.Derivative(RELU(x), x), x, -sp.oo), [lim_relu],
                 "a unit whose pre-activation is negative for every input gets zero gradient "
                 "for its weights: it stops learning (dying ReLU); for x > 0 nothing saturates"),
        ], figures=[_saturation_figure(float(reach))]),
    ]
    peak = max(float(prime.subs(x, a)) for a in points if abs(a) >= 5) \
        if any(abs(a) >= 5 for a in points) else None
    evidence = ("sigma'(x) tends to 0 at both infinities (limits computed); ReLU'(x) = 0 "
                "for every negative x")
    if peak is not None:
        evidence += f"; sigma' is at most {peak:.3g} from x = 5 outward"
    return Verdict("proved", evidence), {str(a): approx(prime.subs(x, a)) for a in points}


# -- BatchNorm on a distribution ------------------------------------------------------------
def _numbers(value, where, count):
    """A number, or a list of ``count`` numbers."""
    if isinstance(value, list):
        out = array(value, where, ndim=1)
        if len(out) != count:
            raise ShapeError(f"expected {count} numbers, got {len(out)}", where=where)
        return out
    return [number(value, where)] * count


def _density_figure(mu, var, beta, gamma):
    sd0, sd1 = np.sqrt(var), abs(gamma)
    lo, hi = min(mu - 4 * sd0, beta - 4 * sd1), max(mu + 4 * sd0, beta + 4 * sd1)
    xs = np.linspace(lo, hi, 400)
    before = np.exp(-(xs - mu) ** 2 / (2 * var)) / np.sqrt(2 * np.pi * var)
    after = np.exp(-(xs - beta) ** 2 / (2 * sd1 ** 2)) / np.sqrt(2 * np.pi * sd1 ** 2)

    def draw(ax):
        ax.plot(xs, before, label=f"before: N({mu:g}, {var:g})")
        ax.plot(xs, after, label=f"after: N({beta:g}, {sd1 ** 2:g})")
        ax.axvline(beta, ls="--", color="grey")
        ax.annotate("beta", (beta, after.max()), xytext=(4, -12), textcoords="offset points")
        ax.axvspan(beta - sd1, beta + sd1, color="tab:orange", alpha=0.12,
                   label="beta +/- |gamma|")
        ax.set_xlabel("x")
        ax.set_ylabel("density")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)

    return Figure("Density before and after BatchNorm", plot_png(draw),
                  {"x": xs.tolist(), "before": before.tolist(), "after": after.tolist(),
                   "beta": beta, "gamma": gamma},
                  caption="A large batch: the batch mean and variance are those of the "
                          "distribution, so the output is the same shape moved to mean beta "
                          "and scaled to standard deviation |gamma|.")


def _ellipse(mean, cov, k, n=200):
    t = np.linspace(0, 2 * np.pi, n)
    vals, vecs = np.linalg.eigh(cov)
    circle = np.stack([np.cos(t), np.sin(t)])
    return (vecs @ (k * np.sqrt(vals)[:, None] * circle)) + np.asarray(mean)[:, None]


def _contour_figure(mean, cov, beta, cov_after):
    curves = {f"{when}_{k}sd": _ellipse(m, c, k).T.tolist()
              for when, m, c in (("before", mean, cov), ("after", beta, cov_after))
              for k in (1, 2)}

    def draw(ax):
        for when, m, colour in (("before", mean, "tab:blue"), ("after", beta, "tab:orange")):
            for k, style in ((1, "-"), (2, "--")):
                pts = np.array(curves[f"{when}_{k}sd"])
                ax.plot(pts[:, 0], pts[:, 1], style, color=colour, label=f"{when}, {k} SD")
            ax.plot(*m, "o", color=colour)
        ax.set_aspect("equal")
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)

    return Figure("Contours before and after BatchNorm", plot_png(draw, size=(6, 5)),
                  {"mean_before": list(mean), "mean_after": list(beta), **curves},
                  caption="The 1- and 2-SD contours: each feature is normalised on its own, so "
                          "the means move to beta, each axis is rescaled and the correlation "
                          "(the tilt, relative to the axes' scales) is kept.")


@claim("batchnorm_distribution", "BatchNorm with a large batch moves each feature of any input "
       "distribution to mean beta and variance gamma^2, keeping its shape and correlations",
       keys={"mean", "variance", "covariance", "beta", "gamma"})
def batchnorm_distribution(spec, where, d):
    if isinstance(spec.get("mean"), list):
        return _batchnorm_2d(spec, where, d)
    if "covariance" in spec:
        raise InputError("a covariance needs a list of means (2-D); use variance for 1-D",
                         where=f"{where}: covariance")
    mu = number(get(spec, "mean", where), f"{where}: mean")
    var = number(get(spec, "variance", where), f"{where}: variance")
    if not var.is_positive:
        raise InputError(f"must be positive, got {var}", where=f"{where}: variance")
    beta = key_number(spec, "beta", where, default=sp.Integer(0))
    gamma = key_number(spec, "gamma", where, default=sp.Integer(1))
    X, Xh, Y = sp.Symbol("x"), sp.Symbol("xhat"), sp.Symbol("y")
    sd = tidy(sp.sqrt(var))
    d.sections.append(Section("Mean and variance after BatchNorm", [
        Step(Xh, [over(minus(X, mu), sp.sqrt(var)), over(minus(X, mu), sd)],
             "with a large batch the batch mean and variance are the distribution's own"),
        Step(Expectation(Xh), [over(minus(Expectation(X), mu), sd), over(minus(mu, mu), sd),
                               sp.Integer(0)]),
        Step(Variance(Xh), [over(Variance(X), sd ** 2), over(var, sd ** 2), sp.Integer(1)]),
        Step(Y, [plus(times(gamma, Xh), beta)], f"scale γ = {gamma}, shift β = {beta}"),
        Step(Expectation(Y), [plus(times(gamma, Expectation(Xh)), beta),
                              plus(times(gamma, 0), beta), beta]),
        Step(Variance(Y), [times(gamma ** 2, Variance(Xh)), times(gamma ** 2, 1), gamma ** 2]),
        Step(Word("1-SD interval"), [sp.Interval(beta - abs(gamma), beta + abs(gamma))],
             "the horizontal scale: the same bell, centred on β, one standard deviation "
             "|γ| either side"),
    ], text=f"Input: mean {mu}, variance {var} (options mean, variance, beta, gamma).",
        figures=[_density_figure(float(mu), float(var), float(beta), float(gamma))]))
    return (Verdict("proved", f"mean beta = {beta}, variance gamma^2 = {gamma ** 2} (by linearity "
                              "of E and Var)"),
            {"mean": beta, "variance": gamma ** 2, "sd": abs(gamma)})


def _product(*matrices):
    """A product of matrices as written (not multiplied out)."""
    return sp.MatMul(*[sp.ImmutableMatrix(m) for m in matrices], evaluate=False)


def _batchnorm_2d(spec, where, d):
    mean = array(spec["mean"], f"{where}: mean", ndim=1)
    if len(mean) != 2:
        raise ShapeError(f"a 2-D distribution needs 2 means, got {len(mean)}",
                         where=f"{where}: mean")
    cov = sp.Matrix(array(get(spec, "covariance", where), f"{where}: covariance", ndim=2))
    if cov.shape != (2, 2) or cov != cov.T or not (cov[0, 0] > 0 and cov.det() > 0):
        raise InputError("must be a symmetric positive-definite 2 x 2 matrix",
                         where=f"{where}: covariance")
    beta = _numbers(spec.get("beta", 0), f"{where}: beta", 2)
    gamma = _numbers(spec.get("gamma", 1), f"{where}: gamma", 2)
    D = sp.diag(*[1 / sp.sqrt(cov[i, i]) for i in range(2)])
    R = (D * cov * D).applyfunc(tidy)
    G = sp.diag(*gamma)
    after = (G * R * G).applyfunc(tidy)
    Sig, Sh, Sy = sp.Symbol("Sigma"), sp.Symbol("Sigmahat"), sp.Symbol("Sigma_y")
    d.sections.append(Section("Means and covariance after BatchNorm", [
        Step(sp.Symbol("mu"), [sp.Matrix(mean)], "each feature is normalised on its own"),
        Step(Sig, [cov]),
        Step(Sh, [_product(D, cov, D), R],
             "each feature minus its mean, over its standard deviation (the square root of "
             "its variance): the covariance becomes the "
             "correlation matrix (unit variances, the same correlation)"),
        Step(sp.Symbol("mu_y"), [sp.Matrix(beta)], f"shift β = {list(beta)}"),
        Step(Sy, [_product(G, R, G), after], f"scale γ = {list(gamma)}"),
    ], text="Input: a 2-D Gaussian (options mean, covariance, beta, gamma).",
        figures=[_contour_figure([float(v) for v in mean], np.array(cov, dtype=float),
                                 [float(v) for v in beta], np.array(after, dtype=float))]))
    return (Verdict("proved", f"means beta = {list(beta)}, variances gamma^2 = "
                              f"{[g ** 2 for g in gamma]}, correlation {R[0, 1]} kept"),
            {"mean": list(beta), "covariance": after.tolist(), "correlation": R[0, 1]})
