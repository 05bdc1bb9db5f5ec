"""Worked losses: the published softmax and SVM answers, BCE and MSE against references."""
import math

import numpy as np
import pytest
import sympy as sp

from derive.errors import InputError, ShapeError
from derive.problem import solve_spec
from reports.latex_printer import latex

TABLE = {"classes": ["cat", "car", "frog"], "layout": "columns",
         "scores": [[3.2, 1.3, 2.2], [5.1, 4.9, 2.5], [-1.7, 2.0, -3.1]],
         "labels": ["cat", "car", "frog"]}


def solve(**spec):
    return solve_spec(spec, "t.yaml")


def test_softmax_loss_published_answer():
    d = solve(kind="softmax_loss", scores=[3.2, 5.1, -1.7], label=0)
    assert round(float(d.result), 2) == 2.04
    probs = [float(s.rhs[-1]) for sec in d.sections for s in sec.steps
             if latex(s.lhs).startswith("p_")]
    assert probs[0] == pytest.approx(0.13, abs=5e-3) and sum(probs) == pytest.approx(1)


def test_softmax_loss_exact_scores_stay_exact():
    d = solve(kind="softmax_loss", scores=[1, 2, 0], label=1)
    assert sp.simplify(d.result - (sp.log(1 + sp.E + sp.exp(2)) - 2)) == 0
    assert not d.result.has(sp.Float)


def test_svm_loss_published_table():
    d = solve(kind="svm_loss", **TABLE)
    losses = [float(v) for v in d.result]
    assert losses[:2] == pytest.approx([2.9, 0.0])
    assert losses[2] == pytest.approx(12.9)
    assert float(d.meta["mean"]) == pytest.approx((2.9 + 0 + 12.9) / 3)


def test_svm_single_example_shows_each_hinge_term():
    d = solve(kind="svm_loss", scores=[3.2, 5.1, -1.7], label=0)
    terms = [s for s in d.sections[0].steps if latex(s.lhs).startswith(r"\max")]
    assert [float(s.rhs[-1]) for s in terms] == pytest.approx([2.9, 0])
    assert "5.1 - 3.2 + 1" in latex(terms[0].rhs[0])


def test_softmax_many_examples_against_torch():
    torch = pytest.importorskip("torch")
    scores = [[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]]
    d = solve(kind="softmax_loss", scores=scores, labels=[0, 1, 2])
    ref = torch.nn.functional.cross_entropy(torch.tensor(scores, dtype=torch.float64),
                                            torch.tensor([0, 1, 2]), reduction="none")
    np.testing.assert_allclose([float(v) for v in d.result], ref.numpy(), rtol=1e-12)


def test_bce_from_logits_and_probs_against_torch():
    torch = pytest.importorskip("torch")
    logits, targets = [0.5, -1.0, 2.0], [1.0, 0.0, 0.0]
    d = solve(kind="bce", logits=logits, targets=targets)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(logits, dtype=torch.float64), torch.tensor(targets, dtype=torch.float64))
    assert float(d.result) == pytest.approx(ref.item(), rel=1e-12)
    d = solve(kind="bce", probs=["1/2", "1/4"], targets=[1, 0], reduction="sum")
    assert sp.simplify(d.result - sp.log(sp.Rational(8, 3))) == 0
    assert float(d.result) == pytest.approx(math.log(2) + math.log(4 / 3))
    assert not d.result.has(sp.Float)


def test_mse_exact_and_half():
    d = solve(kind="mse", predictions=[1, 2, 3], targets=[1, 0, 0])
    assert d.result == sp.Rational(13, 3)
    d = solve(kind="mse", predictions=[[1, 2], [3, 4]], targets=[[0, 0], [0, 0]],
              half=True, reduction="sum")
    assert d.result == 15


@pytest.mark.parametrize("spec, error, where", [
    ({"kind": "softmax_loss", "scores": [1, 2], "label": 2}, InputError, "label"),
    ({"kind": "softmax_loss", "scores": [1, 2], "label": "dog"}, InputError, "label"),
    ({"kind": "softmax_loss", "scores": [[1, 2], [1, 2]], "labels": [0]}, ShapeError, "labels"),
    ({"kind": "svm_loss", "scores": [1, 2], "label": 0, "classes": ["a"]}, ShapeError, "classes"),
    ({"kind": "bce", "probs": [0.5], "logits": [1], "targets": [1]}, InputError, "t.yaml"),
    ({"kind": "bce", "probs": [0], "targets": [1]}, InputError, "probs[0]"),
    ({"kind": "bce", "probs": [0.5, 0.2], "targets": [1]}, ShapeError, "targets"),
    ({"kind": "mse", "predictions": [1, 2], "targets": [1]}, ShapeError, "targets"),
])
def test_bad_loss_input(spec, error, where):
    with pytest.raises(error) as info:
        solve_spec(spec, "t.yaml")
    assert where in str(info.value) and "\n" not in str(info.value)
