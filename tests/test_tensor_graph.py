"""Tensor graphs in v-notation: the v1..v7 exam problem, numbers, and bad input."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import yaml

from derive.errors import InputError, NotDifferentiableError, ShapeError, UnsupportedError
from derive.problem import solve, solve_spec
from derive.tensor.display import ElementForm

ISSUE_YAML = """
tensors: {x: [d], W: [d, d], y: [d]}
nodes: {v4: x @ W, v5: exp(v4), v6: v4 + v5, v7: mse(v6, y)}
output: v7
wrt: [x, W, y]
"""
X = np.array([0.5, -1.0, 0.25])
W = np.array([[0.1, 0.2, -0.3], [0.0, 0.4, 0.1], [-0.2, 0.1, 0.3]])
Y = np.array([1.0, 0.0, -1.0])


def v_problem(values=True):
    spec = yaml.safe_load(ISSUE_YAML)
    if values:
        spec["values"] = {"x": X.tolist(), "W": W.tolist(), "y": Y.tolist()}
    return solve_spec(spec, "v.yaml")


def by_hand():
    """The same gradients written out in NumPy (the exam's answers)."""
    d = 3
    v4 = X @ W
    v6 = v4 + np.exp(v4)
    v6_bar = 2 / d * (v6 - Y)
    v4_bar = v6_bar * (1 + np.exp(v4))
    return {"v6": v6_bar, "v5": v6_bar, "v4": v4_bar, "W": np.outer(X, v4_bar),
            "x": v4_bar @ W.T, "y": -2 / d * (v6 - Y)}


def test_issue_yaml_parses_as_written():
    d = v_problem(values=False)
    assert [n.name for n in d.nodes] == ["x", "W", "y", "v4", "v5", "v6", "v7"]
    dim_d = sp.Symbol("d", integer=True, positive=True)
    assert d.node("v7").shape is None and d.node("v4").shape == (dim_d,)


def test_adjoints_have_the_exam_matrix_forms():
    d = v_problem(values=False)
    shown = {a.name: str(a.in_nodes) for a in d.adjoints}
    assert shown["v6"] == "(2/d)*(v6 - y)"
    assert shown["v5"] == "v6_bar"
    assert shown["v4"] == "HadamardProduct((exp(v4) + 1), v6_bar)"
    assert shown["W"] == "x.T*v4_bar"  # an outer product: x^T @ v4_bar
    assert shown["x"] == "v4_bar*W.T"
    assert shown["y"] == "(-2/d)*(v6 - y)"


def test_adjoint_sums_are_left_symbolic():
    d = v_problem(values=False)
    as_sum = d.adjoint("v4").as_sum
    assert as_sum.has(sp.Derivative)
    assert str(as_sum) == "v5_bar*Derivative(v5, v4) + v6_bar*Derivative(v6, v4)"


def test_adjoint_values_match_the_hand_answers():
    d = v_problem()
    for name, want in by_hand().items():
        assert np.allclose(d.adjoint(name).value, want, atol=1e-14), name
    for name in ("x", "W", "y"):
        assert np.allclose(d.gradients[name].value, by_hand()[name], atol=1e-14)


def test_matrix_forms_have_stated_shapes():
    d = v_problem(values=False)
    dsym = sp.Symbol("d", integer=True, positive=True)
    assert d.adjoint("W").in_nodes.shape == (dsym, dsym)
    assert d.adjoint("x").in_nodes.shape == (1, dsym)
    assert any(n.startswith("Shapes: x: [d], W: [d, d]") for n in d.notes)


def test_in_inputs_substitutes_every_node():
    d = v_problem(values=False)
    text = str(d.adjoint("v6").in_inputs)
    assert "v4" not in text and "exp(x*W)" in text


def test_example_file_solves(tmp_path):
    (d,) = solve("examples/tensor/v_problem.yaml")
    assert np.allclose(d.gradients["W"].value, by_hand()["W"])


def test_softmax_regression_logit_gradient_is_p_minus_onehot_over_B():
    (d,) = solve("examples/tensor/softmax_regression.yaml")
    assert str(d.adjoint("z").in_nodes) == "1/B*(-onehot(y) + softmax(z))"
    X = np.array([[1.0, 2.0], [0.5, -1.0], [-1.5, 0.25]])
    Wt = np.array([[0.1, -0.2], [0.3, 0.4], [-0.5, 0.2]])
    z = X @ Wt.T + np.array([0.0, 0.1, -0.1])
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    onehot = np.eye(3)[[2, 0, 1]]
    assert np.allclose(d.adjoint("z").value, (p - onehot) / 3, atol=1e-14)


def test_transpose_and_broadcast_in_node_text():
    spec = {"tensors": {"X": ["B", "d"], "W": ["h", "d"], "b": ["h"]},
            "nodes": {"z": "X @ W.T + b", "L": "sum(tanh(z))"}, "output": "L"}
    d = solve_spec(spec, "t.yaml")
    assert str(d.adjoint("b").in_nodes) == "ones(1, B)*z_bar"
    assert str(d.adjoint("W").in_nodes) == "z_bar.T*X"


@pytest.mark.parametrize("nodes, error, words", [
    ({"v4": "x @ W", "v5": "v4 + y2"}, ShapeError, ["[d]", "[h]", "v5"]),
    ({"v4": "W @ W2"}, ShapeError, ["[d, d]", "[h, d]", "v4"]),
    ({"v4": "frobnicate(x)"}, UnsupportedError, ["frobnicate"]),
    ({"v4": "x @ Q"}, InputError, ["unknown symbol 'Q'"]),
])
def test_bad_node_text_is_one_clear_line(nodes, error, words):
    spec = {"tensors": {"x": ["d"], "W": ["d", "d"], "y2": ["h"], "W2": ["h", "d"]},
            "nodes": nodes}
    with pytest.raises(error) as info:
        solve_spec(spec, "bad.yaml")
    message = str(info.value)
    assert "\n" not in message and message.startswith("bad.yaml")
    for w in words:
        assert w in message


def test_unresolved_dimension_symbol():
    spec = {"tensors": {"x": ["d"], "W": ["h", "d"]}, "nodes": {"z": "W @ x", "L": "sum(z)"},
            "values": {"x": [1.0, 2.0]}}
    with pytest.raises(InputError, match="dimension symbol 'h' is not determined"):
        solve_spec(spec, "dims.yaml")


def test_value_shape_mismatch_names_both_shapes():
    spec = yaml.safe_load(ISSUE_YAML)
    spec["values"] = {"x": [1.0, 2.0], "W": np.eye(3).tolist(), "y": [0.0, 0.0, 1.0]}
    with pytest.raises(ShapeError, match=r"dimension d is 2 elsewhere but 3"):
        solve_spec(spec, "v.yaml")


def test_gradient_through_a_non_differentiable_op():
    spec = {"tensors": {"z": ["B", "C"], "y": {"shape": ["B"], "labels": "C"}},
            "nodes": {"L": "zero_one(z, y)"}, "wrt": ["z"]}
    with pytest.raises(NotDifferentiableError) as info:
        solve_spec(spec, "01.yaml")
    assert "no useful gradient" in str(info.value) and "\n" not in str(info.value)


def test_labels_have_no_gradient():
    spec = {"tensors": {"z": ["B", "C"], "y": {"shape": ["B"], "labels": "C"}},
            "nodes": {"L": "cross_entropy(z, y)"}, "wrt": ["y"]}
    with pytest.raises(InputError, match="'y' is a label"):
        solve_spec(spec, "ce.yaml")


def test_element_form_when_no_matrix_form():
    spec = {"tensors": {"A": ["n", "n"]}, "nodes": {"t": "A * A.T", "L": "sum(t)"}}
    d = solve_spec(spec, "t.yaml")
    # d(A ⊙ A^T)/dA: both uses of A, one through a transpose
    assert str(d.adjoint("A").in_nodes) == "HadamardProduct(A.T, t_bar + t_bar.T)"
    spec = {"tensors": {"A": ["n", "n"], "x": ["n"]},
            "nodes": {"s": "x @ (A * A.T) @ x"}, "output": "s"}
    d = solve_spec(spec, "q.yaml")
    v = np.array([1.0, 2.0])
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    from derive.tensor.evaluate_model import evaluate
    out, g = evaluate(d, {"A": A, "x": v})
    M = A * A.T
    assert np.allclose(out, v @ M @ v) and np.allclose(g["x"], (M + M.T) @ v)
    assert isinstance(d.adjoint("x").in_nodes, (ElementForm, sp.MatrixExpr))
