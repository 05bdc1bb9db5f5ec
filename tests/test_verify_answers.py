"""Reading answers: LaTeX translation, Unicode, lenient names (ŷ, yhat, \\hat{y} alike)."""
import pytest
import sympy as sp

import derive as dv
from derive.functions import sigmoid
from derive.verify.answers import Vocabulary, parse_answer
from derive.verify.latex_answers import latex_to_text

NAMES = ["x1", "x2", "y", "w1_11", "w2_11", "a1", "z1", "yhat", "l", "u2", "w"]
S = sp.Symbol


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary(NAMES, {"w1_11": "w^{(1)}_{11}", "l": r"\ell"})


@pytest.mark.parametrize("latex, text", [
    (r"(\hat{y}-y)x_1", "(yhat - y) * x_1"),
    (r"\frac{1}{2} w^{2} u_2", "1/2 * w**2 * u_2"),
    (r"\sigma(z)(1-\sigma(z))", "sigmoid(z) * (1 - sigmoid(z))"),
    (r"w^{(1)}_{11}", "w1_11"),
    (r"w_{11}^{(1)}", "w1_11"),
    (r"e^{-z}", "exp(-z)"),
    (r"\bar{v}_4", "v_4_bar"),
    (r"\left(x_1 + x_2\right)^{2}", "(x_1 + x_2)**2"),
    (r"x^23", "x**2 * 3"),  # LaTeX's ^ takes one character
    (r"\sqrt[3]{x}", "x**(1/3)"),
    (r"\operatorname{ReLU}(x)", "relu(x)"),
    (r"\max(a, b)", "max(a, b)"),
    (r"a - (b - c)", "a - (b - c)"),
])
def test_latex_translation(latex, text):
    assert latex_to_text(latex) == text


def test_matrix_latex():
    assert latex_to_text(r"x^\top \bar{v}_4", matrix=True) == "x.T @ v_4_bar"
    assert latex_to_text(r"\bar{Z} W^{\mathsf{T}}", matrix=True) == "Z_bar @ W.T"
    assert latex_to_text(r"\bar{v}_6 \odot (1 + \exp(v_4))", matrix=True) == \
        "v_6_bar * (1 + exp(v_4))"


@pytest.mark.parametrize("text", ["yhat", "y_hat", "ŷ", r"\hat{y}", "hat_y", "y\u0302"])
def test_hat_aliases(vocab, text):
    assert parse_answer(text, vocab) == S("yhat")


@pytest.mark.parametrize("text, expected", [
    (r"w^{(1)}_{11}", S("w1_11")),
    ("w1_11", S("w1_11")),
    (r"\ell", S("l")),
    ("x_1", S("x1")),
    ("x₁", S("x1")),
    (r"\bar{z}_1", S("z1_bar")),
    ("z1_bar", S("z1_bar")),
    ("a1(1 - a1)", S("a1") * (1 - S("a1"))),  # a name is not a function: a product
    (r"2wu_{2}", 2 * S("w") * S("u2")),  # LaTeX juxtaposition of known names
    ("σ(z1)", sigmoid(S("z1"))),
    ("(ŷ − y)·x₁", (S("yhat") - S("y")) * S("x1")),
])
def test_names_map_to_the_problem(vocab, text, expected):
    assert parse_answer(text, vocab) == expected


def test_implicit_multiplication_gets_a_hint(vocab):
    with pytest.raises(dv.InputError, match=r"write products with \*"):
        parse_answer("2w", vocab)


def test_numbers_from_yaml(vocab):
    assert parse_answer(11, vocab) == 11
    assert parse_answer(0.5, vocab) == sp.Float(0.5)
