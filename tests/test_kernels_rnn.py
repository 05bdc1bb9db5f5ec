"""The RNN as W5 trains it: inside a Sequential, from h_0 = 0, logits from h_T.

Checked against torch.nn.RNN (tanh, same weights) and float64 finite differences; the
generated kernels (one vjp kernel, the training step) against derive.evaluate to 1e-10;
the bench workload's network against the NumPy peer's training run.
"""
import re

import numpy as np
import pytest

import derive as dv
from derive.errors import InputError, ShapeError
from kernels import bench, vjp

T, D, H, C, B = 4, 3, 5, 3, 6
PARAMS = {"W_xh1": (H, D), "W_hh1": (H, H), "b1": (H,), "W2": (C, H), "b2": (C,)}


pytestmark = pytest.mark.usefixtures("kernel_cache")


def rnn_net(**kw):
    return dv.Sequential(dv.RNN(D, H, steps=T, output="last"), dv.Linear(H, C),
                         loss=dv.SoftmaxCrossEntropy(), **kw)


def values(seed=0):
    rng = np.random.default_rng(seed)
    vals = {k: rng.normal(0, 0.6, s) for k, s in PARAMS.items()}
    vals.update(x=rng.normal(size=(B, T, D)), y=rng.integers(0, C, B))
    return vals


def test_sequential_rnn_starts_from_zeros_and_names_its_parameters():
    net = rnn_net()
    assert net.parameters() == PARAMS
    assert net.input_shape == (T, D)  # from the RNN itself; input_shape=(T, D) says the same
    g = net.graph()
    assert [n.name for n in g.leaves()] == ["x", "W_xh1", "W_hh1", "b1", "W2", "b2", "y"]
    # step 1 has no recurrent term; later steps read the previous state through W_hh
    assert "W_hh1" not in g.nodes["a1_1"].inputs and "h1_1" in g.nodes["a1_2"].inputs
    assert g.nodes["x1_2"].text == "x[:, 1, :]"
    with pytest.raises(ShapeError, match="reads T = 4 steps"):
        rnn_net(input_shape=(T + 1, D)).graph()
    with pytest.raises(InputError, match="h0 must be 'input' or 'zeros'"):
        dv.RNN(D, H, h0="ones")


def test_gradients_equal_torch_rnn():
    torch = pytest.importorskip("torch")
    vals = values()
    loss, grads = dv.evaluate(rnn_net(), vals, wrt=list(PARAMS))
    t = {k: torch.tensor(v, requires_grad=True) for k, v in vals.items() if k in PARAMS}
    rnn = torch.nn.RNN(D, H, nonlinearity="tanh", batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(t["W_xh1"])
        rnn.weight_hh_l0.copy_(t["W_hh1"])
        rnn.bias_ih_l0.copy_(t["b1"])
        rnn.bias_hh_l0.zero_()
    _, h_last = rnn(torch.tensor(vals["x"]))  # h_0 defaults to zeros
    logits = h_last[0] @ t["W2"].T + t["b2"]
    ref = torch.nn.functional.cross_entropy(logits, torch.tensor(vals["y"]))
    ref.backward()
    torch_grads = {"W_xh1": rnn.weight_ih_l0.grad, "W_hh1": rnn.weight_hh_l0.grad,
                   "b1": rnn.bias_ih_l0.grad, "W2": t["W2"].grad, "b2": t["b2"].grad}
    assert abs(float(loss) - ref.item()) < 1e-12
    for k, g in torch_grads.items():
        assert np.abs(grads[k] - g.numpy()).max() < 1e-12, k


def test_gradients_equal_finite_differences():
    net, vals = rnn_net(), values(1)
    _, grads = dv.evaluate(net, vals)
    rng = np.random.default_rng(2)
    for name in list(PARAMS) + ["x"]:
        v = rng.normal(size=vals[name].shape)
        eps = 1e-6
        plus = dv.evaluate(net, {**vals, name: vals[name] + eps * v})[0]
        minus = dv.evaluate(net, {**vals, name: vals[name] - eps * v})[0]
        numeric = (float(plus) - float(minus)) / (2 * eps)
        assert abs(numeric - float(np.sum(grads[name] * v))) < 1e-7, name


def test_vjp_kernel_equals_evaluate():
    vals = values(3)
    want_loss, want = dv.evaluate(rnn_net(), vals)
    got_loss, got = vjp.run(rnn_net(), vals)
    assert abs(float(got_loss) - float(want_loss)) < 1e-12
    assert set(got) == set(want) == set(PARAMS) | {"x"}
    for k in want:
        assert np.abs(got[k] - want[k]).max() < 1e-10, k
    # the standalone layer from zeros, every state out, an arbitrary upstream adjoint
    layer = dv.RNN(D, H, steps=T, h0="zeros")
    lv = {k[:-1]: v for k, v in vals.items() if k in ("W_xh1", "W_hh1", "b1")}
    lv["x"] = vals["x"]
    upstream = np.random.default_rng(4).normal(size=(B, T, H))
    want_out, want = dv.evaluate(layer, lv, upstream=upstream)
    got_out, got = vjp.run(layer, lv, upstream=upstream)
    assert np.abs(got_out - want_out).max() < 1e-10
    for k in want:
        assert np.abs(got[k] - want[k]).max() < 1e-10, k


def test_train_step_equals_evaluate_with_blas_products():
    import kernels

    net = rnn_net()
    model = kernels.compile(net, dtype="float64")
    vals = values(5)
    for k in PARAMS:
        model.params[k][...] = vals[k]
    loss, want = dv.evaluate(net, vals, wrt=list(PARAMS))
    bufs = model.buffers(B, model.meta["signature"]["train"])
    got = model.module.train_step(vals["x"], vals["y"], *model._param_list(), *bufs)
    assert abs(got - float(loss)) < 1e-12
    for k, g in zip(model.params, model.meta["grads"]):
        assert np.abs(model.grads[g] - want[k]).max() < 1e-10, k
    # every per-step product is a BLAS call on a step of the stacked [T, B, h] buffers:
    # forward, the adjoint sweep, the weight sums (added in place by gemm); steps 2..T are
    # one function, compiled once, called in a loop over the steps
    src = model.source
    for product in (r"x1_seq\[0, :B\], W_xh1\.T", r"h1_seq\[step, :B\], W_hh1\.T",
                    r"x1_seq\[step \+ 1, :B\], W_xh1\.T", r"a1_seq_bar\[_ts, :B\], W_hh1",
                    r"a1_seq_bar\[1, :B\]\.T, h1_seq\[0, :B\]",
                    r"a1_seq_bar\[_ts, :B\]\.T, x1_seq\[_ts, :B\]"):
        assert re.search(r"(dot|gemm|matmul)\(" + product, src), product
    assert re.search(rf"# the statements of a1_2, h1_2, .*a1_{T}, h1_{T}.*: one function", src)
    assert re.search(rf"for _ts in range\(1, {T}\):\n(        .*\n)*?"
                     r"        _block\d+\(h1_seq, B, W_hh1, a1_seq, x1_seq, .*_ts - 1\)", src)


def _small_w5():
    from kernels import data

    def sequences():
        ds = data.sequences(96, T=T, d=D, n_classes=C, seed=0)
        return ds.X, ds.y

    return bench.Workload("W5s", "small W5", {"kind": "rnn", "d": D, "hidden": H, "T": T,
                                              "classes": C}, sequences, "adam", 1e-2, 16)


def test_bench_rnn_trains_like_the_numpy_peer():
    net, names = bench.derivekit_net(bench.WORKLOADS["W5"])
    shapes = {names[k]: v.shape for k, v in bench.initial_params(bench.WORKLOADS["W5"]).items()}
    assert shapes == net.parameters()
    res = bench.run_workload(_small_w5(), bench.load_peers(["peer_numpy"]), 3,
                             log=lambda *a: None)
    # same data, initial parameters, order and Adam: the same training run (float32)
    assert res["derivekit"]["loss"] == pytest.approx(res["numpy"]["loss"], abs=1e-5)
