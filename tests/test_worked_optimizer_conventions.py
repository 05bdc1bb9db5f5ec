"""Course conventions of the optimizer worked kind: Adam without bias correction or second
moment, coupled / decoupled weight decay and the L2 penalty's scale, the CS231n momentum,
multi-step schedules, continuing from a given state, symbolic steps.

References: torch.optim in float64 (skipped without torch), NumPy loops written here,
and the course documents' own statements (the review slides' ResNet step schedule; the
midterm's "Adam without its second moment is SGD + momentum").
"""
import numpy as np
import pytest
import sympy as sp

from derive.errors import InputError, ShapeError, UnsupportedError
from derive.problem import solve_spec

THETA = [1.0, -2.0]
GRADS = [[0.5, 0.1], [0.4, -0.2], [0.3, 0.0], [-0.1, 0.7]]


def solve(**spec):
    return solve_spec({"kind": "optimizer", **spec}, "t.yaml")


def result(d):
    return np.array(d.result, dtype=float)


def torch_run(make, grads=GRADS, theta=THETA, state=None, sched=None):
    """theta after torch's optimizer ``make(torch, [p])`` takes the given gradients."""
    torch = pytest.importorskip("torch")
    p = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    opt = make(torch, [p])
    if state:
        opt.state[p] = {k: (v if k == "step" else torch.tensor(v, dtype=torch.float64))
                        for k, v in state(torch).items()}
    scheduler = sched(torch, opt) if sched else None
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        if scheduler:
            scheduler.step()
    return p.detach().numpy()


# -- against torch.optim ----------------------------------------------------------------------
@pytest.mark.parametrize("keys, make", [
    ({"optimizer": "momentum", "momentum": 0.8, "weight_decay": 0.1},
     lambda t, p: t.optim.SGD(p, lr=0.1, momentum=0.8, weight_decay=0.1)),
    ({"optimizer": "nesterov", "momentum": 0.9, "weight_decay": 0.05},
     lambda t, p: t.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05)),
    ({"optimizer": "momentum", "momentum": 0.8, "weight_decay": 0.05, "penalty": "lambda"},
     lambda t, p: t.optim.SGD(p, lr=0.1, momentum=0.8, weight_decay=0.1)),  # 2 lambda
    ({"optimizer": "momentum", "momentum_form": "cs231n", "momentum": 0.8},
     lambda t, p: t.optim.SGD(p, lr=0.1, momentum=0.8)),  # same iterates at constant lr
    ({"optimizer": "adam", "weight_decay": 0.1},
     lambda t, p: t.optim.Adam(p, lr=0.1, weight_decay=0.1)),
    ({"optimizer": "adam", "weight_decay": 0.1, "weight_decay_form": "decoupled"},
     lambda t, p: t.optim.AdamW(p, lr=0.1, weight_decay=0.1)),
    ({"optimizer": "adamw", "weight_decay": 0.2, "beta1": 0.8},
     lambda t, p: t.optim.AdamW(p, lr=0.1, weight_decay=0.2, betas=(0.8, 0.999))),
])
def test_weight_decay_and_momentum_forms_against_torch(keys, make):
    d = solve(lr=0.1, theta=THETA, grads=GRADS, **keys)
    np.testing.assert_allclose(result(d), torch_run(make), rtol=1e-10)


def test_multistep_schedule_in_sgd_momentum_against_torch():
    d = solve(optimizer="momentum", momentum=0.9, lr=0.1, theta=THETA, grads=GRADS,
              schedule={"schedule": "multistep", "milestones": [1, 3], "gamma": 0.5})
    expected = torch_run(lambda t, p: t.optim.SGD(p, lr=0.1, momentum=0.9),
                         sched=lambda t, o: t.optim.lr_scheduler.MultiStepLR(
                             o, milestones=[1, 3], gamma=0.5))
    np.testing.assert_allclose(result(d), expected, rtol=1e-10)


def test_multistep_values_against_torch():
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 5, 6], gamma=0.3)
    expected = []
    for _ in range(9):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    d = solve_spec({"kind": "schedule", "schedule": "multistep", "lr": 0.1, "gamma": 0.3,
                    "milestones": [2, 5, 6], "steps": list(range(9))}, "t.yaml")
    np.testing.assert_allclose([float(v) for v in d.result], expected, rtol=1e-12)


def test_adam_continues_from_a_state_like_torch():
    m, v = [0.2, -0.1], [0.03, 0.02]
    d = solve(optimizer="adam", lr=0.1, theta=THETA, grads=GRADS[:2],
              state={"m": m, "v": v, "t": 3})
    assert [s.title for s in d.sections][-2:] == ["Step t = 4", "Step t = 5"]
    expected = torch_run(lambda t, p: t.optim.Adam(p, lr=0.1), grads=GRADS[:2],
                         state=lambda t: {"step": t.tensor(3.0), "exp_avg": m,
                                          "exp_avg_sq": v})
    np.testing.assert_allclose(result(d), expected, rtol=1e-10)
    assert d.meta["state"]["t"] == 5


def test_momentum_continues_from_a_buffer_like_torch():
    d = solve(optimizer="momentum", momentum=0.9, lr=0.1, theta=THETA, grads=GRADS,
              start_step=7, state={"v": [1.0, -0.5]})
    expected = torch_run(lambda t, p: t.optim.SGD(p, lr=0.1, momentum=0.9),
                         state=lambda t: {"momentum_buffer": [1.0, -0.5]})
    np.testing.assert_allclose(result(d), expected, rtol=1e-10)


# -- against NumPy loops written here ------------------------------------------------------------
def adam_numpy(theta, grads, lr, b1=0.9, b2=0.999, eps=1e-8, bias=True, second=True,
               inside=False, m=None, v=None, t0=0):
    th = np.array(theta, float)
    m = np.zeros_like(th) if m is None else np.array(m, float)
    v = np.zeros_like(th) if v is None else np.array(v, float)
    for t, g in enumerate(np.array(grads, float), t0 + 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mh, vh = (m / (1 - b1 ** t), v / (1 - b2 ** t)) if bias else (m, v)
        if not second:
            th = th - lr * mh
        else:
            th = th - lr * mh / (np.sqrt(vh + eps) if inside else np.sqrt(vh) + eps)
    return th


def test_adam_without_bias_correction_as_the_midterm_writes_it():
    # the midterm's Adam: m, v moving averages, theta -= alpha m / sqrt(v + eps), no m-hat
    d = solve(optimizer="adam", bias_correction=False, eps_inside_sqrt=True, eps=1e-6,
              beta1=0.8, beta2=0.9, lr=0.1, theta=THETA, grads=GRADS)
    np.testing.assert_allclose(result(d), adam_numpy(THETA, GRADS, 0.1, 0.8, 0.9, 1e-6,
                                                     bias=False, inside=True), rtol=1e-12)
    names = {str(s.lhs) for sec in d.sections for s in sec.steps}
    assert "mhat_1" not in names and "vhat_1" not in names
    assert any("without bias correction" in n for n in d.notes)


def test_review_adam_first_step_is_not_a_sign_step():
    # without bias correction the first step is eta * (1 - b1) g / sqrt((1 - b2) g^2)
    d = solve(optimizer="adam", bias_correction=False, eps=0, lr="1/10", beta1="1/2",
              beta2="3/4", theta=1, grads=[4])
    assert d.result == 1 - sp.Rational(1, 10) * 2 / sp.sqrt(4)  # m = 2, v = 4: 9/10
    assert d.result == sp.Rational(9, 10)
    d = solve(optimizer="adam", bias_correction=False, eps=0, lr="1/10", beta1="1/2",
              beta2="15/16", theta=1, grads=[4])
    assert d.result == 1 - sp.Rational(1, 10) * 2 / 1  # v = 1


def test_midterm_adam_without_second_moment_is_ema_momentum():
    # the midterm's question: v = 0 and theta -= alpha m is "SGD + Momentum" (EMA form)
    a = solve(optimizer="adam", bias_correction=False, second_moment=False, beta1="4/5",
              lr="1/10", theta=[1, -2], grads=[[1, 2], [3, -1], [0, 5]])
    b = solve(optimizer="momentum", momentum_form="ema", momentum="4/5", lr="1/10",
              theta=[1, -2], grads=[[1, 2], [3, -1], [0, 5]])
    assert a.meta["trajectory"] == b.meta["trajectory"]
    assert a.meta["state"]["m"] == b.meta["state"]["u"]
    np.testing.assert_allclose(result(a), adam_numpy([1, -2], [[1, 2], [3, -1], [0, 5]], 0.1,
                                                     b1=0.8, bias=False, second=False))
    assert any("SGD + momentum in the EMA form" in n for n in a.notes)
    c = solve(optimizer="adam", second_moment=False, beta1="4/5", lr="1/10", theta=[1, -2],
              grads=[[1, 2], [3, -1], [0, 5]])
    np.testing.assert_allclose(result(c), adam_numpy([1, -2], [[1, 2], [3, -1], [0, 5]], 0.1,
                                                     b1=0.8, second=False), rtol=1e-12)


def test_cs231n_momentum_against_numpy_under_a_schedule():
    sched = {"schedule": "step", "step_size": 2, "gamma": 0.5}
    d = solve(optimizer="momentum", momentum_form="cs231n", momentum=0.9, lr=0.1,
              theta=THETA, grads=GRADS, schedule=sched)
    th, v = np.array(THETA), np.zeros(2)
    s, ths = np.zeros(2), np.array(THETA)
    for t, g in enumerate(np.array(GRADS)):
        lr = 0.1 * 0.5 ** (t // 2)
        v = 0.9 * v - lr * g
        th = th + v
        s = 0.9 * s + g
        ths = ths - lr * s
    np.testing.assert_allclose(result(d), th, rtol=1e-12)
    assert np.abs(result(d) - ths).max() > 1e-3  # the sum form differs once lr changes
    const = solve(optimizer="momentum", momentum_form="cs231n", momentum="9/10", lr="1/10",
                  theta=[1, -2], grads=[[1, 2], [3, -1]])
    total = solve(optimizer="momentum", momentum="9/10", lr="1/10", theta=[1, -2],
                  grads=[[1, 2], [3, -1]])
    assert const.meta["trajectory"] == total.meta["trajectory"]
    assert const.meta["state"]["v"] == [-x / 10 for x in total.meta["state"]["v"]]


def test_sgdw_decoupled_momentum_against_numpy():
    d = solve(optimizer="momentum", momentum=0.9, lr=0.1, weight_decay=0.2,
              weight_decay_form="decoupled", theta=THETA, grads=GRADS)
    th, v = np.array(THETA), np.zeros(2)
    for g in np.array(GRADS):
        v = 0.9 * v + g  # the loss's gradient only
        th = (1 - 0.1 * 0.2) * th - 0.1 * v
    np.testing.assert_allclose(result(d), th, rtol=1e-12)
    coupled = solve(optimizer="momentum", momentum=0.9, lr=0.1, weight_decay=0.2,
                    theta=THETA, grads=GRADS)
    assert np.abs(result(coupled) - th).max() > 1e-4


def test_decoupled_sgd_equals_coupled_with_the_half_penalty():
    a = solve(optimizer="sgd", lr="1/10", weight_decay="1/5", weight_decay_form="decoupled",
              theta=[1, -2], grads=[[1, 2], [3, -1]])
    b = solve(optimizer="sgd", lr="1/10", weight_decay="1/5", theta=[1, -2],
              grads=[[1, 2], [3, -1]])
    assert a.result == b.result
    c = solve(optimizer="sgd", lr="1/10", weight_decay="1/10", penalty="lambda",
              theta=[1, -2], grads=[[1, 2], [3, -1]])
    assert c.result == b.result  # lambda ||w||^2 with 1/10 = (lambda/2) ||w||^2 with 1/5
    assert any("2 lambda * theta" in n for n in c.notes)


# -- the course documents' numbers -------------------------------------------------------------
def test_review_slides_resnet_step_schedule():
    # "multiply LR by 0.1 after epochs 30, 60, and 90"
    d = solve_spec({"kind": "schedule", "schedule": "multistep", "lr": "1/10",
                    "milestones": [30, 60, 90], "gamma": "1/10",
                    "steps": [0, 29, 30, 59, 60, 89, 90, 120]}, "t.yaml")
    tenth = sp.Rational(1, 10)
    assert d.result == [tenth, tenth, tenth ** 2, tenth ** 2, tenth ** 3, tenth ** 3,
                        tenth ** 4, tenth ** 4]


# -- symbolic steps -----------------------------------------------------------------------------
def test_symbolic_adam_steps_agree_with_numbers():
    d = solve(optimizer="adam", lr="eta", beta1="b1", beta2="b2", eps="e", theta=["w"],
              grads=[["g1"], ["g2"]], symbols=["eta", "b1", "b2", "e", "w", "g1", "g2"])
    (expr,) = d.result
    names = {s.name: s for s in expr.free_symbols}
    assert set(names) == {"eta", "b1", "b2", "e", "w", "g1", "g2"}
    at = {"eta": 0.1, "b1": 0.8, "b2": 0.9, "e": 1e-3, "w": 1.5, "g1": -0.7, "g2": 0.4}
    value = float(expr.subs({names[k]: v for k, v in at.items()}))
    assert value == pytest.approx(adam_numpy([1.5], [[-0.7], [0.4]], 0.1, 0.8, 0.9, 1e-3)[0],
                                  rel=1e-12)
    first = d.meta["trajectory"][1][0]  # the first step is eta g / (|g| + eps)
    assert first == names["w"] - names["eta"] * names["g1"] / (sp.Abs(names["g1"]) + names["e"])
    assert any("symbolically" in n for n in d.notes)


def test_symbolic_cs231n_momentum_and_default_eps_symbol():
    d = solve(optimizer="momentum", momentum_form="cs231n", momentum="mu", lr="eta",
              theta="w", grads=["g1", "g2"], symbols=["mu", "eta", "w", "g1", "g2"])
    mu, eta, w, g1, g2 = (sp.Symbol(n, real=True) for n in ("mu", "eta", "w", "g1", "g2"))
    assert sp.simplify(d.result - (w - eta * g1 + mu * (-eta * g1) - eta * g2)) == 0
    d = solve(optimizer="rmsprop", lr="eta", theta="w + 1", grads=["g"],
              symbols=["eta", "w", "g"])
    assert sp.Symbol("epsilon") in d.result.free_symbols


# -- bad input ------------------------------------------------------------------------------------
BASE = {"lr": 1, "theta": [1, 2], "grads": [[1, 1]]}


@pytest.mark.parametrize("spec, error, where", [
    ({"optimizer": "adam", "state": {"m": [1, 1], "v": [1, 1]}}, InputError, "state"),
    ({"optimizer": "adam", "state": {"m": [1, 1], "v": [1, 1], "t": 0}}, InputError, "state"),
    ({"optimizer": "adam", "start_step": 0}, ShapeError, "start_step"),
    ({"optimizer": "adam", "start_step": 3}, InputError, "state"),
    ({"optimizer": "adam", "start_step": 3, "state": {"m": [0, 0], "v": [0, 0], "t": 4}},
     InputError, "start_step"),
    ({"optimizer": "adam", "state": {"m": [1, 1, 1], "v": [1, 1], "t": 2}}, ShapeError, "state.m"),
    ({"optimizer": "adam", "state": {"m": 1, "v": [1, 1], "t": 2}}, ShapeError, "state.m"),
    ({"optimizer": "momentum", "state": {"u": [1, 1]}}, InputError, "state"),
    ({"optimizer": "adagrad", "state": {"G": [1, 1]}, "initial_accumulator": 1}, InputError,
     "initial_accumulator"),
    ({"optimizer": "adam", "second_moment": False, "eps": 0.1}, InputError, "eps"),
    ({"optimizer": "adam", "second_moment": False, "beta2": 0.9}, InputError, "beta2"),
    ({"optimizer": "adamw", "weight_decay_form": "coupled"}, InputError, "weight_decay_form"),
    ({"optimizer": "sgd", "weight_decay": 0.1, "weight_decay_form": "decoupled",
      "penalty": "lambda"}, InputError, "penalty"),
    ({"optimizer": "sgd", "penalty": "lambda"}, InputError, "penalty"),
    ({"optimizer": "sgd", "weight_decay": 0.1, "penalty": "2"}, InputError, "penalty"),
    ({"optimizer": "sgd", "bias_correction": False}, InputError, "bias_correction"),
    ({"optimizer": "sgd", "schedule": {"schedule": "multistep", "milestones": ["T1"]}},
     InputError, "milestones"),
    ({"optimizer": "sgd", "schedule": {"schedule": "multistep", "milestones": [3, 2]}},
     InputError, "milestones"),
    ({"optimizer": "sgd", "schedule": {"schedule": "step", "milestone": [3]}}, InputError,
     "milestone"),
    ({"optimizer": "sgd", "lr": "eta + "}, InputError, "lr"),
    ({"optimizer": "sgd", "lr": "__import__('os')"}, UnsupportedError, "lr"),
    ({"optimizer": "sgd", "start_step": "t0"}, InputError, "start_step"),
    ({"optimizer": "sgd", "lr": "eta"}, InputError, "lr"),  # no symbols declared
    ({"optimizer": "sgd", "lr": "etta", "symbols": ["eta"]}, InputError, "'etta'"),
    ({"optimizer": "sgd", "symbols": ["eta", "eta"]}, InputError, "symbols[1]"),
    ({"optimizer": "sgd", "symbols": ["exp"]}, InputError, "symbols[0]"),
    ({"optimizer": "sgd", "symbols": ["t"], "steps": "t"}, InputError, "steps"),
    ({"optimizer": "sgd", "symbols": ["g"], "state": {"t": "g"}}, InputError, "state"),
    ({"optimizer": "sgd", "symbols": ["T"], "schedule": {"schedule": "multistep",
                                                         "milestones": ["T"]}},
     InputError, "milestones"),
])
def test_bad_convention_input(spec, error, where):
    with pytest.raises(error) as info:
        solve(**{**BASE, **spec})
    message = str(info.value)
    assert where in message and "\n" not in message and message.startswith("t.yaml")
