"""Worked optimizer steps and schedules, against torch.optim and an independent NumPy loop."""
import math

import numpy as np
import pytest
import sympy as sp

from derive.errors import InputError, ShapeError
from derive.problem import solve_spec
from reports.latex_printer import latex

THETA = [1.0, -2.0]
GRADS = [[0.5, 0.1], [0.4, -0.2], [0.3, 0.0], [-0.1, 0.7]]


def solve(**spec):
    return solve_spec({"kind": "optimizer", **spec}, "t.yaml")


def numpy_loop(name, theta, grads, lr, mu=0.9, rho=0.99, b1=0.9, b2=0.999, eps=1e-8,
               wd=0.0, form="sum", eps_inside=False):
    """An independent twin of the update equations (float64)."""
    th = np.array(theta, float)
    v = np.zeros_like(th)
    m = np.zeros_like(th)
    for t, g in enumerate(np.array(grads, float), 1):
        if name != "adamw":
            g = g + wd * th
        if name == "sgd":
            th = th - lr * g
        elif name == "momentum":
            v = mu * v + ((1 - mu) * g if form == "ema" else g)
            th = th - lr * v
        elif name == "nesterov":
            v = mu * v + g
            th = th - lr * (g + mu * v)
        elif name in ("adagrad", "rmsprop"):
            v = v + g * g if name == "adagrad" else rho * v + (1 - rho) * g * g
            den = np.sqrt(v + eps) if eps_inside else np.sqrt(v) + eps
            th = th - lr * g / den
        else:
            if name == "adamw":
                th = th * (1 - lr * wd)
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
            den = np.sqrt(v_hat + eps) if eps_inside else np.sqrt(v_hat) + eps
            th = th - lr * m_hat / den
    return th


CASES = [
    ("sgd", {}, {}),
    ("sgd", {"weight_decay": 0.1}, {"wd": 0.1}),
    ("momentum", {"momentum": 0.8}, {"mu": 0.8}),
    ("momentum", {"momentum": 0.8, "momentum_form": "ema"}, {"mu": 0.8, "form": "ema"}),
    ("nesterov", {"momentum": 0.9}, {}),
    ("adagrad", {}, {"eps": 1e-10}),
    ("adagrad", {"eps": 0.01, "eps_inside_sqrt": True}, {"eps": 0.01, "eps_inside": True}),
    ("rmsprop", {"rho": 0.9}, {"rho": 0.9}),
    ("adam", {}, {}),
    ("adam", {"beta1": 0.8, "beta2": 0.99, "eps": 0.001, "eps_inside_sqrt": True},
     {"b1": 0.8, "b2": 0.99, "eps": 0.001, "eps_inside": True}),
    ("adamw", {"weight_decay": 0.1}, {"wd": 0.1}),
]


@pytest.mark.parametrize("name, keys, ref", CASES)
def test_optimizer_against_numpy_twin(name, keys, ref):
    d = solve(optimizer=name, lr=0.1, theta=THETA, grads=GRADS, **keys)
    expected = numpy_loop(name, THETA, GRADS, 0.1, **ref)
    np.testing.assert_allclose(np.array(d.result, dtype=float), expected, rtol=1e-12)
    assert len(d.meta["trajectory"]) == len(GRADS) + 1


def _torch_optimizer(torch, name, params, keys):
    o = torch.optim
    if name == "sgd":
        return o.SGD(params, lr=0.1, weight_decay=keys.get("weight_decay", 0))
    if name == "momentum":
        return o.SGD(params, lr=0.1, momentum=keys["momentum"])
    if name == "nesterov":
        return o.SGD(params, lr=0.1, momentum=keys["momentum"], nesterov=True)
    if name == "adagrad":
        return o.Adagrad(params, lr=0.1)
    if name == "rmsprop":
        return o.RMSprop(params, lr=0.1, alpha=keys["rho"], eps=1e-8)
    if name == "adam":
        return o.Adam(params, lr=0.1)
    return o.AdamW(params, lr=0.1, weight_decay=keys["weight_decay"])


@pytest.mark.parametrize("name, keys", [(n, k) for n, k, _ in CASES
                                        if "eps_inside_sqrt" not in k
                                        and k.get("momentum_form") != "ema"])
def test_optimizer_against_torch(name, keys):
    torch = pytest.importorskip("torch")
    d = solve(optimizer=name, lr=0.1, theta=THETA, grads=GRADS, **keys)
    p = torch.tensor(THETA, dtype=torch.float64, requires_grad=True)
    opt = _torch_optimizer(torch, name, [p], keys)
    for g in GRADS:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    np.testing.assert_allclose(np.array(d.result, dtype=float), p.detach().numpy(), rtol=1e-10)


def test_adam_first_step_is_exact_sign_step():
    d = solve(optimizer="adam", lr="1/10", eps=0, theta=[1, -2], grads=[[3, -5]])
    assert d.result == [sp.Rational(9, 10), sp.Rational(-19, 10)]
    lhs = [latex(s.lhs) for sec in d.sections for s in sec.steps]
    for name in ("m_{1}", "v_{1}", r"\hat{m}_{1}", r"\hat{v}_{1}", r"\theta_{1}"):
        assert name in lhs


def test_quadratic_gradient_and_lookahead_nesterov():
    d = solve(optimizer="nesterov", nesterov_form="lookahead", lr="1/10", momentum="9/10",
              function="x**2 + 10*y**2", variables=["x", "y"], theta=[1, 1], steps=2)
    th, v = np.array([1.0, 1.0]), np.zeros(2)
    for _ in range(2):
        ahead = th + 0.9 * v
        v = 0.9 * v - 0.1 * np.array([2 * ahead[0], 20 * ahead[1]])
        th = th + v
    assert d.result == [sp.Rational(62, 125), sp.Rational(14, 5)]
    np.testing.assert_allclose(np.array(d.result, dtype=float), th)


def test_sgd_on_quadratic_with_step_schedule():
    d = solve(optimizer="sgd", lr="1/4", theta=2, function="theta**2", steps=3,
              schedule={"schedule": "step", "step_size": 2, "gamma": "1/2"})
    th = 2.0
    for t, lr in enumerate([0.25, 0.25, 0.125]):
        th -= lr * 2 * th
    assert d.result == sp.Rational(3, 8) and float(d.result) == th


# -- schedules ---------------------------------------------------------------------------------
def schedule(**spec):
    return solve_spec({"kind": "schedule", **spec}, "t.yaml").result


def test_cosine_schedule_exact():
    assert schedule(schedule="cosine", lr="1/10", T=4, steps=[0, 1, 2, 4]) == [
        sp.Rational(1, 10), sp.Rational(1, 20) + sp.sqrt(2) / 40, sp.Rational(1, 20), 0]


def test_noam_schedule_peaks_at_warmup():
    values = schedule(schedule="inverse_sqrt", lr=1, warmup=4, d_model=16, steps=[1, 4, 16])
    assert values == [sp.Rational(1, 32), sp.Rational(1, 8), sp.Rational(1, 16)]
    assert float(values[1]) == pytest.approx(16 ** -0.5 * min(4 ** -0.5, 4 * 4 ** -1.5))


@pytest.mark.parametrize("spec, make", [
    ({"schedule": "step", "step_size": 3, "gamma": 0.5},
     lambda t, o: t.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    ({"schedule": "exponential", "gamma": 0.9},
     lambda t, o: t.optim.lr_scheduler.ExponentialLR(o, gamma=0.9)),
    ({"schedule": "cosine", "T": 8, "eta_min": 0.01},
     lambda t, o: t.optim.lr_scheduler.CosineAnnealingLR(o, T_max=8, eta_min=0.01)),
    ({"schedule": "linear", "T": 5, "end_lr": 0.025},
     lambda t, o: t.optim.lr_scheduler.LinearLR(o, start_factor=1.0, end_factor=0.25,
                                                total_iters=5)),
    ({"schedule": "constant"}, lambda t, o: t.optim.lr_scheduler.ConstantLR(o, factor=1.0)),
])
def test_schedules_against_torch(spec, make):
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = make(torch, opt)
    expected = []
    for _ in range(10):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    values = schedule(lr=0.1, steps=list(range(10)), **spec)
    np.testing.assert_allclose([float(v) for v in values], expected, rtol=1e-9)


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, error, where", [
    ({"optimizer": "adamax", "lr": 1, "theta": 1, "grads": [1]}, InputError, "optimizer"),
    ({"optimizer": "sgd", "lr": 1, "theta": 1, "grads": [1], "beta1": 0.9}, InputError, "beta1"),
    ({"optimizer": "sgd", "theta": 1, "grads": [1]}, InputError, "lr"),
    ({"optimizer": "sgd", "lr": 1, "theta": [1, 2], "grads": [[1]]}, ShapeError, "grads"),
    ({"optimizer": "sgd", "lr": 1, "theta": [1, 2], "grads": [[1, 2], [3]]}, ShapeError, "grads"),
    ({"optimizer": "sgd", "lr": 1, "theta": 1}, InputError, "grads"),
    ({"optimizer": "nesterov", "nesterov_form": "lookahead", "lr": 1, "theta": 1, "grads": [1]},
     InputError, "lookahead"),
    ({"optimizer": "adagrad", "lr": 1, "eps": 0, "theta": [1, 2], "grads": [[1, 0]]},
     InputError, "division by zero"),
    ({"optimizer": "sgd", "lr": 1, "theta": 1, "function": "theta + zz", "steps": 1},
     InputError, "function"),
    ({"optimizer": "sgd", "lr": 1, "theta": 1, "grads": [1], "steps": 3}, ShapeError, "steps"),
    ({"optimizer": "sgd", "lr": 1, "theta": 1, "grads": [1],
      "schedule": {"schedule": "cosine"}}, InputError, "T"),
])
def test_bad_optimizer_input(spec, error, where):
    with pytest.raises(error) as info:
        solve(**spec)
    assert where in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith("t.yaml")


def test_unknown_schedule():
    with pytest.raises(InputError, match="unknown schedule 'warm'"):
        schedule(schedule="warm", lr=1, steps=[0])
    assert math.isclose(float(schedule(schedule="inverse_sqrt", lr=1, steps=[4])[0]), 0.5)
