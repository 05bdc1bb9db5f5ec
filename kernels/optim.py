"""Optimizers and learning-rate schedules, each defined once by its update equations.

An update rule is a small plain-Python function of ONE parameter element: it takes the
parameter ``theta``, its gradient ``g``, the optimizer's state for that element, the step
number ``t`` (from 1) where needed, the learning rate ``eta`` and the hyper-parameters,
and returns the new parameter and state. That function is the single source:

* the code generator pastes its source into the epoch kernel, where numba compiles it
  and LLVM inlines it into the parameter loop (the update is fused, not a second pass);
* :func:`latex` renders it with latexify-py as an algorithm for reports;
* :meth:`Optimizer.step` applies it to whole NumPy arrays (the rules only use
  arithmetic and ``np.sqrt``, so the same code is vectorised) for references and peers.

L2 weight decay adds ``lambda_ * theta`` to the gradient before any rule
(:func:`l2`); AdamW's decoupled decay is part of its own rule.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field

import numpy as np

from derive.errors import InputError


# -- update rules (element-wise; numba-compilable; latexify-renderable) -----------------
def l2(theta, g, lambda_):
    """L2 weight decay: the gradient of (lambda_/2)*theta**2 added to g."""
    g = g + lambda_ * theta
    return g


def sgd(theta, g, eta):
    """Plain gradient descent."""
    theta = theta - eta * g
    return theta


def momentum(theta, g, v, eta, rho):
    """Heavy-ball momentum, v = rho*v + g (PyTorch's SGD(momentum=rho))."""
    v = rho * v + g
    theta = theta - eta * v
    return theta, v


def momentum_ema(theta, g, u, eta, beta):
    """Momentum as an exponential moving average of gradients, u = beta*u + (1-beta)*g."""
    u = beta * u + (1 - beta) * g
    theta = theta - eta * u
    return theta, u


def nesterov(theta, g, v, eta, rho):
    """Nesterov momentum in the look-ahead gradient form (Sutskever et al.; PyTorch)."""
    v = rho * v + g
    theta = theta - eta * (g + rho * v)
    return theta, v


def adagrad(theta, g, s, eta, epsilon):
    """AdaGrad: per-element rate divided by the root of the summed squared gradients."""
    s = s + g**2
    theta = theta - eta * g / (np.sqrt(s) + epsilon)
    return theta, s


def rmsprop(theta, g, s, eta, alpha, epsilon):
    """RMSProp: a moving average of squared gradients (alpha is its decay)."""
    s = alpha * s + (1 - alpha) * g**2
    theta = theta - eta * g / (np.sqrt(s) + epsilon)
    return theta, s


def adam(theta, g, m, v, t, eta, beta_1, beta_2, epsilon):
    """Adam (Kingma & Ba 2015) with bias correction, epsilon outside the root."""
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g**2
    m_hat = m / (1 - beta_1**t)
    v_hat = v / (1 - beta_2**t)
    theta = theta - eta * m_hat / (np.sqrt(v_hat) + epsilon)
    return theta, m, v


def adam_eps_inside(theta, g, m, v, t, eta, beta_1, beta_2, epsilon):
    """Adam with bias correction, epsilon inside the root: sqrt(v_hat + epsilon)."""
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g**2
    m_hat = m / (1 - beta_1**t)
    v_hat = v / (1 - beta_2**t)
    theta = theta - eta * m_hat / np.sqrt(v_hat + epsilon)
    return theta, m, v


def adam_raw(theta, g, m, v, eta, beta_1, beta_2, epsilon):
    """Adam without bias correction, epsilon outside the root."""
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g**2
    theta = theta - eta * m / (np.sqrt(v) + epsilon)
    return theta, m, v


def adam_raw_eps_inside(theta, g, m, v, eta, beta_1, beta_2, epsilon):
    """Adam without bias correction, epsilon inside the root."""
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g**2
    theta = theta - eta * m / np.sqrt(v + epsilon)
    return theta, m, v


def adamw(theta, g, m, v, t, eta, beta_1, beta_2, epsilon, lambda_):
    """AdamW (Loshchilov & Hutter): decay decoupled from the gradient, then Adam."""
    theta = theta - eta * lambda_ * theta
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g**2
    m_hat = m / (1 - beta_1**t)
    v_hat = v / (1 - beta_2**t)
    theta = theta - eta * m_hat / (np.sqrt(v_hat) + epsilon)
    return theta, m, v


# -- the Optimizer: a rule plus its hyper-parameter values ------------------------------
_DEFAULTS = {  # name -> (rule, {hyper-parameter: default}), PyTorch's defaults
    "sgd": (sgd, {}),
    "momentum": (momentum, {"rho": 0.9}),
    "momentum_ema": (momentum_ema, {"beta": 0.9}),
    "nesterov": (nesterov, {"rho": 0.9}),
    "adagrad": (adagrad, {"epsilon": 1e-10}),
    "rmsprop": (rmsprop, {"alpha": 0.99, "epsilon": 1e-8}),
    "adam": (adam, {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}),
    "adamw": (adamw, {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, "lambda_": 1e-2}),
}
_ALIASES = {"beta1": "beta_1", "beta2": "beta_2", "eps": "epsilon"}


@dataclass
class Optimizer:
    """An update rule with its hyper-parameters, learning rate, L2 decay and schedule.

    Attributes
    ----------
    rule : function
        The element-wise update (one of this module's rule functions, or your own with
        the same calling convention).
    lr : float
        Base learning rate ``eta`` (the schedule scales it).
    hyper : dict
        Values of the rule's hyper-parameters, in the rule's argument order.
    weight_decay : float
        L2 coefficient added to the gradient before the rule (0: none).
    schedule : Schedule
        Learning rate as a function of the epoch (or step) number.
    """

    rule: object
    lr: float = 0.1
    hyper: dict = field(default_factory=dict)
    weight_decay: float = 0.0
    schedule: "Schedule" = None

    def __post_init__(self):
        if self.schedule is None:
            self.schedule = Schedule("constant")
        sig = signature(self.rule)
        missing = [h for h in sig["hyper"] if h not in self.hyper]
        if missing:
            raise InputError(f"optimizer {self.name}: missing hyper-parameter(s) {missing}")

    @property
    def name(self):
        return self.rule.__name__

    @property
    def state_names(self):
        """Names of the per-element state arrays (``v``, ``m``, ...), in rule order."""
        return signature(self.rule)["state"]

    @property
    def uses_step(self):
        return signature(self.rule)["t"]

    def hyper_values(self):
        """Hyper-parameter values as a float64 array, in the rule's argument order."""
        return np.array([self.hyper[h] for h in signature(self.rule)["hyper"]], np.float64)

    def init_state(self, params):
        """Zero state arrays for every parameter: {param: {state name: array}}."""
        return {p: {s: np.zeros_like(a) for s in self.state_names} for p, a in params.items()}

    def step(self, params, grads, state, t, lr=None):
        """Apply the rule to whole NumPy arrays in place (a reference; kernels fuse it).

        ``t`` counts steps from 1; ``lr`` overrides the base rate (schedules).
        """
        eta = self.lr if lr is None else lr
        for name, theta in params.items():
            g = grads[name]
            if self.weight_decay:
                g = l2(theta, g, self.weight_decay)
            st = state[name]
            args = [theta, g] + [st[s] for s in self.state_names]
            args += ([t] if self.uses_step else []) + [eta] + list(self.hyper_values())
            out = self.rule(*args)
            out = out if isinstance(out, tuple) else (out,)
            theta[...] = out[0]
            for s, value in zip(self.state_names, out[1:]):
                st[s][...] = value

    def affine_form(self):
        """``(a, b)`` with new theta = ``a*theta + b*g`` for every element (SymPy
        expressions in ``eta``, ``wd`` and the hyper-parameters), or None.

        Found by running the rule (after :func:`l2` when weight decay is on) on SymPy
        symbols: plain SGD gives ``(1, -eta)``, SGD with decay ``(1 - eta*wd, -eta)``.
        Rules with state or a step count (momentum, Adam, ...) give None. The code
        generator uses it to do such an update inside the gradient's BLAS product.
        """
        import sympy as sp

        sig = signature(self.rule)
        if sig["state"] or sig["t"]:
            return None
        theta, g, eta, wd = sp.symbols("theta g eta wd")
        grad = l2(theta, g, wd) if self.weight_decay else g
        try:
            new = sp.expand(self.rule(theta, grad, eta, *sp.symbols(sig["hyper"])))
        except Exception:  # a rule SymPy cannot run (np.sqrt, branches): not affine
            return None
        if not isinstance(new, sp.Expr):
            return None
        a, b = new.coeff(theta), new.coeff(g)
        if (a.has(theta, g) or b.has(theta, g)
                or sp.expand(new - a * theta - b * g) != 0):
            return None
        return a, b

    def source(self):
        """Source of the rule (and of :func:`l2` when weight decay is on)."""
        rules = ([l2] if self.weight_decay else []) + [self.rule]
        return "\n\n".join(inspect.getsource(r) for r in rules)

    def key(self):
        """What changes the generated code (not the values, which are arguments)."""
        return (self.source(), bool(self.weight_decay))


@functools.lru_cache(maxsize=None)
def signature(rule):
    """Split a rule's arguments: {"state": (...), "t": bool, "hyper": (...)}.

    Cached: every epoch call reads it, and inspect.signature costs ~10 us (1% of a small MLP's
    epoch)."""
    args = list(inspect.signature(rule).parameters)
    if args[:2] != ["theta", "g"] or "eta" not in args:
        raise InputError(f"update rule {rule.__name__}: arguments must start with "
                         f"(theta, g, ...) and include eta, got {args}")
    i = args.index("eta")
    head = args[2:i]
    uses_t = bool(head) and head[-1] == "t"
    state = tuple(head[:-1] if uses_t else head)
    return {"state": state, "t": uses_t, "hyper": tuple(args[i + 1:])}


def make(optimizer="sgd", *, lr=None, momentum=None, nesterov=False, weight_decay=0.0,
         bias_correction=True, eps_inside=False, schedule=None, **hyper):
    """An :class:`Optimizer` from a name and keywords (or returned as-is if given one).

    Names: ``sgd`` (``momentum=`` switches to heavy ball, ``nesterov=True`` to Nesterov),
    ``momentum``, ``momentum_ema``, ``nesterov``, ``adagrad``, ``rmsprop``, ``adam``
    (``bias_correction=``, ``eps_inside=``), ``adamw``. Keywords ``beta1``, ``beta2``,
    ``eps`` are accepted for ``beta_1``, ``beta_2``, ``epsilon``.
    """
    if isinstance(optimizer, Optimizer):
        return optimizer
    name = str(optimizer).lower().replace("-", "_")
    if name == "sgd" and momentum:
        name = "nesterov" if nesterov else "momentum"
        hyper.setdefault("rho", momentum)
    if name not in _DEFAULTS:
        raise InputError(f"unknown optimizer {optimizer!r}; known: {', '.join(_DEFAULTS)}")
    rule, defaults = _DEFAULTS[name]
    if name == "adam":
        rule = {(True, False): adam, (True, True): adam_eps_inside,
                (False, False): adam_raw, (False, True): adam_raw_eps_inside}[
                    (bool(bias_correction), bool(eps_inside))]
    if name == "adamw" and weight_decay:
        hyper.setdefault("lambda_", weight_decay)
        weight_decay = 0.0
    values = dict(defaults)
    for k, v in hyper.items():
        k = _ALIASES.get(k, k)
        if k not in defaults:
            raise InputError(f"optimizer {name}: unknown hyper-parameter {k!r}; "
                             f"known: {', '.join(defaults) or 'none'}")
        values[k] = float(v)
    if lr is None:  # PyTorch's defaults where it has one
        lr = {"adam": 1e-3, "adamw": 1e-3, "adagrad": 1e-2, "rmsprop": 1e-2}.get(name, 0.1)
    sched = schedule if isinstance(schedule, Schedule) else Schedule.make(schedule)
    return Optimizer(rule, float(lr), values, float(weight_decay), sched)


def latex(rule, style="algorithmic"):
    """The rule as LaTeX via latexify-py (``style``: "algorithmic" or "function")."""
    import latexify

    st = latexify.Style.ALGORITHMIC if style == "algorithmic" else latexify.Style.FUNCTION
    text = latexify.get_latex(rule, use_math_symbols=True, style=st)
    for raw, nice in _TEX_NAMES.items():
        text = text.replace(raw, nice)
    return text


_TEX_NAMES = {r"\mathrm{beta\_1}": r"\beta_1", r"\mathrm{beta\_2}": r"\beta_2",
              r"beta\_1": r"\beta_1", r"beta\_2": r"\beta_2",
              r"\mathrm{m\_hat}": r"\hat m", r"\mathrm{v\_hat}": r"\hat v",
              r"\mathrm{lambda\_}": r"\lambda", r"lambda\_": r"\lambda"}


# -- schedules: learning rate as a function of the step/epoch count t (from 0) ----------
def constant(t, eta):
    """eta, always."""
    return eta


def step(t, eta, step_size, gamma):
    """Multiply by gamma every step_size (PyTorch's StepLR)."""
    return eta * gamma ** (t // step_size)


def cosine(t, eta, total, eta_min):
    """Half a cosine from eta down to eta_min over total (PyTorch's CosineAnnealingLR)."""
    return eta_min + (eta - eta_min) * (1 + np.cos(np.pi * min(t, total) / total)) / 2


def linear(t, eta, total, start, end):
    """Linear factor from start to end over total (PyTorch's LinearLR)."""
    return eta * (start + (end - start) * min(t, total) / total)


def inverse_sqrt(t, eta, warmup):
    """Constant for warmup steps, then decays as 1/sqrt(t) (continuous at t = warmup)."""
    return eta * np.sqrt(warmup / max(t, warmup))


_SCHEDULES = {"constant": (constant, {}), "step": (step, {"step_size": 10, "gamma": 0.1}),
              "cosine": (cosine, {"total": None, "eta_min": 0.0}),
              "linear": (linear, {"total": None, "start": 1.0, "end": 0.0}),
              "inverse_sqrt": (inverse_sqrt, {"warmup": 1})}


@dataclass
class Schedule:
    """A named schedule with its parameters; ``per`` is "epoch" (default) or "step".

    ``total=None`` (cosine, linear) means "the whole run": :func:`kernels.fit` fills in
    the number of epochs (or steps).
    """

    name: str = "constant"
    params: dict = field(default_factory=dict)
    per: str = "epoch"

    @classmethod
    def make(cls, spec=None, per="epoch", **params):
        """From None, a name, a dict ``{"name": ..., "per": ..., **params}`` or a Schedule."""
        if isinstance(spec, Schedule):
            return spec
        if isinstance(spec, dict):
            spec = dict(spec)
            name = spec.pop("name", "constant")
            per = spec.pop("per", per)
            params = {**spec, **params}
        else:
            name = spec or "constant"
        if name not in _SCHEDULES:
            raise InputError(f"unknown schedule {name!r}; known: {', '.join(_SCHEDULES)}")
        if per not in ("epoch", "step"):
            raise InputError(f"schedule per={per!r}: use 'epoch' or 'step'")
        unknown = set(params) - set(_SCHEDULES[name][1])
        if unknown:
            raise InputError(f"schedule {name}: unknown parameter(s) {sorted(unknown)}")
        return cls(name, {**_SCHEDULES[name][1], **params}, per)

    def rate(self, t, eta, total=None):
        """Learning rate at count ``t`` (from 0) for base rate ``eta``."""
        fn = _SCHEDULES[self.name][0]
        params = dict(self.params)
        if "total" in params and params["total"] is None:
            if total is None:
                raise InputError(f"schedule {self.name} needs total (epochs or steps)")
            params["total"] = total
        return float(fn(t, eta, **params))

    def rates(self, eta, epoch, steps_per_epoch, epochs):
        """Rates for every step of epoch ``epoch`` (from 0), as a float64 array."""
        if self.per == "epoch":
            return np.full(steps_per_epoch, self.rate(epoch, eta, epochs))
        first = epoch * steps_per_epoch
        total = epochs * steps_per_epoch
        return np.array([self.rate(first + i, eta, total) for i in range(steps_per_epoch)])
