"""Regularisation conventions: the L2 / elastic-net penalty as λ Σ W² or (λ/2) Σ W² on the
penalty layers (derived gradient, kernel and PyTorch autograd agree), and the
``regularised_loss`` worked kind (data loss + penalty and its exact gradient in W)."""
import numpy as np
import pytest
import sympy as sp

import derive as dt
from derive.errors import InputError
from derive.problem import solve_spec


def solve(**spec):
    return solve_spec(spec, "t.yaml")


# -- the penalty layers ----------------------------------------------------------------------
W0 = np.array([[0.5, -1.25, 2.0], [-0.75, 1.5, 0.25]])


def _torch_grad(fn):
    torch = pytest.importorskip("torch")
    w = torch.tensor(W0, requires_grad=True)
    out = fn(w)
    out.backward()
    return out.item(), w.grad.numpy()


@pytest.mark.parametrize("layer, reference", [
    (lambda: dt.L2(0.3, shape=(2, 3)), lambda w: 0.15 * (w ** 2).sum()),
    (lambda: dt.L2(0.3, shape=(2, 3), scale="lambda"), lambda w: 0.3 * (w ** 2).sum()),
    (lambda: dt.ElasticNet(0.2, 0.4, shape=(2, 3)),
     lambda w: 0.2 * w.abs().sum() + 0.2 * (w ** 2).sum()),
    (lambda: dt.ElasticNet(0.2, 0.4, shape=(2, 3), scale="lambda"),
     lambda w: 0.2 * w.abs().sum() + 0.4 * (w ** 2).sum()),
], ids=["l2-half", "l2-lambda", "elastic-half", "elastic-lambda"])
def test_penalty_layer_scale_against_torch_and_kernel(layer, reference):
    want_out, want_grad = _torch_grad(reference)
    out, grads = dt.evaluate(layer(), {"w": W0})
    assert float(out) == pytest.approx(want_out, abs=1e-12)
    np.testing.assert_allclose(grads["w"], want_grad, atol=1e-12)
    from kernels import vjp
    k_out, k_grads = vjp.run(layer(), {"w": W0})
    assert float(k_out) == pytest.approx(want_out, abs=1e-10)
    np.testing.assert_allclose(k_grads["w"], want_grad, atol=1e-10)


def test_penalty_layer_states_its_convention():
    lam = sp.Rational(1, 10)
    d = dt.L2(lam, scale="lambda").derive()
    assert any("λ Σ w²" in n and "2λ w" in n for n in d.notes)
    assert str(d.gradients["w"].expression) == "(1/5)*w"  # 2 λ w at λ = 1/10
    d = dt.L2(lam).derive()
    assert any("(λ/2) Σ w²" in n and "gradient is λ w" in n for n in d.notes)
    assert str(d.gradients["w"].expression) == "(1/10)*w"  # λ w
    assert not any("L2 convention" in n for n in dt.L1(lam).derive().notes)


def test_vnotation_penalty_forms():
    spec = {"kind": "tensor_graph", "tensors": {"W": [2, 3]},
            "nodes": {"R": "l2_lambda(W, 0.3)", "Q": "l2(W, 0.3)",
                      "E": "elastic_net_lambda(W, 0.1, 0.3)", "T": "R + Q + E"},
            "output": "T", "wrt": ["W"], "values": {"W": W0.tolist()}}
    d = solve(**spec)
    _, want = _torch_grad(lambda w: 0.3 * (w ** 2).sum() + 0.15 * (w ** 2).sum()
                          + 0.1 * w.abs().sum() + 0.3 * (w ** 2).sum())
    np.testing.assert_allclose(np.array(d.gradients["W"].value, dtype=float), want, atol=1e-12)


@pytest.mark.parametrize("make, key", [
    (lambda: dt.L2(-0.1), "'lam'"),
    (lambda: dt.L2(0.1, scale="half"), "'scale'"),
    (lambda: dt.ElasticNet(0.1, -1), "'l2'"),
    (lambda: dt.ElasticNet(-0.1, 1), "'l1'"),
    (lambda: dt.ElasticNet(0.1, 1, scale="lambda/3"), "'scale'"),
    (lambda: dt.L1(-2), "'lam'"),
])
def test_bad_penalty_options(make, key):
    with pytest.raises(InputError) as info:
        make()
    assert key in str(info.value) and "\n" not in str(info.value)


# -- the regularised_loss worked kind --------------------------------------------------------
W1 = [[1, -2, 0], [2, 1, -1], [0, 1, 3]]
X1 = [[1, 2, 1], [2, 0, -1]]
Y1 = [0, 2]


def _torch_full_loss(W, X, labels, data, penalty):
    """Data loss of s = W x (mean over examples) plus the penalty, by torch autograd."""
    torch = pytest.importorskip("torch")
    w = torch.tensor(np.array(W, dtype=float), requires_grad=True)
    x = torch.tensor(np.array(X, dtype=float))
    s = x @ w.T
    y = torch.tensor(labels)
    if data == "svm":
        margins = torch.relu(s - s.gather(1, y[:, None]) + 1)
        margins = margins * (1 - torch.nn.functional.one_hot(y, s.shape[1]))
        loss = margins.sum(1).mean()
    else:
        loss = torch.nn.functional.cross_entropy(s, y)
    total = loss + penalty(w)
    total.backward()
    return loss.item(), total.item(), w.grad.numpy()


def _floats(nested):
    return np.array(nested, dtype=float)


@pytest.mark.parametrize("scale, factor", [("lambda", 1.0), ("lambda/2", 0.5)])
def test_svm_with_l2_both_conventions_against_torch(scale, factor):
    lam = sp.Rational(1, 10)
    d = solve(kind="regularised_loss", W=W1, x=X1, labels=Y1, loss="svm", penalty="l2",
              **{"lambda": "1/10", "scale": scale})
    data, total, grad = _torch_full_loss(W1, X1, Y1, "svm",
                                         lambda w: factor * 0.1 * (w ** 2).sum())
    r = d.result
    assert r["data_loss"] == sp.Rational(31, 2) and float(r["data_loss"]) == pytest.approx(data)
    assert float(r["loss"]) == pytest.approx(total, abs=1e-12)
    np.testing.assert_allclose(_floats(r["grad"]), grad, atol=1e-12)
    # the penalty's gradient is exactly 2 lambda W (slides) or lambda W (weight decay)
    exact = sp.nsimplify(factor)
    assert r["penalty_grad"] == (2 * exact * lam * sp.Matrix(W1)).tolist()
    assert r["penalty"] == exact * lam * 21 and all(
        v.is_Rational for row in r["grad"] for v in row)
    stated = " ".join(d.notes)
    assert f"scale = {scale}" in stated
    assert ("2 lambda W" if scale == "lambda" else "gradient is lambda W") in stated


def test_softmax_with_elastic_net_against_torch():
    W, X, Y = [[0.5, -1], [1, 0.25]], [[1, 2], [-1, 0.5]], [1, 0]
    for scale, f in (("lambda", 1.0), ("lambda/2", 0.5)):
        d = solve(kind="regularised_loss", W=W, x=X, labels=Y, loss="softmax",
                  penalty="elastic_net", beta=0.5, scale=scale, **{"lambda": 0.01})
        data, total, grad = _torch_full_loss(
            W, X, Y, "softmax",
            lambda w: 0.01 * (0.5 * f * (w ** 2).sum() + w.abs().sum()))
        assert float(d.result["data_loss"]) == pytest.approx(data, abs=1e-12)
        assert float(d.result["loss"]) == pytest.approx(total, abs=1e-12)
        np.testing.assert_allclose(_floats(d.result["grad"]), grad, atol=1e-12)


def test_exact_softmax_stays_exact():
    d = solve(kind="regularised_loss", W=[[1, 0], [0, 1]], x=[1, 2], labels=1,
              loss="softmax", **{"lambda": "1/2"})
    assert sp.simplify(d.result["data_loss"] - sp.log(1 + sp.exp(-1))) == 0  # exact
    data, total, grad = _torch_full_loss([[1, 0], [0, 1]], [[1, 2]], [1], "softmax",
                                         lambda w: 0.5 * (w ** 2).sum())
    assert float(d.result["loss"]) == pytest.approx(total, abs=1e-12)
    np.testing.assert_allclose(_floats([[sp.N(v) for v in row] for row in d.result["grad"]]),
                               grad, atol=1e-12)


def test_l1_on_a_given_data_gradient_numpy():
    W = np.array([[1, -2], [0, 3]])
    d = solve(kind="regularised_loss", W=W.tolist(), data_loss="3/2",
              data_grad=[["1/2", 0], [-1, 1]], penalty="l1", **{"lambda": "1/4"})
    assert d.result["penalty"] == sp.Rational(6, 4)  # (1 + 2 + 0 + 3) / 4
    assert d.result["loss"] == 3
    want = np.array([[0.5, 0], [-1, 1]]) + 0.25 * np.sign(W)  # sign(0) = 0
    np.testing.assert_allclose(_floats(d.result["grad"]), want)
    assert any("sign(0) = 0" in s.note for sec in d.sections for s in sec.steps)


def test_penalty_alone_slides_form():
    # the slide's L = (1/N) sum L_i + sum_k W_k^2 has lambda = 1: the penalty's gradient is 2W
    W = np.array([[0.5, -1.5], [2.0, 0.0]])
    d = solve(kind="regularised_loss", W=W.tolist(), **{"lambda": 1})
    assert float(d.result["loss"]) == pytest.approx((W ** 2).sum())
    np.testing.assert_allclose(_floats(d.result["grad"]), 2 * W)


@pytest.mark.parametrize("spec, where", [
    ({"scale": "lambda/3"}, "scale"),
    ({"lambda": -1}, "lambda"),
    ({"lambda": None}, "lambda"),
    ({"penalty": "l3"}, "penalty"),
    ({"beta": 2}, "beta"),
    ({"penalty": "elastic_net", "beta": "-1/2"}, "beta"),
    ({"labels": [0, 3]}, "labels"),
    ({"labels": [0]}, "labels"),
    ({"x": [[1, 2], [3, 4]]}, "x"),
    ({"loss": "hinge2"}, "loss"),
    ({"loss": "softmax", "margin": 2}, "margin"),
    ({"data_loss": 1}, "t.yaml"),
    ({"x": None, "labels": None, "data_loss": 1}, "data_grad"),
    ({"x": None, "labels": None, "data_loss": 1, "data_grad": [[1, 2]]}, "data_grad"),
])
def test_bad_regularised_loss_input(spec, where):
    base = {"kind": "regularised_loss", "W": W1, "x": X1, "labels": Y1, "lambda": "1/10"}
    base.update(spec)
    base = {k: v for k, v in base.items() if v is not None}
    with pytest.raises(InputError) as info:
        solve(**base)
    assert where in str(info.value) and "\n" not in str(info.value)
