"""The update equations of the ``optimizer`` worked kind, one function per optimizer.

Each rule takes the problem read once (``run``, :class:`derive.worked.optimizers._Run`),
the parameters it updates (``theta``: theta_{t-1}, or theta'_{t-1} after a decoupled weight
decay), the gradient ``g`` of step ``t`` and that step's learning rate ``lr``; it appends
its steps and returns theta_t. Every step reads ``lhs = formula = numbers = values``.
The notes below state each optimizer's equations in words, once per derivation.
"""
from __future__ import annotations

import sympy as sp

from derive.stepforms import minus, over, plus, power, times
from derive.worked.common import said, symbol

# the symbols of the update equations
ETA, LAMBDA, EPS, RHO, BETA, MU = sp.symbols("eta lambda epsilon rho beta mu")
BETA1, BETA2 = sp.symbols("beta_1 beta_2")


def shown(lr):
    """The learning rate as a step shows it: a float schedule's value as one decimal."""
    if lr.has(sp.Float) and not lr.is_Float and not lr.free_symbols:
        return sp.Float(sp.N(lr, 15), 15)
    return lr


def _sgd(run, theta, g, t, lr, steps):
    return run.vstep(steps, symbol("theta", t), minus(run.prev, ETA * symbol("g", t)),
                     lambda i: (minus(theta[i], times(shown(lr), g[i])), theta[i] - lr * g[i]))


def _momentum(run, theta, g, t, lr, steps):
    mu, g_t = run.hp["momentum"], symbol("g", t)
    if run.form == "cs231n":
        v = run.buffer("v")
        v = run.vstep(steps, symbol("v", t), minus(MU * symbol("v", t - 1), ETA * g_t),
                      lambda i: (minus(times(mu, v[i]), times(shown(lr), g[i])),
                                 mu * v[i] - lr * g[i]))
        run.state["v"] = v
        return run.vstep(steps, symbol("theta", t), plus(run.prev, symbol("v", t)),
                         lambda i: (plus(theta[i], v[i]), theta[i] + v[i]))
    if run.form == "ema":
        sym, v = "u", run.buffer("u")
        v = run.vstep(steps, symbol("u", t),
                      plus(BETA * symbol("u", t - 1), times(minus(1, BETA), g_t)),
                      lambda i: (plus(times(mu, v[i]), times(1 - mu, g[i])),
                                 mu * v[i] + (1 - mu) * g[i]))
    else:
        sym, v = "v", run.buffer("v")
        v = run.vstep(steps, symbol("v", t), plus(RHO * symbol("v", t - 1), g_t),
                      lambda i: (plus(times(mu, v[i]), g[i]), mu * v[i] + g[i]))
    run.state[sym] = v
    return run.vstep(steps, symbol("theta", t), minus(run.prev, ETA * symbol(sym, t)),
                     lambda i: (minus(theta[i], times(shown(lr), v[i])), theta[i] - lr * v[i]))


def _nesterov(run, theta, g, t, lr, steps):
    mu, v = run.hp["momentum"], run.buffer("v")
    theta_t, v_t, v_prev = symbol("theta", t), symbol("v", t), symbol("v", t - 1)
    if run.nesterov_form == "lookahead":  # g was taken at theta_{t-1} + mu v_{t-1}
        v = run.vstep(steps, v_t, minus(MU * v_prev, ETA * symbol("g", t)),
                      lambda i: (minus(times(mu, v[i]), times(shown(lr), g[i])),
                                 mu * v[i] - lr * g[i]))
        run.state["v"] = v
        return run.vstep(steps, theta_t, plus(run.prev, v_t),
                         lambda i: (plus(theta[i], v[i]), theta[i] + v[i]))
    v = run.vstep(steps, v_t, plus(MU * v_prev, symbol("g", t)),
                  lambda i: (plus(times(mu, v[i]), g[i]), mu * v[i] + g[i]))
    run.state["v"] = v
    return run.vstep(steps, theta_t, minus(run.prev, times(ETA, plus(symbol("g", t), MU * v_t))),
                     lambda i: (minus(theta[i], times(shown(lr), plus(g[i], times(mu, v[i])))),
                                theta[i] - lr * (g[i] + mu * v[i])))


def _adagrad(run, theta, g, t, lr, steps):
    G = run.buffer("G")
    G = run.vstep(steps, symbol("G", t), plus(symbol("G", t - 1), symbol("g", t) ** 2),
                  lambda i: (plus(G[i], power(g[i], 2)), G[i] + g[i] ** 2))
    run.state["G"] = G
    return _scaled_step(run, theta, g, G, t, lr, steps, "G", "the accumulator G")


def _rmsprop(run, theta, g, t, lr, steps):
    rho, s = run.hp["rho"], run.buffer("s")
    s = run.vstep(steps, symbol("s", t),
                  plus(RHO * symbol("s", t - 1), times(minus(1, RHO), symbol("g", t) ** 2)),
                  lambda i: (plus(times(rho, s[i]), times(1 - rho, power(g[i], 2))),
                             rho * s[i] + (1 - rho) * g[i] ** 2))
    run.state["s"] = s
    return _scaled_step(run, theta, g, s, t, lr, steps, "s", "the average s")


def _scaled_step(run, theta, g, acc, t, lr, steps, sym, what):
    """theta - lr * g / (sqrt(acc) + eps): the AdaGrad / RMSProp update."""
    return run.vstep(steps, symbol("theta", t),
                     minus(run.prev, times(ETA, over(symbol("g", t), run.den(symbol(sym, t))))),
                     lambda i: (minus(theta[i], run.scaled(lr, g[i], acc[i])),
                                theta[i] - lr * run.div(g[i], acc[i], i, what)))


def _adam(run, theta, g, t, lr, steps):
    b1, g_t = run.hp["beta1"], symbol("g", t)
    m = run.buffer("m")
    m = run.vstep(steps, symbol("m", t),
                  plus(BETA1 * symbol("m", t - 1), times(minus(1, BETA1), g_t)),
                  lambda i: (plus(times(b1, m[i]), times(1 - b1, g[i])),
                             b1 * m[i] + (1 - b1) * g[i]))
    run.state["m"] = m
    if run.second_moment:
        b2, v = run.hp["beta2"], run.buffer("v")
        v = run.vstep(steps, symbol("v", t),
                      plus(BETA2 * symbol("v", t - 1), times(minus(1, BETA2), g_t ** 2)),
                      lambda i: (plus(times(b2, v[i]), times(1 - b2, power(g[i], 2))),
                                 b2 * v[i] + (1 - b2) * g[i] ** 2))
        run.state["v"] = v
    m_sym, v_sym = symbol("m", t), symbol("v", t)
    if run.bias_correction:
        m = run.vstep(steps, symbol("mhat", t), over(m_sym, minus(1, BETA1 ** t)),
                      lambda i: (over(m[i], minus(1, power(b1, t))), m[i] / (1 - b1 ** t)))
        m_sym = symbol("mhat", t)
        if run.second_moment:
            v = run.vstep(steps, symbol("vhat", t), over(v_sym, minus(1, BETA2 ** t)),
                          lambda i: (over(v[i], minus(1, power(b2, t))), v[i] / (1 - b2 ** t)))
            v_sym = symbol("vhat", t)
    if not run.second_moment:
        return run.vstep(steps, symbol("theta", t), minus(run.prev, ETA * m_sym),
                         lambda i: (minus(theta[i], times(shown(lr), m[i])),
                                    theta[i] - lr * m[i]))
    what = "v-hat" if run.bias_correction else "v"
    return run.vstep(steps, symbol("theta", t),
                     minus(run.prev, times(ETA, over(m_sym, run.den(v_sym)))),
                     lambda i: (minus(theta[i], run.scaled(lr, m[i], v[i])),
                                theta[i] - lr * run.div(m[i], v[i], i, what)))


UPDATES = {"sgd": _sgd, "momentum": _momentum, "nesterov": _nesterov, "adagrad": _adagrad,
           "rmsprop": _rmsprop, "adam": _adam, "adamw": _adam}

#: The state each optimizer keeps between steps, by the name its steps use.
STATE = {"sgd": (), "nesterov": ("v",), "adagrad": ("G",), "rmsprop": ("s",),
         "adam": ("m", "v"), "adamw": ("m", "v")}


def state_names(run):
    """The names of ``run``'s state (the momentum buffer is ``u`` in the EMA form)."""
    if run.name == "momentum":
        return ("u",) if run.form == "ema" else ("v",)
    if run.name in ("adam", "adamw") and not run.second_moment:
        return ("m",)
    return STATE[run.name]


# -- the notes: each optimizer's equations and options, in words ----------------------------
def _eps_note(run):
    where = "inside" if run.eps_inside else "outside (as torch.optim)"
    kept = " (not given: kept as a symbol)" if run.eps == EPS else ""
    return f" eps = {said(run.eps)}{kept}, {where} the square root."


def _momentum_note(r):
    mu = said(r.hp["momentum"])
    if r.form == "cs231n":
        return (f"Momentum, CS231n form with mu = {mu}: v_t = mu v_{{t-1}} - eta g_t, "
                "theta_t = theta_{t-1} + v_t. Its v is -eta times the sum form's buffer, so "
                "with a constant learning rate the iterates equal the sum form's "
                "(v_t = mu v_{t-1} + g_t, theta_t = theta_{t-1} - eta v_t); under a schedule "
                "they differ, since the sum form applies today's eta to the whole buffer.")
    if r.form == "ema":
        return (f"Momentum, EMA form with coefficient {mu}: u_t = beta u_{{t-1}} + "
                "(1 - beta) g_t, theta_t = theta_{t-1} - eta u_t. The EMA form needs a "
                "learning rate 1/(1 - beta) times larger to match the sum form.")
    return (f"Momentum, sum (PyTorch / heavy-ball) form with coefficient {mu}: "
            "v_t = rho v_{t-1} + g_t, theta_t = theta_{t-1} - eta v_t.")


def _adam_note(r):
    head = (f"Adam with beta1 = {said(r.hp['beta1'])}"
            + (f", beta2 = {said(r.hp['beta2'])}" if r.second_moment else ""))
    if r.bias_correction:
        corr = (" and bias correction m_hat = m / (1 - beta1^t)"
                + (", v_hat = v / (1 - beta2^t)" if r.second_moment else "") + ".")
    else:
        corr = (", without bias correction (bias_correction: false): theta_t = theta_{t-1} - "
                + ("eta m_t / (sqrt(v_t) + eps)." if r.second_moment else "eta m_t."))
    if r.second_moment:
        return head + corr + _eps_note(r)
    same = ("SGD + momentum in the EMA form (u_t = beta u_{t-1} + (1 - beta) g_t, "
            "theta_t = theta_{t-1} - eta u_t) with beta = beta1: u_t = m_t at every step, "
            "so the iterates coincide")
    if r.bias_correction:
        same = ("that EMA momentum with bias correction (theta_t = theta_{t-1} - eta u_t / "
                "(1 - beta^t)); without bias correction it would be " + same)
    return (head + corr + " The second moment is switched off (second_moment: false): "
            "v_t = 0 and no division, so this is " + same + ".")


NOTES = {
    "sgd": lambda r: "SGD: theta_t = theta_{t-1} - eta g_t.",
    "momentum": _momentum_note,
    "nesterov": lambda r: (
        f"Nesterov momentum mu = {said(r.hp['momentum'])}, "
        + ("lookahead form (Sutskever et al.): the gradient is taken at theta + mu v, "
           "v_t = mu v_{t-1} - eta g_t, theta_t = theta_{t-1} + v_t."
           if r.nesterov_form == "lookahead" else
           "PyTorch form: v_t = mu v_{t-1} + g_t, theta_t = theta_{t-1} - eta (g_t + mu v_t); "
           "it is the lookahead form rewritten so that only the gradient at theta is needed.")),
    "adagrad": lambda r: ("AdaGrad: G_t = G_{t-1} + g_t^2 "
                          f"(G_0 = {said(r.hp['initial_accumulator'])}), "
                          "theta_t = theta_{t-1} - eta g_t / (sqrt(G_t) + eps)." + _eps_note(r)),
    "rmsprop": lambda r: (f"RMSProp with rho = {said(r.hp['rho'])}: "
                          "s_t = rho s_{t-1} + (1 - rho) g_t^2, "
                          "theta_t = theta_{t-1} - eta g_t / (sqrt(s_t) + eps)." + _eps_note(r)),
    "adam": _adam_note,
    "adamw": lambda r: "AdamW: " + _adam_note(r),
}
