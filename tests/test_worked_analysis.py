"""Analysis derivations: linear and conv collapse, init variances, Jacobian products."""
import numpy as np
import pytest
import sympy as sp

from derive.errors import InputError, ShapeError
from derive.problem import solve_spec
from reports.latex_printer import latex


def solve(**spec):
    return solve_spec(spec, "t.yaml")


# -- collapse ----------------------------------------------------------------------------------
def test_linear_collapse_symbolic_proof():
    d = solve(kind="linear_collapse", layers=3, sizes=[2, 3, 2, 1])
    assert str(d.result["W"]) == "W_3*W_2*W_1"
    assert str(d.result["b"]) == "W_3*W_2*b_1 + W_3*b_2 + b_3"
    check = d.sections[1].steps[0].rhs[0]
    assert check.shape == (1, 1) and all(v == 0 for v in check)
    residual = next(s for s in d.sections[0].steps if latex(s.lhs).startswith("h_{3} -"))
    assert isinstance(residual.rhs[0], sp.ZeroMatrix)


def test_linear_collapse_numbers_against_numpy():
    rng = np.random.default_rng(0)
    W1, W2, W3 = (rng.integers(-3, 4, size=s) for s in ((3, 2), (4, 3), (2, 4)))
    b1, b2, b3 = (rng.integers(-3, 4, size=n) for n in (3, 4, 2))
    d = solve(kind="linear_collapse", weights=[W1.tolist(), W2.tolist(), W3.tolist()],
              biases=[b1.tolist(), b2.tolist(), b3.tolist()])
    assert d.result["W"] == (W3 @ W2 @ W1).tolist()
    assert d.result["b"] == (W3 @ (W2 @ b1 + b2) + b3).tolist()
    x = rng.normal(size=2)
    layered = W3 @ (W2 @ (W1 @ x + b1) + b2) + b3
    np.testing.assert_allclose(np.array(d.result["W"], float) @ x
                               + np.array(d.result["b"], float), layered)


def test_conv_collapse_symbolic_kernel_is_the_full_convolution():
    d = solve(kind="conv_collapse", kernel_sizes=[2, 3])
    a0, a1, b0, b1, b2 = sp.symbols("a_0 a_1 b_0 b_1 b_2")
    assert d.result["kernel"] == [a0 * b0, a0 * b1 + a1 * b0, a0 * b2 + a1 * b1, a1 * b2]
    assert d.sections[-1].steps[0].rhs == [0]


def test_conv_collapse_numbers_against_numpy_with_bias_and_stride():
    k1, k2 = [1, 2, -1], [3, 0, 1]
    d = solve(kind="conv_collapse", kernels=[k1, k2], biases=[1, 2])
    # cross-correlation of cross-correlations = correlation with np.convolve(k1, k2)
    assert d.result["kernel"] == np.convolve(k1, k2).tolist()
    assert d.result["bias"] == 1 * sum(k2) + 2
    x = np.arange(10.0) ** 2
    stack = np.correlate(np.correlate(x, k1, "valid") + 1, k2, "valid") + 2
    single = np.correlate(x, np.array(d.result["kernel"], float), "valid") + int(d.result["bias"])
    np.testing.assert_allclose(stack, single)
    d = solve(kind="conv_collapse", kernels=[[[1, 0], [0, 1]], [[1, 1], [1, 1]]],
              strides=[1, 2])
    assert d.result == {"kernel": [[1, 1, 0], [1, 2, 1], [0, 1, 1]], "bias": 0,
                        "stride": [2, 2]}


def test_conv_collapse_with_strides_against_torch():
    torch = pytest.importorskip("torch")
    k1, k2 = [[1, -1], [2, 0]], [[0, 1, 1], [1, 0, 2], [1, 1, 0]]
    d = solve(kind="conv_collapse", kernels=[k1, k2], strides=[2, 1])
    x = torch.arange(121.0, dtype=torch.float64).reshape(1, 1, 11, 11).sin()
    f = torch.nn.functional
    stack = f.conv2d(f.conv2d(x, torch.tensor([[k1]], dtype=torch.float64), stride=2),
                     torch.tensor([[k2]], dtype=torch.float64))
    single = f.conv2d(x, torch.tensor([[d.result["kernel"]]], dtype=torch.float64),
                      stride=d.result["stride"])
    np.testing.assert_allclose(stack.numpy(), single.numpy(), atol=1e-12)


# -- initialisation ------------------------------------------------------------------------------
def test_init_variances_match_torch_init():
    d = solve(kind="init_variance", n_in=256, n_out=128)
    x, k = d.result["xavier"], d.result["kaiming"]
    assert x["variance"] == sp.Rational(2, 384) and k["variance"] == sp.Rational(2, 256)
    assert x["uniform_bound"] == sp.sqrt(sp.Rational(6, 384))
    torch = pytest.importorskip("torch")
    w = torch.empty(128, 256, dtype=torch.float64)
    torch.manual_seed(0)
    torch.nn.init.xavier_uniform_(w)
    assert w.abs().max().item() <= float(x["uniform_bound"])
    assert w.std().item() == pytest.approx(float(x["std"]), rel=0.02)
    torch.nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert w.std().item() == pytest.approx(float(k["std"]), rel=0.02)


# (result key, torch.nn.init function, its keyword arguments, normal or uniform)
TORCH_INITS = [
    ("xavier_fan_in", "kaiming_normal_", {"nonlinearity": "linear"}, "normal"),
    ("xavier_fan_in", "kaiming_uniform_", {"nonlinearity": "linear"}, "uniform"),
    ("xavier", "xavier_normal_", {}, "normal"),
    ("xavier", "xavier_uniform_", {}, "uniform"),
    ("kaiming", "kaiming_normal_", {"mode": "fan_in", "nonlinearity": "relu"}, "normal"),
    ("kaiming", "kaiming_uniform_", {"mode": "fan_in", "nonlinearity": "relu"}, "uniform"),
    ("kaiming_fan_out", "kaiming_normal_", {"mode": "fan_out", "nonlinearity": "relu"},
     "normal"),
    ("kaiming_fan_out", "kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"},
     "uniform"),
]


@pytest.mark.parametrize("n_in, n_out", [(300, 100), (64, 512), (7, 7)])
def test_init_forms_equal_torch_documented_constants(n_in, n_out):
    """Each form against the closed forms torch.nn.init documents: xavier_uniform_ bound
    gain*sqrt(6/(fan_in+fan_out)), xavier_normal_ std gain*sqrt(2/(fan_in+fan_out)),
    kaiming_uniform_ bound gain*sqrt(3/fan_mode), kaiming_normal_ std gain/sqrt(fan_mode),
    with gain 1 (linear) and sqrt(2) (relu) from torch.nn.init.calculate_gain, and the fans
    of a Linear weight [n_out, n_in] from torch."""
    torch = pytest.importorskip("torch")
    d = solve(kind="init_variance", n_in=n_in, n_out=n_out)
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(n_out, n_in))
    assert (fan_in, fan_out) == (n_in, n_out)
    lin, rel = (torch.nn.init.calculate_gain(g) for g in ("linear", "relu"))
    want = {"xavier_fan_in": (lin / np.sqrt(fan_in), lin * np.sqrt(3 / fan_in)),
            "xavier": (lin * np.sqrt(2 / (fan_in + fan_out)),
                       lin * np.sqrt(6 / (fan_in + fan_out))),
            "kaiming": (rel / np.sqrt(fan_in), rel * np.sqrt(3 / fan_in)),
            "kaiming_fan_out": (rel / np.sqrt(fan_out), rel * np.sqrt(3 / fan_out))}
    for key, (std, bound) in want.items():
        got = d.result[key]
        assert float(got["std"]) == pytest.approx(std, rel=1e-12), key
        assert float(got["uniform_bound"]) == pytest.approx(bound, rel=1e-12), key
        assert float(got["variance"]) == pytest.approx(std ** 2, rel=1e-12), key
        assert got["variance"].is_Rational and got["std"] ** 2 == got["variance"], key


@pytest.mark.parametrize("key, fn, kwargs, law", TORCH_INITS,
                         ids=[f"{k}-{f}" for k, f, _, _ in TORCH_INITS])
def test_init_forms_match_a_large_torch_draw(key, fn, kwargs, law):
    torch = pytest.importorskip("torch")
    n_in, n_out = 400, 1000
    d = solve(kind="init_variance", n_in=n_in, n_out=n_out)
    got = {k: float(v) for k, v in d.result[key].items()}
    torch.manual_seed(sum(map(ord, key + fn)))
    w = torch.empty(n_out, n_in, dtype=torch.float64)  # 400,000 draws
    getattr(torch.nn.init, fn)(w, **kwargs)
    assert w.var().item() == pytest.approx(got["variance"], rel=0.01)
    assert w.mean().item() == pytest.approx(0, abs=4 * got["std"] / np.sqrt(w.numel()))
    if law == "uniform":
        assert w.abs().max().item() <= got["uniform_bound"]
        assert w.abs().max().item() == pytest.approx(got["uniform_bound"], rel=1e-3)


def test_init_derivation_states_each_form():
    d = solve(kind="init_variance", n_in=256, n_out=128)
    notes = [s.note for sec in d.sections for s in sec.steps]
    for call in ("xavier_normal_", "xavier_uniform_", "mode='fan_in'", "mode='fan_out'",
                 "nonlinearity='linear'", "the slides' Xavier"):
        assert any(call in n for n in notes), call
    assert d.result["xavier_fan_in"]["variance"] == sp.Rational(1, 256)
    assert d.result["kaiming_fan_out"]["variance"] == sp.Rational(2, 128)


def test_init_with_fan_in_only_keeps_fan_out_symbolic():
    d = solve(kind="init_variance", n_in=100, depth=3)
    n_out = sp.Symbol("n_out", positive=True)
    assert d.result["kaiming"]["variance"] == sp.Rational(1, 50)
    assert sp.simplify(d.result["xavier"]["variance"] - 2 / (n_out + 100)) == 0
    assert sp.simplify(d.result["kaiming_fan_out"]["uniform_bound"] - sp.sqrt(6 / n_out)) == 0
    factors = [s.rhs[0] for sec in d.sections for s in sec.steps if "factor" in str(s.lhs)]
    assert factors == [10 ** 6, 1, 50 ** 3]  # (100 * 1)^3; (100 * (2/100) / 2)^3; (100/2)^3


def test_kaiming_keeps_relu_signal_variance_monte_carlo():
    d = solve(kind="init_variance", n_in=200, init="kaiming")
    std = float(d.result["kaiming"]["std"])
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2000, 200))
    W = rng.normal(scale=std, size=(200, 200))
    y = np.maximum(z, 0) @ W.T
    assert y.var() == pytest.approx(z.var(), rel=0.05)


def test_symbolic_init_without_sizes():
    d = solve(kind="init_variance", init="xavier")
    n_in, n_out = sp.symbols("n_in n_out", positive=True)
    assert sp.simplify(d.result["xavier"]["variance"] - 2 / (n_in + n_out)) == 0


# -- Jacobian products -------------------------------------------------------------------------
def test_scalar_linear_rnn_is_exact_power():
    d = solve(kind="rnn_jacobian", W="1/2", T=3, activation="linear", h0=1)
    assert d.result == {"jacobian": sp.Rational(1, 8), "norm": sp.Rational(1, 8),
                        "bound": sp.Rational(1, 8)}
    assert "vanishes" in d.sections[-1].text


def test_tanh_rnn_jacobian_against_torch_autograd():
    torch = pytest.importorskip("torch")
    W = [[0.5, 1.0], [-0.3, 0.8]]
    xs = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -0.5]]
    d = solve(kind="rnn_jacobian", W=W, x=xs, b=[0.1, -0.2], h0=[0.2, 0.1])
    Wt, b = torch.tensor(W, dtype=torch.float64), torch.tensor([0.1, -0.2], dtype=torch.float64)

    def unroll(h0):
        h = h0
        for x in xs:
            h = torch.tanh(Wt @ h + torch.tensor(x, dtype=torch.float64) + b)
        return h

    ref = torch.autograd.functional.jacobian(unroll, torch.tensor([0.2, 0.1],
                                                                  dtype=torch.float64))
    np.testing.assert_allclose(np.array(d.result["jacobian"], dtype=float), ref.numpy(),
                               rtol=1e-10)
    bound = float(np.linalg.norm(np.array(W), 2) ** len(xs))
    assert float(d.result["bound"]) == pytest.approx(bound)
    assert float(d.result["norm"]) <= bound


def test_exploding_bound_is_reported():
    d = solve(kind="rnn_jacobian", W=2, T=5, activation="linear")
    assert d.result["jacobian"] == 32 and d.result["bound"] == 32
    assert "explode" in d.sections[-1].text


def test_deep_sigmoid_mlp_vanishes_under_the_quarter_bound():
    d = solve(kind="mlp_jacobian", weight=1, depth=10, x=0)
    assert d.result["bound"] == sp.Rational(1, 4 ** 10)
    a, grad = 0.0, 1.0
    for _ in range(10):
        s = 1 / (1 + np.exp(-a))
        grad *= s * (1 - s)
        a = s
    assert float(d.result["jacobian"]) == pytest.approx(grad, rel=1e-12)
    assert float(d.result["jacobian"]) <= float(d.result["bound"])


def test_mlp_with_matrices_against_torch():
    torch = pytest.importorskip("torch")
    Ws = [[[1.0, 2.0], [0.0, 1.0]], [[1.0, 1.0]]]
    d = solve(kind="mlp_jacobian", weights=Ws, x=[1, -1], b=0)
    mats = [torch.tensor(W, dtype=torch.float64) for W in Ws]

    def net(a):
        for W in mats:
            a = torch.sigmoid(W @ a)
        return a

    ref = torch.autograd.functional.jacobian(net, torch.tensor([1.0, -1.0], dtype=torch.float64))
    np.testing.assert_allclose(np.array(d.result["jacobian"], dtype=float), ref.numpy(),
                               rtol=1e-10)


@pytest.mark.parametrize("spec, error, where", [
    ({"kind": "rnn_jacobian", "W": [[1, 2, 3], [4, 5, 6]], "T": 2}, ShapeError, "W"),
    ({"kind": "rnn_jacobian", "W": 1}, InputError, "T"),
    ({"kind": "rnn_jacobian", "W": [[1, 0], [0, 1]], "x": [[1, 2, 3]]}, ShapeError, "x"),
    ({"kind": "mlp_jacobian", "weights": [[[1, 2]], [[1, 2]]]}, ShapeError, "weights[1]"),
    ({"kind": "mlp_jacobian", "weight": 1}, InputError, "depth"),
    ({"kind": "linear_collapse", "weights": [[[1, 2]], [[1, 2]]]}, ShapeError, "weights[1]"),
    ({"kind": "conv_collapse", "kernels": [[1, 2]]}, ShapeError, "kernels"),
    ({"kind": "conv_collapse", "kernels": [[1], [1]], "kernel_sizes": [1, 1]}, InputError,
     "t.yaml"),
    ({"kind": "init_variance", "n_in": 0}, ShapeError, "n_in"),
    ({"kind": "init_variance", "n_in": -3, "n_out": 4}, ShapeError, "n_in"),
    ({"kind": "init_variance", "n_in": 4, "n_out": 0}, ShapeError, "n_out"),
    ({"kind": "init_variance", "n_in": 2.5}, InputError, "n_in"),
    ({"kind": "init_variance", "init": "lecun"}, InputError, "init"),
])
def test_bad_analysis_input(spec, error, where):
    with pytest.raises(error) as info:
        solve(**spec)
    assert where in str(info.value) and "\n" not in str(info.value)
