"""The convolution, pooling, recurrent, attention and graph layers in one table, each row
checked three ways (as tests/test_tensor_table.py does for the dense layers):

1. float64 central finite differences along random directions;
2. PyTorch autograd, where torch is installed;
3. the derived VJP (scatters included), scalarised on a tiny instance, against
   ``sympy.diff`` of the scalarised forward pass.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import sympy as sp

import derive.tensor as dt
from derive.tensor.attention import PositionalEncoding, SelfAttention
from derive.tensor.conv import Conv2d
from derive.tensor.graphnet import MessagePassing
from derive.tensor.pool import AvgPool2d, Flatten, GlobalAvgPool, MaxPool2d
from derive.tensor.recurrent import (RNN, Embedding, GRUCell, LSTMCell, RNNCell,
                                     TemporalAffine, TemporalSoftmaxLoss)
from derive.tensor.scalar import entry_symbol
from derive.tensor.scatter import scalarise_program
from test_tensor_table import Row, _F, check_finite_differences, check_torch, instance

SIZES = {"B": 2, "C": 2, "F": 3, "H": 5, "W": 6, "d": 3, "h": 2, "T": 3, "V": 5, "D": 3,
         "M": 2, "d_k": 2, "d_h": 2, "d_m": 3}
TINY = {"B": 1, "C": 1, "F": 2, "H": 4, "W": 4, "d": 2, "h": 2, "T": 2, "V": 3, "D": 2,
        "M": 2, "d_k": 1, "d_h": 2, "d_m": 2}
ADJ = [[0, 1, 1], [1, 0, 0], [1, 1, 0]]


def _mask(rng, shape):
    return (rng.random(shape) > 0.3).astype(float)


def _cat(t, prefix, gates):
    import torch

    return torch.cat([t[f"{prefix}{q}"] for q in gates])


def torch_rnn(t, layer):
    h, out = t["h0"] if "h0" in t else 0 * t["x"][:, 0] @ t["W_xh"].T, []
    for s in range(t["x"].shape[1]):
        pre = h @ t["W_hh"].T + t["x"][:, s] @ t["W_xh"].T + t.get("b", 0)
        h = pre.tanh() if layer.nonlinearity == "tanh" else pre
        out.append(h)
    return out[-1] if layer.output == "last" else __import__("torch").stack(out, 1)


def torch_lstm(t, layer):
    import torch

    hs = t["h"].shape[1]
    a = t["x"] @ _cat(t, "W_x", "ifog").T + t["h"] @ _cat(t, "W_h", "ifog").T \
        + _cat(t, "b_", "ifog")
    i, f, o = (a[:, k * hs:(k + 1) * hs].sigmoid() for k in range(3))
    c = f * t["c"] + i * a[:, 3 * hs:].tanh()
    return torch.stack([o * c.tanh(), c], 1)


def torch_gru(t, layer):
    def gate(q, h):
        return t["x"] @ t[f"W_x{q}"].T + h @ t[f"W_h{q}"].T + t[f"b_{q}"]

    r, z = gate("r", t["h"]).sigmoid(), gate("z", t["h"]).sigmoid()
    return z * t["h"] + (1 - z) * gate("h", r * t["h"]).tanh()


def torch_attention(t, layer):
    B, T, _ = t["x"].shape
    H, dk = layer.heads, t["W_q"].shape[0] // layer.heads
    q, k, v = (
        (t["x"] @ t[f"W_{c}"].T).view(B, T, H, dk).transpose(1, 2) for c in "qkv")
    o = (q @ k.transpose(-1, -2) / dk ** 0.5).softmax(-1) @ v
    return o[:, 0] if H == 1 else o.transpose(1, 2).reshape(B, T, H * dk) @ t["W_o"].T


def torch_messages(t, layer):
    import torch

    N = layer.nodes
    m = t["m"] if "m" in t else t["s"][None].expand(N, N, t["s"].shape[1])
    u = torch.tanh(m @ t["W2"].T)
    A = t["A"]
    if layer.aggregation == "max":
        agg = torch.where(A[..., None] > 0, u, torch.tensor(-np.inf, dtype=u.dtype)).max(1)[0]
    else:
        agg = (A[..., None] * u).sum(1) / (t["n"][:, None] if layer.aggregation == "mean" else 1)
    return t["s"] + agg @ t["W1"].T


def torch_positional(t, layer):
    import torch

    _, T, d = t["x"].shape
    pos, i = torch.arange(T)[:, None], torch.arange(d)[None, :]
    ang = pos / 10000 ** (2 * (i // 2) / d)
    return t["x"] + torch.where(i % 2 == 0, ang.sin(), ang.cos())


def torch_temporal_loss(t, layer):
    lp = t["x"].log_softmax(-1)
    picked = lp.gather(2, t["y"][..., None])[..., 0]
    return -(picked * t["mask"]).sum() / t["x"].shape[0]


ROWS = [
    Row("conv2d_s2_p1", lambda: Conv2d(stride=2, padding=1),
        lambda t, _: _F().conv2d(t["x"], t["K"], t["b"], stride=2, padding=1)),
    Row("conv2d_k2_nobias", lambda: Conv2d(kernel_size=2, bias=False),
        lambda t, _: _F().conv2d(t["x"], t["K"])),
    Row("conv2d_circular", lambda: Conv2d(padding=1, padding_mode="circular"),
        lambda t, _: _F().conv2d(_F().pad(t["x"], (1, 1, 1, 1), mode="circular"), t["K"],
                                 t["b"])),
    Row("maxpool2d", lambda: MaxPool2d(2), lambda t, _: _F().max_pool2d(t["x"], 2)),
    Row("maxpool2d_s2_p1", lambda: MaxPool2d(3, stride=2, padding=1),
        lambda t, _: _F().max_pool2d(t["x"], 3, 2, 1)),
    Row("avgpool2d_s2_p1", lambda: AvgPool2d(3, stride=2, padding=1),
        lambda t, _: _F().avg_pool2d(t["x"], 3, 2, 1)),
    Row("global_avgpool", lambda: GlobalAvgPool(), lambda t, _: t["x"].mean((2, 3))),
    Row("flatten", lambda: Flatten(), lambda t, _: t["x"].flatten(1)),
    Row("rnn_cell", lambda: RNNCell(),
        lambda t, _: (t["h"] @ t["W_hh"].T + t["x"] @ t["W_xh"].T + t["b"]).tanh()),
    Row("rnn_T3", lambda: RNN(steps=3), torch_rnn),
    Row("rnn_T2_linear_last", lambda: RNN(steps=2, nonlinearity="identity", output="last"),
        torch_rnn),
    Row("rnn_T3_from_zeros", lambda: RNN(steps=3, h0="zeros"), torch_rnn),
    Row("lstm_cell", lambda: LSTMCell(), torch_lstm),
    Row("gru_cell", lambda: GRUCell(), torch_gru),
    Row("embedding", lambda: Embedding(), lambda t, _: t["W"][t["w"]]),
    Row("temporal_affine", lambda: TemporalAffine(),
        lambda t, _: t["x"] @ t["W"].T + t["b"]),
    Row("temporal_softmax_loss", lambda: TemporalSoftmaxLoss(), torch_temporal_loss,
        {"mask": _mask}),
    Row("self_attention", lambda: SelfAttention(), torch_attention),
    Row("multihead_attention", lambda: SelfAttention(heads=2), torch_attention),
    Row("positional_encoding", lambda: PositionalEncoding(), torch_positional),
    Row("message_passing_mean", lambda: MessagePassing(ADJ), torch_messages),
    Row("message_passing_max_states",
        lambda: MessagePassing(ADJ, aggregation="max", messages="states"), torch_messages),
]


@lru_cache(maxsize=None)
def program_of(name):
    row = next(r for r in ROWS if r.name == name)
    layer = row.make()
    return layer, dt.program(layer)


def setup(row, sizes=SIZES, seed=0):
    layer, program = program_of(row.name)
    values = instance(program, sizes, row, seed)
    out, _ = dt.evaluate(program, values)
    upstream = np.random.default_rng(seed + 1).normal(size=np.shape(out))
    return layer, program, values, upstream


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_finite_differences(row):
    _, program, values, upstream = setup(row)
    out, grads = dt.evaluate(program, values, upstream=upstream)
    assert grads, "no gradient was derived"
    check_finite_differences(program, values, upstream, grads)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_torch_autograd(row):
    torch = pytest.importorskip("torch")
    layer, program, values, upstream = setup(row, seed=1)
    out, grads = dt.evaluate(program, values, upstream=upstream)
    check_torch(torch, row, layer, program, values, upstream, out, grads)


def fixed_leaves(program, values):
    """Values that stay numbers when scalarising: labels, given data (as exact rationals),
    integer routing (argmax positions, which cannot be decided on symbols)."""
    arrays = program.run(values)
    fixed = {k: v for k, v in values.items() if program.tensors[k].dtype == "int"
             or program.tensors[k].role == "mask"}
    fixed.update(getattr(program, "given", {}))
    fixed.update({k: arrays[k] for k, info in program.tensors.items()
                  if info.role == "node" and info.dtype == "int"})
    exact = np.vectorize(lambda v: sp.nsimplify(float(v)), otypes=[object])
    return {k: (v if np.asarray(v).dtype.kind == "i" else exact(v)) for k, v in fixed.items()}


def agree(a, b, symbols, rng, points=2):
    """a == b at random points in 30-digit arithmetic (symbolic expressions of nested
    tanh/exp are too large for simplify or exact evalf to be quick; two points decide)."""
    diff = sp.sympify(a - b)
    if diff == 0:
        return True
    for _ in range(points):
        point = {s: sp.Float(float(rng.uniform(-1, 1)), 30) for s in symbols}
        scale = 1 + abs(complex(sp.sympify(a).xreplace(point)))
        if abs(complex(diff.xreplace(point))) > 1e-20 * scale:
            return False
    return True


@pytest.mark.parametrize("row", [r for r in ROWS if r.symbolic], ids=lambda r: r.name)
def test_symbolic_agreement(row):
    _, program, values, _ = setup(row, TINY, seed=2)
    arrays = scalarise_program(program, TINY, leaves=fixed_leaves(program, values))
    loss = sp.Add(*[s * o for s, o in zip(np.ravel(arrays[program.seed]),
                                          np.ravel(arrays[program.output]))])
    symbols = sorted(loss.free_symbols, key=str)
    rng = np.random.default_rng(0)
    checked = 0
    for w, bar in program.grads.items():
        derived = arrays[bar]
        for idx in np.ndindex(derived.shape):
            ref = sp.diff(loss, entry_symbol(w, idx))
            assert agree(ref, derived[idx], symbols, rng), (w, idx)
            checked += 1
    assert checked > 0


def test_every_catalogue_layer_is_in_the_table():
    from derive.tensor.catalog4 import layers4

    made = {type(r.make()).__name__ for r in ROWS}
    forward_only = {"ArgmaxAttention"}  # no gradient: checked in test_tensor4_layers
    assert {cls.__name__ for cls in layers4().values()} - forward_only <= made
