"""Checks of generated kernels against derive.evaluate, shared by the kernel tests."""
import numpy as np

import derive as dv


def train_step_equals_evaluate(net, model, x, y):
    """One generated train step of ``model`` (compiled from ``net`` in float64) gives the
    loss and every parameter gradient derive.evaluate gives at ``x``, ``y``."""
    vals = {"x": x, "y": y, **{k: v.copy() for k, v in model.params.items()}}
    loss, want = dv.evaluate(net, vals, wrt=list(model.params))
    bufs = model.buffers(len(x), model.meta["signature"]["train"])
    got_loss = model.module.train_step(x, y, *model._param_list(), *bufs)
    assert abs(got_loss - loss) < 1e-12
    for k, g in zip(model.params, model.meta["grads"]):
        assert np.abs(model.grads[g] - want[k]).max() < 1e-10, k
