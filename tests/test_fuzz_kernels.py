"""Compiled forward+VJP kernels of random compositions against derive.evaluate.

Each case compiles a kernel (seconds), so the fast profile runs one per family; the long
profile (--fuzz-long, bench/fuzz.py --kernels N) many more.
"""
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fuzzgen as fg
import fuzzgen_tensor as ftn

pytest.importorskip("numba")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("kernel_cache")]


@pytest.mark.parametrize("family", list(ftn.FAMILIES))
@settings(max_examples=fg.examples(1, factor=20))
@given(data=st.data())
def test_kernels_of_random_compositions_equal_evaluate(family, data):
    case = data.draw(fg.drawn(ftn.tensor_case, family))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fg.expect_ok(ftn.check_kernel(case))
