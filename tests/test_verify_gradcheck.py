"""derive.gradcheck on hand-written backward code: NumPy pairs, needle ops, autograd.Functions."""
import numpy as np
import pytest

import derive as dv
from derive.verify import gradcheck


class EWiseMulWrong:
    """needle's EWiseMul with the classic slip: each input gets its own value back."""

    def compute(self, a, b):
        return a * b

    def gradient(self, out_grad, node):
        lhs, rhs = node.inputs
        return out_grad * lhs, out_grad * rhs


class EWiseMul(EWiseMulWrong):
    def gradient(self, out_grad, node):
        lhs, rhs = node.inputs
        return out_grad * rhs, out_grad * lhs


class Exp:
    """needle-style op whose gradient uses the output node itself."""

    def compute(self, a):
        return np.exp(a)

    def gradient(self, out_grad, node):
        return out_grad * node


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mu, var = x.mean(axis=0), x.var(axis=0)
    inv_std = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * inv_std
    return gamma * xhat + beta, (xhat, gamma, inv_std)


def batchnorm_backward(dout, cache):
    xhat, gamma, inv_std = cache
    g = dout * gamma
    dx = inv_std * (g - g.mean(axis=0) - xhat * (g * xhat).mean(axis=0))
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def batchnorm_backward_missing_mean(dout, cache):
    xhat, gamma, inv_std = cache
    g = dout * gamma
    dx = inv_std * (g - xhat * (g * xhat).mean(axis=0))  # the "- mean(g)" term is missing
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


@pytest.fixture
def ab():
    rng = np.random.default_rng(3)
    return rng.standard_normal((3, 4)), rng.standard_normal((3, 4))


def test_wrong_needle_ewisemul_is_caught_with_the_element_named(ab):
    a, b = ab
    report = gradcheck(EWiseMulWrong(), inputs=[a, b], names=["lhs", "rhs"])
    assert not report and [c.name for c in report.failures] == ["lhs", "rhs"]
    lhs = report.inputs[0]
    i = lhs.index
    upstream = np.random.default_rng(0).standard_normal(a.shape)  # gradcheck's default G
    assert lhs.analytic == pytest.approx(upstream[i] * a[i])  # what the wrong code returns
    assert lhs.numeric == pytest.approx(upstream[i] * b[i], rel=1e-6)  # the truth
    assert lhs.abs_err == pytest.approx(abs(lhs.analytic - lhs.numeric))
    text = str(report)
    assert "lhs" in text and f"index {list(i)}" in text and "rel err" in text


def test_right_needle_ops_pass(ab):
    a, b = ab
    assert gradcheck(EWiseMul, inputs=[a, b])  # a class is instantiated
    assert gradcheck(Exp(), inputs=[a])


def test_batchnorm_backward_missing_the_mean_term_is_caught():
    rng = np.random.default_rng(0)
    inputs = {"x": rng.standard_normal((6, 3)), "gamma": rng.standard_normal(3),
              "beta": rng.standard_normal(3)}
    bad = gradcheck(batchnorm_forward, batchnorm_backward_missing_mean, inputs)
    assert [c.name for c in bad.failures] == ["x"]
    x = bad.inputs[0]
    assert len(x.index) == 2 and x.failures > 0 and x.rel_err > 1e-3
    assert str(bad).count("wrong") == 2 and "x, shape (6, 3)" in str(bad)
    good = gradcheck(batchnorm_forward, batchnorm_backward, inputs)
    assert good and all(c.abs_err < 1e-6 for c in good.inputs)


def test_numbers_match_an_independent_fd_along_one_element():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3))
    fwd = lambda x: np.sin(x) * x  # noqa: E731
    wrong = lambda g, x: (g * np.cos(x),)  # noqa: E731  (product rule: x*cos(x) + sin(x))
    report = gradcheck(fwd, wrong, [x], upstream=np.ones_like(x))
    c = report.inputs[0]
    i = c.index
    assert c.numeric == pytest.approx(np.sin(x[i]) + x[i] * np.cos(x[i]), rel=1e-7)
    assert c.analytic == pytest.approx(np.cos(x[i]))


def test_float32_code_gets_float32_tolerances():
    rng = np.random.default_rng(1)
    inputs = [v.astype(np.float32) for v in (rng.standard_normal((5, 3)),
                                             rng.standard_normal(3), rng.standard_normal(3))]
    assert gradcheck(batchnorm_forward, batchnorm_backward, inputs)
    assert not gradcheck(batchnorm_forward, batchnorm_backward_missing_mean, inputs)
    assert "rtol 0.01" in str(gradcheck(batchnorm_forward, batchnorm_backward, inputs)
                              .inputs[0].tolerance)


def test_wrong_shape_and_none_and_int_inputs():
    x = np.ones((2, 3))
    labels = np.array([0, 1])
    report = gradcheck(lambda x, y: x.sum(axis=1) + y, lambda g, x, y: (g, None), [x, labels])
    assert not report and "wrong shape" in str(report.inputs[0])
    assert report.inputs[1].message.startswith("skipped")


def test_large_inputs_are_sampled():
    x = np.random.default_rng(2).standard_normal((30, 40))
    report = gradcheck(np.tanh, lambda g, x: (g * (1 - np.tanh(x) ** 2),), [x],
                       max_elements=50)
    assert report and report.inputs[0].checked == 50 and report.inputs[0].size == 1200


def test_top_level_import():
    assert dv.gradcheck is gradcheck


torch = pytest.importorskip("torch")


class TorchMulWrong(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return grad * a, grad * b


class TorchSigmoid(torch.autograd.Function):
    @staticmethod
    def forward(x):
        return torch.sigmoid(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return grad * s * (1 - s)


def test_torch_style_functions(ab):
    a, b = ab
    report = gradcheck(TorchMulWrong, inputs=[torch.tensor(a), torch.tensor(b)])
    assert len(report.failures) == 2 and "autograd.Function" in str(report)
    assert gradcheck(TorchSigmoid, inputs=[a])
    # and the same verdict as torch's own gradcheck
    assert torch.autograd.gradcheck(TorchSigmoid.apply, (torch.tensor(a, requires_grad=True),))
