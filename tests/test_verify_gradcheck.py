"""derive.gradcheck on hand-written backward code: NumPy pairs, needle ops, autograd.Functions."""
import numpy as np
import pytest

import derive as dv
from derive.verify import gradcheck
from derive.verify.gradcheck import Tensor


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


# -- Data 188 midterm, question 12(b): EwiseMul.gradient as the exam prints it ------------
NDArray = np.ndarray


class TensorOp:
    """needle's base class, as the course's ops subclass it."""


class EwiseMulOld(TensorOp):
    """Elementwise_multiplication_of_two_ndarrays:_a*_b."""
    def compute(self, a: NDArray, b: NDArray) -> NDArray:
        return a * b

    def gradient(self, out_grad: Tensor, node: Tensor):
        lhs, rhs = node.inputs
        return out_grad * rhs, out_grad * lhs


class EwiseMulNew(TensorOp):
    """Elementwise_multiplication_of_two_ndarrays:_a*_b."""
    def compute(self, a: NDArray, b: NDArray) -> NDArray:
        return a * b

    def gradient(self, out_grad: Tensor, node: Tensor):
        lhs, rhs = node.inputs
        lhs = lhs.realize_cached_data() # np.ndarray  # noqa: E261,E262
        rhs = rhs.realize_cached_data() # np.ndarray  # noqa: E261,E262
        out_grad = out_grad.realize_cached_data() # np.ndarray  # noqa: E261,E262
        return Tensor(out_grad * rhs), Tensor(out_grad * lhs)


def test_exam_ewisemul_that_leaves_the_graph_is_named_in_one_line(ab):
    """The exam's answer is D: first-order training succeeds (the values are right),
    second-order methods fail (the gradient is a constant to the graph)."""
    a, b = ab
    report = gradcheck(EwiseMulNew, inputs={"lhs": a, "rhs": b})
    assert not report and report.to_dict()["ok"] is False
    upstream = np.random.default_rng(0).standard_normal(a.shape)  # gradcheck's default G
    for check, other in zip(report.inputs, (b, a)):
        assert check.failures == 0 and check.checked == a.size  # first order: right
        assert check.analytic == pytest.approx(upstream[check.index] * other[check.index])
        assert check.detached  # ... but not differentiable again
    lhs, rhs = report.inputs
    assert "does not depend on out_grad, rhs through the graph" in lhs.detached
    assert "does not depend on out_grad, lhs through the graph" in rhs.detached
    line = report.headline
    assert "\n" not in line and line == str(report).splitlines()[0]
    assert "the values are right (first-order training works)" in line
    assert "gradients of lhs, rhs leave the graph" in line
    assert "out_grad.realize_cached_data()" in line and "second-order" in line
    fixed = gradcheck(EwiseMulOld, inputs={"lhs": a, "rhs": b})
    assert fixed and not any(c.detached for c in fixed.inputs)


class ReLUMask(TensorOp):
    """A constant mask is fine: the gradient is out_grad (in the graph) times a step
    function whose derivative is 0."""

    def compute(self, a):
        return np.maximum(a, 0)

    def gradient(self, out_grad, node):
        return out_grad * Tensor(node.realize_cached_data() > 0)


class ExpDetached(TensorOp):
    def compute(self, a):
        return np.exp(a)

    def gradient(self, out_grad, node):
        return out_grad * Tensor(node.realize_cached_data())


def test_only_a_dependence_the_graph_lost_is_named(ab):
    a, _ = ab
    assert gradcheck(ReLUMask, inputs=[a]) and gradcheck(Exp, inputs=[a])
    report = gradcheck(ExpDetached, inputs={"x": a})
    (x,) = report.inputs
    assert not report and x.failures == 0
    # d/dx (g e^x) = g e^x is not zero, so x is the lost dependence; out_grad is kept
    assert "does not depend on x through the graph" in x.detached
    assert "node.realize_cached_data()" in report.headline


class RowMax(TensorOp):
    """A scatter-style gradient: written into zeros at each row's argmax."""

    def compute(self, a):
        return a.max(axis=1)

    def gradient(self, out_grad, node):
        a = node.inputs[0]
        grad = np.zeros_like(a)
        grad[np.arange(a.shape[0]), np.argmax(a, axis=1)] = out_grad
        return grad


class RowMaxViaNumpy(RowMax):
    def gradient(self, out_grad, node):
        a = node.inputs[0].numpy()
        grad = np.zeros_like(a)
        grad[np.arange(a.shape[0]), np.argmax(a, axis=1)] = out_grad.numpy()
        return grad


def test_scatter_gradients_stay_in_the_graph_unless_taken_out(ab):
    a, _ = ab
    assert gradcheck(RowMax, inputs=[a])
    report = gradcheck(RowMaxViaNumpy, inputs={"a": a})
    assert report.inputs[0].failures == 0 and not report
    assert "a.numpy(), out_grad.numpy()" in report.headline
    # the routing does not move under a small change of a: only out_grad is lost
    assert "does not depend on out_grad through the graph" in report.inputs[0].detached


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


class TorchMulViaNumPy(torch.autograd.Function):
    """The torch twin of the exam's new EwiseMul: right values, computed in NumPy."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = (t.detach().numpy() for t in ctx.saved_tensors)
        g = grad.detach().numpy()
        return torch.from_numpy(g * b), torch.from_numpy(g * a)


class TorchMul(TorchMulViaNumPy):
    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return grad * b, grad * a


def test_torch_backward_in_numpy_leaves_the_graph_as_torch_says(ab):
    a, b = ab
    report = gradcheck(TorchMulViaNumPy, inputs=[a, b], names=["a", "b"])
    assert not report and all(c.failures == 0 and c.detached for c in report.inputs)
    assert "gradients of a, b leave the graph" in report.headline
    assert gradcheck(TorchMul, inputs=[a, b])
    # torch's own verdicts: first order passes for both, second order only for TorchMul
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    assert torch.autograd.gradcheck(TorchMulViaNumPy.apply, (ta, tb))
    assert torch.autograd.gradgradcheck(TorchMul.apply, (ta, tb))
    with pytest.raises(RuntimeError):
        torch.autograd.gradgradcheck(TorchMulViaNumPy.apply, (ta, tb))
