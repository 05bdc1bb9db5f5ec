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


@pytest.mark.parametrize("family", list(ftn.FAMILIES))
@settings(max_examples=fg.examples(6))
@given(data=st.data())
def test_vjps_of_random_compositions_match_finite_differences_and_torch(family, data):
    case = data.draw(fg.drawn(ftn.tensor_case, family))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf * 0 inside Step's VJP
        fg.expect_ok(ftn.check_tensor(case, use_torch=TORCH))


# -- the two cases the long profile flagged (bench/RESULTS.md, seed 202) -------------------
def _tensor_148():
    """Circular-padded conv -> ReLU -> max-pool -> linear -> sigmoid -> BCE; at these
    values the first example's logit is -44.6 (sigmoid 4e-20)."""
    S = ftn.Spec
    return ftn.TensorCase("conv", [
        S("Conv2d", (2, 3, 2), {"stride": 1, "padding": 1, "padding_mode": "circular",
                                "bias": False}),
        S("ReLU"), S("MaxPool2d", (2,), {"stride": 1}), S("Flatten"), S("Linear", (72, 1)),
        S("Sigmoid")], S("BCE"), input_shape=(2, 6, 4), batch=2, seed=280, sizes={"B": 2})


def _tensor_586():
    """Conv -> ELU -> linear -> sigmoid -> BCE; at these values a logit is 30.4."""
    S = ftn.Spec
    return ftn.TensorCase("conv", [
        S("Conv2d", (1, 1, 2), {"stride": 1, "padding": 1, "padding_mode": "zeros",
                                "bias": False}),
        S("ELU", kw={"alpha": 1.0}), S("Flatten"), S("Linear", (30, 3)), S("Sigmoid")],
        S("BCE"), input_shape=(1, 4, 5), batch=3, seed=517409, sizes={"B": 3})


def _raw(case):
    """(layer, program, row, values) as drawn, before the logits are moderated."""
    import derive as dt
    from test_tensor_table import Row, instance

    layer = case.make()
    program = dt.program(layer)
    row = Row("composition", case.make, None, case.domain())
    row.torch = ftn.torch_twin(case, program)
    return layer, program, row, instance(program, case.sizes, row, case.seed)


@pytest.mark.skipif(not TORCH, reason="needs torch")
def test_torch_twin_of_bce_differentiates_its_forward_where_the_sigmoid_saturates():
    # F.binary_cross_entropy's backward divides by max(p (1 - p), 1e-12): at p = 4e-20 its
    # x-gradient was 4e-8 of derivekit's 0.6836, which central differences confirm
    import numpy as np
    import torch

    import derive as dt
    from test_tensor_table import check_torch

    layer, program, row, values = _raw(_tensor_148())
    p = program.run(values, backward=False)["a2"]
    assert (p * (1 - p)).min() < 1e-12  # the values still saturate the sigmoid
    upstream = np.random.default_rng(281).normal(size=())
    out, grads = dt.evaluate(program, values, upstream=upstream)

    def loss(x):
        return float(dt.evaluate(program, {**values, "x": x})[0])

    e, h = np.zeros_like(values["x"]), 1e-4
    e[0, 1, 2, 0] = h
    numeric = upstream * (loss(values["x"] + e) - loss(values["x"] - e)) / (2 * h)
    assert abs(grads["x"][0, 1, 2, 0] - numeric) < 1e-8
    check_torch(torch, row, layer, program, values, upstream, out, grads)


def test_logits_in_front_of_bce_are_moderated_and_only_there():
    import numpy as np

    for case, logit in ((_tensor_148(), 44.6), (_tensor_586(), 30.4)):
        _, program, _, values = _raw(case)
        assert np.abs(program.run(values, backward=False)["z2"]).max() > logit - 0.1
        moderated = ftn.moderate_logits(case, program, values)
        assert np.abs(program.run(moderated, backward=False)["z2"]).max() <= ftn.LOGIT_BOUND
        assert moderated.keys() == values.keys()
        assert [k for k in values if not np.array_equal(values[k], moderated[k])] == \
            ["W2", "b2"]
        again = ftn.moderate_logits(case, program, moderated)  # within the bound: untouched
        assert all(np.array_equal(again[k], moderated[k]) for k in values)


@pytest.mark.parametrize("make", [_tensor_148, _tensor_586], ids=["tensor148", "tensor586"])
def test_flagged_cases_of_the_long_profile_pass(make):
    # tensor:586 failed its finite differences (a staircase at a logit of 30.4),
    # tensor:148 the torch comparison
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fg.expect_ok(ftn.check_tensor(make(), use_torch=TORCH))
