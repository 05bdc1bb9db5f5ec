"""Learning-rate schedules by formula, evaluated at given steps (exactly where inputs are).

``t`` counts optimizer steps from 0 (the first update uses ``lr(0)``), as PyTorch's
schedulers count ``scheduler.step()`` calls. The closed forms match PyTorch's
``StepLR``, ``ExponentialLR``, ``CosineAnnealingLR`` and ``LinearLR`` (to ``end_lr``);
``inverse_sqrt`` is the Transformer ("Noam") schedule when ``d_model`` is given.
"""
from __future__ import annotations

import sympy as sp

from ..derivation import Derivation, Section, Step
from ..errors import InputError
from ..problem import check_keys, get, problem_kind
from .common import ltx, EXACT_NOTE, all_exact, key_int, key_number, tex, tidy, with_approx

#: name -> (extra keys, LaTeX formula)
SCHEDULES = {
    "constant": ((), r"\eta"),
    "step": (("step_size", "gamma"), r"\eta\,\gamma^{\lfloor t / \text{step\_size} \rfloor}"),
    "exponential": (("gamma",), r"\eta\,\gamma^{t}"),
    "cosine": (("T", "eta_min"),
               r"\eta_{\min} + \tfrac12(\eta - \eta_{\min})\left(1 + \cos\frac{\pi t}{T}\right)"),
    "linear": (("T", "end_lr"), r"\eta + (\eta_{\text{end}} - \eta)\,\frac{\min(t, T)}{T}"),
    "inverse_sqrt": (("warmup", "d_model"),
                     r"\eta \cdot s \cdot \min\left(\frac{t}{w}, \sqrt{\frac{w}{t}}\right)"),
}


class Schedule:
    """A schedule read from a mapping: ``lr_at(t)`` gives (value, substituted LaTeX)."""

    def __init__(self, spec, where, lr):
        self.name = get(spec, "schedule", where, types=str)
        if self.name not in SCHEDULES:
            raise InputError(f"unknown schedule {self.name!r} (known: {', '.join(SCHEDULES)})",
                             where=f"{where}: schedule")
        self.lr, self.where = lr, where
        self.keys, self.formula = SCHEDULES[self.name]
        self.gamma = key_number(spec, "gamma", where, sp.Rational(1, 10))
        self.step_size = key_int(spec, "step_size", where, 1)
        self.T = key_int(spec, "T", where, None)
        self.eta_min = key_number(spec, "eta_min", where, sp.Integer(0))
        self.end_lr = key_number(spec, "end_lr", where, sp.Integer(0))
        self.warmup = key_int(spec, "warmup", where, None)
        self.d_model = key_int(spec, "d_model", where, None)
        if self.name in ("cosine", "linear") and self.T is None:
            raise InputError(f"the {self.name} schedule needs 'T' (its length in steps)",
                             where=where)

    def lr_at(self, t):
        """(learning rate at step ``t``, the formula with numbers substituted)."""
        lr, n = self.lr, self.name
        if n == "constant":
            return lr, tex(lr)
        if n == "step":
            k = t // self.step_size
            return lr * self.gamma ** k, rf"{tex(lr)} \cdot {tex(self.gamma)}^{{{k}}}"
        if n == "exponential":
            return lr * self.gamma ** t, rf"{tex(lr)} \cdot {tex(self.gamma)}^{{{t}}}"
        if n == "cosine":
            cos = sp.cos(sp.pi * sp.Rational(t, self.T))
            value = self.eta_min + (lr - self.eta_min) * (1 + cos) / 2
            return value, (rf"{tex(self.eta_min)} + \tfrac12 ({tex(lr)} - {tex(self.eta_min)})"
                           rf"\left(1 + \cos\frac{{{t}\pi}}{{{self.T}}}\right)")
        if n == "linear":
            frac = sp.Rational(min(t, self.T), self.T)
            return (lr + (self.end_lr - lr) * frac,
                    rf"{tex(lr)} + ({tex(self.end_lr)} - {tex(lr)}) \cdot {tex(frac)}")
        return self._inverse_sqrt(t)

    def _inverse_sqrt(self, t):
        lr, w = self.lr, self.warmup
        scale = 1 if self.d_model is None else 1 / sp.sqrt(self.d_model * (w or 1))
        s_tex = "" if self.d_model is None else rf" \cdot {ltx(scale)}"
        if w is None:
            tt = max(t, 1)
            return lr * scale / sp.sqrt(tt), rf"\frac{{{tex(lr)}{s_tex}}}{{\sqrt{{{tt}}}}}"
        if t == 0:
            return sp.Integer(0), r"0 \quad (t = 0)"
        factor = sp.Min(sp.Rational(t, w), sp.sqrt(sp.Rational(w, t)))
        return (lr * scale * factor, rf"{tex(lr)}{s_tex} \cdot \min\left(\frac{{{t}}}{{{w}}},"
                                     rf" \sqrt{{\frac{{{w}}}{{{t}}}}}\right)")

    def describe(self):
        """One sentence naming the schedule and its parameters."""
        extra = {k: getattr(self, k) for k in self.keys if getattr(self, k) is not None}
        args = ", ".join(f"{k} = {v}" for k, v in extra.items())
        return f"{self.name} schedule (eta = {self.lr}{', ' + args if args else ''})"


@problem_kind("schedule")
def schedule(spec, where):
    """Learning-rate schedule values at the given steps."""
    names = {k for keys, _ in SCHEDULES.values() for k in keys}
    check_keys(spec, {"kind", "title", "schedule", "lr", "steps"} | names, where)
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
    out, rows = [], []
    for t in steps:
        value, text = sched.lr_at(t)
        value = tidy(value)
        out.append(value)
        rows.append(Step(rf"\eta_{{{t}}}", [sched.formula, text, *with_approx(value)]))
    d.sections.append(Section(sched.describe().capitalize(), rows))
    d.result = out
    return d
