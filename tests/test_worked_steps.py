"""Worked steps carry SymPy objects, never LaTeX: reports/ is the one place that typesets.

Every step of every example file is checked (no strings, no LaTeX hidden in symbol names),
the derive/worked sources hold no LaTeX literals, and the notation a step needs (arithmetic
as written, words, decimals, long sums) comes out of the one printer the same way in every
format.
"""
import ast
import glob
import json
import os
import re

import pytest
import sympy as sp

import reports
from derive.problem import solve, solve_spec
from derive.stepforms import (Approx, MaxOf, Word, approx, minus, over, plus, power, root,
                              substitute, times)
from reports.latex_printer import latex, latex_pieces

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(glob.glob(os.path.join(ROOT, "examples", "worked", "*.yaml")))
WORKED = sorted(glob.glob(os.path.join(ROOT, "derive", "worked", "*.py")))


def _sides(d):
    for section in d.sections:
        for step in section.steps:
            yield step, step.lhs
            for item in step.rhs:
                yield step, item


def _leaves(item):
    """The SymPy objects inside a step side (matrix entries one by one)."""
    if isinstance(item, sp.MatrixBase):
        for entry in item:
            yield from _leaves(entry)
    else:
        yield item


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_every_step_of_every_example_is_sympy_not_latex(path):
    for d in solve(path):
        for step, side in _sides(d):
            assert not isinstance(side, str), f"{d.title}: a LaTeX string in a step: {side!r}"
            for leaf in _leaves(side):
                assert isinstance(leaf, (sp.Basic, int)), f"{d.title}: {leaf!r}"
                for name in (s.name for s in sp.sympify(leaf).atoms(sp.Symbol)):
                    assert not set(name) & set("\\{}$"), f"{d.title}: LaTeX in a name {name!r}"
            assert "\\" not in step.note
        assert all("\\" not in s.text for s in d.sections)


def _literals(path):
    """The string constants of a module that are not docstrings."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and id(n) not in docs]


@pytest.mark.parametrize("path", WORKED, ids=os.path.basename)
def test_no_worked_module_writes_latex(path):
    latex_like = [s for s in _literals(path) if "\\" in s]  # no LaTeX command anywhere
    assert latex_like == [], f"{os.path.basename(path)} writes LaTeX: {latex_like[:3]}"


def test_the_worked_typesetter_is_gone():
    from derive.worked import common

    for name in ("DIGITS", "ltx", "tex", "pow_tex", "sum_tex", "products_tex", "sub"):
        assert not hasattr(common, name), name


# -- one rule for decimals, in every format ----------------------------------------------------
def test_a_float_in_a_worked_step_prints_six_significant_digits_everywhere():
    d = solve_spec({"kind": "mse", "predictions": [0.123456789, 2.0], "targets": [0, 1]}, "t.yaml")
    step = d.sections[0].steps[0]
    assert latex(step.rhs[0]) == r"\left(0.123457 - 0\right)^{2}"
    assert latex(step.rhs[1]) == "0.0152416"
    for fmt in ("tex", "md", "html"):
        text = reports.render(d, fmt)
        assert "0.123457" in text and "0.0152416" in text, fmt
        assert "0.1234568" not in text and "0.01524157" not in text, fmt
    data = json.loads(reports.render(d, "json"))
    assert data["result"] == pytest.approx((0.123456789 ** 2 + 1) / 2, rel=1e-15)


def test_values_and_expressions_share_the_decimal_rule():
    from reports.values import value_tex

    for x in (0.1, 40.0, 1.5e-9, 123456789.0, -2.5):
        assert latex(sp.Float(x)) == value_tex(x), x


# -- arithmetic as written ---------------------------------------------------------------------
def test_written_arithmetic_keeps_its_order_signs_and_identities():
    half, tenth = sp.Rational(1, 2), sp.Rational(1, 10)
    assert latex(plus(times(sp.Rational(9, 10), 0), times(tenth, 3))) == \
        r"\frac{9}{10} \cdot 0 + \frac{1}{10} \cdot 3"
    assert latex(minus(sp.Float(0.5), 0)) == "0.5 - 0"
    assert latex(minus(1, -2)) == r"1 - \left(-2\right)"
    assert latex(plus(1, -plus(2, 3))) == r"1 - \left(2 + 3\right)"
    assert latex(times(2, -3)) == r"2 \cdot \left(-3\right)"
    assert latex(times(tenth, half)) == r"\frac{1}{10} \cdot \frac{1}{2}"
    assert latex(over(plus(8, 2), 2)) == r"\frac{8 + 2}{2}"
    assert latex(power(sp.Float(-10.0), 2)) == r"{\left(-10\right)}^{2}"
    assert latex(root(plus(sp.Rational(1, 4), 0))) == r"\sqrt{\frac{1}{4} + 0}"
    theta, eta, g = sp.symbols("theta_0 eta g_1")
    assert latex(minus(theta, eta * g)) == r"\theta_{0} - \eta g_{1}"
    x, y = sp.symbols("x y")
    assert latex(substitute(2 * x + 20 * y, {x: 1, y: 3})) == r"2 \cdot 1 + 20 \cdot 3"
    assert str(plus(2, 3)) == "2 + 3"  # JSON: SymPy-readable text


def test_a_long_written_sum_breaks_between_terms_in_every_format():
    values = [sp.Float(v / 7) for v in range(1, 31)]
    pieces, glue = latex_pieces(plus(*values))
    assert len(pieces) == 30 and pieces[1] == "+ 0.285714" and glue == ""
    spec = {"kind": "knn", "X": [[k / 7 for k in range(1, 31)]], "y": ["a"],
            "query": [0] * 30, "k": 1, "metric": "l1"}
    d = solve_spec(spec, "t.yaml")
    tex, md = reports.render(d, "tex"), reports.render(d, "md")
    broken = re.findall(r"\\\\\n&\\quad \+ ", tex)
    assert len(broken) >= 2  # the distance sum runs over several lines
    assert len(re.findall(r"\\\\\n&\\quad \+ ", md)) == len(broken)


# -- the step vocabulary -----------------------------------------------------------------------
def test_words_inside_mathematics_are_escaped_text():
    assert latex(Word("cat")) == r"\text{cat}"
    assert latex(Word("a_b {x}")) == r"\text{a\_b \{x\}}"
    assert latex(sp.Dict({Word("cat"): 2})) == r"\left\{ \text{cat} : 2\right\}"


def test_approx_maxof_and_friends():
    from derive.stepforms import ArgMax, Expectation, Grad, Norm, Variance

    a = approx(sp.Rational(1, 3))
    assert isinstance(a, Approx) and latex(a) == r"\approx 0.333333" and float(a) == 1 / 3
    assert latex(MaxOf(2, 4, 2, 1)) == r"\max\left(2, 4, 2, 1\right)"  # order and repeats kept
    j = sp.Symbol("j")
    assert latex(ArgMax(sp.Indexed("S", 1, j), j)) == r"\arg\max_{j} {S}_{1,j}"
    y = sp.Symbol("y_train")
    assert latex(Expectation(y)) == r"\mathbb{E}\left[y_{\mathrm{train}}\right]"
    assert latex(Expectation(y) ** 2) == r"{\mathbb{E}\left[y_{\mathrm{train}}\right]}^{2}"
    assert latex(Variance(sp.Symbol("x"))) == r"\operatorname{Var}\left[x\right]"
    assert latex(Norm(sp.Symbol("W"))) == r"\left\|W\right\|"
    assert latex(Grad(sp.Symbol("f"), sp.Symbol("theta_0"))) == r"\nabla f\left(\theta_{0}\right)"
    assert latex(sp.Derivative(sp.Symbol("f"), sp.Symbol("x"))) == r"\frac{\partial f}{\partial x}"


def test_names_a_worked_step_uses():
    cases = {"xhat_1_2": r"\hat{x}_{1,2}", "S_1_j": "S_{1,j}", "muhat_1": r"\hat{\mu}_{1}",
             "eta_min": r"\eta_{\mathrm{min}}", "thetatilde_2": r"\tilde{\theta}_{2}",
             "sigma_w^2": r"\sigma^{2}_{w}", "K^(1)": "K^{(1)}"}
    for name, tex in cases.items():
        assert latex(sp.Symbol(name)) == tex, name
    x = sp.Symbol("x")
    assert latex(sp.cos(x)) == r"\cos{\left(x \right)}"  # a function name stays SymPy's
    assert latex(sp.Function("phiprime")(x)) == r"{\phi}'{\left(x \right)}"
