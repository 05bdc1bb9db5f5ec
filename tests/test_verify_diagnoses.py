"""The chain stopped at an upstream adjoint (a local partial left out) is named
``missing_local_partial``; the other diagnoses keep winning where they did."""
import math

import pytest

import derive as dv
from derive.verify import DIAGNOSES, check, check_table
from derive.verify.verdict import EXPLAIN


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


@pytest.fixture(scope="module")
def bce():
    return dv.solve("examples/bce_sigmoid.yaml")[0]  # l one node; z = 2, y = 1


@pytest.fixture(scope="module")
def fanout():
    return dv.solve("examples/check/bce_fanout.yaml")[0]  # yhat feeds a = log(yhat), b


@pytest.fixture(scope="module")
def mlp():
    return dv.solve("examples/mlp_2_2_1.yaml")[0]


DL_DYHAT = "-y/yhat + (1 - y)/(1 - yhat)"  # the upstream adjoint, not dl/dz = yhat - y


def test_the_name_and_its_line():
    assert "missing_local_partial" in DIAGNOSES
    assert DIAGNOSES.index("chain_not_applied") < DIAGNOSES.index("missing_local_partial") \
        < DIAGNOSES.index("other")
    line = EXPLAIN["missing_local_partial"]
    assert "\n" not in line and "local partial" in line and "upstream adjoint" in line


@pytest.mark.parametrize("answer", [DL_DYHAT, r"-\frac{y}{\hat{y}} + \frac{1-y}{1-\hat{y}}",
                                    "-(1 + exp(-2))",  # its value at z = 2, y = 1
                                    "-1.1353"])        # the same, rounded by hand
def test_dl_dyhat_given_for_dl_dz_after_a_sigmoid(bce, answer):
    v = check(answer, against=bce, wrt="z")
    assert (v.verdict, v.diagnosis) == ("wrong", "missing_local_partial"), str(v)
    assert "adjoint of yhat" in v.message and "dyhat/dz" in v.message
    ce = v.counterexample  # at the problem's values: dl/dyhat = -1/yhat, dl/dz = yhat - 1
    assert ce["point"] == {"z": 2, "y": 1}
    assert ce["expected"] == pytest.approx(sigmoid(2) - 1, rel=1e-5)
    assert ce["answer"] == pytest.approx(-1 / sigmoid(2), rel=1e-4)
    assert v.to_dict()["diagnosis"] == "missing_local_partial"


@pytest.mark.parametrize("answer, kind", [
    (DL_DYHAT, "missing_local_partial"),
    ("yhat*(1 - yhat)", "chain_not_applied"),  # the local partial alone: still its name
    ("-y*(1 - yhat)", "missing_edge"),         # one of yhat's two edges: still its name
    ("y - yhat", "sign"),
    ("2*(yhat - y)", "factor"),
    ("yhat + y", "other"),
])
def test_fanout_graph_keeps_the_other_names(fanout, answer, kind):
    v = check(answer, against=fanout, wrt="z")
    assert (v.verdict, v.diagnosis) == ("wrong", kind), str(v)


def test_in_a_table_against_the_students_own_upstream_adjoint(fanout):
    right = check_table(fanout, {"yhat": DL_DYHAT, "z": "yhat_bar"})
    assert [v.diagnosis for v in right.verdicts] == [None, "missing_local_partial"]
    # yhat itself wrong (the edge to b dropped): z = yhat_bar still stops at it
    carried = check_table(fanout, {"yhat": "-y/yhat", "z": "yhat_bar"})
    assert [v.diagnosis for v in carried.verdicts] == ["missing_edge", "missing_local_partial"]


@pytest.mark.parametrize("wrt, answer, where", [
    ("z1", "(yhat - y)*w2_11", "adjoint of a1"),  # dl/da1 given for dl/dz1
    ("w1_11", "(yhat - y)*w2_11*x1", "da1/dz1 is left out"),  # sigma'(z1) inside the chain
])
def test_mlp_chains(mlp, wrt, answer, where):
    v = check(answer, against=mlp, wrt=wrt)
    assert v.diagnosis == "missing_local_partial" and where in v.message, str(v)


@pytest.mark.parametrize("answer, kind", [
    ("a1_bar", "missing_local_partial"),
    ("z2_bar @ W2", "missing_local_partial"),   # the same adjoint, written out
    ("a1*(1 - a1)", "chain_not_applied"),
    ("a1_bar * a1 * (1 - a1)", None),
])
def test_tensor_mlp_z1(tensor_mlp, answer, kind):
    v = check(answer, against=tensor_mlp, wrt="z1")
    assert v.diagnosis == kind and v.correct == (kind is None), str(v)
    if kind == "missing_local_partial":
        assert "adjoint of a1" in v.message and "da1/dz1" in v.message
