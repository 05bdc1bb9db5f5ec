"""Claims: each verdict and its numbers against the exams' published answers or an
independent NumPy / SymPy / torch computation written here."""
import itertools

import numpy as np
import pytest
import sympy as sp

from derive.errors import DeriveError
from derive.problem import solve_spec


def decide(**spec):
    return solve_spec({"kind": "claim", **spec}, "t.yaml")


# -- LayerNorm ---------------------------------------------------------------------------------
def test_layernorm_is_refuted_with_a_counterexample_torch_confirms():
    torch = pytest.importorskip("torch")
    d = decide(claim="layernorm_linear")
    assert d.result["verdict"] == "refuted"
    x, y = (torch.tensor([float(v) for v in d.result["answer"][k]], dtype=torch.float64)
            for k in ("x", "y"))
    ln = torch.nn.functional.layer_norm

    def f(v):
        return ln(v[None], (3,), eps=0.0)[0]

    gap = f(x + y) - (f(x) + f(y))
    assert gap.abs().max() > 0.1
    np.testing.assert_allclose([float(g) for g in d.result["answer"]["difference"]],
                               gap.numpy(), atol=1e-12)
    assert "refuted" in d.result["verdict"] and "x = " in d.result["evidence"]


# -- circular padding + global average pooling -----------------------------------------------
def _circular_gap(x, k):
    torch = pytest.importorskip("torch")
    t = torch.tensor(x, dtype=torch.float64)[None, None]
    t = torch.nn.functional.pad(t, (1, 1, 1, 1), mode="circular")
    y = torch.nn.functional.conv2d(t, torch.tensor(k, dtype=torch.float64)[None, None])
    return float(y.mean())


def test_shift_invariance_is_proved_on_a_symbolic_image():
    d = decide(claim="shift_invariance", size=[3, 4], shift=[2, 1])
    assert d.result["verdict"] == "proved"
    steps = d.sections[-1].steps
    assert steps[-1].rhs == [0]  # g' - g
    (equivariance,) = [s for s in steps if "commutes" in s.note]
    assert equivariance.rhs[0] == sp.zeros(3, 4)  # y' - shift(y)


def test_shift_invariance_on_a_random_image_is_shown_and_matches_torch():
    k = [[0, 1, 0], [1, -4, 2], [0, 1, 3]]
    d = decide(claim="shift_invariance", size=[4, 5], kernel=k, image="random", seed=3,
               shift=[1, 3])
    assert d.result["verdict"] == "shown"
    image = np.random.default_rng(3).integers(-9, 10, (4, 5))
    g = _circular_gap(image.astype(float), k)
    assert float(d.result["answer"]["g"]) == pytest.approx(g, abs=1e-12)
    assert _circular_gap(np.roll(image, (1, 3), (0, 1)).astype(float), k) == \
        pytest.approx(g, abs=1e-12)
    assert float(d.result["answer"]["g_shifted"]) == pytest.approx(g, abs=1e-12)


def test_shift_invariance_out_of_time_is_undecided():
    d = decide(claim="shift_invariance", size=[9, 9], seconds=0.001)
    assert d.result["verdict"] == "undecided"
    assert "out of time" in d.result["evidence"]


# -- constant initialisation -------------------------------------------------------------------
def test_constant_init_gives_every_unit_the_gradient_torch_gives():
    torch = pytest.importorskip("torch")
    d = decide(claim="constant_init_symmetry", x=[1, 2], y=1, hidden=3, init="1/2")
    assert d.result["verdict"] == "proved"
    rows = np.array([[float(v) for v in r] for r in d.result["answer"]["gradients"]])
    W = torch.full((3, 2), 0.5, dtype=torch.float64, requires_grad=True)
    b = torch.full((3,), 0.5, dtype=torch.float64, requires_grad=True)
    v = torch.full((3,), 0.5, dtype=torch.float64, requires_grad=True)
    c = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    loss = ((v @ torch.tanh(W @ x + b) + c - 1) ** 2) / 2
    loss.backward()
    expected = torch.cat([W.grad, b.grad[:, None], v.grad[:, None]], 1).numpy()
    np.testing.assert_allclose(rows, expected, atol=1e-12)
    assert np.ptp(rows, axis=0).max() == 0


def test_zero_init_gives_zero_first_layer_gradients():
    d = decide(claim="constant_init_symmetry", x=[3, -1], y=2, hidden=2, init=0,
               activation="sigmoid")
    rows = d.result["answer"]["gradients"]
    assert rows[0] == rows[1]
    # every v is 0, so nothing reaches W and b; dL/dv_u = (c - y) sigmoid(0) = -2 * 1/2
    assert rows[0] == [0, 0, 0, -1]


# -- piecewise-constant maps -------------------------------------------------------------------
def test_zero_one_loss_gradient_is_zero_off_the_boundary():
    d = decide(claim="zero_one_loss_gradient", w=[1, -2], x=[3, 1], label=-1)
    assert d.result["verdict"] == "proved"
    assert d.result["answer"] == {"loss": 1, "gradient": [0, 0]}  # 1*3 - 2*1 = 1 > 0, y = -1
    # finite differences of the 0/1 loss vanish too

    def loss(w):
        return float(-1 * np.dot(w, [3, 1]) < 0)

    assert loss(np.array([1.0 + 1e-6, -2.0])) - loss(np.array([1.0, -2.0])) == 0


def test_argmax_attention_reproduces_the_exam_output_and_blocks_query_gradients():
    d = decide(claim="argmax_attention_gradient")  # the exam's keys, values and query
    answer = d.result["answer"]
    keys = np.array([[1, 2, 0], [0, 3, 4], [5, 0, 0], [0, 0, 1]])
    values = np.array([[2, 0, 1], [1, 4, 3], [0, -1, 4], [1, 0, -1]])
    q = np.array([1, 1, 2])
    assert answer["scores"] == (keys @ q).tolist() == [3, 11, 5, 2]
    assert answer["output"] == values[np.argmax(keys @ q)].tolist() == [1, 4, 3]
    assert d.result["verdict"] == "proved"
    torch = pytest.importorskip("torch")
    qt = torch.tensor(q, dtype=torch.float64, requires_grad=True)
    kt = torch.tensor(keys, dtype=torch.float64, requires_grad=True)
    a = torch.nn.functional.one_hot(torch.argmax(kt @ qt), 4).to(torch.float64)
    vt = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    (a @ vt).sum().backward()
    assert qt.grad is None and kt.grad is None  # argmax cuts the graph before q and K
    assert vt.grad.tolist() == [[0, 0, 0], [1, 1, 1], [0, 0, 0], [0, 0, 0]]


def test_argmax_attention_tie_is_undecided():
    d = decide(claim="argmax_attention_gradient", keys=[[1, 0], [0, 1]], values=[[1], [2]],
               query=[1, 1])
    assert d.result["verdict"] == "undecided"


# -- dropout -----------------------------------------------------------------------------------
def test_dropout_is_ridge_symbolically_and_by_monte_carlo():
    d = decide(claim="dropout_ridge", size=3, p="1/2", w=[1, -2, 3], x=[2, 1, 1], y=1)
    assert d.result["verdict"] == "proved"
    w, x, y, p = np.array([1.0, -2, 3]), np.array([2.0, 1, 1]), 1.0, 0.5
    exact = (y - w @ x) ** 2 + (1 - p) / p * np.sum(w ** 2 * x ** 2)
    assert float(d.result["answer"]["expected_loss"]) == pytest.approx(exact)
    rng = np.random.default_rng(0)
    masks = rng.random((400_000, 3)) < p
    mc = np.mean((y - (masks * x / p) @ w) ** 2)
    assert mc == pytest.approx(exact, rel=0.01)
    # and the exact expectation by enumerating masks, independently
    enum = sum(p ** sum(m) * (1 - p) ** (3 - sum(m)) * (y - (np.array(m) * x / p) @ w) ** 2
               for m in itertools.product((0, 1), repeat=3))
    assert enum == pytest.approx(exact)


def test_dropout_symbolic_p_penalty():
    d = decide(claim="dropout_ridge", size=2)
    p, w1, w2, x1, x2 = sp.symbols("p w_1 w_2 x_1 x_2", real=True)
    penalty = d.result["answer"]["penalty"]
    got = penalty.subs({s: sp.Symbol(s.name, real=True) for s in penalty.free_symbols})
    assert sp.simplify(got - (1 - p) / p * (w1 ** 2 * x1 ** 2 + w2 ** 2 * x2 ** 2)) == 0


# -- stationary points -------------------------------------------------------------------------
def test_sigmoid_derivative_peaks_at_zero_with_a_quarter():
    d = decide(claim="stationary_point", symbols=["z"],
               expression="sigmoid(z)*(1 - sigmoid(z))", at=[5, -5])
    a = d.result["answer"]
    assert d.result["verdict"] == "proved"
    assert a["points"] == [0] and a["values"] == [sp.Rational(1, 4)] and a["kinds"] == ["maximum"]
    s = 1 / (1 + np.exp(-5.0))
    # the exam: the gradient vanishes for inputs below -5 or above +5
    assert [float(sp.N(v)) for v in a["at"]] == pytest.approx([s * (1 - s)] * 2)
    assert s * (1 - s) < 0.01
    zs = np.linspace(-6, 6, 12001)
    sig = 1 / (1 + np.exp(-zs))
    assert zs[np.argmax(sig * (1 - sig))] == pytest.approx(0, abs=1e-9)


def test_stationary_points_of_a_cubic():
    d = decide(claim="stationary_point", symbols=["t"], expression="t**3 - 3*t")
    assert d.result["answer"]["points"] == [-1, 1]
    assert d.result["answer"]["kinds"] == ["maximum", "minimum"]
    assert d.result["answer"]["values"] == [2, -2]


def test_stationary_point_sympy_cannot_solve_is_undecided():
    d = decide(claim="stationary_point", symbols=["z"], expression="exp(z) + z**3 - sin(z)")
    assert d.result["verdict"] == "undecided"
    assert "solving" in d.result["evidence"]


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, where", [
    ({"claim": "no_such_claim"}, "claim"),
    ({"claim": "stationary_point", "symbols": ["z"], "expression": "q*z"}, "expression"),
    ({"claim": "stationary_point", "symbols": ["z"], "expression": "__import__('os')"},
     "expression"),
    ({"claim": "stationary_point", "expression": "z"}, "symbols"),
    ({"claim": "stationary_point", "symbols": ["z"], "expression": "z", "seconds": 0},
     "seconds"),
    ({"claim": "layernorm_linear", "size": 9}, "range"),
    ({"claim": "shift_invariance", "kernel": [[1, 1], [1, 1]]}, "kernel"),
    ({"claim": "shift_invariance", "image": "noise"}, "image"),
    ({"claim": "zero_one_loss_gradient", "label": 0}, "label"),
    ({"claim": "argmax_attention_gradient", "query": [1, 2]}, "keys"),
    ({"claim": "dropout_ridge", "p": "3/2"}, "p"),
    ({"claim": "dropout_ridge", "size": 2, "w": [1, 2, 3], "x": [1, 1], "y": 0}, "w"),
    ({"claim": "constant_init_symmetry", "activation": "gelu"}, "activation"),
    ({"claim": "layernorm_linear", "colour": "red"}, "colour"),
])
def test_bad_claim_input_is_one_line_naming_the_key(spec, where):
    with pytest.raises(DeriveError) as info:
        decide(**spec)
    text = str(info.value)
    assert where in text and "t.yaml" in text and "\n" not in text


# -- conv collapse with channels and padding (also as the claim conv_collapse) ----------------
def test_conv_collapse_with_channels_biases_and_stride_against_torch():
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    rng = np.random.default_rng(0)
    k1, k2 = rng.integers(-2, 3, (3, 2, 3, 3)), rng.integers(-2, 3, (2, 3, 2, 2))
    b1, b2 = [1, 0, -1], [2, 3]
    d = decide(claim="conv_collapse", channels=[2, 3, 2], kernels=[k1.tolist(), k2.tolist()],
               biases=[b1, b2], strides=[1, 2])
    assert d.result["verdict"] == "proved"
    got = d.result["answer"]
    assert got["stride"] == [2, 2] and np.array(got["kernel"]).shape == (2, 2, 4, 4)

    def t(v):
        return torch.tensor(np.array(v, dtype=float))

    x = torch.randn(1, 2, 13, 13, dtype=torch.float64)
    stack = f.conv2d(f.conv2d(x, t(k1), t(b1)), t(k2), t(b2), stride=2)
    single = f.conv2d(x, t(got["kernel"]), t(got["bias"]), stride=2)
    np.testing.assert_allclose(stack.numpy(), single.numpy(), atol=1e-11)
    # the combined kernel is the sum over middle channels of full 2-D convolutions
    full = [[sum(_full2d(k1[m, c], k2[o, m]) for m in range(3)) for c in range(2)]
            for o in range(2)]
    assert np.array(got["kernel"], dtype=int).tolist() == np.array(full).tolist()


def _full2d(a, b):
    out = np.zeros((a.shape[0] + b.shape[0] - 1, a.shape[1] + b.shape[1] - 1), dtype=int)
    for i, j in np.ndindex(*b.shape):
        out[i:i + a.shape[0], j:j + a.shape[1]] += b[i, j] * a
    return out


def test_conv_collapse_with_padding_differs_only_at_the_border_as_torch_does():
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    k1, k2 = [1, 2, -1], [3, 0, 1]
    d = decide(claim="conv_collapse", kernels=[k1, k2], biases=[1, 0], paddings=[1, 1])
    got = d.result["answer"]
    assert got["padding"] == 2 and got["kernel"] == np.convolve(k1, k2).tolist()
    n_out = 6  # the symbolic input has the receptive field + 1 = 6 entries, padded "same"
    assert got["differs_at"] == [0, n_out - 1]
    x = torch.randn(1, 1, 11, dtype=torch.float64)

    def t(v):
        return torch.tensor(np.array(v, dtype=float))

    stack = f.conv1d(f.conv1d(x, t([[k1]]), t([1]), padding=1), t([[k2]]), padding=1)
    single = f.conv1d(x, t([[got["kernel"]]]), t([float(got["bias"])]), padding=2)
    gap = (stack - single)[0, 0].abs().numpy()
    assert gap[0] > 1e-9 and gap[-1] > 1e-9 and gap[1:-1].max() < 1e-12


def test_conv_collapse_padding_only_in_the_first_layer_agrees_everywhere():
    d = decide(claim="conv_collapse", kernels=[[1, 2, -1], [3, 0, 1]], biases=[1, 2],
               paddings=[2, 0])
    assert d.result["answer"]["differs_at"] == []


def test_conv_collapse_symbolic_channels():
    d = decide(claim="conv_collapse", kernel_sizes=[1, 1], channels=[2, 2, 1])
    a = [[sp.Symbol(f"a^({o}{c})_0") for c in (1, 2)] for o in (1, 2)]
    b = [sp.Symbol(f"b^(1{m})_0") for m in (1, 2)]
    # one output channel, two input channels: K*_(1,c) = sum_m b_(1,m) a_(m,c)
    assert d.result["answer"]["kernel"] == [[[b[0] * a[0][c] + b[1] * a[1][c]]
                                             for c in range(2)]]


@pytest.mark.parametrize("spec, where", [
    ({"kernels": [[1, 2], [1]], "channels": [1, 1]}, "channels"),
    ({"kernels": [[1, 2], [1]], "channels": [1, 2, 1]}, "kernels[0]"),
    ({"kernels": [[[[1, 2]]], [[[1]], [[1]]]], "channels": [1, 1, 1]}, "kernels[1]"),
    ({"kernels": [[1, 2], [1]], "paddings": [1]}, "paddings"),
    ({"kernels": [[1, 2], [1]], "paddings": [-1, 0]}, "paddings"),
    ({"kernel_sizes": [1, 1], "channels": [2, 2, 1], "biases": [[1], [0]]}, "biases[0]"),
])
def test_bad_conv_collapse_channels_and_padding(spec, where):
    with pytest.raises(DeriveError) as info:
        solve_spec({"kind": "conv_collapse", **spec}, "t.yaml")
    assert where in str(info.value) and "\n" not in str(info.value)


def test_stationary_point_out_of_time_is_undecided_and_says_what_it_tried():
    d = decide(claim="stationary_point", symbols=["z"], expression="sigmoid(z)*(1 - sigmoid(z))",
               seconds=0.0001)
    assert d.result["verdict"] == "undecided"
    assert "out of time" in d.result["evidence"] and "while" in d.result["evidence"]


def test_stationary_point_with_a_parameter_and_a_constant():
    d = decide(claim="stationary_point", symbols=["z", "a", "b"], expression="a*z**2 + b*z",
               variable="z")
    a, b = sp.symbols("a b", real=True)
    assert d.result["answer"]["points"] == [-b / (2 * a)]
    assert d.result["answer"]["kinds"] == ["not decided by f''"]  # the sign of a is unknown
    d = decide(claim="stationary_point", symbols=["z", "a"], expression="a**2", variable="z")
    assert d.result["verdict"] == "undecided"


def test_the_linear_collapse_claim_gives_the_published_w_star_and_b_star():
    """Review 000, Figures 1-2: two Linear layers are one, W* = W_2 W_1, b* = W_2 b_1 + b_2
    (the published answer), proved for any sizes."""
    d = solve_spec({"kind": "claim", "claim": "linear_collapse", "layers": 2,
                    "sizes": [3, 4, 2]}, "review 000")
    assert d.result["verdict"] == "proved"
    W1, W2 = sp.MatrixSymbol("W_1", 4, 3), sp.MatrixSymbol("W_2", 2, 4)
    b1, b2 = sp.MatrixSymbol("b_1", 4, 1), sp.MatrixSymbol("b_2", 2, 1)
    assert d.result["answer"]["W"] == W2 * W1
    assert sp.simplify(d.result["answer"]["b"] - (W2 * b1 + b2)) == sp.ZeroMatrix(2, 1)
