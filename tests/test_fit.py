"""Training with generated kernels: fit, fused optimizers, checkpoints, bad input, cache."""
import os
import warnings

import numpy as np
import pytest

import derive as dv
import kernels
from derive.errors import InputError, ShapeError
from kernels import cache, data, optim
from kernels.fit import TrainingWarning


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("fitcache")
    mp.setenv("DERIVEKIT_CACHE", str(folder))
    yield folder
    mp.undo()


def small_net(hidden=16):
    return dv.Sequential(dv.Linear(64, hidden), dv.ReLU(), dv.Linear(hidden, 10),
                         loss=dv.SoftmaxCrossEntropy())


@pytest.fixture(scope="module")
def digits():
    return data.digits()


def test_digits_mlp_learns(digits):
    model = kernels.compile(small_net(32), dtype="float32", optimizer="sgd", lr=0.1, seed=1)
    hist = kernels.fit(model, digits, epochs=10, batch_size=32, progress=False)
    assert len(hist) == 10 and hist[-1]["loss"] < 0.3 * hist[0]["loss"]
    assert hist[-1]["val_accuracy"] >= 0.95
    ev = model.evaluate(digits.X_val, digits.y_val)
    assert ev["accuracy"] == pytest.approx(hist[-1]["val_accuracy"])
    pred = model.predict(digits.X_val)
    assert pred.shape == (len(digits.y_val),) and np.mean(pred == digits.y_val) == ev["accuracy"]
    # calling fit again continues: history grows, the step count goes on
    steps = model.step
    kernels.fit(model, digits, epochs=2, progress=False)
    assert len(model.history) == 12 and model.history[-1]["epoch"] == 12
    assert model.step == steps + 2 * 45


@pytest.mark.parametrize("name, kw", [("adam", {"lr": 0.01}), ("nesterov", {"lr": 0.05}),
                                      ("sgd", {"lr": 0.1, "weight_decay": 0.01})])
def test_fused_update_equals_numpy_reference(name, kw):
    """The epoch kernel (forward, backward, fused update) follows the same trajectory as
    derive.evaluate's gradients fed to the NumPy application of the same rule."""
    net = dv.Sequential(dv.Linear(5, 4), dv.Tanh(), dv.Linear(4, 3), loss=dv.SoftmaxCrossEntropy())
    opt = optim.make(name, **kw)
    model = kernels.compile(net, dtype="float64", optimizer=opt, seed=3)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(10, 5)), rng.integers(0, 3, 10)
    params = {k: v.copy() for k, v in model.params.items()}
    state = opt.init_state(params)
    order = rng.permutation(10)
    t = 0
    for epoch in range(3):
        model.run_epoch(X, y, order, np.full(3, opt.lr), 4)
        for s in range(0, 10, 4):
            idx = order[s:s + 4]
            _, g = dv.evaluate(net, {"x": X[idx], "y": y[idx], **params}, wrt=list(params))
            t += 1
            opt.step(params, g, state, t)
    for k in params:
        assert np.abs(model.params[k] - params[k]).max() < 1e-12


def test_nan_stops_and_keeps_last_good_parameters(digits):
    model = kernels.compile(small_net(), dtype="float64", optimizer="sgd", lr=0.05)
    kernels.fit(model, digits, epochs=1, progress=False)
    good = {k: v.copy() for k, v in model.params.items()}
    with pytest.warns(TrainingWarning, match="stopped"):
        hist = kernels.fit(model, digits, lr=1e6, epochs=3, progress=False)
    assert len(hist) == 1
    assert all(np.array_equal(model.params[k], good[k]) for k in good)


def test_checkpoints_resume_and_reject_other_models(digits, tmp_path):
    ck = tmp_path / "run.npz"
    a = kernels.compile(small_net(), optimizer="adam", seed=0)
    kernels.fit(a, digits, epochs=2, checkpoint=ck, progress=False)
    assert ck.exists() and not list(tmp_path.glob("*.tmp"))
    b = kernels.compile(small_net(), optimizer="adam", seed=5)  # fresh: resumes from ck
    kernels.fit(b, digits, epochs=3, checkpoint=ck, progress=False)
    assert len(b.history) == 3 and b.history[:2] == a.history
    kernels.fit(a, digits, epochs=1, progress=False)  # uninterrupted run of 3 epochs
    assert all(np.allclose(a.params[k], b.params[k], atol=1e-6) for k in a.params)
    other = kernels.compile(small_net(hidden=8), optimizer="adam")
    with pytest.raises(InputError, match=r"run.npz: checkpoint is from another model"):
        other.load(ck)


def test_ctrl_c_saves_a_checkpoint(digits, tmp_path):
    model = kernels.compile(small_net(), optimizer="sgd")

    def interrupt(m, record):
        raise KeyboardInterrupt

    ck = tmp_path / "stop.npz"
    with pytest.raises(KeyboardInterrupt), warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        kernels.fit(model, digits, epochs=5, checkpoint=ck, callback=interrupt, progress=False)
    assert any("checkpoint saved" in str(x.message) for x in w)
    fresh = kernels.compile(small_net(), optimizer="sgd", seed=9).load(ck)
    assert len(fresh.history) == 1
    assert all(np.array_equal(fresh.params[k], model.params[k]) for k in model.params)


def test_bad_data_is_one_line(digits):
    model = kernels.compile(small_net(), optimizer="sgd")
    with pytest.raises(ShapeError, match=r"samples of shape \(32,\) do not fit the model's "
                                         r"input \(64,\)"):
        kernels.fit(model, (np.zeros((10, 32)), np.zeros(10, int)), progress=False)
    with pytest.raises(InputError, match="label 12 out of range for 10 classes"):
        kernels.fit(model, (np.zeros((3, 64)), np.array([1, 12, 0])), progress=False)
    X = np.zeros((3, 64))
    X[1, 5] = np.inf
    with pytest.raises(InputError, match="NaN/Inf"):
        kernels.fit(model, (X, np.array([1, 2, 0])), progress=False)
    with pytest.raises(InputError, match="unknown optimizer"):
        kernels.fit(model, digits, optimizer="lbfgs", progress=False)


def test_cache_is_reused_and_survives_damage(cache_dir, monkeypatch):
    net = dv.Sequential(dv.Linear(3, 2), loss=dv.SoftmaxCrossEntropy())
    m1 = kernels.compile(net, dtype="float64")
    path = m1.module.__file__
    assert os.path.dirname(path) == str(cache_dir) and "def epoch(" in m1.source
    stamp = os.stat(path).st_mtime_ns
    kernels.compile(net, dtype="float64")
    assert os.stat(path).st_mtime_ns == stamp  # an intact file is not rewritten
    with open(path, "a") as f:  # corrupt the generated module
        f.write("garbage(\n")
    with pytest.warns(cache.CacheWarning, match="corrupted cache file"):
        m2 = kernels.compile(net, dtype="float64")
    assert cache.intact(open(path).read())
    X, y = np.ones((4, 3)), np.array([0, 1, 0, 1])
    m2.run_epoch(X, y, np.arange(4), [0.1], 4)
    for nb in (cache_dir / "__pycache__").glob(os.path.basename(path)[:-3] + ".epoch*.nb*"):
        nb.write_bytes(b"garbage")  # corrupt numba's compiled cache
    m3 = kernels.compile(net, dtype="float64")
    with pytest.warns(cache.CacheWarning, match="corrupted numba cache"):
        m3.run_epoch(X, y, np.arange(4), [0.1], 4)


def test_unwritable_cache_falls_back_with_a_warning(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("DERIVEKIT_CACHE", str(blocked / "sub"))
    with pytest.warns(cache.CacheWarning, match="not writable"):
        where = cache.folder()
    assert where != blocked / "sub" and os.access(where, os.W_OK)
