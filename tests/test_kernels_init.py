"""kernels.init: seeds (int or Generator) reproduce, the layout ([out, in] as PyTorch,
[in, out] as needle) decides the fans and the drawing order, the scales are PyTorch's and
needle's, and needle's draws are reproduced bit for bit from a RandomState."""
from __future__ import annotations

import math

import numpy as np
import pytest

import kernels
from derive.errors import InputError
from kernels import init

DRAWN = ["uniform", "normal", "xavier_uniform", "xavier_normal", "kaiming_uniform",
         "kaiming_normal"]


def test_exported_from_kernels():
    assert "init" in kernels.__all__ and kernels.init is init
    assert kernels.init.kaiming_uniform is init.SCHEMES["he_uniform"]


@pytest.mark.parametrize("name", DRAWN)
def test_an_int_seed_or_a_generator_reproduces(name):
    f = init.scheme(name)
    a = f((6, 5), 3)
    assert np.array_equal(a, f((6, 5), 3))
    assert np.array_equal(a, f((6, 5), np.random.default_rng(3)))  # an int is default_rng's
    assert not np.array_equal(a, f((6, 5), 4))
    rng = np.random.default_rng(3)
    first, second = f((6, 5), rng), f((6, 5), rng)  # a Generator goes on drawing
    assert np.array_equal(first, a) and not np.array_equal(first, second)


def test_fans_in_both_layouts():
    assert init.fans((128, 64)) == init.fans((128, 64), "torch") == (64, 128)
    assert init.fans((64, 128), "in_out") == init.fans((64, 128), "needle") == (64, 128)
    # a convolution's kernel: [out, in, k, k] in PyTorch, [k, k, in, out] in needle
    assert init.fans((8, 3, 3, 3)) == init.fans((3, 3, 3, 8), "in_out") == (27, 72)
    assert init.fans((7,), "in_out") == (7, 7) and init.fans((), "in_out") == (1, 1)


def test_fans_are_torchs():
    torch = pytest.importorskip("torch")
    for shape in [(8, 3, 3, 3), (10, 4), (5, 2, 3)]:
        w = torch.empty(*shape)
        want = torch.nn.init._calculate_fan_in_and_fan_out(w)
        assert init.fans(shape) == want
        # the same weight stored as needle stores it: kernel first, then [in, out]
        needle = tuple(shape[2:]) + (shape[1], shape[0])
        assert init.fans(needle, "in_out") == want


@pytest.mark.parametrize("name", DRAWN[2:])
def test_the_layouts_give_the_transposed_draw(name):
    """The same weight, [out, in] for PyTorch and [in, out] for needle: the same fans and
    so the same distribution, each drawn in row-major order of its own layout."""
    f = init.scheme(name)
    torch_w = f((300, 200), 5)
    needle_w = f((200, 300), 5, layout="in_out")
    assert needle_w.shape == torch_w.T.shape
    assert needle_w.std() == pytest.approx(torch_w.std(), rel=0.02)
    assert np.abs(needle_w).max() == pytest.approx(np.abs(torch_w).max(), rel=0.05)
    # the fill order is the course's: needle's rand(fan_in, fan_out) row by row
    fan_in, fan_out = 200, 300
    rng = np.random.default_rng(5)
    if name == "kaiming_uniform":
        a = math.sqrt(2) * math.sqrt(3 / fan_in)
        assert np.array_equal(needle_w, rng.uniform(-a, a, (fan_in, fan_out)))
    if name == "xavier_uniform":
        a = math.sqrt(6 / (fan_in + fan_out))
        assert np.array_equal(needle_w, rng.uniform(-a, a, (fan_in, fan_out)))
    # read in the wrong layout the fans swap: PyTorch's fan_in of [200, 300] is 300
    if name.startswith("kaiming"):
        assert f((200, 300), 5).std() == pytest.approx(math.sqrt(2 / 300), rel=0.02)
        assert needle_w.std() == pytest.approx(math.sqrt(2 / 200), rel=0.02)


# -- needle's formulas, as python/needle/init/init_initializers.py writes them --------------


def needle_rand(*shape, low=0.0, high=1.0):
    return np.random.rand(*shape) * (high - low) + low


def needle_randn(*shape, mean=0.0, std=1.0):
    return np.random.randn(*shape) * std + mean


NEEDLE = {
    "xavier_uniform": lambda fi, fo: needle_rand(
        fi, fo, low=-math.sqrt(6 / (fi + fo)), high=math.sqrt(6 / (fi + fo))),
    "xavier_normal": lambda fi, fo: needle_randn(fi, fo, std=math.sqrt(2 / (fi + fo))),
    "kaiming_uniform": lambda fi, fo: needle_rand(
        fi, fo, low=-math.sqrt(2) * math.sqrt(3 / fi), high=math.sqrt(2) * math.sqrt(3 / fi)),
    "kaiming_normal": lambda fi, fo: needle_randn(fi, fo, std=math.sqrt(2) / math.sqrt(fi)),
}


@pytest.mark.parametrize("name", NEEDLE)
def test_needles_draws_bit_for_bit(name):
    """np.random.seed(s) then needle's init.<name>(fan_in, fan_out) gives exactly what
    init.<name>((fan_in, fan_out), RandomState(s), layout="in_out") gives."""
    saved = np.random.get_state()
    try:
        np.random.seed(42)
        want = NEEDLE[name](7, 5)
    finally:
        np.random.set_state(saved)
    got = init.scheme(name)((7, 5), np.random.RandomState(42), layout="needle")
    assert np.array_equal(got, want)


# -- PyTorch's scales ------------------------------------------------------------------------


def test_kaiming_uniform_bound_is_torchs():
    torch = pytest.importorskip("torch")
    out_f, in_f = 400, 300
    gain = torch.nn.init.calculate_gain("leaky_relu", 0)  # kaiming_uniform_'s default
    bound = gain * math.sqrt(3 / in_f)
    torch.manual_seed(0)
    t = torch.nn.init.kaiming_uniform_(torch.empty(out_f, in_f, dtype=torch.float64)).numpy()
    for ours in (init.kaiming_uniform((out_f, in_f), 0),
                 init.kaiming_uniform((in_f, out_f), 0, layout="in_out")):
        for w in (ours, t):
            assert np.abs(w).max() <= bound and np.abs(w).max() > 0.995 * bound
        assert ours.std() == pytest.approx(t.std(), rel=0.02)


@pytest.mark.parametrize("name, torch_name", [
    ("xavier_uniform", "xavier_uniform_"), ("xavier_normal", "xavier_normal_"),
    ("kaiming_normal", "kaiming_normal_"),
])
def test_scales_are_torchs(name, torch_name):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    t = getattr(torch.nn.init, torch_name)(torch.empty(16, 8, 3, 3, dtype=torch.float64))
    ours = init.scheme(name)((16, 8, 3, 3), 1)
    needle = init.scheme(name)((3, 3, 8, 16), 1, layout="in_out")
    assert ours.std() == pytest.approx(float(t.std()), rel=0.04)
    assert needle.std() == pytest.approx(float(t.std()), rel=0.04)


def test_initialise_reads_the_layout():
    shapes = {"W": (200, 300), "b": (300,)}
    torch_read = init.initialise(shapes, "kaiming_uniform", seed=2)
    needle_read = init.initialise(shapes, "kaiming_uniform", seed=2, layout="in_out")
    assert np.abs(torch_read["W"]).max() <= math.sqrt(6 / 300) < np.abs(needle_read["W"]).max()
    assert np.abs(needle_read["W"]).max() <= math.sqrt(6 / 200)
    same = init.initialise(shapes, "kaiming_uniform", seed=np.random.default_rng(2),
                           layout="in_out")
    assert np.array_equal(same["W"], needle_read["W"]) and not same["b"].any()


# -- bad input: one line naming the option -------------------------------------------------


def one_line(excinfo):
    text = str(excinfo.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("call", [
    lambda: init.kaiming_uniform((3, 2), 0, layout="io"),
    lambda: init.fans((3, 2), "row_major"),
    lambda: init.zeros((3,), layout=None),
    lambda: init.initialise({"W": (3, 2)}, layout="needles"),
])
def test_an_unknown_layout_names_the_option(call):
    with pytest.raises(InputError) as e:
        call()
    assert "option 'layout'" in one_line(e) and "'in_out'" in one_line(e)


@pytest.mark.parametrize("rng", ["0", 1.5, True, -1, [1, 2]])
def test_a_bad_rng_names_it(rng):
    with pytest.raises(InputError) as e:
        init.xavier_uniform((3, 2), rng)
    assert "rng is a numpy Generator or an int seed" in one_line(e)
