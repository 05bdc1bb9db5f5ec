"""Conv nets as Sequential models (issue 4, W4 of issue 5), and the engine changes they need.

The W4 network (conv3x3, 8 filters, padding 1 -> ReLU -> maxpool 2 -> flatten ->
linear 128->10, cross-entropy on 8x8 images) is built with ``input_shape``, summarised,
evaluated and checked against PyTorch's autograd; its Program carries the exact
scatter-accumulates (build_program scatterises every program), which Program.run
executes with positions holding dimension symbols and integer routing tensors. The
compiled numba kernel of the same net is checked against the oracle.
"""
import numpy as np
import pytest
import sympy as sp

import derive as dv
import derive.tensor as dt
from derive.errors import InputError, ShapeError
from derive.tensor.evaluate import Env, evaluate_expr
from derive.tensor.layer4 import Program4, dense_form
from derive.tensor.pool import Flatten

B = 5


def w4(**kw):
    """The W4 conv net of issue 5 (8x8 single-channel images, 10 classes)."""
    return dv.Sequential(dv.Conv2d(1, 8, 3, padding=1), dv.ReLU(), dv.MaxPool2d(2),
                         dv.Flatten(), dv.Linear(128, 10), loss=dv.SoftmaxCrossEntropy(), **kw)


def w4_values(seed=0, batch=B):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(batch, 1, 8, 8)), "K1": 0.5 * rng.normal(size=(8, 1, 3, 3)),
            "b1": 0.1 * rng.normal(size=8), "W2": 0.1 * rng.normal(size=(10, 128)),
            "b2": 0.1 * rng.normal(size=10), "y": rng.integers(0, 10, size=batch)}


# -- building -----------------------------------------------------------------------------
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


# -- numbers --------------------------------------------------------------------------------
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
    assert isinstance(prog, Program4)
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
    assert isinstance(d.program, Program4)


def test_flatten_scatter_with_symbolic_sizes_runs_in_a_plain_program():
    # y[n, c·H·W + h·W + w] += x[n,c,h,w]: positions hold dimension symbols (item 4)
    prog = dt.program(Flatten().graph())
    assert type(prog) is dt.Program
    (scatter,) = [a for a in prog.forward if a.mode == "+="]
    assert {"H", "W"} <= {str(s) for e in scatter.lhs for s in e.free_symbols}
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 5))
    y_bar = np.random.default_rng(3).normal(size=(2, 60))
    out = prog.run({"x": x}, upstream=y_bar)
    assert np.array_equal(out["y"], x.reshape(2, -1))
    assert np.array_equal(out["x_bar"], y_bar.reshape(x.shape))


def test_bind_solves_a_product_size_like_heads_times_d_k():
    layer = dt.SelfAttention(d_model=4, heads=2, d_k="d_k", steps=3)
    prog = dt.program(layer.graph())  # a plain Program: no layer-specific binding
    rng = np.random.default_rng(4)
    values = {"x": rng.normal(size=(2, 3, 4)), "W_o": rng.normal(size=(4, 6)),
              **{w: rng.normal(size=(6, 4)) for w in ("W_q", "W_k", "W_v")}}
    dims = prog.bind(values)
    assert dims[sp.Symbol("d_k", integer=True, positive=True)] == 3
    assert np.allclose(prog.run(values)["y"], layer.program().run(values)["y"], atol=0)
    with pytest.raises(ShapeError, match="W_q"):
        prog.bind({**values, "W_q": rng.normal(size=(5, 4))})  # 2·d_k = 5: no d_k


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


# -- kernels ----------------------------------------------------------------------------------
@pytest.fixture
def kernel_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DERIVEKIT_CACHE", str(tmp_path))


def test_conv_sequential_kernel_gradients_equal_evaluate_and_it_trains(kernel_cache):
    pytest.importorskip("numba")
    kernels = pytest.importorskip("kernels")
    net = w4(input_shape=(1, 8, 8))
    model = kernels.compile(net, dtype="float64", optimizer="adam", lr=0.01)
    values = w4_values(5, batch=7)
    x, y = values["x"], values["y"]
    vals = {"x": x, "y": y, **{k: v.copy() for k, v in model.params.items()}}
    loss, want = dv.evaluate(net, vals, wrt=list(model.params))
    bufs = model.buffers(7, model.meta["signature"]["train"])
    got_loss = model.module.train_step(x, y, *model._param_list(), *bufs)
    assert abs(got_loss - loss) < 1e-12
    for k, g in zip(model.params, model.meta["grads"]):
        assert np.abs(model.grads[g] - want[k]).max() < 1e-10, k
    data = kernels.data.digits(images=True)
    before = model.evaluate(data)["loss"]
    kernels.fit(model, data, epochs=1, batch_size=32, progress=False)
    after = model.evaluate(data)
    assert after["loss"] < 0.5 * before and after["accuracy"] > 0.8
