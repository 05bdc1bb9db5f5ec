"""Printed = computed for worked steps (derive.step_values): the numbers along every
worked step's chain agree, for every bundled worked example, and a step whose printed
arithmetic does not give the value printed after it stops the report."""
from __future__ import annotations

import glob
import os

import pytest
import sympy as sp

import reports
from derive.problem import solve
from derive.step_values import check_step_values, number
from derive.stepforms import Approx, MaxOf, Word, plus, times
from derive.tensor.printed import PrintedFormError

HERE = os.path.dirname(os.path.abspath(__file__))
WORKED = sorted(glob.glob(os.path.join(HERE, "..", "examples", "worked", "*.yaml")))


def _all(path):
    got = solve(path)
    return got if isinstance(got, list) else [got]


def test_the_worked_examples_are_found():
    assert len(WORKED) >= 20


@pytest.mark.parametrize("path", WORKED, ids=os.path.basename)
def test_every_worked_example_adds_up(path):
    counts = [check_step_values(d) for d in _all(path)]
    assert all(c["checked"] >= 0 for c in counts)


def test_the_numeric_sides_compared_over_all_worked_examples():
    checked = sum(check_step_values(d)["checked"] for p in WORKED for d in _all(p))
    assert checked >= 300  # 301 pairs when written: optimizers, conv, perceptron, ...


def test_what_counts_as_a_number():
    assert float(number(times(2, plus(3, 4)))) == 14.0
    assert float(number(Approx(sp.Float("0.25")))) == 0.25
    assert float(number(MaxOf(2, 5, 3))) == 5.0
    assert [float(v) for v in number(sp.Matrix([[1, plus(1, 1)]]))] == [1.0, 2.0]
    assert float(number(100)) == 100.0
    for symbolic in (sp.Symbol("x") + 1, Word("cat"), sp.Derivative(sp.Symbol("a"),
                                                                    sp.Symbol("b"))):
        assert number(symbolic) is None


def _optimizer():
    [d] = _all(os.path.join(HERE, "..", "examples", "worked", "optimizer.yaml"))[:1]
    return d


def test_a_step_that_does_not_add_up_stops_the_report():
    d = _optimizer()
    step = next(st for sec in d.sections for st in sec.steps
                if len([s for s in st.rhs if number(s) is not None]) >= 2)
    last = number(step.rhs[-1])
    step.rhs[-1] = last * 2 if getattr(last, "is_Matrix", False) else last + 1
    with pytest.raises(PrintedFormError, match="does not add up") as err:
        reports.render(d, "md")
    assert d.title in str(err.value) and "\n" not in str(err.value)


def test_a_matrix_side_of_the_wrong_shape_is_caught():
    d = _optimizer()
    step = next(st for sec in d.sections for st in sec.steps
                if any(getattr(number(s), "is_Matrix", False) for s in st.rhs[:-1]))
    step.rhs[-1] = sp.Matrix([[1, 2, 3]])
    with pytest.raises(PrintedFormError, match="side equals"):
        check_step_values(d)
