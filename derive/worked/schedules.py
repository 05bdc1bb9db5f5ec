"""Learning-rate schedules by formula, evaluated at given steps (exactly where inputs are).

``t`` counts optimizer steps from 0 (the first update uses ``lr(0)``), as PyTorch's
schedulers count ``scheduler.step()`` calls. The closed forms match PyTorch's
``StepLR``, ``MultiStepLR``, ``ExponentialLR``, ``CosineAnnealingLR`` and ``LinearLR``
(to ``end_lr``);
``inverse_sqrt`` is the Transformer ("Noam") schedule when ``d_model`` is given.
"""
from __future__ import annotations

import bisect

import sympy as sp

from derive.derivation import Derivation, Section, Step
from derive.errors import InputError
from derive.problem import check_keys, get, problem_kind
from derive.stepforms import minus, over, plus, power, root, times
from derive.worked.common import (EXACT_NOTE, all_exact, key_int, key_number, said, symbol, tidy,
                                  with_approx)

ETA, GAMMA, T_, STEP_SIZE, ETA_MIN, ETA_END, W, S, t_, K = sp.symbols(
    "eta gamma T step_size eta_min eta_end w s t k_t")

#: name -> (extra keys, the formula in t)
SCHEDULES = {
    "constant": ((), ETA),
    "step": (("step_size", "gamma"), ETA * GAMMA ** sp.floor(t_ / STEP_SIZE)),
    "multistep": (("milestones", "gamma"), ETA * GAMMA ** K),
    "exponential": (("gamma",), ETA * GAMMA ** t_),
    "cosine": (("T", "eta_min"),
               plus(ETA_MIN, times(sp.Rational(1, 2), minus(ETA, ETA_MIN),
                                   plus(1, sp.cos(sp.pi * t_ / T_))))),
    "linear": (("T", "end_lr"), plus(ETA, times(minus(ETA_END, ETA), sp.Min(t_, T_) / T_))),
    "inverse_sqrt": (("warmup", "d_model"),
                     times(ETA, S, sp.Min(t_ / W, sp.sqrt(W / t_)))),
}

#: Every key some schedule reads (besides ``schedule`` itself).
KEYS = {k for keys, _ in SCHEDULES.values() for k in keys}


class Schedule:
    """A schedule read from a mapping: ``lr_at(t)`` gives (value, the formula with numbers)."""

    def __init__(self, spec, where, lr):
        self.name = get(spec, "schedule", where, types=str)
        if self.name not in SCHEDULES:
            raise InputError(f"unknown schedule {self.name!r} (known: {', '.join(SCHEDULES)})",
                             where=f"{where}: schedule")
        self.lr, self.where = lr, where
        self.keys, self.formula = SCHEDULES[self.name]
        self.gamma = key_number(spec, "gamma", where, sp.Rational(1, 10))
        self.step_size = key_int(spec, "step_size", where, 1)
        self.milestones = _milestones(spec, where) if self.name == "multistep" else None
        self.T = key_int(spec, "T", where, None)
        self.eta_min = key_number(spec, "eta_min", where, sp.Integer(0))
        self.end_lr = key_number(spec, "end_lr", where, sp.Integer(0))
        self.warmup = key_int(spec, "warmup", where, None)
        self.d_model = key_int(spec, "d_model", where, None)
        if self.name in ("cosine", "linear") and self.T is None:
            raise InputError(f"the {self.name} schedule needs 'T' (its length in steps)",
                             where=where)

    def lr_at(self, t):
        """(learning rate at step ``t``, the formula with numbers substituted, as written)."""
        lr, n = self.lr, self.name
        if n == "constant":
            return lr, lr
        if n == "step":
            k = t // self.step_size
            return lr * self.gamma ** k, times(lr, power(self.gamma, k))
        if n == "multistep":
            k = bisect.bisect_right(self.milestones, t)
            return lr * self.gamma ** k, times(lr, power(self.gamma, k))
        if n == "exponential":
            return lr * self.gamma ** t, times(lr, power(self.gamma, t))
        if n == "cosine":
            cos = sp.cos(sp.pi * sp.Rational(t, self.T))
            value = self.eta_min + (lr - self.eta_min) * (1 + cos) / 2
            return value, plus(self.eta_min, times(
                sp.Rational(1, 2), minus(lr, self.eta_min),
                plus(1, sp.cos(sp.pi * sp.Rational(t, self.T), evaluate=False))))
        if n == "linear":
            frac = sp.Rational(min(t, self.T), self.T)
            return lr + (self.end_lr - lr) * frac, plus(lr, times(minus(self.end_lr, lr), frac))
        return self._inverse_sqrt(t)

    def _inverse_sqrt(self, t):
        lr, w = self.lr, self.warmup
        scale = 1 if self.d_model is None else 1 / sp.sqrt(self.d_model * (w or 1))
        head = (lr,) if self.d_model is None else (lr, scale)
        if w is None:
            tt = max(t, 1)
            return lr * scale / sp.sqrt(tt), over(times(*head), root(tt))
        if t == 0:
            return sp.Integer(0), sp.Integer(0)
        factor = sp.Min(sp.Rational(t, w), sp.sqrt(sp.Rational(w, t)))
        return (lr * scale * factor,
                times(*head, sp.Min(over(t, w), root(over(w, t)), evaluate=False)))

    def milestone_note(self):
        """What ``k_t`` counts, for a multi-step schedule (else None)."""
        if self.milestones is None:
            return None
        return (f"Multi-step schedule: k_t is the number of milestones "
                f"{', '.join(map(str, self.milestones))} that are <= t, so the rate is "
                f"multiplied by gamma = {said(self.gamma)} once t reaches each milestone "
                "(as torch.optim.lr_scheduler.MultiStepLR).")

    def describe(self):
        """One sentence naming the schedule and its parameters."""
        extra = {k: getattr(self, k) for k in self.keys if getattr(self, k) is not None}
        args = ", ".join(f"{k} = {said(v)}" for k, v in extra.items())
        return f"{self.name} schedule (eta = {said(self.lr)}{', ' + args if args else ''})"


def _milestones(spec, where):
    """The multi-step schedule's milestones: whole step numbers, increasing."""
    where = f"{where}: milestones"
    if "milestones" not in spec:
        raise InputError("the multistep schedule needs 'milestones' (a list of steps)",
                         where=where.rsplit(":", 1)[0])
    value = spec["milestones"]
    if not isinstance(value, list) or not value:
        raise InputError(f"expected a list of step numbers, got {value!r:.40}", where=where)
    for m in value:
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise InputError(f"milestones are whole step numbers >= 1, got {m!r:.40}",
                             where=where)
    if any(b <= a for a, b in zip(value, value[1:])):
        raise InputError(f"milestones must increase, got {value!r:.60}", where=where)
    return list(value)


@problem_kind("schedule")
def schedule(spec, where):
    """Learning-rate schedule values at the given steps."""
    check_keys(spec, {"kind", "title", "schedule", "lr", "steps"} | KEYS, where)
    lr = key_number(spec, "lr", where)
    if lr is None:
        raise InputError("missing required key 'lr'", where=where)
    sched = Schedule(spec, where, lr)
    steps = get(spec, "steps", where, types=list)
    if not steps or any(isinstance(t, bool) or not isinstance(t, int) or t < 0 for t in steps):
        raise InputError("expected a list of step numbers t >= 0", where=f"{where}: steps")
    d = Derivation(title=get(spec, "title", where, default=f"Learning-rate schedule: "
                                                           f"{sched.name}"), kind="schedule")
    if all_exact(lr, sched.gamma, sched.eta_min, sched.end_lr):
        d.note(EXACT_NOTE)
    d.note("t counts optimizer steps from 0: the first update uses the value at t = 0.")
    if sched.milestone_note():
        d.note(sched.milestone_note())
    out, rows = [], []
    for t in steps:
        value, form = sched.lr_at(t)
        value = tidy(value)
        out.append(value)
        rows.append(Step(symbol("eta", t), [sched.formula, form, *with_approx(value)]))
    d.sections.append(Section(sched.describe().capitalize(), rows))
    d.result = out
    return d
