"""Training state that survives Ctrl-C, damaged files and bad arguments: interrupted runs
resume to the uninterrupted result, checkpoints are read and written safely, and every
entry into a compiled kernel checks what the kernel indexes with."""
import errno
import os
import warnings

import numpy as np
import pytest

import derive as dv
import kernels
from derive.errors import InputError, ShapeError
from kernels import vjp
from kernels.fit import TrainingWarning

EPOCHS, BS = 6, 16


@pytest.fixture(autouse=True)
def _cache(kernel_cache):
    return kernel_cache


def net():
    """Every kind of training state: Adam's moments, BatchNorm's running statistics and
    Dropout's masks (seeded by the model's seed and step count)."""
    return dv.Sequential(dv.Linear(8, 16), dv.BatchNorm(16), dv.ReLU(), dv.Dropout(0.2),
                         dv.Linear(16, 3), loss=dv.SoftmaxCrossEntropy())


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 8))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)
    return X[:120], y[:120], X[120:], y[120:]  # 120 samples: 8 steps of 16 (last of 8)


def compile_(seed=3):
    return kernels.compile(net(), dtype="float64", optimizer="adam", lr=0.01, seed=seed)


def train(model, data, **kw):
    return kernels.fit(model, data, epochs=EPOCHS, batch_size=BS, progress=False, **kw)


@pytest.fixture(scope="module")
def uninterrupted(data, kernel_cache):
    model = compile_()
    train(model, data)
    return model


def same_run(a, b):
    """The largest difference in parameters, running statistics and Adam's state."""
    diffs = [np.abs(a.theta - b.theta).max()]
    diffs += [np.abs(a.stats[k] - b.stats[k]).max() for k in a.stats]
    diffs += [np.abs(x - y).max() for x, y in zip(a.flat_state, b.flat_state)]
    return max(diffs)


def interrupt(model, kind, k):
    """Make ``model`` raise KeyboardInterrupt at the k-th (1-based) epoch, at ``kind``."""
    calls = {"n": 0}

    def hit():
        calls["n"] += 1
        return calls["n"] == k

    def wrap(name, after):
        original = getattr(model, name)

        def wrapped(*args, **kw):
            if not after and hit():
                raise KeyboardInterrupt
            out = original(*args, **kw)
            if after and hit():
                raise KeyboardInterrupt  # Ctrl-C seen when the compiled epoch returns
            return out

        setattr(model, name, wrapped)

    if kind == "callback":
        return lambda m, record: hit() and (_ for _ in ()).throw(KeyboardInterrupt)
    if kind == "record":  # between keeping the epoch's record and anything after it
        class History(list):
            def append(self, item):
                super().append(item)
                if hit():
                    raise KeyboardInterrupt

        model.history = History()
    else:
        wrap(*{"before_epoch": ("run_epoch", False), "after_epoch": ("run_epoch", True),
               "validation": ("evaluate", False), "saving": ("save", False)}[kind])
    return None


KINDS = ["before_epoch", "after_epoch", "validation", "record", "saving", "callback"]
POINTS = [(kind, int(k)) for kind, k in
          zip(KINDS * 2, np.random.default_rng(20).integers(1, EPOCHS + 1, 2 * len(KINDS)))]


@pytest.mark.parametrize("kind, k", POINTS)
def test_interrupted_run_resumes_to_the_uninterrupted_one(data, uninterrupted, tmp_path,
                                                          kind, k):
    ck = tmp_path / "run.npz"
    model = compile_()
    callback = interrupt(model, kind, k)
    with pytest.raises(KeyboardInterrupt), warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        train(model, data, checkpoint=ck, callback=callback)
    assert any("checkpoint saved" in str(x.message) for x in w)
    # in memory and on disk: one consistent state, the last completed epoch
    done = len(model.history)
    assert done in (k - 1, k) and model.step == 8 * done
    assert [r["epoch"] for r in model.history] == list(range(1, done + 1))
    saved = compile_(seed=11).load(ck)
    assert len(saved.history) == done and saved.step == 8 * done and saved.seed == 3
    assert np.array_equal(saved.theta, model.theta)
    # a fresh model (other initial weights, other seed) resumes from the checkpoint
    resumed = compile_(seed=11)
    train(resumed, data, checkpoint=ck)
    assert same_run(resumed, uninterrupted) <= 1e-12
    assert [r["loss"] for r in resumed.history] == \
        pytest.approx([r["loss"] for r in uninterrupted.history], abs=1e-12)
    # and the interrupted model itself continues to the same result
    model.__dict__.pop("run_epoch", None), model.__dict__.pop("evaluate", None)
    model.__dict__.pop("save", None)
    model.history = list(model.history)
    kernels.fit(model, data, epochs=EPOCHS - done, batch_size=BS, progress=False)
    assert same_run(model, uninterrupted) <= 1e-12


# -- damaged checkpoints and full disks ---------------------------------------------------
def test_damaged_checkpoints_are_one_line_and_change_nothing(data, tmp_path):
    model = compile_()
    kernels.fit(model, data, epochs=1, batch_size=BS, progress=False)
    good = tmp_path / "good.npz"
    model.save(good)
    other = compile_(seed=4)
    before = other.theta.copy()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match=r"cut.npz: not a readable derivekit checkpoint "
                                         r"\(truncated or damaged") as info:
        other.load(cut)
    assert "\n" not in str(info.value)
    for name, content in [("empty.npz", b""), ("text.npz", b"not a zip file\n")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(InputError, match=rf"{name}: not a readable derivekit checkpoint"):
            other.load(tmp_path / name)
    with pytest.raises(InputError, match=r"missing.npz: no such checkpoint file"):
        other.load(tmp_path / "missing.npz")
    # a well-formed file whose array has the wrong shape: named, with both shapes
    with np.load(good) as f:
        arrays = {k: f[k] for k in f.files}
    for key, value, words in [
            ("param/W3", np.zeros((3, 15)), r"array 'param/W3' is float64 of shape \[3, 15\]; "
                                            r"the model needs floats of shape \[3, 16\]"),
            ("stat/running_var2", np.array(["a"] * 16), r"array 'stat/running_var2' is <U1"),
            ("param/b1", np.full(16, np.nan), r"array 'param/b1' holds NaN or Inf")]:
        np.savez(tmp_path / "bad.npz", **{**arrays, key: value})
        with pytest.raises(InputError, match=r"bad.npz: " + words):
            other.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "bad.npz", **{k: v for k, v in arrays.items() if k != "param/W1"})
    with pytest.raises(InputError, match=r"bad.npz: checkpoint has no array 'param/W1'"):
        other.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "bad.npz", **{**arrays, "header": np.array("[1, 2]")})
    with pytest.raises(InputError, match=r"bad.npz: not a derivekit checkpoint"):
        other.load(tmp_path / "bad.npz")
    assert np.array_equal(other.theta, before) and other.history == [] and other.step == 0
    assert np.array_equal(compile_(seed=4).load(good).theta, model.theta)


def full_disk(monkeypatch):
    """Every file opened by os.fdopen takes 100 bytes, then fails with ENOSPC."""
    real = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[:100])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(os, "fdopen", lambda *a, **kw: Full(real(*a, **kw)))


def test_a_full_disk_keeps_the_previous_checkpoint(data, tmp_path, monkeypatch):
    ck = tmp_path / "run.npz"
    model = compile_()
    kernels.fit(model, data, epochs=1, batch_size=BS, checkpoint=ck, progress=False)
    kept = ck.read_bytes()
    full_disk(monkeypatch)
    with pytest.raises(InputError, match=r"run.npz: cannot write the checkpoint \(No space "
                                         r"left on device\); the previous checkpoint is "
                                         r"kept$"):
        kernels.fit(model, data, epochs=1, batch_size=BS, checkpoint=ck, progress=False)
    with pytest.raises(InputError, match=r"new.npz: cannot write .*; nothing saved$"):
        model.save(tmp_path / "new.npz")
    monkeypatch.undo()
    assert ck.read_bytes() == kept and sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]
    assert len(compile_().load(ck).history) == 1


# -- batch sizes --------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "32", None])
def test_batch_size_below_one_or_not_whole_is_refused(data, bad):
    model = compile_()
    with pytest.raises(InputError, match=rf"batch_size must be a whole number >= 1, got "
                                         rf"{repr(bad)}$"):
        kernels.fit(model, data, epochs=1, batch_size=bad, progress=False)
    with pytest.raises(InputError, match=r"run_epoch: need batch_size >= 1 \(a whole number\)"):
        model.run_epoch(data[0], data[1], np.arange(120), np.ones(8), bad)


def test_batch_larger_than_the_data_is_one_full_batch(data):
    big, full = compile_(), compile_()
    with pytest.warns(TrainingWarning, match=r"batch_size 1000000000 is larger than the 120 "
                                             r"training samples; using 120 \(full batch\)"):
        kernels.fit(big, data, epochs=2, batch_size=10 ** 9, progress=False)
    kernels.fit(full, data, epochs=2, batch_size=120, progress=False)
    assert np.array_equal(big.theta, full.theta) and big.step == 2
    # run_epoch: the same single minibatch, no buffers for rows that do not exist
    order = np.arange(120)
    loss = big.run_epoch(data[0], data[1], order, [0.01], 10 ** 9)
    assert loss == full.run_epoch(data[0], data[1], order, [0.01], 120)
    rows = {k[1] if isinstance(k[0], str) else k[0] for k in big._buffers}
    assert rows - {big.meta["chunk"]} == {120}  # chunk: evaluate's buffers


def test_cli_train_refuses_batch_size_zero_in_one_line(capsys, tmp_path):
    from derive import command_line as cli

    code = cli.main(["train", "--model", "linear(64,10)", "--data", "digits", "--epochs", "1",
                     "--batch-size", "0", "--no-progress", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.endswith("--batch-size: expected a whole number >= 1, got 0")


# -- what compiled kernels index with -----------------------------------------------------
@pytest.mark.parametrize("labels, words", [
    ([10 ** 6], r"run_epoch: label 1000000 in y is outside 0..2 \(the model's 3 classes\)"),
    ([-5], r"run_epoch: label -5 in y is outside 0..2"),
    ([3], r"run_epoch: label 3 in y is outside 0..2"),
])
def test_run_epoch_refuses_labels_outside_the_classes(data, labels, words):
    model = compile_()
    X, y = data[0][:32], data[1][:32].copy()
    y[7] = labels[0]
    before = model.theta.copy()
    with pytest.raises(InputError, match=words):
        model.run_epoch(X, y, np.arange(32), np.ones(2), 16)
    assert np.array_equal(model.theta, before) and model.step == 0


def test_kernel_entries_check_shapes_dtypes_and_order(data):
    model = compile_()
    X, y, order, lrs = data[0][:32], data[1][:32], np.arange(32), np.ones(2)
    cases = [
        (ShapeError, r"run_epoch: X of shape \[32, 7\] does not fit the model's input \[N, 8\]",
         (X[:, :7], y, order, lrs, 16)),
        (InputError, r"run_epoch: y must hold integer class labels, got float64",
         (X, y.astype(float), order, lrs, 16)),
        (InputError, r"run_epoch: need X and y of equal length \(32 rows of X\), got y of "
                     r"shape \[31\]",
         (X, y[:31], order, lrs, 16)),
        (InputError, r"run_epoch: need order's row numbers in 0..31 \(the rows of X\), got 32",
         (X, y, order + 1, lrs, 16)),
        (InputError, r"run_epoch: need order a non-empty 1-D int64 array",
         (X, y, order.astype(np.int32), lrs, 16)),
        (InputError, r"run_epoch: need a learning rate per step \(2 steps of 16\)",
         (X, y, order, lrs[:1], 16)),
        (InputError, r"run_epoch: X must be numbers",
         ([["a"] * 8] * 32, y, order, lrs, 16)),
    ]
    for error, words, args in cases:
        with pytest.raises(error, match=words):
            model.run_epoch(*args)
    assert model.step == 0
    with pytest.raises(ShapeError, match=r"outputs: X of shape \[4, 9\] does not fit"):
        model.outputs(np.ones((4, 9)))
    with pytest.raises(ShapeError, match=r"outputs: X of shape \[8\] does not fit"):
        model.predict(np.ones(8))
    with pytest.raises(InputError, match=r"outputs: X must be numbers, \[N, 8\], got str"):
        model.predict("abc")
    with pytest.raises(InputError, match=r"label 1000000 out of range for 3 classes"):
        model.evaluate(X[:2], np.array([0, 10 ** 6]))
    with pytest.raises(InputError, match=r"evaluate: X must be numbers"):
        model.evaluate([["a"] * 8], np.array([0]))
    with pytest.raises(InputError, match=r"evaluate: no samples \(X and y are empty\)"):
        model.evaluate(np.zeros((0, 8)), np.zeros(0, np.int64))
    with pytest.raises(InputError, match=r"data has no training samples \(X is empty\)"):
        kernels.fit(model, (np.zeros((0, 8)), np.zeros(0, np.int64)), progress=False)


def test_vjp_run_checks_the_labels_it_indexes_with():
    from derive.layers import CrossEntropy

    z = np.ones((2, 3))
    for y in ([0, 3], [-5, 0], [10 ** 6, 0]):
        with pytest.raises(InputError, match=r"labels in 'y' must lie in 0..2"):
            vjp.run(CrossEntropy(classes=3), {"z": z, "y": np.array(y)})
    with pytest.raises(InputError, match=r"tensor 'y' \[B\] needs integer class labels"):
        vjp.run(CrossEntropy(classes=3), {"z": z, "y": ["a", "b"]})
    loss, grads = vjp.run(CrossEntropy(classes=3), {"z": z, "y": np.array([0, 2])})
    assert abs(loss - np.log(3)) < 1e-12
    assert np.allclose(grads["z"], [[-1 / 3, 1 / 6, 1 / 6], [1 / 6, 1 / 6, -1 / 3]])
