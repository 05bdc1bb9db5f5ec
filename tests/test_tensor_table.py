"""One table of every dense op/layer, each row checked three ways (JAX/micrograd style).

1. float64 central finite differences along a random direction (JAX's check_vjp:
   <t, vjp(c)> against <numeric_jvp(t), c>), with an input domain per row;
2. PyTorch autograd, where torch is installed (skipped cleanly otherwise);
3. symbolic agreement: the derived VJP, scalarised on a tiny instance, against
   ``sympy.diff`` of the scalarised forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
import sympy as sp

import derive.tensor as dt
from derive.errors import NotDifferentiableError
from derive.functions import ACTIVATIONS as FUNCTION_ACTIVATIONS
from derive.tensor.scalar import entry_symbol, scalarise

SIZES = {"B": 3, "d": 4, "h": 2, "C": 3, "m": 2, "n": 3, "p": 2}
TINY = {"B": 2, "d": 2, "h": 2, "C": 3, "m": 2, "n": 2, "p": 2}


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


def _F():
    import torch.nn.functional as F

    return F


ROWS = [
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
        {"z": lambda r, s: r.uniform(0.1, 0.9, s), "y": lambda r, s: r.uniform(0, 1, s)}),
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
        lambda t, layer: t["x"] * t["m"] / 0.75),
    Row("dropout_eval", lambda: dt.Dropout(p=0.25, train=False), lambda t, layer: t["x"] * 1.0),
    Row("mlp", lambda: dt.Sequential(dt.Linear("d", "h"), dt.Tanh(), dt.Linear("h", "C"),
                                     loss=dt.CrossEntropy()),
        lambda t, layer: _F().cross_entropy(
            torch_mlp(t), t["y"]), symbolic=False),
]


# Every activation of the function registry has a row: those not written above (a new
# function needs none written) are checked with its own torch reference, away from a kink.
_WRITTEN = {r.name for r in ROWS}
ROWS += [Row(f.name, lambda f=f: getattr(dt, f.activation)(),
             lambda t, layer, f=f: getattr(_F(), f.torch[0])(t["x"], **f.torch[1]),
             {"x": away_from_zero} if f.kink else {})
         for f in FUNCTION_ACTIVATIONS if f.name not in _WRITTEN]


def test_every_registry_activation_has_a_row():
    assert {f.name for f in FUNCTION_ACTIVATIONS} <= {r.name for r in ROWS}


def torch_mlp(t):
    return _F().linear(_F().linear(t["x"], t["W1"], t["b1"]).tanh(), t["W2"], t["b2"])


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


def setup(row, sizes=SIZES, seed=0):
    layer = row.make()
    program = dt.program(layer)
    values = instance(program, sizes, row, seed)
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


def _agree(a, b, symbols, rng):
    """a == b: simplified symbolically when small, else at random points (30 digits)."""
    diff = sp.sympify(a - b)
    if diff == 0:
        return True
    if sp.count_ops(diff) < 60 and not diff.has(sp.Heaviside, sp.Piecewise, sp.sign):
        if sp.simplify(diff.rewrite(sp.exp)) == 0:
            return True
    for _ in range(2):
        point = {s: sp.Rational(int(rng.integers(-90, 90)), 97) + sp.Rational(1, 1000)
                 for s in symbols}
        if abs(complex(diff.xreplace(point).evalf(30))) > 1e-20:
            return False
    return True


@pytest.mark.parametrize("row", [r for r in ROWS if r.symbolic], ids=lambda r: r.name)
def test_symbolic_agreement(row):
    layer, program, values, _ = setup(row, TINY, seed=2)
    fixed = {k: v for k, v in values.items() if program.tensors[k].dtype == "int"}
    if "m" in program.tensors and program.tensors["m"].role == "mask":
        fixed["m"] = np.array([[1, 0], [1, 1]])
    if "z" in program.tensors and row.name == "bce":
        fixed["y"] = np.array([[sp.Rational(1, 3), 1, 0], [0, sp.Rational(1, 2), 1]],
                              dtype=object)
    arrays = scalarise(program, TINY, leaves=fixed)
    out = arrays[program.output]
    seed = arrays[program.seed]
    loss = sp.Add(*[s * o for s, o in zip(np.ravel(seed), np.ravel(out))])
    symbols = sorted(loss.free_symbols, key=str)
    rng = np.random.default_rng(0)
    checked = 0
    for w, bar in program.grads.items():
        derived = arrays[bar]
        for idx in np.ndindex(derived.shape):
            x = entry_symbol(w, idx)
            ref = sp.diff(loss, x).replace(sp.DiracDelta, lambda *a: sp.S.Zero)
            assert _agree(ref, derived[idx], symbols, rng), (w, idx)
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
    assert checked > 0
