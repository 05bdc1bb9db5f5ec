"""Generated kernels against derive.evaluate (the float64 oracle), layer by layer.

Every layer of the catalogue is printed as a numba kernel (forward + VJP from its
Program) and must give the same output and gradients as the NumPy evaluation of the same
derivation to 1e-10; the training module's step is checked the same way. The printer is
checked with exact strings.
"""
import numpy as np
import pytest
import sympy as sp

import derive as dv
import derive as dt
from derive.errors import NotDifferentiableError
from derive.functions import relu, sigmoid
from derive.functions import softplus
from kernels import vjp
from kernels.loop_nests import loops
from kernels.printer import NumbaPrinter

SIZES = {"B": 5, "d": 4, "h": 3, "C": 3, "m": 2, "n": 3, "p": 2, "H": 4, "W": 3}


pytestmark = pytest.mark.usefixtures("kernel_cache")


def away_from_zero(rng, shape, gap=0.1):
    x = rng.normal(size=shape)
    return np.where(np.abs(x) < gap, np.sign(x + 1e-12) * gap + x, x)


def values_for(layer, key, rng):
    """Values for every leaf of the layer's graph (symbolic sizes made concrete)."""
    prog = dt.program(layer)
    dims = {sp.Symbol(k, integer=True, positive=True): v for k, v in SIZES.items()}
    vals = {}
    for name in prog.leaf_names():
        info = prog.tensors[name]
        if info.role == "mask":
            continue
        shape = tuple(int(sp.sympify(s).xreplace(dims)) for s in info.shape)
        if info.dtype == "int":
            classes = int(sp.sympify(info.meta.get("classes", 3)).xreplace(dims))
            vals[name] = rng.integers(0, classes, shape)
        elif info.role == "target" or (key == "bce" and info.role == "input"):
            vals[name] = rng.uniform(0.1, 0.9, shape)
        elif info.role == "state":
            vals[name] = rng.uniform(0.5, 1.5, shape)
        elif key == "hinge":
            vals[name] = rng.normal(size=shape).round(1) + 0.01 * np.arange(shape[-1])
        else:
            vals[name] = away_from_zero(rng, shape)
    return prog, vals


def _dense_layer_names():
    """The catalogue's dense layers, activations, losses, penalties and norms; the conv,
    pooling, recurrent, attention and graph layers have their own rows below and in
    tests/test_layers_conv.py, with shapes this table's SIZES do not bind."""
    from derive.layers.catalog import CATALOGUE

    return [k for k, e in CATALOGUE.items()
            if e.group in ("dense", "activation", "loss", "penalty", "norm")]


@pytest.mark.parametrize("key", _dense_layer_names())
def test_layer_kernel_equals_evaluate(key):
    layer = dt.make_layer(key)
    if not layer.has_gradient:  # 0/1 loss: no kernel can be generated for a gradient
        with pytest.raises(NotDifferentiableError):  # that does not exist
            vjp.run(layer, {})
        return
    rng = np.random.default_rng(sum(map(ord, key)))
    prog, vals = values_for(layer, key, rng)
    out_info = prog.tensors[prog.output]
    dims = {sp.Symbol(k, integer=True, positive=True): v for k, v in SIZES.items()}
    up_shape = tuple(int(sp.sympify(s).xreplace(dims)) for s in out_info.shape)
    upstream = rng.normal(size=up_shape) if up_shape else None
    want_out, want = dv.evaluate(layer, vals, upstream=upstream)
    got_out, got = vjp.run(layer, vals, upstream=upstream)
    assert np.allclose(got_out, want_out, rtol=0, atol=1e-10)
    assert set(got) == set(want) and want
    for name in want:
        assert got[name].shape == np.shape(want[name])
        assert np.abs(got[name] - want[name]).max() <= 1e-10, name


NETS = {
    "tanh-relu": lambda: dv.Sequential(dv.Linear(6, 5), dv.Tanh(), dv.Linear(5, 5), dv.ReLU(),
                                       dv.Linear(5, 4), loss=dv.SoftmaxCrossEntropy()),
    "layernorm-gelu": lambda: dv.Sequential(dv.Linear(6, 5), dv.LayerNorm(5), dv.GELU(),
                                            dv.Linear(5, 4), loss=dv.SoftmaxCrossEntropy()),
}


@pytest.mark.parametrize("which", NETS)
def test_network_train_step_equals_evaluate(which, train_step_equals_evaluate):
    import kernels

    net = NETS[which]()
    model = kernels.compile(net, dtype="float64")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 6)), rng.integers(0, 4, 7)
    train_step_equals_evaluate(net, model, x, y)
    # the generated source is readable: BLAS for the products, loops for the rest
    src = model.source
    assert "matmul(x, W1.T, z1)" in src and "def epoch(" in src and "theta[_i]" in src
    if which == "tanh-relu":
        assert "matmul(z3_bar.T, a2, W3_bar)" in src


# -- the printer -------------------------------------------------------------------------
def test_printer_functions_and_conventions():
    x, y = sp.symbols("x y")
    p = NumbaPrinter()
    assert p.doprint(relu(x)) == "max(x, 0.0)"
    assert p.doprint(sp.Heaviside(x, 0)) == "(1.0 if x > 0 else 0.0)"
    assert p.doprint(sp.Heaviside(x, 1)) == "(1.0 if x >= 0 else 0.0)"
    assert p.doprint(sigmoid(x)) == "(1.0/(1.0 + np.exp(-(x))))"
    assert p.doprint(softplus(x)) == "(np.log1p(np.exp(-abs(x))) + max(x, 0.0))"
    assert p.doprint(x**2) == "(x*x)"
    assert p.doprint(sp.KroneckerDelta(x, y)) == "(1.0 if x == y else 0.0)"
    assert NumbaPrinter(float_type="np.float32").doprint(x / 2) == "(np.float32(0.5))*x"


def test_loops_hoist_row_reductions():
    # softmax: the log-sum-exp of a row is computed once per row, before the inner loop;
    # loops are named as the derivation names the indices (n for a batch, then i, j, k)
    B = sp.Symbol("B", integer=True, positive=True)
    n, i, k = sp.Idx("n7", B), sp.Idx("i8", 3), sp.Idx("k9", 3)
    z = sp.IndexedBase("z")
    rhs = sp.exp(z[n, i] - dt.LogSumExp(z[n, k], k))
    lines = loops("p", (n, i), rhs, NumbaPrinter())
    text = "\n".join(lines)
    assert text == "\n".join([
        "for n in range(B):",
        "    lse_max = -np.inf",
        "    for j in range(3):",
        "        lse_max = max(lse_max, z[n, j])",
        "    lse = 0.0",
        "    for j in range(3):",
        "        lse += np.exp(z[n, j] - lse_max)",
        "    lse = lse_max + np.log(lse)",
        "    for i in range(3):",
        "        p[n, i] = np.exp(-lse + z[n, i])"])


# -- convolution and pooling (scatter-accumulate VJPs, argmax routing) --------------------
def _conv_pool_rows():
    conv = pytest.importorskip("derive.layers.conv")
    pool = pytest.importorskip("derive.layers.pool")
    return [(conv.Conv2d(2, 3, 3, padding=1), {"x": (2, 2, 5, 4), "K": (3, 2, 3, 3), "b": (3,)}),
            (conv.Conv2d(1, 2, 3, stride=2), {"x": (2, 1, 7, 7), "K": (2, 1, 3, 3), "b": (2,)}),
            (pool.MaxPool2d(2), {"x": (2, 3, 5, 6)}),
            (pool.AvgPool2d(2), {"x": (2, 3, 4, 6)})]


@pytest.mark.parametrize("row", range(4))
def test_conv_and_pool_kernels_equal_evaluate(row, vjp_equals_evaluate):
    layer, shapes = _conv_pool_rows()[row]
    rng = np.random.default_rng(row)
    vals = {k: rng.normal(size=s) for k, s in shapes.items()}
    out, _ = dv.evaluate(layer, vals)
    upstream = rng.normal(size=out.shape)
    vjp_equals_evaluate(layer, vals, upstream)
