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
