"""Data loaders and checks: digits, IDX (raw and .gz), .npz, arrays, bad input."""
import numpy as np
import pytest

from derive.errors import InputError, ShapeError
from kernels import data


def test_digits_is_standardised_split_and_deterministic():
    d = data.digits()
    assert d.X.shape == (1438, 64) and d.X_val.shape == (359, 64) and d.n_classes == 10
    assert np.allclose(d.X.mean(axis=0), 0, atol=1e-12)
    stds = d.X.std(axis=0)
    assert np.allclose(stds[stds > 0], 1)  # constant pixels only centred
    again = data.digits()
    assert np.array_equal(d.X, again.X) and np.array_equal(d.y_val, again.y_val)
    other = data.digits(seed=1)
    assert not np.array_equal(d.y, other.y)
    assert sorted(set(d.y.tolist())) == list(range(10))
    im = data.digits(images=True, dtype=np.float32)
    assert im.X.shape == (1438, 1, 8, 8) and im.X.dtype == np.float32
    assert np.array_equal(im.X.reshape(-1, 64), d.X.astype(np.float32))


def test_digits_are_kept_in_the_cache_and_equal_sklearns(tmp_path, monkeypatch):
    from sklearn.datasets import load_digits

    monkeypatch.setenv("DERIVEKIT_CACHE", str(tmp_path))
    first = data.digits()
    saved = list(tmp_path.glob("digits-sklearn-*.npz"))
    assert len(saved) == 1
    raw = load_digits()
    with np.load(saved[0]) as f:
        assert np.array_equal(f["data"], raw.data) and np.array_equal(f["target"], raw.target)
    again = data.digits()  # read from the cached copy
    assert np.array_equal(first.X, again.X) and np.array_equal(first.y_val, again.y_val)
    saved[0].write_bytes(b"not an npz")  # a damaged copy is read from sklearn again
    assert np.array_equal(data.digits().X, first.X)


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 30).astype(np.uint8)
    return tmp_path_factory.mktemp("mnist"), X, y


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_roundtrip_and_mnist(tiny_mnist, suffix):
    folder, X, y = tiny_mnist
    xi = folder / f"train-images-idx3-ubyte{suffix}"
    yi = folder / f"train-labels-idx1-ubyte{suffix}"
    data.write_idx(xi, X)
    data.write_idx(yi, y)
    assert np.array_equal(data.read_idx(xi), X)
    ds = data.mnist(xi, yi, validation=10)
    assert ds.X.shape == (20, 784) and ds.X_val.shape == (10, 784)
    assert ds.X.dtype == np.float32 and 0 <= ds.X.min() and ds.X.max() <= 1
    assert ds.X.max() > 0.9
    # with a test set, the test set is the validation split, in file order
    ds2 = data.mnist(xi, yi, test_images=xi, test_labels=yi, flatten=False)
    assert ds2.X_val.shape == (30, 1, 28, 28)
    assert np.allclose(ds2.X_val[:, 0] * 255, X) and np.array_equal(ds2.y_val, y)


def test_npz(tiny_mnist, tmp_path):
    _, X, y = tiny_mnist
    p = tmp_path / "fashion.npz"
    np.savez(p, x_train=X, y_train=y, x_test=X[:5], y_test=y[:5])
    ds = data.mnist(p)
    assert len(ds.X) == 30 and len(ds.X_val) == 5 and ds.name == "fashion.npz"
    np.savez(tmp_path / "bad.npz", images=X)
    with pytest.raises(InputError, match=r"bad.npz: an .npz needs arrays x_train and y_train"):
        data.mnist(tmp_path / "bad.npz")


def test_bad_idx_files(tmp_path):
    p = tmp_path / "junk"
    p.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(InputError, match="junk: not an IDX file"):
        data.read_idx(p)
    q = tmp_path / "short"
    q.write_bytes(bytes([0, 0, 8, 1]) + np.array([10], ">u4").tobytes() + b"abc")
    with pytest.raises(InputError, match=r"says \(10,\) \(10 bytes of data\) but the file holds 3"):
        data.read_idx(q)
    with pytest.raises(InputError, match="cannot read IDX file"):
        data.read_idx(tmp_path / "missing")


def test_array_checks_are_one_line():
    X = np.zeros((5, 3))
    with pytest.raises(ShapeError, match=r"labels of shape \(4,\) do not match inputs of "
                                         r"shape \(5, 3\)"):
        data.arrays(X, np.zeros(4, int))
    with pytest.raises(InputError, match=r"label 7 out of range for 3 classes \(0..2\)"):
        data.arrays(X, np.array([0, 1, 2, 7, 1]), n_classes=3)
    with pytest.raises(InputError, match="label -1 is negative"):
        data.arrays(X, np.array([0, 1, -1, 0, 1]))
    Xn = X.copy()
    Xn[2, 1] = np.nan
    with pytest.raises(InputError, match=r"1 NaN/Inf value\(s\) in the inputs, first at "
                                         r"index \(2, 1\)"):
        data.arrays(Xn, np.zeros(5, int))
    with pytest.raises(ShapeError, match=r"samples of shape \(3,\) do not fit the model's "
                                         r"input \(4,\)"):
        data.check(X, np.zeros(5, int), input_shape=(4,))
    with pytest.raises(InputError, match="integer class indices"):
        data.arrays(X, np.array([0.5, 1, 0, 0, 1]))
    for err in (ShapeError, InputError):
        try:
            data.arrays(X, np.zeros(4, int))
        except err as e:
            assert "\n" not in str(e)


def test_arrays_split_and_synthetic():
    X = np.arange(40, dtype=float).reshape(20, 2)
    y = np.arange(20) % 4
    ds = data.arrays(X, y, validation=0.25)
    assert len(ds.X) == 15 and len(ds.X_val) == 5 and ds.n_classes == 4
    assert sorted(np.concatenate([ds.X[:, 0], ds.X_val[:, 0]]).tolist()) == X[:, 0].tolist()
    b = data.blobs(100, 7, 3)
    s = data.sequences(40, T=5, d=2)
    assert b.X.shape == (100, 7) and b.X.dtype == np.float32 and b.y.max() < 3
    assert s.X.shape == (40, 5, 2) and s.n_classes == 4
