"""Optimizer steps by hand: SGD, momentum (both forms), Nesterov, AdaGrad, RMSProp, Adam(W).

Gradients are given (``grads``: one row per step) or computed from a function of the
parameters (``function`` + ``variables``, e.g. a quadratic). Updates follow PyTorch's
``torch.optim`` equations (so the numbers can be checked against it); each option that
changes the equations is a key, stated in the derivation's notes. Element-wise
operations (squares, square roots, division) act on each parameter separately.
"""
from __future__ import annotations

import sympy as sp

from derive.derivation import Derivation, Section, Step
from derive.errors import InputError, ShapeError
from derive.scalar.parse import check_identifier, parse
from derive.problem import check_keys, get, problem_kind
from derive.stepforms import Grad, minus, over, plus, power, root, substitute, times
from derive.worked.common import (EXACT_NOTE, all_exact, array, key_bool, key_choice, key_int, key_number,
                     said, symbol, tidy, with_approx)
from derive.worked.schedules import Schedule

# the symbols of the update equations
ETA, LAMBDA, EPS, RHO, BETA, MU = sp.symbols("eta lambda epsilon rho beta mu")
BETA1, BETA2 = sp.symbols("beta_1 beta_2")

_DEFAULTS = {  # PyTorch's defaults where a problem is silent
    "momentum": sp.Rational(9, 10), "rho": sp.Rational(99, 100), "beta1": sp.Rational(9, 10),
    "beta2": sp.Rational(999, 1000), "initial_accumulator": sp.Integer(0),
}
_EPS = {"adagrad": sp.Float(1e-10), "rmsprop": sp.Float(1e-8), "adam": sp.Float(1e-8),
        "adamw": sp.Float(1e-8)}
#: Keys each optimizer reads on top of the common ones.
_KEYS = {
    "sgd": set(), "momentum": {"momentum", "momentum_form"},
    "nesterov": {"momentum", "nesterov_form"},
    "adagrad": {"eps", "eps_inside_sqrt", "initial_accumulator"},
    "rmsprop": {"rho", "eps", "eps_inside_sqrt"},
    "adam": {"beta1", "beta2", "eps", "eps_inside_sqrt"},
    "adamw": {"beta1", "beta2", "eps", "eps_inside_sqrt"},
}
_COMMON = {"kind", "title", "optimizer", "lr", "theta", "grads", "function", "variables",
           "steps", "weight_decay", "schedule"}


@problem_kind("optimizer")
def optimizer(spec, where):
    """``k`` optimizer steps from ``theta``, every intermediate shown."""
    name = key_choice(spec, "optimizer", where, tuple(_KEYS), None)
    check_keys(spec, _COMMON | _KEYS[name], where)
    run = _Run(spec, where, name)
    d = Derivation(title=get(spec, "title", where, default=f"{_TITLES[name]}: "
                                                           f"{run.k} step(s) by hand"),
                   kind="optimizer")
    run.describe(d)
    theta = run.theta0
    history = [theta]
    for t in range(1, run.k + 1):
        steps = []
        g = run.gradient(theta, t, steps)
        theta = _UPDATES[name](run, theta, g, t, steps)
        history.append(theta)
        d.sections.append(Section(f"Step t = {t}", steps))
    d.meta["trajectory"] = history
    d.result = theta[0] if run.scalar else theta
    return d


_TITLES = {"sgd": "SGD", "momentum": "SGD with momentum", "nesterov": "Nesterov momentum",
           "adagrad": "AdaGrad", "rmsprop": "RMSProp", "adam": "Adam", "adamw": "AdamW"}


class _Run:
    """The problem read once: parameters, gradient source, hyper-parameters and state."""

    def __init__(self, spec, where, name):
        self.name, self.where, self.spec = name, where, spec
        theta = array(get(spec, "theta", where), f"{where}: theta", ndim=(0, 1), name="theta")
        self.scalar = not isinstance(theta, list)
        self.theta0 = [theta] if self.scalar else theta
        self.lr = key_number(spec, "lr", where)
        if self.lr is None:
            raise InputError("missing required key 'lr'", where=where)
        self.schedule = None
        if "schedule" in spec:
            sched = get(spec, "schedule", where, types=dict)
            self.schedule = Schedule(sched, f"{where}: schedule", self.lr)
        self.wd = key_number(spec, "weight_decay", where,
                             sp.Rational(1, 100) if name == "adamw" else sp.Integer(0))
        self.hp = {k: key_number(spec, k, where, v) for k, v in _DEFAULTS.items()
                   if k in _KEYS[name]}
        self.eps = key_number(spec, "eps", where, _EPS.get(name))
        self.eps_inside = key_bool(spec, "eps_inside_sqrt", where, False)
        self.form = key_choice(spec, "momentum_form", where, ("sum", "ema"), "sum")
        self.nesterov_form = key_choice(spec, "nesterov_form", where, ("pytorch", "lookahead"),
                                        "pytorch")
        self._gradient_source(spec, where)
        self.state = {}

    def _gradient_source(self, spec, where):
        if ("grads" in spec) == ("function" in spec):
            raise InputError("give exactly one of 'grads' (one row per step) and 'function'",
                             where=where)
        n = len(self.theta0)
        if "grads" in spec:
            grads = array(spec["grads"], f"{where}: grads", ndim=(1, 2), name="grads")
            rows = grads if isinstance(grads[0], list) else [[g] for g in grads]
            if not isinstance(rows[0], list) or len(rows[0]) != n:
                raise ShapeError(f"each row of grads must have {n} entr{'y' if n == 1 else 'ies'}"
                                 f" (one per parameter), got shape {_shape(rows)}",
                                 where=f"{where}: grads")
            self.grads, self.function = rows, None
            self.k = key_int(spec, "steps", where, len(rows))
            if self.k > len(rows):
                raise ShapeError(f"{self.k} steps but only {len(rows)} gradient rows",
                                 where=f"{where}: steps")
        else:
            self._function(spec, where, n)
        if self.nesterov_form == "lookahead" and self.function is None:
            raise InputError("nesterov_form: lookahead evaluates the gradient at a lookahead "
                             "point, so it needs 'function', not 'grads'", where=where)

    def _function(self, spec, where, n):
        text = get(spec, "function", where, types=str)
        names = get(spec, "variables", where, types=list,
                    default=["theta"] if n == 1 else [f"theta{i + 1}" for i in range(n)])
        if len(names) != n:
            raise ShapeError(f"{len(names)} variables for {n} parameters",
                             where=f"{where}: variables")
        self.symbols = [sp.Symbol(check_identifier(str(v), f"{where}: variables"))
                        for v in names]
        self.function = parse(text, names={s.name: s for s in self.symbols}, unknown="error",
                              where=f"{where}: function")
        self.grad_exprs = [sp.diff(self.function, s) for s in self.symbols]
        self.k = key_int(spec, "steps", where)
        if self.k is None:
            raise InputError("missing required key 'steps' (how many updates to take)",
                             where=where)

    # -- pieces every update uses -----------------------------------------------------
    def describe(self, d):
        if all_exact(self.theta0, self.lr, self.eps, self.wd, list(self.hp.values()),
                     getattr(self, "grads", None)):
            d.note(EXACT_NOTE)
        d.note(_NOTES[self.name](self))
        if self.schedule is not None:
            d.note(f"Learning rate from the {self.schedule.describe()}; step t uses "
                   "its value at t - 1.")
        if self.wd != 0 and self.name != "adamw":
            d.note(f"Weight decay {said(self.wd)} is added to the gradient (L2): g <- g + "
                   "lambda * theta, as torch.optim does.")
        if self.function is not None:
            f = sp.Symbol("f")
            d.sections.append(Section("Gradient of the objective", [
                Step(f, [self.function]),
                *[Step(sp.Derivative(f, s), [e]) for s, e in zip(self.symbols, self.grad_exprs)]]))
        d.sections.append(Section("Start", [Step(symbol("theta", 0), [_val(self.theta0)])]))

    def gradient(self, theta, t, steps, at=None):
        """g_t (given, or the function's gradient at ``at`` / theta), with weight decay."""
        g_t = symbol("g", t)
        if self.function is None:
            g = self.grads[t - 1]
            steps.append(Step(g_t, [_val(g)], "given"))
        else:
            point = theta if at is None else at
            subs = dict(zip(self.symbols, point))
            g = [tidy(e.subs(subs)) for e in self.grad_exprs]
            arg = symbol("theta", t - 1) if at is None else symbol("thetatilde", t)
            steps.append(Step(g_t, [Grad(sp.Symbol("f"), arg),
                                    _val([substitute(e, subs) for e in self.grad_exprs]),
                                    _val(g)]))
        if self.wd != 0 and self.name != "adamw":
            g = self.vstep(steps, g_t, plus(g_t, LAMBDA * symbol("theta", t - 1)),
                           lambda i: (plus(g[i], times(self.wd, theta[i])),
                                      g[i] + self.wd * theta[i]), len(g))
        return g

    def rate(self, t, steps):
        """The learning rate of step ``t`` (a schedule is shown as its own step)."""
        if self.schedule is None:
            return self.lr
        value, form = self.schedule.lr_at(t - 1)
        value = tidy(value)
        steps.append(Step(symbol("eta", t), [form, *with_approx(value)],
                          f"{self.schedule.name} schedule at t = {t - 1}"))
        return value

    @staticmethod
    def vstep(steps, lhs, symbolic, entry, n):
        """Append ``lhs = symbolic = (substituted...) = (values...)``; return the values."""
        forms, values = zip(*(entry(i) for i in range(n)))
        values = [tidy(v) for v in values]
        steps.append(Step(lhs, [symbolic, _val(list(forms)), _val(values)]))
        return values

    def div(self, num, root_of, i, what):
        """``num / (sqrt(root_of) + eps)`` (or ``sqrt(root_of + eps)``), refusing 0 / 0."""
        den = sp.sqrt(root_of + self.eps) if self.eps_inside else sp.sqrt(root_of) + self.eps
        if den == 0:
            raise InputError(f"division by zero: {what} of parameter {i + 1} is 0 and eps = 0",
                             where=f"{self.where}: eps")
        return num / den

    def den(self, inner, eps=None):
        """``sqrt(inner) + eps`` (or ``sqrt(inner + eps)``) as written; ``eps`` the number,
        or the symbol when None."""
        eps = EPS if eps is None else eps
        return root(plus(inner, eps)) if self.eps_inside else plus(root(inner), eps)

    def scaled(self, lr, num, acc):
        """``lr num / (sqrt(acc) + eps)`` with the numbers, as written."""
        return times(_shown(lr), over(num, self.den(acc, self.eps)))


def _val(values):
    """One parameter's value, or the parameters as a column vector."""
    return values[0] if len(values) == 1 else sp.Matrix(values)


def _shown(lr):
    """The learning rate as a step shows it: a float schedule's value as one decimal."""
    if lr.has(sp.Float) and not lr.is_Float:
        return sp.Float(sp.N(lr, 15), 15)
    return lr


def _shape(rows):
    return f"{len(rows)}x{len(rows[0])}" if isinstance(rows[0], list) else f"{len(rows)}"


# -- the update rules, one function each --------------------------------------------------
def _sgd(run, theta, g, t, steps):
    lr = run.rate(t, steps)
    return run.vstep(steps, symbol("theta", t), minus(symbol("theta", t - 1), ETA * symbol("g", t)),
                     lambda i: (minus(theta[i], times(_shown(lr), g[i])), theta[i] - lr * g[i]),
                     len(theta))


def _momentum(run, theta, g, t, steps):
    mu, lr = run.hp["momentum"], run.rate(t, steps)
    v = run.state.get("v", [sp.Integer(0)] * len(theta))
    g_t = symbol("g", t)
    if run.form == "ema":
        sym = "u"
        v = run.vstep(steps, symbol("u", t),
                      plus(BETA * symbol("u", t - 1), times(minus(1, BETA), g_t)),
                      lambda i: (plus(times(mu, v[i]), times(1 - mu, g[i])),
                                 mu * v[i] + (1 - mu) * g[i]), len(theta))
    else:
        sym = "v"
        v = run.vstep(steps, symbol("v", t), plus(RHO * symbol("v", t - 1), g_t),
                      lambda i: (plus(times(mu, v[i]), g[i]), mu * v[i] + g[i]), len(theta))
    run.state["v"] = v
    return run.vstep(steps, symbol("theta", t), minus(symbol("theta", t - 1), ETA * symbol(sym, t)),
                     lambda i: (minus(theta[i], times(_shown(lr), v[i])), theta[i] - lr * v[i]),
                     len(theta))


def _nesterov(run, theta, g, t, steps):
    mu = run.hp["momentum"]
    v = run.state.get("v", [sp.Integer(0)] * len(theta))
    theta_t, theta_prev, v_t, v_prev = (symbol("theta", t), symbol("theta", t - 1),
                                        symbol("v", t), symbol("v", t - 1))
    if run.nesterov_form == "lookahead":
        steps.pop()  # the gradient is taken at the lookahead point instead
        ahead = run.vstep(steps, symbol("thetatilde", t), plus(theta_prev, MU * v_prev),
                          lambda i: (plus(theta[i], times(mu, v[i])), theta[i] + mu * v[i]),
                          len(theta))
        g = run.gradient(theta, t, steps, at=ahead)
        lr = run.rate(t, steps)
        v = run.vstep(steps, v_t, minus(MU * v_prev, ETA * symbol("g", t)),
                      lambda i: (minus(times(mu, v[i]), times(_shown(lr), g[i])),
                                 mu * v[i] - lr * g[i]), len(theta))
        run.state["v"] = v
        return run.vstep(steps, theta_t, plus(theta_prev, v_t),
                         lambda i: (plus(theta[i], v[i]), theta[i] + v[i]), len(theta))
    lr = run.rate(t, steps)
    v = run.vstep(steps, v_t, plus(MU * v_prev, symbol("g", t)),
                  lambda i: (plus(times(mu, v[i]), g[i]), mu * v[i] + g[i]), len(theta))
    run.state["v"] = v
    return run.vstep(steps, theta_t, minus(theta_prev, times(ETA, plus(symbol("g", t), MU * v_t))),
                     lambda i: (minus(theta[i], times(_shown(lr), plus(g[i], times(mu, v[i])))),
                                theta[i] - lr * (g[i] + mu * v[i])), len(theta))


def _adagrad(run, theta, g, t, steps):
    lr = run.rate(t, steps)
    G = run.state.get("G", [run.hp["initial_accumulator"]] * len(theta))
    G = run.vstep(steps, symbol("G", t), plus(symbol("G", t - 1), symbol("g", t) ** 2),
                  lambda i: (plus(G[i], power(g[i], 2)), G[i] + g[i] ** 2), len(theta))
    run.state["G"] = G
    return _scaled_step(run, theta, g, G, t, lr, steps, "G", "the accumulator G")


def _rmsprop(run, theta, g, t, steps):
    rho, lr = run.hp["rho"], run.rate(t, steps)
    s = run.state.get("s", [sp.Integer(0)] * len(theta))
    s = run.vstep(steps, symbol("s", t),
                  plus(RHO * symbol("s", t - 1), times(minus(1, RHO), symbol("g", t) ** 2)),
                  lambda i: (plus(times(rho, s[i]), times(1 - rho, power(g[i], 2))),
                             rho * s[i] + (1 - rho) * g[i] ** 2), len(theta))
    run.state["s"] = s
    return _scaled_step(run, theta, g, s, t, lr, steps, "s", "the average s")


def _scaled_step(run, theta, g, acc, t, lr, steps, sym, what):
    """theta - lr * g / (sqrt(acc) + eps): the AdaGrad / RMSProp update."""
    return run.vstep(steps, symbol("theta", t),
                     minus(symbol("theta", t - 1),
                           times(ETA, over(symbol("g", t), run.den(symbol(sym, t))))),
                     lambda i: (minus(theta[i], run.scaled(lr, g[i], acc[i])),
                                theta[i] - lr * run.div(g[i], acc[i], i, what)), len(theta))


def _adam(run, theta, g, t, steps):
    b1, b2, lr = run.hp["beta1"], run.hp["beta2"], run.rate(t, steps)
    n = len(theta)
    g_t = symbol("g", t)
    decoupled = run.name == "adamw" and run.wd != 0
    if decoupled:
        theta = run.vstep(steps, symbol("thetaprime", t - 1),
                          times(minus(1, ETA * LAMBDA), symbol("theta", t - 1)),
                          lambda i: (times(minus(1, times(_shown(lr), run.wd)), theta[i]),
                                     (1 - lr * run.wd) * theta[i]), n)
    m = run.state.get("m", [sp.Integer(0)] * n)
    v = run.state.get("v", [sp.Integer(0)] * n)
    m = run.vstep(steps, symbol("m", t),
                  plus(BETA1 * symbol("m", t - 1), times(minus(1, BETA1), g_t)),
                  lambda i: (plus(times(b1, m[i]), times(1 - b1, g[i])),
                             b1 * m[i] + (1 - b1) * g[i]), n)
    v = run.vstep(steps, symbol("v", t),
                  plus(BETA2 * symbol("v", t - 1), times(minus(1, BETA2), g_t ** 2)),
                  lambda i: (plus(times(b2, v[i]), times(1 - b2, power(g[i], 2))),
                             b2 * v[i] + (1 - b2) * g[i] ** 2), n)
    run.state.update(m=m, v=v)
    m_hat = run.vstep(steps, symbol("mhat", t), over(symbol("m", t), minus(1, BETA1 ** t)),
                      lambda i: (over(m[i], minus(1, power(b1, t))), m[i] / (1 - b1 ** t)), n)
    v_hat = run.vstep(steps, symbol("vhat", t), over(symbol("v", t), minus(1, BETA2 ** t)),
                      lambda i: (over(v[i], minus(1, power(b2, t))), v[i] / (1 - b2 ** t)), n)
    prev = symbol("thetaprime" if decoupled else "theta", t - 1)
    return run.vstep(steps, symbol("theta", t),
                     minus(prev, times(ETA, over(symbol("mhat", t), run.den(symbol("vhat", t))))),
                     lambda i: (minus(theta[i], run.scaled(lr, m_hat[i], v_hat[i])),
                                theta[i] - lr * run.div(m_hat[i], v_hat[i], i, "v-hat")), n)


_UPDATES = {"sgd": _sgd, "momentum": _momentum, "nesterov": _nesterov, "adagrad": _adagrad,
            "rmsprop": _rmsprop, "adam": _adam, "adamw": _adam}


def _eps_note(run):
    where = "inside" if run.eps_inside else "outside (as torch.optim)"
    return f" eps = {said(run.eps)}, {where} the square root."


_NOTES = {
    "sgd": lambda r: "SGD: theta_t = theta_{t-1} - eta g_t.",
    "momentum": lambda r: (
        f"Momentum, {'EMA' if r.form == 'ema' else 'sum (PyTorch / heavy-ball)'} form with "
        f"coefficient {said(r.hp['momentum'])}: "
        + ("u_t = beta u_{t-1} + (1 - beta) g_t, theta_t = theta_{t-1} - eta u_t. "
           "The EMA form needs a learning rate 1/(1 - beta) times larger to match the sum form."
           if r.form == "ema" else
           "v_t = rho v_{t-1} + g_t, theta_t = theta_{t-1} - eta v_t (v_0 = 0).")),
    "nesterov": lambda r: (
        f"Nesterov momentum mu = {said(r.hp['momentum'])}, "
        + ("lookahead form (Sutskever et al.): the gradient is taken at theta + mu v."
           if r.nesterov_form == "lookahead" else
           "PyTorch form: v_t = mu v_{t-1} + g_t, theta_t = theta_{t-1} - eta (g_t + mu v_t); "
           "it is the lookahead form rewritten so that only the gradient at theta is needed.")),
    "adagrad": lambda r: ("AdaGrad: G_t = G_{t-1} + g_t^2 "
                          f"(G_0 = {said(r.hp['initial_accumulator'])}), "
                          "theta_t = theta_{t-1} - eta g_t / (sqrt(G_t) + eps)." + _eps_note(r)),
    "rmsprop": lambda r: (f"RMSProp with rho = {said(r.hp['rho'])}: "
                          "s_t = rho s_{t-1} + (1 - rho) g_t^2, "
                          "theta_t = theta_{t-1} - eta g_t / (sqrt(s_t) + eps)." + _eps_note(r)),
    "adam": lambda r: (f"Adam with beta1 = {said(r.hp['beta1'])}, "
                       f"beta2 = {said(r.hp['beta2'])} and bias "
                       "correction m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t)."
                       + _eps_note(r)),
    "adamw": lambda r: (f"AdamW: decoupled weight decay lambda = {said(r.wd)} shrinks theta by "
                        f"(1 - eta lambda) before the Adam step (beta1 = {said(r.hp['beta1'])}, "
                        f"beta2 = {said(r.hp['beta2'])})." + _eps_note(r)),
}
