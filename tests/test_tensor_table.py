"""One table of every layer, each row checked three ways (JAX/micrograd style).

1. float64 central finite differences along a random direction (JAX's check_vjp:
   <t, vjp(c)> against <numeric_jvp(t), c>), with an input domain per row;
2. PyTorch autograd, where torch is installed (skipped cleanly otherwise);
3. symbolic agreement: the derived VJP (scatters included), scalarised on a tiny
   instance, against ``sympy.diff`` of the scalarised forward pass.

Dense layers, activations, losses, penalties and norms come first; then convolution,
pooling, recurrent, attention and graph layers, which read through computed indices and
run at their own sizes (``SPATIAL``). Every layer of the catalogue has a row.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np
import pytest
import sympy as sp

import derive as dt
from derive.errors import NotDifferentiableError
from derive.functions import ACTIVATIONS as FUNCTION_ACTIVATIONS
from derive.layers.attention import PositionalEncoding, SelfAttention
from derive.layers.conv import Conv2d
from derive.layers.graphnet import MessagePassing
from derive.layers.pool import AvgPool2d, Flatten, GlobalAvgPool, MaxPool2d
from derive.layers.recurrent import (RNN, Embedding, GRUCell, LSTMCell, RNNCell,
                                     TemporalAffine, TemporalSoftmaxLoss)
from derive.layers.sequences import GRU, LSTM
from derive.tensor.scalar import entry_symbol
from derive.tensor.scatter import scalarise_program

SIZES = {"B": 3, "d": 4, "h": 2, "C": 3, "m": 2, "n": 3, "p": 2}
TINY = {"B": 2, "d": 2, "h": 2, "C": 3, "m": 2, "n": 2, "p": 2}
SPATIAL = {"B": 2, "C": 2, "F": 3, "H": 5, "W": 6, "d": 3, "h": 2, "T": 3, "V": 5, "D": 3,
           "M": 2, "d_k": 2, "d_h": 2, "d_m": 3}
SPATIAL_TINY = {"B": 1, "C": 1, "F": 2, "H": 4, "W": 4, "d": 2, "h": 2, "T": 2, "V": 3,
                "D": 2, "M": 2, "d_k": 1, "d_h": 2, "d_m": 2}
ADJ = [[0, 1, 1], [1, 0, 0], [1, 1, 0]]


def away_from_zero(rng, shape, gap=0.1):
    """Normal values with |x| >= gap (kinks of ReLU, |x|, step sit at 0)."""
    x = rng.normal(size=shape)
    return np.where(np.abs(x) < gap, np.sign(x + 1e-12) * gap + x, x)


@dataclass
class Row:
    name: str
    make: Callable
    torch: Callable | None = None  # (dict of torch tensors, layer) -> output tensor
    domain: dict = field(default_factory=dict)  # tensor name -> rng, shape -> array
    symbolic: bool = True
    sizes: dict = field(default_factory=lambda: SIZES)  # dimension -> size (checks 1, 2)
    tiny: dict = field(default_factory=lambda: TINY)  # dimension -> size (check 3)
    fixed: dict = field(default_factory=dict)  # tensor -> exact value kept in check 3


def _F():
    import torch.nn.functional as F

    return F


DENSE = [
    Row("linear", lambda: dt.Linear(), lambda t, layer: _F().linear(t["x"], t["W"], t["b"])),
    Row("linear_nobias", lambda: dt.Linear(bias=False),
        lambda t, layer: _F().linear(t["x"], t["W"])),
    Row("matmul", lambda: dt.MatMul(), lambda t, layer: t["A"] @ t["B"]),
    Row("add", lambda: dt.AddLayer(), lambda t, layer: t["x"] + t["y"]),
    Row("mul", lambda: dt.MulLayer(), lambda t, layer: t["x"] * t["y"]),
    Row("sigmoid", lambda: dt.Sigmoid(), lambda t, layer: t["x"].sigmoid()),
    Row("tanh", lambda: dt.Tanh(), lambda t, layer: t["x"].tanh()),
    Row("relu", lambda: dt.ReLU(), lambda t, layer: t["x"].relu(), {"x": away_from_zero}),
    Row("leaky_relu", lambda: dt.LeakyReLU(k=0.1),
        lambda t, layer: _F().leaky_relu(t["x"], 0.1), {"x": away_from_zero}),
    Row("max(-kx, x)", lambda: dt.LeakyReLU(k=-0.5),
        lambda t, layer: _F().leaky_relu(t["x"], -0.5), {"x": away_from_zero}),
    Row("gelu", lambda: dt.GELU(), lambda t, layer: _F().gelu(t["x"], approximate="tanh")),
    Row("elu", lambda: dt.ELU(alpha=1.5), lambda t, layer: _F().elu(t["x"], 1.5),
        {"x": away_from_zero}),
    Row("softplus", lambda: dt.Softplus(), lambda t, layer: _F().softplus(t["x"])),
    Row("step", lambda: dt.Step(), lambda t, layer: (t["x"] > 0).double() + 0 * t["x"],
        {"x": away_from_zero}),
    Row("softmax", lambda: dt.Softmax(), lambda t, layer: t["x"].softmax(-1)),
    Row("log_softmax", lambda: dt.LogSoftmax(), lambda t, layer: t["x"].log_softmax(-1)),
    Row("mse", lambda: dt.MSE(), lambda t, layer: _F().mse_loss(t["z"], t["y"])),
    Row("bce", lambda: dt.BCE(), lambda t, layer: _F().binary_cross_entropy(t["z"], t["y"]),
        {"z": lambda r, s: r.uniform(0.1, 0.9, s), "y": lambda r, s: r.uniform(0, 1, s)},
        fixed={"y": np.array([[sp.Rational(1, 3), 1, 0], [0, sp.Rational(1, 2), 1]],
                             dtype=object)}),
    Row("bce_logits", lambda: dt.BCEWithLogits(),
        lambda t, layer: _F().binary_cross_entropy_with_logits(t["z"], t["y"]),
        {"y": lambda r, s: r.uniform(0, 1, s)}),
    Row("cross_entropy", lambda: dt.CrossEntropy(),
        lambda t, layer: _F().cross_entropy(t["z"], t["y"])),
    Row("hinge", lambda: dt.Hinge(margin=1),
        lambda t, layer: _F().multi_margin_loss(t["z"], t["y"], margin=1.0) * t["z"].shape[1],
        {"z": lambda r, s: np.round(r.normal(size=s) * 4) / 4 + 0.05 * np.arange(s[1])}),
    Row("l1", lambda: dt.L1(0.3), lambda t, layer: 0.3 * t["w"].abs().sum(),
        {"w": away_from_zero}),
    Row("l2", lambda: dt.L2(0.3), lambda t, layer: 0.15 * (t["w"] ** 2).sum()),
    Row("elastic_net", lambda: dt.ElasticNet(0.2, 0.4),
        lambda t, layer: 0.2 * t["w"].abs().sum() + 0.2 * (t["w"] ** 2).sum(),
        {"w": away_from_zero}),
    Row("layernorm", lambda: dt.LayerNorm(),
        lambda t, layer: _F().layer_norm(t["x"], (t["x"].shape[1],), t["gamma"],
                                         t["beta"], 1e-5)),
    Row("batchnorm_train", lambda: dt.BatchNorm(momentum=0.1),
        lambda t, layer: _F().batch_norm(
            t["x"], t["running_mean"].detach().clone(), t["running_var"].detach().clone(),
            t["gamma"], t["beta"], training=True, momentum=0.1, eps=1e-5)),
    Row("batchnorm_eval", lambda: dt.BatchNorm(train=False),
        lambda t, layer: _F().batch_norm(
            t["x"], t["running_mean"], t["running_var"], t["gamma"], t["beta"],
            training=False, eps=1e-5)),
    Row("dropout", lambda: dt.Dropout(p=0.25, seed=3),
        lambda t, layer: t["x"] * t["m"] / 0.75, fixed={"m": np.array([[1, 0], [1, 1]])}),
    Row("dropout_eval", lambda: dt.Dropout(p=0.25, train=False), lambda t, layer: t["x"] * 1.0),
    Row("mlp", lambda: dt.Sequential(dt.Linear("d", "h"), dt.Tanh(), dt.Linear("h", "C"),
                                     loss=dt.CrossEntropy()),
        lambda t, layer: _F().cross_entropy(
            torch_mlp(t), t["y"]), symbolic=False),
]


# Every activation of the function registry has a row: those not written above (a new
# function needs none written) are checked with its own torch reference, away from a kink.
_WRITTEN = {r.name for r in DENSE}
DENSE += [Row(f.name, lambda f=f: getattr(dt, f.activation)(),
              lambda t, layer, f=f: getattr(_F(), f.torch[0])(t["x"], **f.torch[1]),
              {"x": away_from_zero} if f.kink else {})
          for f in FUNCTION_ACTIVATIONS if f.name not in _WRITTEN]


def torch_mlp(t):
    return _F().linear(_F().linear(t["x"], t["W1"], t["b1"]).tanh(), t["W2"], t["b2"])


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


def torch_sequence(t, layer):
    """torch.nn.LSTM / GRU's equations, step by step, on the layer's per-gate weights."""
    import torch

    def pre(q, x, h, extra=0):
        return x @ t[f"W_x{q}"].T + (0 if h is None else h @ t[f"W_h{q}"].T) \
            + t.get(f"b_{q}", 0) + extra

    h, c, out = t.get("h0"), t.get("c0"), []
    for s in range(t["x"].shape[1]):
        x = t["x"][:, s]
        if hasattr(layer, "gate_order"):
            i, f, o = (pre(q, x, h).sigmoid() for q in "ifo")
            c = i * pre("g", x, h).tanh() + (0 if c is None else f * c)
            h = o * c.tanh()
        else:
            r, z = pre("r", x, h).sigmoid(), pre("z", x, h).sigmoid()
            if layer.reset == "before":
                cand = pre("h", x, None if h is None else r * h).tanh()
            else:
                u = (0 if h is None else h @ t["W_hh"].T) + t.get("b_hh", 0)
                cand = pre("h", x, None, r * u).tanh()
            h = (1 - z) * cand + (0 if h is None else z * h)
        out.append(h)
    return out[-1] if layer.output == "last" else torch.stack(out, 1)


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


def Spatial(*args, tiny=SPATIAL_TINY, **kw):  # noqa: N802  (a Row at spatial sizes)
    return Row(*args, sizes=SPATIAL, tiny=tiny, **kw)


#: spatial norms, scalarised: 4 entries per statistic (sympy.diff of 16 is slow)
NORM_TINY = {**SPATIAL_TINY, "B": 2, "C": 2, "H": 1, "W": 2}


SPATIAL_ROWS = [
    Spatial("conv2d_s2_p1", lambda: Conv2d(stride=2, padding=1),
        lambda t, _: _F().conv2d(t["x"], t["K"], t["b"], stride=2, padding=1)),
    Spatial("conv2d_k2_nobias", lambda: Conv2d(kernel_size=2, bias=False),
        lambda t, _: _F().conv2d(t["x"], t["K"])),
    Spatial("conv2d_circular", lambda: Conv2d(padding=1, padding_mode="circular"),
        lambda t, _: _F().conv2d(_F().pad(t["x"], (1, 1, 1, 1), mode="circular"), t["K"],
                                 t["b"])),
    Spatial("maxpool2d", lambda: MaxPool2d(2), lambda t, _: _F().max_pool2d(t["x"], 2)),
    Spatial("maxpool2d_s2_p1", lambda: MaxPool2d(3, stride=2, padding=1),
        lambda t, _: _F().max_pool2d(t["x"], 3, 2, 1)),
    Spatial("avgpool2d_s2_p1", lambda: AvgPool2d(3, stride=2, padding=1),
        lambda t, _: _F().avg_pool2d(t["x"], 3, 2, 1)),
    Spatial("global_avgpool", lambda: GlobalAvgPool(), lambda t, _: t["x"].mean((2, 3))),
    Spatial("flatten", lambda: Flatten(), lambda t, _: t["x"].flatten(1)),
    Spatial("rnn_cell", lambda: RNNCell(),
        lambda t, _: (t["h"] @ t["W_hh"].T + t["x"] @ t["W_xh"].T + t["b"]).tanh()),
    Spatial("rnn_T3", lambda: RNN(steps=3), torch_rnn),
    Spatial("rnn_T2_linear_last", lambda: RNN(steps=2, nonlinearity="identity", output="last"),
        torch_rnn),
    Spatial("rnn_T3_from_zeros", lambda: RNN(steps=3, h0="zeros"), torch_rnn),
    Spatial("lstm_cell", lambda: LSTMCell(), torch_lstm),
    Spatial("gru_cell", lambda: GRUCell(), torch_gru),
    Spatial("lstm_T2_ifgo_zeros_last", lambda: LSTM(steps=2, h0="zeros", output="last",
                                                    gate_order="ifgo"), torch_sequence),
    Spatial("gru_T2_reset_after_zeros", lambda: GRU(steps=2, reset="after", h0="zeros"),
        torch_sequence),
    Spatial("embedding", lambda: Embedding(), lambda t, _: t["W"][t["w"]]),
    Spatial("temporal_affine", lambda: TemporalAffine(),
        lambda t, _: t["x"] @ t["W"].T + t["b"]),
    Spatial("temporal_softmax_loss", lambda: TemporalSoftmaxLoss(), torch_temporal_loss,
        {"mask": _mask}),
    Spatial("self_attention", lambda: SelfAttention(), torch_attention),
    Spatial("multihead_attention", lambda: SelfAttention(heads=2), torch_attention),
    Spatial("positional_encoding", lambda: PositionalEncoding(), torch_positional),
    Spatial("message_passing_mean", lambda: MessagePassing(ADJ), torch_messages),
    Spatial("message_passing_max_states",
        lambda: MessagePassing(ADJ, aggregation="max", messages="states"), torch_messages),
    Spatial("batchnorm2d_train", lambda: dt.BatchNorm2d(momentum=0.1),
        lambda t, _: _F().batch_norm(
            t["x"], t["running_mean"].detach().clone(), t["running_var"].detach().clone(),
            t["gamma"], t["beta"], training=True, momentum=0.1, eps=1e-5),
        tiny=NORM_TINY),
    Spatial("batchnorm2d_eval", lambda: dt.BatchNorm2d(train=False),
        lambda t, _: _F().batch_norm(t["x"], t["running_mean"], t["running_var"], t["gamma"],
                                     t["beta"], training=False, eps=1e-5), tiny=NORM_TINY),
    Spatial("layernorm_chw", lambda: dt.LayerNorm(normalized_shape=("C", "H", "W")),
        lambda t, _: _F().layer_norm(t["x"], t["x"].shape[1:], t["gamma"], t["beta"], 1e-5),
        tiny=NORM_TINY),
]

ROWS = DENSE + SPATIAL_ROWS


def instance(program, sizes, row, seed=0):
    """Random values for every leaf of ``program`` (domain from the row)."""
    rng = np.random.default_rng(seed)
    values = {}
    for info in program.tensors.values():
        if info.role in ("node", "adjoint"):
            continue
        shape = [int(sp.sympify(s).subs({sp.Symbol(k, integer=True, positive=True): v
                                         for k, v in sizes.items()})) for s in info.shape]
        if info.dtype == "int":
            classes = int(sp.sympify(info.meta["classes"]).subs(
                {sp.Symbol(k, integer=True, positive=True): v for k, v in sizes.items()}))
            values[info.name] = rng.integers(0, classes, shape)
        elif info.name in row.domain:
            values[info.name] = np.asarray(row.domain[info.name](rng, shape), dtype=float)
        elif info.role == "state":
            values[info.name] = rng.uniform(0.5, 1.5, shape)
        elif info.role == "mask":
            continue
        else:
            values[info.name] = rng.normal(size=shape)
    return values


@lru_cache(maxsize=None)
def program_of(name):
    """(layer, Program) of the row called ``name``, built once."""
    row = next(r for r in ROWS if r.name == name)
    layer = row.make()
    return layer, dt.program(layer)


def setup(row, sizes=None, seed=0):
    layer, program = program_of(row.name)
    values = instance(program, sizes or row.sizes, row, seed)
    out, _ = dt.evaluate(program, values)
    upstream = np.random.default_rng(seed + 1).normal(size=np.shape(out))
    return layer, program, values, upstream


def check_finite_differences(program, values, upstream, grads):
    """<t, vjp(upstream)> against the central difference of <upstream, f> along random t."""
    rng = np.random.default_rng(7)
    for _ in range(2):
        t = {w: rng.normal(size=np.shape(values[w])) for w in grads}
        eps = 1e-6

        def f(sign):
            shifted = {k: (v + sign * eps * t[k] if k in t else v) for k, v in values.items()}
            return float(np.sum(upstream * dt.evaluate(program, shifted)[0]))

        numeric = (f(1) - f(-1)) / (2 * eps)
        analytic = sum(float(np.sum(t[w] * grads[w])) for w in grads)
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def check_torch(torch, row, layer, program, values, upstream, out, grads):
    """The row's PyTorch twin gives the same output and, by autograd, the same VJPs."""
    arrays = program.run(values, upstream)
    t = {}
    for k, v in arrays.items():
        info = program.tensors.get(k)
        if info is None or info.role in ("node", "adjoint"):
            continue
        if info.dtype == "int":
            t[k] = torch.tensor(v, dtype=torch.long)
        else:
            t[k] = torch.tensor(v, dtype=torch.float64, requires_grad=k in grads)
    ref = row.torch(t, layer)
    assert np.allclose(ref.detach().numpy(), out, atol=1e-10)
    (ref * torch.tensor(upstream)).sum().backward()
    for w in grads:
        got = t[w].grad.numpy() if t[w].grad is not None else np.zeros_like(grads[w])
        assert np.allclose(got, grads[w], atol=1e-9), \
            f"{w}: max difference {np.abs(got - grads[w]).max():.3g} at " \
            f"{np.unravel_index(np.abs(got - grads[w]).argmax(), got.shape)}"



@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_finite_differences(row):
    layer, program, values, upstream = setup(row)
    out, grads = dt.evaluate(program, values, upstream=upstream)
    assert grads, "no gradient was derived"
    check_finite_differences(program, values, upstream, grads)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_torch_autograd(row):
    torch = pytest.importorskip("torch")
    layer, program, values, upstream = setup(row, seed=1)
    out, grads = dt.evaluate(program, values, upstream=upstream)
    check_torch(torch, row, layer, program, values, upstream, out, grads)


def test_batchnorm_running_statistics_match_torch():
    torch = pytest.importorskip("torch")
    row = next(r for r in ROWS if r.name == "batchnorm_train")
    _, program, values, _ = setup(row)
    arrays = program.run(values)
    rm = torch.tensor(values["running_mean"])
    rv = torch.tensor(values["running_var"])
    torch.nn.functional.batch_norm(torch.tensor(values["x"]), rm, rv, training=True,
                                   momentum=0.1, eps=1e-5)
    assert np.allclose(arrays["running_mean_new"], rm.numpy(), atol=1e-12)
    assert np.allclose(arrays["running_var_new"], rv.numpy(), atol=1e-12)


def fixed_leaves(program, values, row):
    """Values that stay numbers when scalarising: labels, masks, given data (as exact
    rationals), integer routing (argmax positions, which cannot be decided on symbols)
    and the row's own ``fixed`` values."""
    arrays = program.run(values)
    fixed = {k: v for k, v in values.items() if program.tensors[k].dtype == "int"
             or program.tensors[k].role == "mask"}
    fixed.update(program.given)
    fixed.update({k: arrays[k] for k, info in program.tensors.items()
                  if info.role == "node" and info.dtype == "int"})
    exact = np.vectorize(lambda v: sp.nsimplify(float(v)), otypes=[object])
    fixed = {k: (v if np.asarray(v).dtype.kind == "i" else exact(v)) for k, v in fixed.items()}
    return {**fixed, **row.fixed}


def agree(a, b, symbols, rng, points=2):
    """a == b: simplified when small and smooth, else at random points in 30-digit
    arithmetic (expressions of nested tanh/exp are too large for simplify or exact evalf
    to be quick; two points decide)."""
    diff = sp.sympify(a - b)
    if diff == 0:
        return True
    if sp.count_ops(diff) < 60 and not diff.has(sp.Heaviside, sp.Piecewise, sp.sign):
        if sp.simplify(diff.rewrite(sp.exp)) == 0:
            return True
    for _ in range(points):
        point = {s: sp.Float(float(rng.uniform(-1, 1)), 30) for s in symbols}
        scale = 1 + abs(complex(sp.sympify(a).xreplace(point)))
        if abs(complex(diff.xreplace(point))) > 1e-20 * scale:
            return False
    return True


@pytest.mark.parametrize("row", [r for r in ROWS if r.symbolic], ids=lambda r: r.name)
def test_symbolic_agreement(row):
    _, program, values, _ = setup(row, row.tiny, seed=2)
    arrays = scalarise_program(program, row.tiny, leaves=fixed_leaves(program, values, row))
    loss = sp.Add(*[s * o for s, o in zip(np.ravel(arrays[program.seed]),
                                          np.ravel(arrays[program.output]))])
    symbols = sorted(loss.free_symbols, key=str)
    rng = np.random.default_rng(0)
    checked = 0
    for w, bar in program.grads.items():
        derived = arrays[bar]
        for idx in np.ndindex(derived.shape):
            ref = sp.diff(loss, entry_symbol(w, idx)).replace(sp.DiracDelta,
                                                               lambda *a: sp.S.Zero)
            assert agree(ref, derived[idx], symbols, rng), (w, idx)
            checked += 1
    assert checked > 0


def test_zero_one_has_no_gradient_but_a_value():
    layer = dt.ZeroOne()
    with pytest.raises(NotDifferentiableError, match="no useful gradient"):
        dt.program(layer)
    forward = dt.program(layer, wrt=[])
    z = np.array([[1.0, 2.0, 0.0], [3.0, 1.0, 1.0], [0.0, 0.0, 5.0]])
    out, grads = dt.evaluate(forward, {"z": z, "y": np.array([1, 2, 2])}, wrt=[])
    assert float(out) == pytest.approx(1 / 3) and grads == {}
    d = dt.layer_derivation("zero_one")
    assert any("no useful gradient" in n for n in d.notes) and not d.adjoints


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_matrix_form_computes_the_index_form(row):
    """Every recognised matrix form (what kernels turn into np.dot) gives the same numbers."""
    from derive.tensor.evaluate import Env

    _, program, values, upstream = setup(row, seed=3)
    arrays = program.run(values, upstream)
    env = Env(arrays, program.bind({k: v for k, v in values.items()}), program.constants)
    checked = 0
    for a in program.forward + program.backward:
        if a.matrix is not None:
            got = np.broadcast_to(a.matrix.numpy(env), np.shape(arrays[a.target]))
            assert np.allclose(got, arrays[a.target], atol=1e-12), (a.target, a.matrix)
            checked += 1
    assert checked > 0 or row.sizes is SPATIAL


def test_every_registry_activation_has_a_row():
    assert {f.name for f in FUNCTION_ACTIVATIONS} <= {r.name for r in ROWS}


def test_every_catalogue_layer_is_in_the_table():
    from derive.layers.catalog import CATALOGUE

    made = {type(r.make()).__name__ for r in ROWS}
    forward_only = {e.cls.__name__ for e in CATALOGUE.values() if not e.cls.has_gradient}
    assert forward_only == {"ZeroOne", "ArgmaxAttention"}  # checked on their own
    assert {e.cls.__name__ for e in CATALOGUE.values()} - forward_only <= made
