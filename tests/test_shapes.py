"""derive.shapes: the one place output sizes and parameter counts are computed."""
import doctest

import pytest
import sympy as sp

from derive import shapes
from derive.errors import InputError, ShapeError


def test_doctests_pass():
    failures, tried = doctest.testmod(shapes)
    assert tried >= 10 and failures == 0


@pytest.mark.parametrize("n, k, s, kwargs, expected", [
    (32, 3, 2, {"padding": 1}, 16),               # 32x32, k 3, p 1, s 2 -> 16
    (9, 3, 2, {"total_padding": 2}, 5),           # total padding 2 on 9x13 -> 5x7
    (13, 3, 2, {"total_padding": 2}, 7),
    (9, 3, 2, {"padding": 2}, 6),                 # the per-side reading of the same text
    (13, 3, 2, {"padding": 2}, 8),
    (227, 11, 4, {}, 55),                         # AlexNet conv1
    (28, 3, 1, {"padding": 1}, 28),
    (28, 2, 2, {}, 14),
    (7, 3, 1, {"dilation": 2}, 3),                # effective kernel 5
    (5, 2, 2, {"ceil_mode": True}, 3),
    (5, 2, 2, {}, 2),
])
def test_output_size(n, k, s, kwargs, expected):
    assert shapes.output_size(n, k, s, **kwargs) == expected


def test_output_size_matches_torch_conv():
    torch = pytest.importorskip("torch")
    for n, k, s, p in [(9, 3, 2, 1), (10, 4, 3, 2), (32, 5, 1, 0), (7, 7, 1, 3)]:
        conv = torch.nn.Conv2d(1, 1, k, stride=s, padding=p)
        out = conv(torch.zeros(1, 1, n, n + 1))
        assert tuple(out.shape[2:]) == (shapes.output_size(n, k, s, p),
                                        shapes.output_size(n + 1, k, s, p))


def test_symbolic_size_gives_a_floor():
    n = sp.Symbol("n", positive=True, integer=True)
    out = shapes.output_size(n, 3, stride=2, padding=1)
    assert out.subs(n, 32) == 16 and out.has(sp.floor)


@pytest.mark.parametrize("call, error", [
    (lambda: shapes.output_size(0, 3), ShapeError),
    (lambda: shapes.output_size(5, -1), ShapeError),
    (lambda: shapes.output_size(5, 3, stride=0), ShapeError),
    (lambda: shapes.output_size(2, 5), ShapeError),          # window larger than input
    (lambda: shapes.output_size(5, 3, padding=1, total_padding=2), InputError),
    (lambda: shapes.output_size(5, 3, padding=-1), ShapeError),
    (lambda: shapes.output_size(5.5, 3), InputError),
    (lambda: shapes.linear_params(0, 3), ShapeError),
    (lambda: shapes.conv_params(3, 4, 3, groups=2), ShapeError),
    (lambda: shapes.recurrent_params("cnn", 3, 4), InputError),
    (lambda: shapes.recurrent_params("lstm", 3, 4, bias_vectors=3), InputError),
])
def test_bad_sizes_raise_one_line(call, error):
    with pytest.raises(error) as info:
        call()
    assert "\n" not in str(info.value)


def test_published_parameter_counts():
    assert sum(shapes.linear_params(a, b) for a, b in [(2, 1024), (1024, 512), (512, 3)]) \
        == 529411
    assert shapes.conv_params(3, 96, 11) == 34944
    assert [shapes.conv_params(1, 10, 3), shapes.conv_params(10, 10, 3),
            shapes.linear_params(490, 3)] == [100, 910, 1473]
    assert shapes.numel((10, 7, 7)) == 490


def test_parameter_counts_match_torch():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    def count(m):
        return sum(p.numel() for p in m.parameters())

    assert count(nn.Linear(7, 5)) == shapes.linear_params(7, 5)
    assert count(nn.Linear(7, 5, bias=False)) == shapes.linear_params(7, 5, bias=False)
    assert count(nn.Conv2d(6, 4, (3, 5), groups=2)) == shapes.conv_params(6, 4, (3, 5), groups=2)
    assert count(nn.Conv1d(3, 8, 4)) == shapes.conv_params(3, 8, (4,))
    for cell, module in (("rnn", nn.RNN), ("gru", nn.GRU), ("lstm", nn.LSTM)):
        assert count(module(10, 20)) == shapes.recurrent_params(cell, 10, 20, bias_vectors=2)
    assert count(nn.Embedding(100, 16)) == shapes.embedding_params(100, 16)
    assert count(nn.BatchNorm2d(12)) == shapes.norm_params(12)
    assert count(nn.LayerNorm(12)) == shapes.norm_params(12)


def test_textbook_lstm_count_uses_one_bias_per_gate():
    # 4 * (h (i + h) + h), the count in Keras and most course notes
    assert shapes.recurrent_params("lstm", 10, 20) == 4 * (20 * 30 + 20)
