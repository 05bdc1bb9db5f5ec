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


def test_every_kernel_function_is_cached_and_the_blas_helpers_are_shared():
    """numba keeps nothing of a function that reads a 'dynamic global' (a function passed
    as a value, a ctypes pointer), so a warm start would compile it again: every function
    of an LSTM's kernel compiles without that warning. The products go through the
    runtime's matmul/gemm (typed once per machine for every layout), called by name."""
    import re
    import warnings

    import kernels
    from numba.core.errors import NumbaWarning

    T = 6
    model = kernels.compile(lstm(T), dtype="float32", optimizer="adam", lr=0.01)
    src = model.source
    assert "from kernels.runtime import matmul" in src and "def gemm(" not in src
    assert "np.dot(" not in src  # every product here is of two matrices
    assert not re.search(r"_block\d+\((matmul|gemm|tanh_f32)\b", src)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, T, D)).astype(np.float32), rng.integers(0, C, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NumbaWarning)
        loss, _ = model.run_epoch(X, y, np.arange(20), np.full(3, 0.01), 8)
        model.evaluate(X, y)
    assert np.isfinite(loss)
