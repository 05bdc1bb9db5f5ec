"""Issue 6 on the scalar worked examples of issue 2: right answers accepted (and proved),
wrong answers caught with a counterexample and the right diagnosis."""
import pytest

import derive as dv
from derive.verify import check, check_table


@pytest.fixture(scope="module")
def rnn():
    return dv.solve("examples/rnn.yaml")[0]


@pytest.fixture(scope="module")
def decomposed():
    return dv.grad("(x1 + x2)**2 + x2*x3 - x3", at={"x1": 1, "x2": 2, "x3": 3})


@pytest.fixture(scope="module")
def bce():
    return dv.solve("examples/check/bce_fanout.yaml")[0]


@pytest.fixture(scope="module")
def mlp():
    return dv.solve("examples/mlp_2_2_1.yaml")[0]


def judged(d, wrt, answer):
    v = check(answer, against=d, wrt=wrt)
    return v.verdict, v.diagnosis


# -- the 3-step RNN: dy/dw = u3 + 2w u2 + 3w^2 u1 ------------------------------------------
@pytest.mark.parametrize("answer", [
    "u3 + 2*w*u2 + 3*w**2*u1",          # in the inputs
    "t + w*r + w**2*p",                 # in node values: one term per outgoing edge
    "y_bar*t + s_bar*r + q_bar*p",      # in adjoints
    r"u_3 + 2wu_2 + 3w^2u_1",           # LaTeX, juxtaposition
    "u₃ + 2·w·u₂ + 3·w²·u₁",            # pasted Unicode
    "dy/dw = u3 + 2*w*u2 + 3*w**2*u1",  # a written-out equation: its right side
    "11",                               # the value at the problem's values
])
def test_rnn_correct_answers_are_proved(rnn, answer):
    v = check(answer, against=rnn, wrt="w")
    assert v.verdict == "correct" and v.proof == "symbolic", str(v)
    assert v.counterexample is None and v.diagnosis is None


@pytest.mark.parametrize("answer, kind", [
    ("-(u3 + 2*w*u2 + 3*w**2*u1)", "sign"),
    ("2*(u3 + 2*w*u2 + 3*w**2*u1)", "factor"),
    ("t + w*r", "missing_edge"),              # the contribution through q dropped
    ("u3 + w*u2 + w**2*u1", "missing_edge"),  # only the edge to y: t, expanded
    ("t + r + p", "chain_not_applied"),       # the local partials, no adjoints
    ("r", "chain_not_applied"),
    ("u1*u2*u3", "other"),
])
def test_rnn_wrong_answers_are_diagnosed(rnn, answer, kind):
    v = check(answer, against=rnn, wrt="w")
    assert (v.verdict, v.diagnosis) == ("wrong", kind), str(v)
    ce = v.counterexample
    # the problem's own values come first: w=2, u=(1,-1,3) where dy/dw = 11
    assert ce["point"] == {"u1": 1, "u2": -1, "u3": 3, "w": 2}
    assert ce["expected"] == 11.0 and ce["answer"] != 11.0


def test_rnn_counterexample_values_are_the_answers_values(rnn):
    v = check("t + w*r", against=rnn, wrt="w")
    assert v.counterexample["answer"] == 5 + 2 * 1  # t = 5, r = 1 at the given values
    assert "q" in v.message  # names the dropped edge w -> q


def test_rnn_adjoint_table_published_answers(rnn):
    report = check_table(rnn, {"t": "w", "s": "w", "r": "w**2", "q": "w**2", "p": "w**3",
                               "w": "u3 + 2*w*u2 + 3*w**2*u1"})
    assert report.score == 1.0 and report.first_wrong is None and bool(report)
    assert [v.node for v in report.verdicts] == ["t", "s", "r", "q", "p", "w"]


def test_table_error_carried_forward_counts_once(rnn):
    report = check_table(rnn, {"t": "w", "s": "-w", "r": "-w**2", "q": "-w**2",
                               "p": "-w**3", "w": "t - w*r - w**2*p"})
    verdicts = {v.node: v for v in report.verdicts}
    assert report.first_wrong == "s" and verdicts["s"].diagnosis == "sign"
    assert report.correct == 5 and report.score == pytest.approx(5 / 6)
    assert verdicts["p"].carried_from == ["s"]
    assert "earlier answer" in verdicts["w"].message


def test_table_later_mistake_is_judged_against_earlier_answers(rnn):
    # r is wrong (w instead of w^2); q = w follows from it; p = w does not (should be w*w)
    report = check_table(rnn, {"s": "w", "r": "w", "q": "w", "p": "w"})
    verdicts = {v.node: v for v in report.verdicts}
    assert verdicts["r"].diagnosis == "chain_not_applied"
    assert verdicts["q"].verdict == "correct"
    assert verdicts["p"].verdict == "wrong"
    assert verdicts["p"].counterexample["expected"] == 4.0  # w * (student's q_bar = w) at w=2
    assert report.first_wrong == "r" and report.correct == 2


def test_table_unknown_and_repeated_keys_are_unreadable(rnn):
    report = check_table(rnn, {"w_bar": "u3 + 2*w*u2 + 3*w**2*u1", "w": "t", "zz": "1"})
    by_node = {(v.node, v.verdict) for v in report.verdicts}
    assert ("w", "correct") in by_node and ("zz", "unreadable") in by_node
    assert sum(v.verdict == "unreadable" for v in report.verdicts) == 2


# -- (x1 + x2)^2 + x2 x3 - x3, decomposed into v1..v5 ---------------------------------------
def test_decomposed_correct_answers(decomposed):
    assert judged(decomposed, "x1", "2*(x1 + x2)") == ("correct", None)
    assert judged(decomposed, "x2", "2*(x1 + x2) + x3") == ("correct", None)
    assert judged(decomposed, "x3", "x2 - 1") == ("correct", None)
    assert judged(decomposed, "x2", "2*v1 + x3") == ("correct", None)


@pytest.mark.parametrize("wrt, answer, kind", [
    ("x2", "-(2*(x1 + x2) + x3)", "sign"),
    ("x3", "1 - x2", "sign"),
    ("x1", "x1 + x2", "factor"),            # the 2 of the square forgotten
    ("x2", "2*(x1 + x2)", "missing_edge"),  # x2 is used twice; the edge to v3 dropped
    ("x3", "x2", "missing_edge"),           # the "- x3" edge dropped
    ("x2", "1 + x3", "chain_not_applied"),  # the local partials of x2's two edges
    ("x1", "1", "chain_not_applied"),       # dv1/dx1
    ("x2", "x1*x3", "other"),
])
def test_decomposed_wrong_answers(decomposed, wrt, answer, kind):
    assert judged(decomposed, wrt, answer) == ("wrong", kind)


# -- binary cross-entropy after a sigmoid: dl/dz = yhat - y ---------------------------------
@pytest.mark.parametrize("answer", ["yhat - y", "sigmoid(z) - y", r"\hat{y} - y",
                                    r"\sigma(z) - y", "ŷ − y", "y_hat - y",
                                    "(-y/yhat + (1 - y)/(1 - yhat))*yhat*(1 - yhat)",
                                    "1/(1 + exp(-z)) - y"])
def test_bce_correct(bce, answer):
    assert judged(bce, "z", answer) == ("correct", None)


@pytest.mark.parametrize("answer, kind", [
    ("y - yhat", "sign"),
    ("2*(yhat - y)", "factor"),
    ("-y*(1 - yhat)", "missing_edge"),         # yhat feeds log(yhat) and log(1 - yhat)
    ("(1 - y)*yhat", "missing_edge"),
    ("yhat*(1 - yhat)", "chain_not_applied"),  # dyhat/dz alone
    ("yhat + y", "other"),
])
def test_bce_wrong(bce, answer, kind):
    assert judged(bce, "z", answer) == ("wrong", kind)


def test_bce_published_value_at_z2_y1():
    [d] = dv.solve("examples/bce_sigmoid.yaml")  # l as one node, z = 2, y = 1
    v = check("sigmoid(2) - 1", against=d, wrt="z")
    assert v.verdict == "correct" and v.proof == "symbolic"
    rounded = check("-0.1192", against=d, wrt="z")  # a hand-rounded value
    assert rounded.verdict == "correct" and rounded.proof == "numeric"
    assert check("-0.13", against=d, wrt="z").verdict == "wrong"


# -- the 2-2-1 sigmoid network with BCE: dl/dw1_11 = (yhat - y) w2_11 a1 (1 - a1) x1 --------
@pytest.mark.parametrize("answer", [
    "(yhat - y)*w2_11*a1*(1 - a1)*x1",
    r"(\hat{y}-y)\,w^{(2)}_{11}\,a_1(1-a_1)x_1",
    "(ŷ − y)·w2_11·a₁(1 − a₁)·x₁",
    "z1_bar*x1",
    "(yhat - y)*w2_11*exp(-z1)/(1 + exp(-z1))**2*x1",
])
def test_mlp_correct(mlp, answer):
    assert judged(mlp, "w1_11", answer) == ("correct", None)


@pytest.mark.parametrize("wrt, answer, kind", [
    ("w1_11", "(y - yhat)*w2_11*a1*(1 - a1)*x1", "sign"),
    ("w1_11", "2*(yhat - y)*w2_11*a1*(1 - a1)*x1", "factor"),
    ("w1_11", "x1", "chain_not_applied"),
    ("z1", "a1*(1 - a1)", "chain_not_applied"),
    ("x1", "(yhat - y)*w2_11*a1*(1 - a1)*w1_11", "missing_edge"),  # x1 feeds z1 and z2
    ("w1_11", "(yhat - y)*w2_11*x1", "missing_local_partial"),  # sigma'(z1) left out
    ("w1_11", "(yhat - y)*x1", "other"),  # two partials left out: no single mistake
])
def test_mlp_wrong(mlp, wrt, answer, kind):
    assert judged(mlp, wrt, answer) == ("wrong", kind)


# -- verdict data -----------------------------------------------------------------------------
def test_verdict_json_shape(rnn):
    entry = check("t + w*r", against=rnn, wrt="w").to_dict()
    assert set(entry) >= {"node", "answer", "verdict", "proof", "diagnosis", "expected",
                          "counterexample"}
    assert entry["verdict"] == "wrong" and entry["proof"] == "numeric"
    assert entry["expected"] == "3*u1*w**2 + 2*u2*w + u3"
    assert set(entry["counterexample"]) == {"point", "answer", "expected"}


def test_unknown_name_is_unreadable_with_the_known_names(rnn):
    v = check("w*foo", against=rnn, wrt="w")
    assert v.verdict == "unreadable" and "foo" in v.message and "u1" in v.message
    assert not v


def test_wrt_defaults_to_the_only_gradient(rnn):
    assert check("u3 + 2*w*u2 + 3*w**2*u1", against=rnn).correct


def test_check_against_a_problem_mapping():
    spec = {"nodes": {"a": "x*y", "b": "a + x"}, "wrt": ["x"]}
    assert check("y + 1", against=spec, wrt="x").correct
    assert check("y", against=spec, wrt="x").diagnosis == "missing_edge"
