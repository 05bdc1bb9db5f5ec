"""Tensor adjoint tables: an error carried forward is counted once (later steps judged
against the student's own earlier answers), and tensor answers get symbolic proofs."""
import numpy as np
import pytest

from derive.verify import check, check_table, checker_for, cli_check
from derive.verify.tensor.entry_proof import MM, T, canonical, prove, tree_entry

import sympy as sp

WRONG_V6 = "(1/d)*(v6 - y)"  # the 2 of the square forgotten


@pytest.mark.parametrize("v4", [
    "v6_bar * (1 + exp(v4))",                   # with the (wrong) v6_bar symbol
    "(1/d)*(v6 - y) * (1 + exp(v4))",           # written out from the wrong v6_bar
    r"\frac{1}{d}(v_6 - y) \odot (1 + \exp(v_4))",
])
def test_factor_carried_forward_counts_once(v, v4):
    report = check_table(v, {"v6": WRONG_V6, "v5": "v6_bar", "v4": v4,
                             "W": "x.T @ ((1/d)*(v6 - y) * (1 + exp(v4)))",
                             "x": "v4_bar @ W.T", "y": "-(2/d)*(v6 - y)"})
    assert (report.correct, report.total, report.first_wrong) == (5, 6, "v6"), str(report)
    by_node = {verdict.node: verdict for verdict in report.verdicts}
    assert by_node["v6"].diagnosis == "factor"
    for node in ("v5", "v4", "W", "x"):
        assert by_node[node].correct and by_node[node].carried_from == ["v6"], str(report)
        assert "not counted twice" in by_node[node].message
    assert by_node["y"].carried_from == []  # y does not depend on v6_bar


def test_carried_steps_are_proved_symbolically(v):
    report = check_table(v, {"v6": WRONG_V6, "v4": "(1/d)*(v6 - y) * (1 + exp(v4))",
                             "W": "x.T @ ((1/d)*(v6 - y) * (1 + exp(v4)))"})
    assert [(x.node, x.verdict, x.proof) for x in report.verdicts] == [
        ("v6", "wrong", "numeric"), ("v4", "correct", "symbolic"),
        ("W", "correct", "symbolic")]


def test_carried_value_is_the_students(v):
    """The expected value of v4 is recomputed from the student's v6_bar: half the true one."""
    report = check_table(v, {"v6": WRONG_V6, "v4": "v6_bar * exp(v4)"})
    v4 = report.verdicts[1]
    assert (v4.verdict, v4.diagnosis, v4.carried_from) == ("wrong", "missing_edge", ["v6"])
    truth = check("v6_bar * exp(v4)", against=v, wrt="v4").counterexample
    ce = v4.counterexample
    assert ce["index"] == truth["index"] == [0, 2]
    assert ce["expected"] == pytest.approx(truth["expected"] / 2, abs=1e-5)
    assert report.correct == 0 and report.first_wrong == "v6"


def test_true_answer_after_a_wrong_step_is_still_correct(v):
    report = check_table(v, {"v6": WRONG_V6, "v4": "(2/d)*(v6 - y) * (1 + exp(v4))"})
    v4 = report.verdicts[1]
    assert v4.correct and v4.carried_from == [] and v4.proof == "symbolic"


def test_two_independent_mistakes_count_twice(v):
    report = check_table(v, {"v6": WRONG_V6, "v4": "v6_bar * (1 + exp(v4))",
                             "x": "v4_bar @ W", "W": "x.T @ v4_bar"})
    assert report.correct == 2 and [x.node for x in report.verdicts if not x.correct] == \
        ["v6", "x"]
    x = report.verdicts[-1]
    assert x.diagnosis == "transpose" and x.carried_from == ["v6"]


def test_batched_mlp_missing_batch_factor_carried(tensor_mlp):
    report = check_table(tensor_mlp, {"z2": "(2/k)*(z2 - Y)",            # a missing 1/B
                               "b2": "sum(z2_bar, axis=0)",
                               "W2": "((2/k)*(z2 - Y)).T @ a1",
                               "a1": "z2_bar @ W2"})
    got = [(x.node, x.verdict, x.proof, x.carried_from) for x in report.verdicts]
    assert got == [("z2", "wrong", "numeric", []),
                   ("a1", "correct", "symbolic", ["z2"]),
                   ("b2", "correct", "numeric", ["z2"]),      # sum(): numeric only
                   ("W2", "correct", "symbolic", ["z2"])], str(report)
    assert report.verdicts[0].diagnosis == "factor"


def test_carried_example_file():
    out, code = cli_check("examples/tensor/v_problem.yaml",
                          "examples/check/v_carried_answers.yaml", fmt="json")
    assert code == 1 and out["score"] == pytest.approx(5 / 6, abs=1e-4)
    assert out["first_wrong"] == "v6"
    assert [a["node"] for a in out["answers"] if a["verdict"] != "correct"] == ["v6"]


# -- the entry-wise normal form ------------------------------------------------------------
def test_normal_form_rules():
    A, B, C, c = sp.symbols("A B C c")
    arrays = {A, B, C}
    assert canonical(T(MM(A, B)), arrays) == MM(T(B), T(A))
    assert canonical(T(T(A)), arrays) == A
    assert canonical(MM(2 * c * A, B + C), arrays) == 2 * c * MM(A, B) + 2 * c * MM(A, C)
    assert canonical(MM(A, MM(B, C)), arrays) == MM(A, B, C)
    assert canonical(MM(A, B), arrays) != canonical(MM(B, A), arrays)  # not commutative


@pytest.mark.parametrize("wrt, answer, proof", [
    ("x", "(W @ v4_bar.T).T", "symbolic"),
    ("x", "W @ v4_bar.T", "symbolic"),          # the vector as a column: its transpose
    ("W", "outer(x, v4_bar)", "symbolic"),
    ("v4", "v6_bar + v6_bar * exp(v4)", "symbolic"),
    ("v4", "v6_bar * (1 + mean(exp(v4), axis=0))", "numeric"),  # mean(): no normal form
])
def test_symbolic_and_numeric_paths(v, wrt, answer, proof):
    verdict = check(answer, against=v, wrt=wrt)
    assert verdict.correct and verdict.proof == proof, str(verdict)
    if proof == "numeric":
        assert "agrees entry by entry at 7 points" in verdict.message


def test_prove_rejects_a_different_answer(v):
    """prove() itself never says yes to an answer that differs (not only the numeric gate)."""
    c = checker_for(v)
    wrong = c.parse("v6_bar * exp(v4)")
    assert not prove(wrong, c.true_entry("v4"), c.true_bars, c.arrays)
    assert prove(c.parse("v6_bar * (exp(v4) + 1)"), c.true_entry("v4"), c.true_bars, c.arrays)
    swapped = c.parse("W.T @ v4_bar.T")
    assert not prove(swapped, c.true_entry("x"), c.true_bars, c.arrays, True)
    assert tree_entry(c.parse("x.T @ v4_bar")) == MM(T(sp.Symbol("x")), sp.Symbol("v4_bar"))
    assert np.isfinite(c.points[0][0]["x_bar"]).all()
