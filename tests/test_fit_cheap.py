"""fit's per-epoch bookkeeping, made cheap, keeps what it guarded: the
orders are the seeded permutations, a non-finite parameter (finite loss) rolls back every
piece of state, and the progress bar still ends on the last epoch's numbers."""
import importlib
import io
import sys

import numpy as np
import pytest

import derive as dv
import kernels
from kernels.fit import TrainingWarning

fit_mod = importlib.import_module("kernels.fit")


@pytest.fixture(autouse=True)
def _cache(kernel_cache):
    return kernel_cache


def model_and_data():
    net = dv.Sequential(dv.Linear(8, 16), dv.BatchNorm(16), dv.ReLU(), dv.Linear(16, 3),
                        loss=dv.SoftmaxCrossEntropy())
    model = kernels.compile(net, dtype="float64", optimizer="adam", lr=0.01, seed=2)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(96, 8))
    return model, (X, (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 1))


def test_orders_are_permutations_fixed_by_seed_and_epoch():
    """fit's order of an epoch depends on (seed, epoch) alone: a resumed run draws what the
    whole run would, and the bench hands every runner these orders."""
    from kernels.bench_children import epoch_orders

    orders = {(s, e): fit_mod.epoch_order(37, s, e) for s in (0, 1, 5) for e in range(10)}
    for order in orders.values():
        assert order.dtype == np.int64 and sorted(order) == list(range(37))
    assert len({o.tobytes() for o in orders.values()}) == len(orders)  # all differ
    out = np.full(37, -1, np.int64)
    assert fit_mod.epoch_order(37, 5, 3, out) is out and np.array_equal(out, orders[(5, 3)])
    assert all(np.array_equal(a, orders[(0, e)]) for e, a in enumerate(epoch_orders(37, 10)))
    one = fit_mod.epoch_order(1, 0, 0)
    assert one.tolist() == [0] and fit_mod.epoch_order(0, 0, 0).size == 0


def test_non_finite_parameters_roll_back_everything(monkeypatch):
    model, data = model_and_data()
    kernels.fit(model, data, epochs=2, batch_size=16, progress=False)
    theta, states = model.theta.copy(), [s.copy() for s in model.flat_state]
    stats, step = {k: v.copy() for k, v in model.stats.items()}, model.step
    real = model.run_epoch

    def poisoned(*args):  # trains, then one parameter is NaN while the loss is finite
        loss, acc = real(*args)
        model.params["b1"][3] = np.nan
        return loss, acc

    monkeypatch.setattr(model, "run_epoch", poisoned)
    with pytest.warns(TrainingWarning, match="epoch 3: .*stopped"):
        kernels.fit(model, data, epochs=2, batch_size=16, progress=False)
    assert len(model.history) == 2 and model.step == step
    assert np.array_equal(model.theta, theta)
    assert all(np.array_equal(a, b) for a, b in zip(model.flat_state, states))
    assert all(np.array_equal(model.stats[k], v) for k, v in stats.items())


def test_finiteness_covers_parameters_and_running_statistics():
    model, _ = model_and_data()
    model.params["W1"][0, 0] = 1e300
    assert fit_mod._finite(model)
    model.stats[next(iter(model.stats))][0] = np.inf
    assert not fit_mod._finite(model)


def test_progress_bar_ends_on_the_last_epoch(monkeypatch):
    model, data = model_and_data()
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    hist = kernels.fit(model, data, epochs=30, batch_size=16, progress=True)
    text = err.getvalue()
    assert "30/30" in text and f"loss={hist[-1]['loss']:.4f}" in text
    # redrawn a few times a second at most, not after each of the 30 fast epochs
    assert text.count("\r") < 10
