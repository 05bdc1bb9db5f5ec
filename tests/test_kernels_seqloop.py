"""Unrolled sequences compile as loops over t (kernels.sequence_loops).

The kernel of an RNN or LSTM over T steps keeps each node's steps in one stacked
[T, B, ...] buffer and runs steps 2..T (forward) and T..1 (backward) as loops over t, so
its text -- and numba's compile time -- does not grow with T; its gradients are still the
derivation's.
"""
import numpy as np
import pytest

import derive as dv
from derive.layers.sequences import LSTM

D, H, C, B = 3, 5, 3, 6


def rnn(T):
    return dv.Sequential(dv.RNN(D, H, steps=T, output="last"), dv.Linear(H, C),
                         loss=dv.SoftmaxCrossEntropy(), input_shape=(T, D))


def lstm(T):
    return dv.Sequential(LSTM(D, H, steps=T, output="last", h0="zeros"), dv.Linear(H, C),
                         loss=dv.SoftmaxCrossEntropy(), input_shape=(T, D))


def source(net):
    import kernels
    from kernels.train_module import Kernel

    prog = kernels.program_of(net)
    return Kernel(prog, dtype="float32", title="t").source(kernels.optim.make("adam", lr=0.01))


@pytest.mark.parametrize("make", [rnn, lstm], ids=["rnn", "lstm"])
def test_source_size_does_not_grow_with_T(make):
    short, long = source(make(5)), source(make(20))
    n5, n20 = short.count("\n"), long.count("\n")
    assert abs(n20 - n5) <= 12, (n5, n20)  # (longer names wrap a comment or two)
    assert "h1_5" not in long.split("def epoch(")[1].split("\n")[0]  # one stacked argument
    assert "for _ts in range(" in long


@pytest.mark.slow
@pytest.mark.parametrize("make,T", [(rnn, 7), (lstm, 7), (rnn, 12)],
                         ids=["rnn-T7", "lstm-T7", "rnn-T12"])
def test_gradients_equal_evaluate(make, T):
    import kernels

    net = make(T)
    model = kernels.compile(net, dtype="float64")
    rng = np.random.default_rng(3)
    vals = {k: rng.normal(0, 0.6, v.shape) for k, v in model.params.items()}
    vals.update(x=rng.normal(size=(B, T, D)), y=rng.integers(0, C, B))
    for k in model.params:
        model.params[k][...] = vals[k]
    loss, want = dv.evaluate(net, vals, wrt=list(model.params))
    bufs = model.buffers(B, model.meta["signature"]["train"])
    got = model.module.train_step(vals["x"], vals["y"], *model._param_list(), *bufs)
    assert abs(got - float(loss)) < 1e-10
    for k, g in zip(model.params, model.meta["grads"]):
        assert np.abs(model.grads[g] - want[k]).max() < 1e-10, k
    assert any(len(shape) == 3 and shape[0] == T for shape in model.meta["buffers"].values())
    # the evaluator and the predictions read the same stacked buffers
    assert abs(model.evaluate(vals["x"], vals["y"])["loss"] - float(loss)) < 1e-10
