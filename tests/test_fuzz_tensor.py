"""Random tensor compositions from the layer catalogue against finite differences and torch.

Dense Sequentials (every activation, norms and Dropout in train and eval mode, losses,
penalties), conv nets (stride, padding, circular padding, pooling) and single rows of the
layer tables at random sizes (tests/fuzzgen_tensor.py). ``derive.evaluate``'s VJPs are
checked with the tables' own helpers: float64 central differences along random
directions and PyTorch's autograd through a twin of the network.
"""
import importlib.util
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fuzzgen as fg
import fuzzgen_tensor as ftn

TORCH = importlib.util.find_spec("torch") is not None


@st.composite
def cases(draw, family):
    return ftn.tensor_case(fg.DrawSource(draw), family)


@pytest.mark.parametrize("family", list(ftn.FAMILIES))
@settings(max_examples=fg.examples(6))
@given(data=st.data())
def test_vjps_of_random_compositions_match_finite_differences_and_torch(family, data):
    case = data.draw(cases(family))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf * 0 inside Step's VJP
        fg.expect_ok(ftn.check_tensor(case, use_torch=TORCH))
