"""Worked normalisation, convolution and pooling: published answers and independent twins."""
import numpy as np
import pytest
import sympy as sp

from derive.errors import InputError, ShapeError
from derive.problem import solve_spec
from reports.latex_printer import latex


def solve(**spec):
    return solve_spec(spec, "t.yaml")


def steps(d):
    return [s for sec in d.sections for s in sec.steps]


# -- normalisation -----------------------------------------------------------------------------
def test_layernorm_published_answer_is_exact():
    d = solve(kind="layernorm", X=[[8, 2], [0, 4]], eps=0)
    assert d.result == [[1, -1], [-1, 1]]
    assert all(isinstance(v, sp.Integer) for row in d.result for v in row)
    lhs = [latex(s.lhs) for s in steps(d)]
    assert r"\mu_{1}" in lhs and r"\sigma_{2}^{2}" in lhs and r"\hat{x}_{2,2}" in lhs
    mean_row1 = next(s for s in steps(d) if latex(s.lhs) == r"\mu_{1}")
    assert mean_row1.rhs[-1] == 5 and latex(mean_row1.rhs[1]) == r"\frac{8 + 2}{2}"


def test_batchnorm_published_answer():
    d = solve(kind="batchnorm", X=[[2, 3, 4], [1, 2, 2]], eps=0)
    assert d.result == [[1, 1, 1], [-1, -1, -1]]


def test_layernorm_exact_radicals_and_affine_against_torch():
    torch = pytest.importorskip("torch")
    X = [[1, 2, 4], [3, 0, 0]]
    d = solve(kind="layernorm", X=X, eps="1/10", gamma=[1, 2, "1/2"], beta=[0, 1, -1])
    assert any(v.has(sp.sqrt(sp.Integer(2)).func) or not v.is_Rational
               for row in d.result for v in row)
    ln = torch.nn.LayerNorm(3, eps=0.1, dtype=torch.float64)
    with torch.no_grad():
        ln.weight.copy_(torch.tensor([1, 2, 0.5]))
        ln.bias.copy_(torch.tensor([0.0, 1, -1]))
    ref = ln(torch.tensor(X, dtype=torch.float64)).detach().numpy()
    np.testing.assert_allclose(np.array(d.result, dtype=float), ref, rtol=1e-12)


def test_batchnorm_train_and_running_stats_against_torch():
    torch = pytest.importorskip("torch")
    X = [[2.0, 3.0], [1.0, 5.0], [0.5, -1.0]]
    d = solve(kind="batchnorm", X=X, eps=0.001, momentum=0.1, gamma=[2, 1], beta=[0, 3])
    bn = torch.nn.BatchNorm1d(2, eps=0.001, momentum=0.1, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([2.0, 1.0]))
        bn.bias.copy_(torch.tensor([0.0, 3.0]))
    ref = bn(torch.tensor(X, dtype=torch.float64)).detach().numpy()
    np.testing.assert_allclose(np.array(d.result, dtype=float), ref, rtol=1e-10)
    running = {latex(s.lhs): float(s.rhs[-1]) for s in steps(d)
               if latex(s.lhs).startswith("\\hat{")}
    assert running[r"\hat{\mu}_{1}"] == pytest.approx(bn.running_mean[0].item())
    assert running[r"\hat{\sigma}_{2}^{2}"] == pytest.approx(bn.running_var[1].item())


def test_batchnorm_eval_uses_running_stats_and_explains_training_false():
    d = solve(kind="batchnorm", mode="eval", X=[[2, 3], [1, 2]], running_mean=[1, 2],
              running_var=[4, 1], eps=0)
    assert d.result == [[sp.Rational(1, 2), 1], [0, 0]]
    d = solve(kind="batchnorm", mode="eval", X=[[2, 3], [1, 2]], eps=0)
    assert d.result == [[2, 3], [1, 2]]  # initial statistics: no normalisation at all
    section = d.sections[-1]
    assert "training=False" in section.title and "never updates" in section.text


def test_constant_row_with_zero_eps_is_one_clear_line():
    with pytest.raises(InputError) as info:
        solve(kind="layernorm", X=[[1, 2], [3, 3]], eps=0)
    msg = str(info.value)
    assert "division by zero: the row is constant" in msg and "X row 2" in msg
    assert "\n" not in msg
    with pytest.raises(InputError, match="division by zero: the column is constant"):
        solve(kind="batchnorm", X=[[1, 2], [1, 3]])
    # a positive eps makes the same input fine
    assert solve(kind="layernorm", X=[[3, 3]], eps="1/4").result == [[0, 0]]


@pytest.mark.parametrize("spec, error, where", [
    ({"kind": "layernorm", "X": [[1, 2], [3]]}, ShapeError, "t.yaml: X"),
    ({"kind": "layernorm", "X": [[1, 2]], "gamma": [1, 2, 3]}, ShapeError, "gamma"),
    ({"kind": "layernorm", "X": [[1, 2]], "eps": -1}, InputError, "eps"),
    ({"kind": "layernorm", "X": [[1, "x"]]}, InputError, "X[0][1]"),
    ({"kind": "layernorm", "X": [[1, 2]], "epsilon": 0}, InputError, "epsilon"),
    ({"kind": "batchnorm", "X": [[1, 2]], "mode": "test"}, InputError, "mode"),
    ({"kind": "layernorm", "X": []}, ShapeError, "X"),
])
def test_bad_norm_input(spec, error, where):
    with pytest.raises(error) as info:
        solve_spec(spec, "t.yaml")
    assert where in str(info.value) and "\n" not in str(info.value)


# -- convolution ----------------------------------------------------------------------------------
def correlate(x, k, stride=1):
    """Independent twin: valid cross-correlation of an already padded 2-D array."""
    kh, kw = k.shape
    rows = (x.shape[0] - kh) // stride + 1
    cols = (x.shape[1] - kw) // stride + 1
    return np.array([[np.sum(x[i * stride:i * stride + kh, j * stride:j * stride + kw] * k)
                      for j in range(cols)] for i in range(rows)])


def test_conv_published_problem_against_numpy():
    image = [[2, 4, 5], [2, 1, 3], [3, 1, 5]]
    kernel = [[1, 0], [2, -1]]
    d = solve(kind="conv2d", image=image, kernel=kernel, padding=1)
    expected = correlate(np.pad(np.array(image), 1), np.array(kernel))
    assert expected.shape == (4, 4)
    assert d.result == expected.tolist()
    first = next(s for s in steps(d) if latex(s.lhs) == "{Y}_{1,1}")
    assert [latex(r) for r in first.rhs] == [
        r"0 \cdot 1 + 0 \cdot 0 + 0 \cdot 2 + 2 \cdot \left(-1\right)", "-2"]


def test_conv_channels_stride_bias_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    image = rng.integers(-3, 4, size=(2, 5, 5))
    kernel = rng.integers(-2, 3, size=(3, 2, 3, 3))
    bias = [1, 0, -2]
    for mode in ("zeros", "circular"):
        d = solve(kind="conv2d", image=image.tolist(), kernel=kernel.tolist(), bias=bias,
                  padding=1, stride=2, padding_mode=mode)
        conv = torch.nn.Conv2d(2, 3, 3, stride=2, padding=1, padding_mode=mode,
                               dtype=torch.float64)
        with torch.no_grad():
            conv.weight.copy_(torch.tensor(kernel, dtype=torch.float64))
            conv.bias.copy_(torch.tensor(bias, dtype=torch.float64))
        ref = conv(torch.tensor(image[None], dtype=torch.float64))[0].detach().numpy()
        np.testing.assert_array_equal(np.array(d.result, dtype=float), ref)


def test_true_convolution_flips_the_kernel():
    image = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    kernel = [[1, 2], [3, 4]]
    d = solve(kind="conv2d", image=image, kernel=kernel, operation="convolution")
    flipped = np.array(kernel)[::-1, ::-1]
    assert d.result == correlate(np.array(image), flipped).tolist()
    assert any(s.title == "Flipped kernel" for s in d.sections)


def test_maxpool_published_answer_and_routing_note():
    image = [[2, 4, 5, 0], [2, 1, 3, 1], [3, 1, 5, 0], [0, 1, 0, 1]]
    d = solve(kind="maxpool", image=image, size=2, stride=2)
    assert d.result == [[4, 5], [3, 5]]
    first = next(s for s in steps(d) if latex(s.lhs) == "{Y}_{1,1}")
    assert latex(first.rhs[0]) == r"\max\left(2, 4, 2, 1\right)" and "row 1, column 2" in first.note


def test_avgpool_is_exact_and_matches_torch():
    torch = pytest.importorskip("torch")
    image = [[2, 4, 5, 0], [2, 1, 3, 1], [3, 1, 5, 0], [0, 1, 0, 1]]
    d = solve(kind="avgpool", image=image, size=2, stride=1, padding=1)
    ref = torch.nn.AvgPool2d(2, stride=1, padding=1)(torch.tensor([[image]], dtype=torch.float64))
    np.testing.assert_allclose(np.array(d.result, dtype=float), ref[0, 0].numpy())
    assert d.result[0][0] == sp.Rational(1, 2)


@pytest.mark.parametrize("spec, error, where", [
    ({"kind": "conv2d", "image": [[1, 2], [3, 4]], "kernel": [[[1]], [[1]]]}, ShapeError,
     "kernel"),
    ({"kind": "conv2d", "image": [[1, 2], [3, 4]], "kernel": [[1, 1, 1]]}, ShapeError,
     "w axis"),
    ({"kind": "conv2d", "image": [[1, 2], [3, 4]], "kernel": [[1]], "stride": 0}, ShapeError,
     "stride"),
    ({"kind": "conv2d", "image": [[1, 2], [3, 4]], "kernel": [[1]], "padding": -1}, ShapeError,
     "padding"),
    ({"kind": "conv2d", "image": [[1, 2], [3, 4]], "kernel": [[1]], "bias": [1, 2]}, ShapeError,
     "bias"),
    ({"kind": "maxpool", "image": [[1, 2], [3, 4]]}, InputError, "size"),
    ({"kind": "maxpool", "image": [[1, 2], [3, 4]], "size": 3}, ShapeError, "h axis"),
])
def test_bad_conv_input(spec, error, where):
    with pytest.raises(error) as info:
        solve_spec(spec, "t.yaml")
    assert where in str(info.value) and "\n" not in str(info.value)
