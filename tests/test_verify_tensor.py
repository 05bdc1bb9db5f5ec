"""Tensor answers in matrix notation on the v1..v7 problem of issue 3 (and a batched MLP):
correct answers accepted, mistakes named (transpose, swapped operands, @ vs *, missing
batch sum, missing edge, chain not applied, sign, factor)."""
import pytest

from derive.verify import check, check_table, cli_check


@pytest.mark.parametrize("wrt, answer", [
    ("v6", "(2/d)*(v6 - y)"),
    ("v6", r"\frac{2}{d}(v_6 - y)"),
    ("v5", "v6_bar"),
    ("v4", "v6_bar * (1 + exp(v4))"),
    ("v4", r"\bar{v}_6 \odot (1 + \exp(v_4))"),
    ("v4", "v6_bar ⊙ (1 + exp(v4))"),
    ("W", "x.T @ v4_bar"),          # an outer product: vectors are rows
    ("W", "outer(x, v4_bar)"),
    ("W", r"x^\top \bar{v}_4"),
    ("x", "v4_bar @ W.T"),
    ("x", "W @ v4_bar.T"),          # the same vector as a column
    ("y", "-(2/d)*(v6 - y)"),
])
def test_v_problem_correct(v, wrt, answer):
    verdict = check(answer, against=v, wrt=wrt)
    assert verdict.verdict == "correct", str(verdict)
    assert verdict.proof == "symbolic" and "normal form" in verdict.message


@pytest.mark.parametrize("wrt, answer, kind", [
    ("y", "(2/d)*(v6 - y)", "sign"),
    ("v6", "(1/d)*(v6 - y)", "factor"),                 # the 2 of the square forgotten
    ("x", "v4_bar @ W", "transpose"),
    ("W", "v4_bar.T @ x", "transpose"),
    ("W", "x @ v4_bar.T", "transpose"),                 # a (1, 1): wrong shape
    ("x", "W.T @ v4_bar", "swapped_operands"),
    ("v4", "v6_bar @ (1 + exp(v4))", "elementwise_vs_matrix"),
    ("v4", "v6_bar", "missing_edge"),                   # v4 feeds v5 and v6
    ("v4", "v6_bar * exp(v4)", "missing_edge"),
    ("v4", "1 + exp(v4)", "chain_not_applied"),
    ("x", "x", "other"),
])
def test_v_problem_wrong(v, wrt, answer, kind):
    verdict = check(answer, against=v, wrt=wrt)
    assert (verdict.verdict, verdict.diagnosis) == ("wrong", kind), str(verdict)
    assert verdict.counterexample["point"]["x"] == [[0.5, -1.0, 0.25]]  # the problem's values


def test_v_problem_counterexample_names_the_element(v):
    ce = check("v4_bar @ W", against=v, wrt="x").counterexample
    assert ce["index"] == [0, 0] and ce["answer"] != ce["expected"]


@pytest.mark.parametrize("wrt, answer, kind", [
    ("b2", "z2_bar", "missing_batch_sum"),
    ("b1", "z1_bar", "missing_batch_sum"),
    ("z2", "(2/k)*(z2 - Y)", "factor"),                # a missing 1/B
    ("W2", "a1.T @ z2_bar", "transpose"),
    ("a1", "W2 @ z2_bar", "swapped_operands"),
])
def test_batched_mlp_wrong(tensor_mlp, wrt, answer, kind):
    assert check(answer, against=tensor_mlp, wrt=wrt).diagnosis == kind


@pytest.mark.parametrize("wrt, answer, proof", [
    ("b2", "sum(z2_bar, axis=0)", "numeric"),        # sum(): no entry-wise normal form
    ("W2", "z2_bar.T @ a1", "symbolic"),
    ("W2", "(a1.T @ z2_bar).T", "symbolic"),         # (A @ B).T = B.T @ A.T
    ("z1", "a1_bar * a1 * (1 - a1)", "numeric"),     # a1 = sigmoid(z1) is not substituted
    ("z1", "a1_bar * sigmoid(z1) * (1 - sigmoid(z1))", "symbolic"),
    ("W1", "z1_bar.T @ X", "symbolic"),
    ("z2", "(2/(B*k))*(z2 - Y)", "symbolic"),
])
def test_batched_mlp_correct(tensor_mlp, wrt, answer, proof):
    verdict = check(answer, against=tensor_mlp, wrt=wrt)
    assert verdict.correct, str(verdict)
    assert verdict.proof == proof, str(verdict)
    if proof == "numeric":
        assert "agrees entry by entry at 6 points" in verdict.message


def test_tensor_answers_are_safe_and_not_circular(v, tmp_path):
    sentinel = tmp_path / "pwned"
    bad = check(f"__import__('os').system('touch {sentinel}')", against=v, wrt="x")
    assert bad.verdict == "unreadable" and not sentinel.exists()
    circular = check("x_bar", against=v, wrt="x")
    assert circular.verdict == "unreadable" and "x_bar" in circular.message


def test_tensor_table_and_cli(v):
    report = check_table(v, {"v6": "(2/d)*(v6 - y)", "x": "v4_bar @ W", "W": "x.T @ v4_bar"})
    assert report.correct == 2 and report.first_wrong == "x"
    out, code = cli_check("examples/tensor/v_problem.yaml", "examples/check/v_answers.yaml",
                          fmt="json")
    assert code == 1 and out["first_wrong"] == "x"
    wrong = [a for a in out["answers"] if a["verdict"] == "wrong"]
    assert [(a["node"], a["diagnosis"], a["expected"]) for a in wrong] == \
        [("x", "transpose", "v4_bar @ W.T")]
