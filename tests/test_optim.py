"""Optimizers, schedules and initialisers: trajectories against torch.optim, closed forms."""
import math

import numpy as np
import pytest

from derive.errors import InputError
from kernels import init, optim

# A small least-squares problem; the gradient depends on where the optimizer is, so a
# wrong update shows up as a diverging trajectory, not just one wrong step.
RNG = np.random.default_rng(42)
A = RNG.normal(size=(6, 5))
B = RNG.normal(size=(6, 3))
NOISE = RNG.normal(scale=0.1, size=(100, 5, 3))
W0 = RNG.normal(size=(5, 3))
C0 = RNG.normal(size=(3,))


def grads(W, c, t):
    """Gradient of 0.5*||A W + c - B||^2 plus step-dependent noise at step t."""
    R = A @ W + c - B
    return {"W": A.T @ R + NOISE[t], "c": R.sum(axis=0)}


def ours(opt, steps=100):
    params = {"W": W0.copy(), "c": C0.copy()}
    state = opt.init_state(params)
    path = []
    for t in range(steps):
        opt.step(params, grads(params["W"], params["c"], t), state, t + 1)
        path.append(np.concatenate([params["W"].ravel(), params["c"]]))
    return np.array(path)


def theirs(make_torch, steps=100):
    torch = pytest.importorskip("torch")
    W = torch.tensor(W0.copy(), requires_grad=True)
    c = torch.tensor(C0.copy(), requires_grad=True)
    opt = make_torch([W, c])
    path = []
    for t in range(steps):
        g = grads(W.detach().numpy(), c.detach().numpy(), t)
        W.grad, c.grad = torch.tensor(g["W"]), torch.tensor(g["c"])
        opt.step()
        path.append(np.concatenate([W.detach().numpy().ravel(), c.detach().numpy()]))
    return np.array(path)


TORCH_CASES = [  # (our optimizer, torch.optim constructor)
    ("sgd", dict(lr=0.05), lambda o: o.SGD, dict(lr=0.05)),
    ("sgd+l2", dict(optimizer="sgd", lr=0.05, weight_decay=0.1), lambda o: o.SGD,
     dict(lr=0.05, weight_decay=0.1)),
    ("momentum", dict(optimizer="momentum", lr=0.02, rho=0.9), lambda o: o.SGD,
     dict(lr=0.02, momentum=0.9)),
    ("sgd(momentum=)+l2", dict(optimizer="sgd", lr=0.02, momentum=0.8, weight_decay=0.05),
     lambda o: o.SGD, dict(lr=0.02, momentum=0.8, weight_decay=0.05)),
    # u = beta*u + (1-beta)*g is heavy ball with the rate scaled by (1-beta)
    ("momentum_ema", dict(optimizer="momentum_ema", lr=0.2, beta=0.9), lambda o: o.SGD,
     dict(lr=0.2 * (1 - 0.9), momentum=0.9)),
    ("nesterov", dict(optimizer="nesterov", lr=0.02, rho=0.9), lambda o: o.SGD,
     dict(lr=0.02, momentum=0.9, nesterov=True)),
    ("adagrad", dict(optimizer="adagrad", lr=0.1), lambda o: o.Adagrad, dict(lr=0.1)),
    ("rmsprop", dict(optimizer="rmsprop", lr=0.01, alpha=0.9), lambda o: o.RMSprop,
     dict(lr=0.01, alpha=0.9)),
    ("adam", dict(optimizer="adam", lr=0.01), lambda o: o.Adam, dict(lr=0.01)),
    ("adam+l2", dict(optimizer="adam", lr=0.01, beta1=0.8, weight_decay=0.1),
     lambda o: o.Adam, dict(lr=0.01, betas=(0.8, 0.999), weight_decay=0.1)),
    ("adamw", dict(optimizer="adamw", lr=0.01, weight_decay=0.1), lambda o: o.AdamW,
     dict(lr=0.01, weight_decay=0.1)),
]


@pytest.mark.parametrize("label, ours_kw, torch_cls, torch_kw", TORCH_CASES,
                         ids=[c[0] for c in TORCH_CASES])
def test_trajectory_matches_torch(label, ours_kw, torch_cls, torch_kw):
    torch = pytest.importorskip("torch")
    opt = optim.make(**ours_kw)
    expected = theirs(lambda ps: torch_cls(torch.optim)(ps, **torch_kw))
    got = ours(opt)
    assert np.abs(got - expected).max() < 1e-6
    assert np.abs(got[-1] - got[0]).max() > 1e-3  # it really moved


def test_adam_constant_gradient_closed_forms():
    # constant g: m_t = (1-b1^t) g, v_t = (1-b2^t) g^2, so bias-corrected Adam steps by
    # exactly eta*g/(|g|+eps) and the uncorrected one by eta*(1-b1^t) g/(sqrt(1-b2^t)|g|+eps)
    g, eta, b1, b2, eps = 0.3, 0.01, 0.9, 0.999, 1e-3
    th = {"adam": 0.0, "adam_eps_inside": 0.0, "adam_raw": 0.0, "adam_raw_eps_inside": 0.0}
    st = {k: [0.0, 0.0] for k in th}
    for t in range(1, 21):
        th_prev = dict(th)
        th["adam"], *st["adam"] = optim.adam(th["adam"], g, *st["adam"], t, eta, b1, b2, eps)
        th["adam_eps_inside"], *st["adam_eps_inside"] = optim.adam_eps_inside(
            th["adam_eps_inside"], g, *st["adam_eps_inside"], t, eta, b1, b2, eps)
        th["adam_raw"], *st["adam_raw"] = optim.adam_raw(th["adam_raw"], g, *st["adam_raw"],
                                                         eta, b1, b2, eps)
        th["adam_raw_eps_inside"], *st["adam_raw_eps_inside"] = optim.adam_raw_eps_inside(
            th["adam_raw_eps_inside"], g, *st["adam_raw_eps_inside"], eta, b1, b2, eps)
        c1, c2 = 1 - b1**t, 1 - b2**t
        assert th_prev["adam"] - th["adam"] == pytest.approx(eta * g / (g + eps), rel=1e-12)
        assert th_prev["adam_eps_inside"] - th["adam_eps_inside"] == pytest.approx(
            eta * g / math.sqrt(g * g + eps), rel=1e-12)
        assert th_prev["adam_raw"] - th["adam_raw"] == pytest.approx(
            eta * c1 * g / (math.sqrt(c2) * g + eps), rel=1e-12)
        assert th_prev["adam_raw_eps_inside"] - th["adam_raw_eps_inside"] == pytest.approx(
            eta * c1 * g / math.sqrt(c2 * g * g + eps), rel=1e-12)


def test_make_selects_rules_and_rejects_unknowns():
    assert optim.make("adam", bias_correction=False).rule is optim.adam_raw
    assert optim.make("adam", eps_inside=True).rule is optim.adam_eps_inside
    assert optim.make("sgd", momentum=0.9, nesterov=True).rule is optim.nesterov
    assert optim.make("adam").lr == 1e-3 and optim.make("sgd").lr == 0.1
    assert optim.make("adam").state_names == ("m", "v") and optim.make("adam").uses_step
    with pytest.raises(InputError, match="unknown optimizer 'adamx'"):
        optim.make("adamx")
    with pytest.raises(InputError, match="unknown hyper-parameter 'rho'"):
        optim.make("adam", rho=0.9)


def test_latex_renders_the_same_rule():
    tex = optim.latex(optim.adam)
    assert r"\beta_1" in tex and r"\hat m" in tex and r"\sqrt{" in tex
    assert r"\theta \gets \theta" in tex


# -- schedules ---------------------------------------------------------------------------
SCHED_CASES = [
    (dict(spec="step", step_size=7, gamma=0.5), "StepLR", dict(step_size=7, gamma=0.5)),
    (dict(spec="cosine", total=25, eta_min=0.01), "CosineAnnealingLR",
     dict(T_max=25, eta_min=0.01)),
    (dict(spec="linear", total=10, start=1.0, end=0.1), "LinearLR",
     dict(start_factor=1.0, end_factor=0.1, total_iters=10)),
]


@pytest.mark.parametrize("ours_kw, cls, kw", SCHED_CASES, ids=[c[1] for c in SCHED_CASES])
def test_schedules_match_torch(ours_kw, cls, kw):
    torch = pytest.importorskip("torch")
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.3)
    sched = getattr(torch.optim.lr_scheduler, cls)(opt, **kw)
    ours_s = optim.Schedule.make(**ours_kw)
    for epoch in range(26):  # torch's cosine rises again after T_max; ours stays at the floor
        assert ours_s.rate(epoch, 0.3) == pytest.approx(sched.get_last_lr()[0], rel=1e-9)
        opt.step()
        sched.step()


def test_inverse_sqrt_and_per_step_rates():
    s = optim.Schedule.make("inverse_sqrt", per="step", warmup=4)
    r = s.rates(1.0, epoch=0, steps_per_epoch=8, epochs=1)
    assert np.allclose(r, [1, 1, 1, 1, 1, math.sqrt(4 / 5), math.sqrt(4 / 6), math.sqrt(4 / 7)])
    c = optim.Schedule.make("cosine")  # total filled in from the run
    assert c.rates(0.2, 5, 3, epochs=10) == pytest.approx([0.1] * 3)
    with pytest.raises(InputError, match="unknown schedule"):
        optim.Schedule.make("exp")


# -- initialisers ------------------------------------------------------------------------
def test_fans_follow_torch_convention():
    assert init.fans((128, 64)) == (64, 128)
    assert init.fans((8, 3, 3, 3)) == (27, 72)
    torch = pytest.importorskip("torch")
    w = torch.empty(8, 3, 3, 3)
    assert init.fans(w.shape) == torch.nn.init._calculate_fan_in_and_fan_out(w)


@pytest.mark.parametrize("name, bound, std", [
    ("xavier_uniform", math.sqrt(6 / 900), math.sqrt(6 / 900) / math.sqrt(3)),
    ("xavier_normal", None, math.sqrt(2 / 900)),
    ("kaiming_uniform", math.sqrt(2) * math.sqrt(3 / 400), math.sqrt(2 / 400)),
    ("kaiming_normal", None, math.sqrt(2 / 400)),
    ("normal", None, 0.01),
])
def test_initialiser_scales(name, bound, std):
    W = init.scheme(name)((500, 400), np.random.default_rng(1))
    if bound is not None:
        assert np.abs(W).max() <= bound and np.abs(W).max() > 0.99 * bound
    assert W.std() == pytest.approx(std, rel=0.02)
    assert abs(W.mean()) < 0.02 * std


def test_initialise_is_seeded_and_zeroes_biases():
    shapes = {"W1": (4, 3), "b1": (4,), "gamma": (4,)}
    a = init.initialise(shapes, "kaiming_normal", seed=3, overrides={"gamma": "ones"})
    b = init.initialise(shapes, "kaiming_normal", seed=3, overrides={"gamma": "ones"})
    c = init.initialise(shapes, "kaiming_normal", seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in shapes)
    assert not np.array_equal(a["W1"], c["W1"])
    assert not a["b1"].any() and (a["gamma"] == 1).all()
    with pytest.raises(InputError, match="unknown initialiser 'lecun'"):
        init.initialise(shapes, "lecun")
