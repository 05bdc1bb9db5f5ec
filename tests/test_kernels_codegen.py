"""What the code generator does to make kernels fast, each checked for sameness.

The speed-ups of kernels/statements.py, kernels/blas.py, kernels/update_loop.py,
kernels/printer.py and kernels/fuse.py only change
*how* a derived assignment is computed: a reduction computed once and read twice, long
sums printed with their loops outside, zero factors skipped, loop nests fused, float32
literals in the update rules. Each is checked here by its text (it happened) and by its
numbers (the kernel still equals derive.evaluate, the float64 oracle).
"""
import numpy as np
import pytest

import derive as dv
from kernels import fuse
from kernels.update_loop import typed_literals
from kernelcheck import train_step_equals_evaluate


pytestmark = pytest.mark.usefixtures("kernel_cache")


def mlp():
    return dv.Sequential(dv.Linear(6, 5), dv.ReLU(), dv.Linear(5, 4),
                         loss=dv.SoftmaxCrossEntropy())


def conv_net():
    return dv.Sequential(dv.Conv2d(1, 3, 3, padding=1), dv.ReLU(), dv.MaxPool2d(2),
                         dv.Flatten(), dv.Linear(12, 4), loss=dv.SoftmaxCrossEntropy(),
                         input_shape=(1, 4, 4))


def train_step_source(model):
    src = model.source
    return src[src.index("def train_step"):src.index("def loss_step")]


def check_step(net, x, y):
    """The compiled train_step's loss and gradients against derive.evaluate (float64)."""
    import kernels

    model = kernels.compile(net, dtype="float64")
    train_step_equals_evaluate(net, model, x, y)
    return model


def test_the_losses_log_sum_exp_is_computed_once_and_read_back():
    rng = np.random.default_rng(1)
    model = check_step(mlp(), rng.normal(size=(7, 6)), rng.integers(0, 4, 7))
    step = train_step_source(model)
    # forward computes log Σ exp once per row and stores it; the logits' adjoint reads it
    assert step.count("np.log(") == 1
    assert "np.exp(-_t0[" in step and "# kept for z2_bar (computed once)" in step
    # the stored buffer is batch-sized, so the epoch slices it like every [B, ...] buffer
    assert model.meta["buffers"]["_t0"] == ["B"]


def test_long_sums_into_few_outputs_run_outside_in_and_skip_zeros():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 1, 4, 4))
    model = check_step(conv_net(), x, rng.integers(0, 4, 6))
    step = train_step_source(model)
    k_bar = step[step.index("# K1_bar"):]
    lines = [s.strip() for s in k_bar.splitlines()]
    # zero-filled, then the batch and pixel loops outside the kernel-entry loops ...
    assert lines[1] == "K1_bar[...] = 0.0" and lines[2].startswith("for n in range(B)")
    # ... and the upstream element tested once before the 9 multiply-adds it feeds
    assert "factor = y1_bar[n, i, p, q]" in lines
    assert "if factor != 0:  # zero terms add nothing" in lines
    # conv and its ReLU in one nest (fused though the conv nest holds the sum's loops)
    assert "# y1, a1" in step


def test_conv_kernel_with_zeros_in_the_upstream_equals_evaluate(vjp_equals_evaluate):
    from derive.layers.conv import Conv2d

    rng = np.random.default_rng(3)
    layer = Conv2d(2, 3, 3, padding=1)
    vals = {"x": rng.normal(size=(2, 2, 5, 4)), "K": rng.normal(size=(3, 2, 3, 3)),
            "b": rng.normal(size=3)}
    out, _ = dv.evaluate(layer, vals)
    upstream = rng.normal(size=out.shape) * (rng.random(out.shape) < 0.3)  # mostly zero
    vjp_equals_evaluate(layer, vals, upstream)


# -- fusion rules ---------------------------------------------------------------------
def nest(target, body, extents=("B", "4")):
    names = ["i", "j"][:len(extents)]
    head = ["    " * d + f"for {n} in range({e}):" for d, (n, e) in enumerate(zip(names, extents))]
    return (target, head + ["    " * len(extents) + s for s in body])


def test_elementwise_nests_over_equal_ranges_fuse():
    out = fuse.fuse([nest("a", ["a[i, j] = z[i, j] + b[j]"]),
                     nest("c", ["c[i, j] = max(a[i, j], 0.0)"])])
    assert out[0] == "# a, c" and len([s for s in out if s.lstrip().startswith("for")]) == 2


def test_a_nest_reading_a_neighbour_or_a_scatter_target_is_not_fused():
    # reads a at another element: a[i, j] of the next row is not computed yet
    out = fuse.fuse([nest("a", ["a[i, j] = z[i, j]"]), nest("c", ["c[i, j] = a[i, 0]"])])
    assert "# a" in out and "# c" in out
    # the first nest scatters: a[i, j] may still receive additions at later iterations
    scatter = ("a", ["a[...] = 0.0"] + nest("a", ["a[i, r[i, j]] += z[i, j]"])[1])
    out = fuse.fuse([scatter, nest("c", ["c[i, j] = 2*a[i, j]"])])
    assert "# a" in out and "# c" in out
    # different ranges
    out = fuse.fuse([nest("a", ["a[i, j] = z[i, j]"]),
                     nest("c", ["c[i, j] = a[i, j]"], extents=("B", "5"))])
    assert "# a" in out and "# c" in out


def test_a_nest_with_inner_loops_takes_the_next_elementwise_nest():
    conv = nest("y", ["_s = 0.0", "for u in range(3):", "    _s += K[j, u]*x[i, j + u]",
                      "y[i, j] = _s"])
    out = fuse.fuse([conv, nest("a", ["a[i, j] = max(y[i, j], 0.0)"])])
    assert out[0] == "# y, a"
    assert out[-1].strip() == "a[i, j] = max(y[i, j], 0.0)" and out[-2].strip() == "y[i, j] = _s"


# -- update rules in the parameters' precision ------------------------------------------
def test_update_rules_get_float32_literals_but_keep_integer_exponents():
    from kernels import optim

    text = typed_literals(optim.make("adam").source(), "np.float32")
    assert "(np.float32(1) - beta_1) * g" in text and "g ** 2" in text
    assert "np.float32(2)" not in text
    ns = {"np": np}
    exec(compile(text, "<rule>", "exec"), ns)  # noqa: S102 - our own rule's source
    args = [np.float32(v) for v in (0.5, 0.1, 0.0, 0.0, 1, 1e-3, 0.9, 0.999, 1e-8)]
    theta, m, v = ns["adam"](*args)
    assert theta.dtype == np.float32 and m.dtype == np.float32 and v.dtype == np.float32
    want = optim.adam(*[float(a) for a in args])
    assert np.allclose([theta, m, v], want, rtol=1e-6)


# -- float32 tanh -------------------------------------------------------------------------
def test_float32_kernels_use_the_rational_tanh_and_float64_kernels_keep_libm():
    import sympy as sp

    from kernels.printer import TANH_F32, NumbaPrinter, helpers

    x = sp.Symbol("x")
    assert NumbaPrinter(float_type="np.float32").doprint(sp.tanh(x)) == "tanh_f32(x)"
    assert NumbaPrinter().doprint(sp.tanh(x)) == "np.tanh(x)"
    assert helpers("h = tanh_f32(a)") == TANH_F32 and helpers("h = np.tanh(a)") == ""
    from numba import njit

    ns = {"np": np, "njit": njit}
    src = TANH_F32.replace("cache=True, ", "")  # exec'd source has no file to cache beside
    exec(compile(src, "<tanh_f32>", "exec"), ns)  # noqa: S102 - our own source
    f = ns["tanh_f32"]

    @njit
    def apply(v, out):
        for i in range(v.size):
            out[i] = f(v[i])

    v = np.concatenate([np.linspace(-12, 12, 200001), [0.0, 1e-5, -3e-4, 7.9, 8.0, 50.0]])
    v = v.astype(np.float32)
    out = np.empty_like(v)
    apply(v, out)
    assert out.dtype == np.float32
    # a few float32 ulps from the float64 tanh everywhere (saturation included), 0 at 0
    assert np.abs(out - np.tanh(v.astype(np.float64))).max() < 4e-7
    assert out[-6] == 0.0 and out[-5] == np.float32(1e-5)
    nan = np.array([np.nan], np.float32)
    apply(nan, nan)
    assert np.isnan(nan[0])


# -- SGD inside the weight gradient's product ---------------------------------------------
def epoch_source(model):
    src = model.source
    return src[src.index("def epoch"):src.index("def evaluate")]


def sgd_reference(net, model, X, y, bs, lr, wd=0.0):
    """One epoch of SGD (optional L2 decay) on derive.evaluate's gradients, in order."""
    params = {k: v.copy() for k, v in model.params.items()}
    total = 0.0
    for s in range(0, len(X), bs):
        vals = {"x": X[s:s + bs], "y": y[s:s + bs], **params}
        loss, g = dv.evaluate(net, vals, wrt=list(params))
        total += float(loss) * len(vals["x"])
        params = {k: v - lr * (g[k] + wd * v) for k, v in params.items()}
    return total / len(X), params


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_sgd_updates_weights_inside_their_gradients_product(wd):
    import kernels

    net = dv.Sequential(dv.Linear(6, 5), dv.ReLU(), dv.Linear(5, 5), dv.Tanh(),
                        dv.Linear(5, 4), loss=dv.SoftmaxCrossEntropy())
    lr, bs = 0.3, 4
    model = kernels.compile(net, dtype="float64", optimizer="sgd", lr=lr, weight_decay=wd)
    text = epoch_source(model)
    # every weight: W2 and W3 are read by the backward after their gradient is known, so
    # their update waits for the last read; no weight gradient is written in the epoch
    for w in ("W1", "W2", "W3"):
        assert f"gemm(" in text and f", {w}, np.float64(-_lr)" in text, w
        assert f"{w}_bar)" not in text and f"{w}_bar[" not in text
    assert text.index("matmul(z3_bar, W3, a2_bar)") < text.index(", W3, np.float64(-_lr)")
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(11, 6)), rng.integers(0, 4, 11)  # batches of 4, 4, 3
    want_loss, want = sgd_reference(net, model, X, y, bs, lr, wd)
    got, _ = model.run_epoch(X, y, np.arange(11, dtype=np.int64), np.full(3, lr), bs)
    assert abs(got - want_loss) < 1e-12
    for k, v in want.items():
        assert np.abs(model.params[k] - v).max() < 1e-12, k


def test_rules_with_state_keep_the_gradient_and_the_parameter_loop():
    import kernels
    from kernels import optim

    assert optim.make("sgd").affine_form() == (1, -sp_symbol("eta"))
    for name in ("momentum", "nesterov", "adam", "adagrad", "rmsprop", "adamw"):
        assert optim.make(name).affine_form() is None, name
    model = kernels.compile(mlp(), dtype="float64", optimizer="momentum", lr=0.1)
    text = epoch_source(model)
    assert "gemm(" not in text and "matmul(z2_bar.T, a1, W2_bar)" in text
    assert "for _i in range(theta.size):" in text


def sp_symbol(name):
    import sympy as sp

    return sp.Symbol(name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_gemm_helper_takes_plain_transposed_and_strided_operands(dtype):
    import kernels

    gemm = kernels.compile(mlp(), dtype=dtype).module.gemm
    rng = np.random.default_rng(0)
    tol = 1e-5 if dtype == "float32" else 1e-12
    a = rng.normal(size=(7, 5)).astype(dtype)
    b = rng.normal(size=(3, 7)).astype(dtype)
    c0 = rng.normal(size=(5, 3)).astype(dtype)
    wide, tall = rng.normal(size=(5, 14)).astype(dtype), rng.normal(size=(14, 3)).astype(dtype)
    for A, Bm in ((a.T, b.T), (np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)),
                  (wide[:, ::2], tall[::2]), (a.T, tall[1::2])):
        c = c0.copy()
        want = -0.5 * (A.astype(np.float64) @ Bm) + 0.25 * c
        gemm(A, Bm, c, -0.5, 0.25)
        assert c.dtype == dtype and np.abs(c - want).max() < tol
    with pytest.raises(ValueError, match="C-contiguous"):
        gemm(a.T, b.T, np.zeros((3, 5), dtype).T, 1.0, 0.0)


# -- outlining repeated blocks ----------------------------------------------------------
def test_blocks_of_one_shape_become_one_function_with_the_step_as_an_argument():
    from kernels.outline import Outliner

    lines = []
    for t in range(1, 5):
        lines += [f"# x1_{t}", f"for i{t} in range(B):", f"    for j{t} in range(8):",
                  f"        x1_{t}[i{t}, j{t}] = x[i{t}, {t - 1}, j{t}]  # step {t}",
                  f"# h{t}_bar", f"np.dot(a{t}_bar, W, h{t}_bar)"]
    lines += ["# L", "_s = 0.0", "for n in range(B):", "    _s += z[n, 0]", "L = _s/B"]
    out = Outliner("@njit")
    body = out(lines)
    assert body[:2] == ["# x1_1", "_block0(B, x1_1, x, 0)"] and "_block0(B, x1_4, x, 3)" in body
    # a single BLAS call stays as it is; a block setting a plain name (L) stays inline
    assert "np.dot(a3_bar, W, h3_bar)" in body and body[-5:] == lines[-5:]
    src = out.source()
    assert src[0] == "# the statements of x1_1, x1_2, ..., x1_4 (4 blocks): one function, compiled once"
    # printed with the first block's names; the integer that differs is the step
    assert src[2:] == ["def _block0(B, x1_1, x, step):", "    for i1 in range(B):",
                       "        for j1 in range(8):", "            x1_1[i1, j1] = x[i1, step, j1]", ""]
    # two blocks of a shape are not worth a function
    assert Outliner("@njit")(lines[:12]) == lines[:12]
