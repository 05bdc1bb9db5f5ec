"""Optimizer steps by hand: SGD, momentum (three forms), Nesterov, AdaGrad, RMSProp, Adam(W).

Gradients are given (``grads``: one row per step) or computed from a function of the
parameters (``function`` + ``variables``, e.g. a quadratic). Updates follow PyTorch's
``torch.optim`` equations by default (so the numbers can be checked against it); each
option that changes the equations (a course's convention: Adam without bias correction,
the CS231n momentum, decoupled weight decay, an L2 penalty without the 1/2) is a key,
stated in the derivation's notes. Element-wise operations (squares, square roots,
division) act on each parameter separately.

Values may be symbols declared under ``symbols: [eta, w, g1, g2]`` (``lr: eta``, ``theta:
[w]``, ``grads: [[g1], [g2]]``): they are read by the whitelist parser
(:class:`derive.scalar.parse.Parser`) as real symbols, an undeclared name is an error, and
every step is then worked symbolically. A run can continue from a given state (``state: {m: ..., v:
..., t: 3}`` or ``start_step: 4``), so "take step 4 from here" questions work.
"""
from __future__ import annotations

import sympy as sp

from derive.derivation import Derivation, Section, Step
from derive.errors import InputError, ShapeError
from derive.scalar.parse import check_identifier, parse
from derive.problem import check_keys, get, problem_kind
from derive.stepforms import Grad, minus, over, plus, root, substitute, times
from derive.worked.common import (EXACT_NOTE, all_exact, declared_symbols, dims, key_bool,
                                  key_choice, key_int, said, shape, symbol, symbolic,
                                  symbolic_array, tidy_symbolic, value)
from derive.worked.common import shown as value_forms
from derive.worked.optimizer_rules import (EPS, ETA, LAMBDA, MU, NOTES, UPDATES, shown,
                                           state_names)
from derive.worked.schedules import KEYS as SCHEDULE_KEYS, Schedule

_DEFAULTS = {  # PyTorch's defaults where a problem is silent
    "momentum": sp.Rational(9, 10), "rho": sp.Rational(99, 100), "beta1": sp.Rational(9, 10),
    "beta2": sp.Rational(999, 1000), "initial_accumulator": sp.Integer(0),
}
_EPS = {"adagrad": sp.Float(1e-10), "rmsprop": sp.Float(1e-8), "adam": sp.Float(1e-8),
        "adamw": sp.Float(1e-8)}
_ADAM = {"beta1", "beta2", "eps", "eps_inside_sqrt", "bias_correction", "second_moment"}
#: Keys each optimizer reads on top of the common ones.
_KEYS = {
    "sgd": set(), "momentum": {"momentum", "momentum_form"},
    "nesterov": {"momentum", "nesterov_form"},
    "adagrad": {"eps", "eps_inside_sqrt", "initial_accumulator"},
    "rmsprop": {"rho", "eps", "eps_inside_sqrt"},
    "adam": _ADAM, "adamw": _ADAM,
}
_COMMON = {"kind", "title", "optimizer", "lr", "theta", "grads", "function", "variables",
           "steps", "weight_decay", "weight_decay_form", "penalty", "schedule", "state",
           "start_step", "symbols"}
_TITLES = {"sgd": "SGD", "momentum": "SGD with momentum", "nesterov": "Nesterov momentum",
           "adagrad": "AdaGrad", "rmsprop": "RMSProp", "adam": "Adam", "adamw": "AdamW"}
SYMBOLIC_NOTE = ("{names} are symbols (declared under 'symbols'), so every step is worked "
                 "symbolically; they stand for real numbers, so sqrt(g^2) = |g|.")


@problem_kind("optimizer")
def optimizer(spec, where):
    """``k`` optimizer steps from ``theta`` (or from a given state), every intermediate shown."""
    name = key_choice(spec, "optimizer", where, tuple(_KEYS), None)
    check_keys(spec, _COMMON | _KEYS[name], where)
    run = _Run(spec, where, name)
    d = Derivation(title=get(spec, "title", where, default=_title(run)), kind="optimizer")
    run.describe(d)
    theta = run.theta0
    history = [theta]
    for t in range(run.first, run.first + run.k):
        steps = []
        lr = run.rate(t, steps)
        ahead = run.lookahead(theta, t, steps)
        g = run.gradient(theta, t, steps, at=ahead)
        base = run.decay(theta, t, lr, steps)
        theta = UPDATES[name](run, base, g, t, lr, steps)
        history.append(theta)
        d.sections.append(Section(f"Step t = {t}", steps))
    d.meta["trajectory"] = history
    d.meta["state"] = dict(run.state, t=run.first + run.k - 1)
    d.result = theta[0] if run.scalar else theta
    if name in ("adam", "adamw") and not run.second_moment and not run.bias_correction:
        d.sections.append(_ema_check(spec, where, d))
    return d


def _title(run):
    """``Adam without bias correction: steps 4 to 5 by hand`` and the like."""
    name = _TITLES[run.name]
    if run.name == "momentum" and run.form != "sum":
        name += " (CS231n form)" if run.form == "cs231n" else " (EMA form)"
    if run.name in ("adam", "adamw"):
        missing = [w for w, on in (("bias correction", run.bias_correction),
                                   ("second moment", run.second_moment)) if not on]
        name += " without " + " or ".join(missing) if missing else ""
    if run.decoupled and run.name != "adamw":
        name += ", decoupled weight decay"
    if run.first > 1:
        last = run.first + run.k - 1
        return f"{name}: step{'s' if run.k > 1 else ''} {run.first}" \
               f"{f' to {last}' if run.k > 1 else ''} by hand"
    return f"{name}: {run.k} step(s) by hand"


def _ema_check(spec, where, d):
    """The same problem run as SGD + momentum in the EMA form (beta = beta1): its iterates,
    which must equal Adam's without bias correction or second moment."""
    keys = {k: v for k, v in spec.items() if k not in _ADAM | {"optimizer", "state", "title"}}
    keys.update(optimizer="momentum", momentum_form="ema")
    if "beta1" in spec:
        keys["momentum"] = spec["beta1"]
    if "m" in spec.get("state", {}):
        keys["state"] = {"u": spec["state"]["m"], **{k: v for k, v in spec["state"].items()
                                                     if k == "t"}}
    ema = optimizer(keys, where)
    if ema.meta["trajectory"] != d.meta["trajectory"]:  # loud: the note would be false
        raise AssertionError("Adam without second moment differs from EMA momentum")
    first = len(d.meta["trajectory"]) - 1
    start = int(d.meta["state"]["t"]) - first + 1
    return Section("Check: the same iterates by SGD + momentum (EMA form, beta = beta1)", [
        Step(symbol("theta", t), [_val(theta)], "by SGD + momentum (EMA): the same as Adam's")
        for t, theta in zip(range(start, start + first), ema.meta["trajectory"][1:])])


class _Run:
    """The problem read once: parameters, gradient source, hyper-parameters and state."""

    def __init__(self, spec, where, name):
        self.name, self.where, self.spec = name, where, spec
        self.declared = declared_symbols(spec, where, real=True)
        theta = self._values(get(spec, "theta", where), f"{where}: theta", (0, 1), "theta")
        self.scalar = not isinstance(theta, list)
        self.theta0 = [theta] if self.scalar else theta
        self.n = len(self.theta0)
        if "lr" not in spec:
            raise InputError("missing required key 'lr'", where=where)
        self.lr = value(spec["lr"], f"{where}: lr", self.declared)
        self.hp = {k: self._value(k, v) for k, v in _DEFAULTS.items() if k in _KEYS[name]}
        self.form = key_choice(spec, "momentum_form", where, ("sum", "ema", "cs231n"), "sum")
        self.nesterov_form = key_choice(spec, "nesterov_form", where, ("pytorch", "lookahead"),
                                        "pytorch")
        self.bias_correction = key_bool(spec, "bias_correction", where, True)
        self.second_moment = key_bool(spec, "second_moment", where, True)
        self._gradient_source(spec, where)
        self._weight_decay(spec, where)
        self._state(spec, where)
        self.symbolic = bool(symbolic(self.theta0, self.lr, list(self.hp.values()), self.wd,
                                      getattr(self, "grads", None),
                                      list(self.state.values())))
        self.eps = self._eps(spec, where)
        self.eps_inside = key_bool(spec, "eps_inside_sqrt", where, False)
        self.schedule = None
        if "schedule" in spec:
            sched = get(spec, "schedule", where, types=dict)
            check_keys(sched, {"schedule"} | SCHEDULE_KEYS, f"{where}: schedule")
            self.schedule = Schedule(sched, f"{where}: schedule", self.lr)
        self.prev = None  # the symbol the update starts from (theta_{t-1} or theta'_{t-1})

    def _value(self, key, default):
        if key not in self.spec:
            return default
        return value(self.spec[key], f"{self.where}: {key}", self.declared)

    def _values(self, raw, where, ndim, name):
        return symbolic_array(raw, where, self.declared, ndim, name)

    def _eps(self, spec, where):
        if not self.second_moment:
            for key in ("eps", "eps_inside_sqrt", "beta2"):
                if key in spec:
                    raise InputError(f"{key} has no role with second_moment: false (there is no "
                                     "second moment to divide by)", where=f"{where}: {key}")
            return None
        default = EPS if self.symbolic and self.name in _EPS else _EPS.get(self.name)
        return self._value("eps", default)

    def _weight_decay(self, spec, where):
        """Weight decay: coupled (``g + lambda theta``, or ``+ 2 lambda theta`` with the
        penalty ``lambda ||theta||^2``) or decoupled (``theta <- (1 - eta lambda) theta``)."""
        default = sp.Rational(1, 100) if self.name == "adamw" else sp.Integer(0)
        self.wd = self._value("weight_decay", default)
        form = key_choice(spec, "weight_decay_form", where, ("coupled", "decoupled"),
                          "decoupled" if self.name == "adamw" else "coupled")
        if self.name == "adamw" and form == "coupled":
            raise InputError("adamw is Adam with decoupled weight decay; for the coupled (L2) "
                             "form use optimizer: adam", where=f"{where}: weight_decay_form")
        for key in ("weight_decay_form", "penalty"):
            if key in spec and self.wd == 0:
                raise InputError(f"{key} has no role without weight_decay",
                                 where=f"{where}: {key}")
        if form == "decoupled" and "penalty" in spec:
            raise InputError("penalty sets the L2 gradient of coupled weight decay; decoupled "
                             "decay has no gradient term", where=f"{where}: penalty")
        penalty = key_choice(spec, "penalty", where, ("lambda/2", "lambda"), "lambda/2")
        self.decoupled = form == "decoupled" and self.wd != 0
        self.coupled = form == "coupled" and self.wd != 0
        self.penalty = 2 if penalty == "lambda" else 1

    def _state(self, spec, where):
        """The state after step ``first - 1``: given in ``state`` (and/or ``start_step``)."""
        raw = get(spec, "state", where, types=dict, default={})
        names = state_names(self)
        at = f"{where}: state"
        check_keys(raw, set(names) | {"t"}, at)
        t = key_int(raw, "t", at, None, minimum=0)
        start = key_int(spec, "start_step", where, None, minimum=1)
        if t is not None and start is not None and start != t + 1:
            raise InputError(f"start_step {start} contradicts state t = {t} (the next step is "
                             f"t + 1 = {t + 1})", where=f"{where}: start_step")
        self.first = start if start is not None else (t + 1 if t is not None else 1)
        self.state = {k: self._state_entry(raw[k], f"{at}.{k}") for k in names if k in raw}
        missing = [k for k in names if k not in raw]
        if self.first > 1 and missing:
            raise InputError(f"missing {missing[0]} (its value after step {self.first - 1}, "
                             f"where this run starts)", where=at)
        if "G" in raw and "initial_accumulator" in spec:
            raise InputError("give G_0 once: state.G or initial_accumulator",
                             where=f"{where}: initial_accumulator")
        if self.name in ("adam", "adamw") and self.bias_correction and self.state:
            if t is None and start is None:
                raise InputError("t (the number of steps already taken) is needed: the bias "
                                 "correction divides by 1 - beta1^t", where=at)
            if self.first == 1 and any(x != 0 for v in self.state.values() for x in v):
                raise InputError("non-zero moments at t = 0: bias correction assumes m_0 = "
                                 "v_0 = 0 (give t >= 1, or bias_correction: false)", where=at)

    def _state_entry(self, raw, where):
        entry = self._values(raw, where, (0, 1), where.rsplit(": ", 1)[-1])
        entry = [entry] if not isinstance(entry, list) else entry
        if isinstance(raw, list) == self.scalar or len(entry) != self.n:
            want = "a number" if self.scalar else f"{self.n} entries"
            raise ShapeError(f"must have the shape of theta ({want}), got "
                             f"{dims(shape(entry if isinstance(raw, list) else 0))}",
                             where=where)
        return entry

    def _gradient_source(self, spec, where):
        if ("grads" in spec) == ("function" in spec):
            raise InputError("give exactly one of 'grads' (one row per step) and 'function'",
                             where=where)
        n = self.n
        if "grads" in spec:
            grads = self._values(spec["grads"], f"{where}: grads", (1, 2), "grads")
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

    # -- what the derivation states ----------------------------------------------------
    def describe(self, d):
        if self.symbolic:
            d.note(SYMBOLIC_NOTE.format(names=", ".join(self.declared)))
        elif all_exact(self.theta0, self.lr, self.eps, self.wd, list(self.hp.values()),
                       getattr(self, "grads", None), list(self.state.values())):
            d.note(EXACT_NOTE)
        d.note(NOTES[self.name](self))
        if self.schedule is not None:
            d.note(f"Learning rate from the {self.schedule.describe()}; step t uses "
                   "its value at t - 1.")
            if self.schedule.milestone_note():
                d.note(self.schedule.milestone_note())
        self._describe_decay(d)
        if self.first > 1:
            d.note(f"The run continues from the state after step {self.first - 1} (given), "
                   f"so its first step is t = {self.first}.")
        if self.function is not None:
            f = sp.Symbol("f")
            d.sections.append(Section("Gradient of the objective", [
                Step(f, [self.function]),
                *[Step(sp.Derivative(f, s), [e]) for s, e in zip(self.symbols, self.grad_exprs)]]))
        start = [Step(symbol("theta", self.first - 1), [_val(self.theta0)])]
        start += [Step(symbol(k, self.first - 1), [_val(v)], "given")
                  for k, v in self.state.items()]
        d.sections.append(Section("Start", start))

    def _describe_decay(self, d):
        wd = said(self.wd)
        if self.coupled:
            form = ("lambda * theta: the gradient of the penalty (lambda/2) ||theta||^2, as "
                    "torch.optim's weight_decay" if self.penalty == 1 else
                    "2 lambda * theta: the gradient of the penalty lambda ||theta||^2 "
                    "(penalty: lambda)")
            d.note(f"Coupled (L2) weight decay lambda = {wd} is added to the gradient: "
                   f"g <- g + {form}.")
        elif self.decoupled:
            same = (" For plain SGD this is the same update as coupled decay with the penalty "
                    "(lambda/2) ||theta||^2." if self.name == "sgd" else
                    " Unlike coupled (L2) decay, the decay does not pass through the "
                    "optimizer's state or scaling.")
            d.note(f"Decoupled weight decay lambda = {wd} (as AdamW, and SGDW): theta'_{{t-1}}"
                   f" = (1 - eta_t lambda) theta_{{t-1}} first (eta_t the step's learning "
                   "rate, as torch.optim.AdamW), then the update starts from theta'_{t-1}; "
                   "the gradient is the loss's only." + same)

    # -- pieces every update uses -----------------------------------------------------
    def buffer(self, name):
        """The state ``name`` before this step (zeros at the start unless given)."""
        if name in self.state:
            return self.state[name]
        init = self.hp["initial_accumulator"] if name == "G" else sp.Integer(0)
        return [init] * self.n

    def lookahead(self, theta, t, steps):
        """Nesterov's lookahead point theta_{t-1} + mu v_{t-1} (None in every other form)."""
        if self.name != "nesterov" or self.nesterov_form != "lookahead":
            return None
        mu, v = self.hp["momentum"], self.buffer("v")
        return self.vstep(steps, symbol("thetatilde", t),
                          plus(symbol("theta", t - 1), MU * symbol("v", t - 1)),
                          lambda i: (plus(theta[i], times(mu, v[i])), theta[i] + mu * v[i]))

    def gradient(self, theta, t, steps, at=None):
        """g_t (given, or the function's gradient at ``at`` / theta), with coupled decay."""
        g_t = symbol("g", t)
        point = theta if at is None else at
        arg = symbol("theta", t - 1) if at is None else symbol("thetatilde", t)
        if self.function is None:
            g = self.grads[t - self.first]
            steps.append(Step(g_t, [_val(g)], "given"))
        else:
            subs = dict(zip(self.symbols, point))
            g = [tidy_symbolic(e.subs(subs)) for e in self.grad_exprs]
            steps.append(Step(g_t, [Grad(sp.Symbol("f"), arg),
                                    _val([substitute(e, subs) for e in self.grad_exprs]),
                                    _val(g)]))
        if self.coupled:
            c, wd = self.penalty, self.wd
            decay = LAMBDA * arg if c == 1 else 2 * LAMBDA * arg
            g = self.vstep(steps, g_t, plus(g_t, decay),
                           lambda i: (plus(g[i], times(*([c] if c != 1 else []), wd, point[i])),
                                      g[i] + c * wd * point[i]))
        return g

    def decay(self, theta, t, lr, steps):
        """theta'_{t-1} = (1 - eta lambda) theta_{t-1} under decoupled decay, else theta."""
        self.prev = symbol("theta", t - 1)
        if not self.decoupled:
            return theta
        out = self.vstep(steps, symbol("thetaprime", t - 1),
                         times(minus(1, ETA * LAMBDA), self.prev),
                         lambda i: (times(minus(1, times(shown(lr), self.wd)), theta[i]),
                                    (1 - lr * self.wd) * theta[i]))
        self.prev = symbol("thetaprime", t - 1)
        return out

    def rate(self, t, steps):
        """The learning rate of step ``t`` (a schedule is shown as its own step)."""
        if self.schedule is None:
            return self.lr
        value_, form = self.schedule.lr_at(t - 1)
        value_ = tidy_symbolic(value_)
        steps.append(Step(symbol("eta", t), [form, *value_forms(value_)],
                          f"{self.schedule.name} schedule at t = {t - 1}"))
        return value_

    def vstep(self, steps, lhs, symbolic, entry):
        """Append ``lhs = symbolic = (substituted...) = (values...)``; return the values."""
        forms, vals = zip(*(entry(i) for i in range(self.n)))
        vals = [tidy_symbolic(v) for v in vals]
        steps.append(Step(lhs, [symbolic, _val(list(forms)), _val(vals)]))
        return vals

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
        return times(shown(lr), over(num, self.den(acc, self.eps)))


def _val(vals):
    """One parameter's value, or the parameters as a column vector."""
    return vals[0] if len(vals) == 1 else sp.Matrix(vals)


def _shape(rows):
    return f"{len(rows)}x{len(rows[0])}" if isinstance(rows[0], list) else f"{len(rows)}"
