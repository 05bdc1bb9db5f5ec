"""Random scalar graphs through derive.grad and problem specs, against mpmath.

Every documented function (exp log sqrt sigmoid tanh relu max min abs sin cos softplus)
heads some graphs; graphs are given as one expression, as ``nodes:`` assignments and as a
problem mapping (through YAML), with exact values (ints, "p/q", radicals) or floats. The
forward value and every gradient are compared with a 40-digit mpmath central difference
of the same tree (tests/fuzzgen.py evaluates it independently of derivekit), and with
torch's autograd where torch is installed. Points outside the real domain must be refused
with a one-line DeriveError; kinks must follow the stated conventions.

Fast profile by default; ``pytest --fuzz-long`` (or DERIVEKIT_FUZZ=long) for many more
cases, and bench/fuzz.py for the long runner.
"""
import importlib.util

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fuzzgen as fg
import fuzzgen_scalar as fs
import fuzzgen_special as fsp
import fuzzgen_terms as ft

TORCH = importlib.util.find_spec("torch") is not None


def cases(**kw):
    return fg.drawn(fs.scalar_case, **kw)


@pytest.mark.parametrize("function", ft.DOCUMENTED)
@settings(max_examples=fg.examples(2))
@given(data=st.data())
def test_gradients_of_random_graphs_match_mpmath(function, data):
    case = data.draw(cases(require=function))
    fg.expect_ok(fs.check_scalar(case, use_torch=TORCH))


@settings(max_examples=fg.examples(3))
@given(case=cases(ops=[op.name for op in ft.OPS]))
def test_a_variable_that_cancels_has_gradient_zero(case):
    # "x/x + y" --wrt x,y: x is still asked for, and its gradient is 0 where it cancels
    fg.expect_ok(fs.check_scalar(case, use_torch=TORCH))


UNARY = [op.name for op in ft.UNARY]


@settings(max_examples=fg.examples(12))
@given(data=st.data())
def test_compositions_of_two_functions_at_exact_points(data):
    # f(g(x)) at x = p/q: where exact simplification once turned sigmoid(sin(-21/8))'s
    # gradient into 0
    pair = [data.draw(st.sampled_from(UNARY)), data.draw(st.sampled_from(UNARY))]
    case = data.draw(cases(chain_of=pair, mode="exact", form="expression"))
    fg.expect_ok(fs.check_scalar(case, use_torch=TORCH))


@pytest.mark.parametrize("info", list(fsp.OUT_OF_DOMAIN))
@settings(max_examples=fg.examples(3))
@given(data=st.data())
def test_points_outside_the_real_domain_are_refused(info, data):
    case = data.draw(fg.drawn(fsp.ood_case, info=info))
    fg.expect_ok(fsp.check_out_of_domain(case))


@pytest.mark.parametrize("info", list(fsp.KINKS))
@settings(max_examples=fg.examples(3))
@given(data=st.data())
def test_kinks_follow_the_stated_conventions(info, data):
    case = data.draw(fg.drawn(fsp.kink_case, info=info))
    fg.expect_ok(fsp.check_kink(case))
