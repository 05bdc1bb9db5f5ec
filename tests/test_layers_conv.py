"""Convolution and pooling layers, and conv nets: what their derivations show (output-size
rule, scatters, transposed convolution, first-maximum routing), PyTorch agreement, the
conv Sequential built from ``input_shape``, kernels' loops and bad input.

The conv net of the training benchmark (conv3x3, 8 filters, padding 1 -> ReLU -> maxpool
2 -> flatten -> linear 128->10, cross-entropy on 8x8 images) is built with
``input_shape``, summarised, evaluated and checked against PyTorch's autograd; its
Program carries the exact scatter-accumulates, which Program.run executes with positions
holding dimension symbols and integer routing tensors. The compiled numba kernel of the
same net is checked against the oracle.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

import derive as dv
import derive as dt
from derive.errors import InputError, ShapeError
from derive.shapes import output_size
from derive.layers.conv import Conv2d
from derive.tensor.evaluate import Env, evaluate_expr
from derive.tensor.index import dim
from derive.layers.pool import FIRST_MAX, Flatten, MaxPool2d
from derive.tensor.scatter import dense_form, fits, index_range, split
from derive.layers.windows import OutSize

B = 5


def section(d, title):
    return next(s for s in d.sections if s.title == title)


def random_values(layer, sizes, seed=0):
    rng = np.random.default_rng(seed)
    values = {n: rng.normal(size=s) for n, s in sizes.items()}
    values.update({k: rng.normal(size=s) for k, s in layer.parameters().items()})
    return values


# -- convolution ----------------------------------------------------------------------


def test_conv_output_size_rule_appears_in_the_derivation_of_shapes():
    d = Conv2d(stride=2, padding=1).derive()
    shapes = section(d, "Conv2d: output shape")
    n, k, s, p = sp.symbols("n k s p", integer=True, positive=True)
    rule = shapes.steps[0].rhs[0]
    assert rule == sp.floor((n + 2 * p - k) / s) + 1
    assert rule.subs({n: 32, k: 3, s: 2, p: 1}) == 16
    H = dim("H")
    assert shapes.steps[1].rhs[0] == sp.floor((H + 2 - 3) / sp.Integer(2)) + 1
    assert d.node("y").shape[2] == OutSize(H, 3, 2, 2)
    g = Conv2d(3, 4, kernel_size=3, stride=2, padding=1, height=7, width=8).graph()
    assert g.nodes["y"].shape[2:] == (output_size(7, 3, 2, 1), output_size(8, 3, 2, 1)) == (4, 4)


def test_conv_input_gradient_is_a_scatter_then_a_crop_and_a_transposed_convolution():
    layer = Conv2d(2, 3, kernel_size=3, stride=2, padding=1)
    prog = layer.program()
    back = {a.target: a for a in prog.backward}
    scatter = back["xp_bar"]
    assert scatter.mode == "+=" and len(scatter.indices) == 6  # n, c, i, a, j, b
    assert [str(e).count("2*") for e in scatter.lhs] == [0, 0, 1, 1]  # i*S + a
    crop = back["x_bar"]
    assert crop.mode == "=" and str(crop.rhs).startswith("xp_bar[") and "+ 1" in str(crop.rhs)
    d = layer.derive()
    note = section(d, "Conv2d: gradients as convolutions").steps[0].note
    assert float(note.split("= ")[-1].split(" ")[0]) < 1e-12
    torch = pytest.importorskip("torch")
    values = random_values(layer, {"x": (2, 2, 7, 6)})
    out, _ = dt.evaluate(prog, values)
    y_bar = np.random.default_rng(3).normal(size=out.shape)
    _, grads = dt.evaluate(prog, values, upstream=y_bar)
    extra = [7 - ((out.shape[2] - 1) * 2 - 2 + 3), 6 - ((out.shape[3] - 1) * 2 - 2 + 3)]
    ref = torch.nn.functional.conv_transpose2d(torch.tensor(y_bar), torch.tensor(values["K"]),
                                               stride=2, padding=1, output_padding=extra)
    assert np.allclose(grads["x"], ref.numpy(), atol=1e-12)


def test_kernel_larger_than_the_padded_input_is_one_clear_line():
    with pytest.raises(ShapeError, match=r"window \(5\) is larger than the padded input") as e:
        Conv2d(kernel_size=5, padding=0, height=3, width=3).graph()
    assert "\n" not in str(e.value)
    prog = Conv2d(1, 1, kernel_size=5).program()  # symbolic H, W: caught at evaluation
    with pytest.raises(ShapeError, match="larger than the padded input"):
        dt.evaluate(prog, {"x": np.zeros((1, 1, 3, 3)), "K": np.zeros((1, 1, 5, 5)),
                           "b": np.zeros(1)})


@pytest.mark.parametrize("make", [lambda: Conv2d(stride=0), lambda: MaxPool2d(2, stride=0)])
def test_stride_zero_is_rejected(make):
    with pytest.raises(ShapeError, match="stride must be positive, got 0"):
        make()


def test_mismatched_channels_name_both_shapes():
    net = dt.Network()
    x = net.input("x", ["B", 3, 8, 8])
    with pytest.raises(ShapeError, match=r"\[B, 3, 8, 8\] and \[B, 4, H, W\].*expects 4 input "
                                         r"channels, got 3"):
        net.apply(Conv2d(4, 2), x)


def test_scatter_ranges_are_proved_on_symbolic_sizes():
    H = dim("H")
    i, a = sp.Idx("i", OutSize(H, 3, 2, 2)), sp.Idx("a", 3)
    assert index_range(2 * i + a) == (0, 2 * OutSize(H, 3, 2, 2))
    assert fits(2 * i + a, H + 2) and not fits(2 * i + a + 1, H + 2)
    k = sp.Idx("k", H)
    u = sp.Idx("u", H + 2)
    x_bar = sp.IndexedBase("xp_bar")
    gather, scatters, changed = split(
        dt.ISum(sp.KroneckerDelta(u, k + 1) * x_bar[u], u), (k,))
    assert changed and not scatters and gather == x_bar[k + 1]
    y = sp.IndexedBase("y")
    _, scatters, _ = split(dt.ISum(sp.KroneckerDelta(2 * i + a, u) * y[i], i, a), (u,))
    ((loop, lhs, rhs),) = scatters
    out, window = loop if lhs[0] == 2 * loop[0] + loop[1] else loop[::-1]
    assert lhs == (2 * out + window,) and rhs == y[out]  # for i, a: x̄[2i + a] += y[i]


# -- pooling --------------------------------------------------------------------------


def test_maxpool_routes_to_the_first_maximum_and_says_so():
    x = np.array([[[[3, 1, 0, 2], [3, 2, 5, 5], [1, 0, 2, 2], [4, 4, 0, 6]]]], dtype=float)
    out, g = dt.evaluate(MaxPool2d(2), {"x": x})
    assert out.tolist() == [[[[3, 5], [4, 6]]]]
    want = np.zeros_like(x)
    for r, c in [(0, 0), (1, 2), (3, 0), (3, 3)]:  # first maximum of each window, row-major
        want[0, 0, r, c] = 1
    assert np.array_equal(g["x"], want)
    assert FIRST_MAX in MaxPool2d(2).derive().notes


def test_maxpool_routing_matches_torch_on_ties():
    torch = pytest.importorskip("torch")
    x = np.round(np.random.default_rng(0).normal(size=(2, 2, 6, 5)))  # many ties
    up = np.random.default_rng(1).normal(size=(2, 2, 3, 3))
    _, g = dt.evaluate(MaxPool2d(3, stride=2, padding=1), {"x": x}, upstream=up)
    t = torch.tensor(x, requires_grad=True)
    (torch.nn.functional.max_pool2d(t, 3, 2, 1) * torch.tensor(up)).sum().backward()
    assert np.allclose(g["x"], t.grad.numpy())


def test_flatten_gradient_is_an_exact_gather():
    prog = Flatten().program()
    (fwd,) = prog.forward
    (back,) = prog.backward
    assert fwd.mode == "+=" and back.mode == "=" and back.lhs is None
    assert str(back.rhs) == "y_bar[{0}, H*W*{1} + W*{2} + {3}]".format(*back.indices)


# -- conv nets ------------------------------------------------------------------------


def small_cnn():
    net = dt.Network()
    x = net.input("x", ["B", 1, 6, 6])
    h = net.apply(Conv2d(1, 2, kernel_size=3, padding=1), x)
    h = net.apply(MaxPool2d(2), net.apply(dt.ReLU(), h))
    z = net.apply(dt.Linear(18, 3), net.apply(Flatten(), h))
    y = net.input("y", ["B"], role="label", dtype="int", classes=3)
    net.set_output(net.apply(dt.CrossEntropy(), z, y))
    return net


def test_a_small_cnn_summarises_and_matches_torch():
    net = small_cnn()
    s = net.summary()
    assert s.total == 2 * 1 * 3 * 3 + 2 + 18 * 3 + 3
    assert s.rows[0]["params"] == {"K1": (2, 1, 3, 3), "b1": (2,)}
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    v = {"x": rng.normal(size=(4, 1, 6, 6)), "y": np.array([0, 2, 1, 2]),
         "K1": rng.normal(size=(2, 1, 3, 3)), "b1": rng.normal(size=2),
         "W5": rng.normal(size=(3, 18)), "b5": rng.normal(size=3)}
    out, g = dt.evaluate(net, v)
    t = {k: torch.tensor(a, requires_grad=k != "y") for k, a in v.items()}
    F = torch.nn.functional
    h = F.max_pool2d(F.conv2d(t["x"], t["K1"], t["b1"], padding=1).relu(), 2).flatten(1)
    loss = F.cross_entropy(F.linear(h, t["W5"], t["b5"]), t["y"])
    loss.backward()
    assert float(out) == pytest.approx(loss.item(), abs=1e-12)
    for k in ("x", "K1", "b1", "W5", "b5"):
        assert np.allclose(g[k], t[k].grad.numpy(), atol=1e-12), k



def w4(**kw):
    """The benchmark conv net (8x8 single-channel images, 10 classes)."""
    return dv.Sequential(dv.Conv2d(1, 8, 3, padding=1), dv.ReLU(), dv.MaxPool2d(2),
                         dv.Flatten(), dv.Linear(128, 10), loss=dv.SoftmaxCrossEntropy(), **kw)


def w4_values(seed=0, batch=B):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(batch, 1, 8, 8)), "K1": 0.5 * rng.normal(size=(8, 1, 3, 3)),
            "b1": 0.1 * rng.normal(size=8), "W2": 0.1 * rng.normal(size=(10, 128)),
            "b2": 0.1 * rng.normal(size=10), "y": rng.integers(0, 10, size=batch)}


def test_conv_sequential_builds_from_input_shape_and_summarises():
    net = w4(input_shape=(1, 8, 8))
    g = net.graph()
    assert g.nodes["x"].shape == (sp.Symbol("B", integer=True, positive=True), 1, 8, 8)
    assert net.parameters() == {"K1": (8, 1, 3, 3), "b1": (8,), "W2": (10, 128), "b2": (10,)}
    rows = net.summary().rows
    shapes = [tuple(str(s) for s in r["shape"]) for r in rows]
    assert shapes == [("B", "8", "8", "8"), ("B", "8", "8", "8"), ("B", "8", "4", "4"),
                      ("B", "128"), ("B", "10"), ()]
    assert [r["count"] for r in rows] == [80, 0, 0, 0, 1290, 0]
    assert net.summary().total == 8 * 9 + 8 + 128 * 10 + 10
    text = str(net.summary())
    assert "K1 [8, 1, 3, 3], b1 [8] = 80" in text and "total parameters: 1370" in text


def test_input_shape_comes_from_the_first_layer_when_it_knows_its_sizes():
    net = dv.Sequential(dv.Conv2d(1, 8, 3, padding=1, height=8, width=8), dv.ReLU(),
                        dv.MaxPool2d(2), dv.Flatten(), dv.Linear(128, 10),
                        loss=dv.SoftmaxCrossEntropy())
    assert net.input_shape == (1, 8, 8)
    assert net.summary().total == 1370
    # a recurrent first layer: one example is [T, D]
    seq = dv.Sequential(dt.TemporalAffine(4, 3, steps=6))
    assert seq.graph().nodes["x"].shape[1:] == (6, 4)


def test_symbolic_spatial_sizes_give_one_line_pointing_to_input_shape():
    # floor(H/2)·floor(W/2)·8 = 128 holds for H, W in {8, 9}: the size cannot be inferred
    with pytest.raises(ShapeError, match=r"expects 128 input features .*H unknown.*"
                                         r"input_shape=\(1, 8, 8\)") as err:
        w4().graph()
    assert "\n" not in str(err.value)


def test_dense_sequentials_keep_in_features_and_bad_shapes_are_refused():
    net = dv.Sequential(dv.ReLU(), dv.Linear(4, 3))
    assert net.input_shape == (4,) and net.in_features == 4
    assert dv.Sequential(dv.Linear(4, 3), in_features=4).graph().nodes["x"].shape[1] == 4
    assert dv.Sequential(dv.Linear(4, 3), input_shape=[4]).in_features == 4
    with pytest.raises(InputError, match="either in_features or input_shape"):
        dv.Sequential(dv.Linear(4, 3), in_features=4, input_shape=(4,))
    with pytest.raises(InputError, match="input_shape must be a non-empty tuple"):
        dv.Sequential(dv.Linear(4, 3), input_shape=4)
    with pytest.raises(ShapeError, match=r"\[B, 1, 8, 8\] and \[\.\., 4\]"):
        dv.Sequential(dv.Linear(4, 3), input_shape=(1, 8, 8)).graph()


def torch_w4(values):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
         for k, v in values.items() if k != "y"}
    h = F.max_pool2d(F.conv2d(t["x"], t["K1"], t["b1"], padding=1).relu(), 2).flatten(1)
    loss = F.cross_entropy(h @ t["W2"].T + t["b2"], torch.tensor(values["y"]))
    loss.backward()
    return loss.item(), {k: v.grad.numpy() for k, v in t.items()}


def test_conv_sequential_matches_pytorch_autograd():
    values = w4_values()
    loss, grads = dv.evaluate(w4(input_shape=(1, 8, 8)), values)
    want_loss, want = torch_w4(values)
    assert abs(float(loss) - want_loss) < 1e-12
    assert set(grads) == set(want)
    for name in want:
        assert np.abs(grads[name] - want[name]).max() < 1e-10, name


def test_conv_sequential_program_scatters_and_its_dense_reading_agrees():
    prog = w4(input_shape=(1, 8, 8)).program()
    assert type(prog) is dt.Program and prog.given == {}  # one Program class for every model
    scatters = {a.target: a for a in prog.forward + prog.backward if a.mode == "+="}
    # the padding, the flatten, the max-pool routing and the transposed convolution
    assert set(scatters) == {"xp1", "y1_3", "a1_bar", "xp1_bar"}
    assert any(isinstance(x, sp.Indexed) and str(x.base) == "ra1"
               for e in scatters["a1_bar"].lhs for x in sp.preorder_traversal(e))
    assert not any(a.rhs.has(sp.KroneckerDelta) for a in prog.backward
                   if a.target not in ("z2_bar", "L_bar"))  # only the one-hot of the loss
    arrays = prog.run(w4_values(1))
    env = Env(arrays, prog.bind(w4_values(1)), prog.constants)
    for name, a in scatters.items():
        rhs, K = dense_form(a, prog.tensors[name].shape)
        assert rhs.has(sp.KroneckerDelta)
        assert np.abs(evaluate_expr(rhs, K, env) - arrays[name]).max() < 1e-12, name


def test_conv_sequential_derivation_shows_the_scatters():
    d = w4(input_shape=(1, 8, 8)).derive()
    titles = [s.title for s in d.sections]
    assert "Scatter-accumulate and gather forms" in titles
    assert any("first maximum" in n.lower() for n in d.notes)
    assert type(d.program) is dt.Program


def test_flatten_scatter_with_symbolic_sizes_runs_in_a_plain_program():
    # y[n, c·H·W + h·W + w] += x[n,c,h,w]: positions hold dimension symbols
    prog = dt.program(Flatten().graph())
    assert type(prog) is dt.Program
    (scatter,) = [a for a in prog.forward if a.mode == "+="]
    assert {"H", "W"} <= {str(s) for e in scatter.lhs for s in e.free_symbols}
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 5))
    y_bar = np.random.default_rng(3).normal(size=(2, 60))
    out = prog.run({"x": x}, upstream=y_bar)
    assert np.array_equal(out["y"], x.reshape(2, -1))
    assert np.array_equal(out["x_bar"], y_bar.reshape(x.shape))


def test_evaluator_sub_ranges_min_max_mod_floor():
    n, i, x = sp.Idx("n", 2), sp.Idx("i", 3), sp.Idx("x", 4)
    a = sp.IndexedBase("a")
    data = np.arange(24.0).reshape(2, 12)
    env = Env({"a": data})
    # i runs over 3 of the 12 columns: a gather, not the whole array
    assert np.array_equal(evaluate_expr(a[n, i], (n, i), env), data[:, :3])
    got = evaluate_expr(sp.Max(a[0, x], a[1, x] - 10, 2) + sp.Min(x, 1), (x,), env)
    assert got.tolist() == [2.0, 4.0, 5.0, 6.0] and data[0, 0] == 0.0
    got = evaluate_expr(a[0, sp.Mod(x + 1, 4)] + sp.floor(x / 2), (x,), env)
    assert got.tolist() == [1.0, 2.0, 4.0, 1.0]


# -- kernels --------------------------------------------------------------------------


def test_kernels_print_the_scatters_as_loops_that_compute_the_same_numbers():
    """kernels.loop_nests turns every assignment (scatters, clamps, mod, argmax) into loops."""
    from kernels.loop_nests import loops
    from kernels.printer import NumbaPrinter

    rng = np.random.default_rng(0)
    for layer in (Conv2d(2, 3, 2, padding=1, padding_mode="circular"),
                  MaxPool2d(3, stride=2, padding=1)):
        prog = layer.program()
        values = random_values(layer, {"x": (2, 2, 5, 6)})
        out = prog.run(values)[prog.output]
        upstream = rng.normal(size=out.shape)
        want = prog.run(values, upstream)
        dims = {str(k): int(v) for k, v in prog.bind(values).items()}
        env = {"np": np, "math": math, **dims, **values, prog.seed: upstream}
        for a in prog.forward + prog.backward:
            info = prog.tensors[a.target]
            env[a.target] = np.zeros(np.shape(want[a.target]),
                                     dtype=int if info.dtype == "int" else float)
            src = "\n".join(loops(a.target, a.indices, a.rhs, NumbaPrinter(), mode=a.mode,
                                  lhs=a.lhs))
            exec(compile(src, a.target, "exec"), env)  # generated from our own Program
            assert np.allclose(env[a.target], want[a.target]), a.target



@pytest.fixture
def kernel_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DERIVEKIT_CACHE", str(tmp_path))


def test_conv_sequential_kernel_gradients_equal_evaluate_and_it_trains(kernel_cache,
                                                                      train_step_equals_evaluate):
    pytest.importorskip("numba")
    kernels = pytest.importorskip("kernels")
    net = w4(input_shape=(1, 8, 8))
    model = kernels.compile(net, dtype="float64", optimizer="adam", lr=0.01)
    values = w4_values(5, batch=7)
    x, y = values["x"], values["y"]
    train_step_equals_evaluate(net, model, x, y)
    data = kernels.data.digits(images=True)
    before = model.evaluate(data)["loss"]
    kernels.fit(model, data, epochs=1, batch_size=32, progress=False)
    after = model.evaluate(data)
    assert after["loss"] < 0.5 * before and after["accuracy"] > 0.8
