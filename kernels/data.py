"""Data for training: digits (embedded), MNIST-style files, NumPy arrays, synthetic sets.

Every loader returns a :class:`Dataset`: a train split and a validation split, labels as
int64 class indices, inputs as float arrays whose first axis is the sample. All checks
raise :class:`derive.errors.InputError` (or its :class:`ShapeError`) with one line that
names what is wrong and where.

IDX is the format of the original MNIST / Fashion-MNIST distribution: a big-endian
header (two zero bytes, a type code, the number of dimensions, then one uint32 per
dimension) followed by the raw values. Files may be gzip-compressed (``.gz``).
"""
from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass

import numpy as np

from derive.errors import InputError, ShapeError

# IDX type code -> NumPy big-endian dtype
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class Dataset:
    """A train/validation split ready for :func:`kernels.fit`.

    Attributes
    ----------
    X, y : ndarray
        Training inputs (``[N, ...]``) and integer labels (``[N]``).
    X_val, y_val : ndarray or None
        Validation inputs and labels (``None`` when there is no validation split).
    n_classes : int
        Number of classes; every label is in ``range(n_classes)``.
    name : str
        Where the data came from (used in reports and error messages).
    """

    X: np.ndarray
    y: np.ndarray
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    n_classes: int = 0
    name: str = "arrays"

    @property
    def input_shape(self):
        """Shape of one sample (without the batch axis)."""
        return tuple(self.X.shape[1:])

    def astype(self, dtype):
        """The same split with inputs cast to ``dtype`` (labels unchanged)."""
        cast = (lambda a: None if a is None else np.ascontiguousarray(a, dtype=dtype))
        return Dataset(cast(self.X), self.y, cast(self.X_val), self.y_val,
                       self.n_classes, self.name)

    def reshaped(self, input_shape):
        """The same samples with each input reshaped to ``input_shape`` (the flat digits
        as [1, 8, 8] images for a conv net); ShapeError if the sizes differ."""
        input_shape = tuple(int(d) for d in input_shape)
        if int(np.prod(input_shape)) != int(np.prod(self.input_shape)):
            raise ShapeError(f"samples of shape {self.input_shape} cannot be read as "
                             f"{input_shape}: {int(np.prod(self.input_shape))} values, not "
                             f"{int(np.prod(input_shape))}", where=self.name)
        shape = (lambda a: None if a is None else a.reshape((len(a),) + input_shape))
        return Dataset(shape(self.X), self.y, shape(self.X_val), self.y_val, self.n_classes,
                       self.name)

    def __repr__(self):
        n_val = 0 if self.X_val is None else len(self.X_val)
        return (f"Dataset({self.name!r}: {len(self.X)} train + {n_val} validation, "
                f"input {self.input_shape}, {self.n_classes} classes)")


# -- checks -----------------------------------------------------------------------------
def check(X, y, *, n_classes=None, input_shape=None, where="data"):
    """Check one (X, y) pair; return them as (float array, int64 labels).

    Raises
    ------
    ShapeError
        ``X`` and ``y`` disagree on the number of samples, or a sample's shape is not
        ``input_shape``.
    InputError
        Labels that are not integers or lie outside ``range(n_classes)``; NaN or Inf in
        ``X``.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim < 2:
        raise ShapeError(f"inputs must be [samples, ...], got shape {X.shape}", where=where)
    if y.ndim != 1 or len(y) != len(X):
        raise ShapeError(f"labels of shape {y.shape} do not match inputs of shape "
                         f"{X.shape} (need [{len(X)}])", where=where)
    if input_shape is not None and tuple(X.shape[1:]) != tuple(input_shape):
        raise ShapeError(f"samples of shape {tuple(X.shape[1:])} do not fit the model's "
                         f"input {tuple(input_shape)}", where=where)
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        first = np.unravel_index(np.argmax(bad), X.shape)
        raise InputError(f"{int(bad.sum())} NaN/Inf value(s) in the inputs, first at "
                         f"index {tuple(int(i) for i in first)}", where=where)
    return X, _labels(y, n_classes, where)


def _labels(y, n_classes, where):
    if y.dtype.kind == "f":
        if not np.all(y == np.round(y)):
            raise InputError("labels must be integer class indices", where=where)
    elif y.dtype.kind not in "iu":
        raise InputError(f"labels must be integer class indices, got {y.dtype}", where=where)
    y = y.astype(np.int64)
    if len(y) and n_classes is not None and (y.min() < 0 or y.max() >= n_classes):
        bad = y[(y < 0) | (y >= n_classes)][0]
        raise InputError(f"label {int(bad)} out of range for {n_classes} classes "
                         f"(0..{n_classes - 1})", where=where)
    if len(y) and y.min() < 0:
        raise InputError(f"label {int(y.min())} is negative", where=where)
    return y


# -- splitting and scaling --------------------------------------------------------------
def split(X, y, validation=0.2, seed=0):
    """A deterministic shuffled split: (X_train, y_train, X_val, y_val).

    ``validation`` is a fraction in [0, 1) or a number of samples; the same ``seed``
    always gives the same split.
    """
    n = len(X)
    n_val = int(round(validation * n)) if isinstance(validation, float) else int(validation)
    if not 0 <= n_val < n:
        raise InputError(f"validation={validation!r} leaves no training samples of {n}")
    order = np.random.default_rng(seed).permutation(n)
    val, train = order[:n_val], order[n_val:]
    return X[train], y[train], X[val], y[val]


def standardise(X_train, *others):
    """Scale every feature to zero mean, unit variance using the training split only.

    Constant features (std 0, such as digits' always-blank corner pixels) are only
    centred, not divided, so they stay finite.
    """
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std[std == 0] = 1.0
    return tuple((a - mean) / std for a in (X_train,) + others)


def arrays(X, y, *, validation=None, n_classes=None, seed=0, name="arrays"):
    """A :class:`Dataset` from NumPy arrays (checked).

    ``validation`` is None (no split), a fraction/count to split off ``(X, y)``, or an
    ``(X_val, y_val)`` pair.
    """
    X, y = check(X, y, where=name)
    n_classes = int(n_classes) if n_classes is not None else int(y.max()) + 1
    _labels(y, n_classes, name)
    if validation is None:
        return Dataset(X, y, None, None, n_classes, name)
    if isinstance(validation, tuple):
        X_val, y_val = check(*validation, n_classes=n_classes, input_shape=X.shape[1:],
                             where=f"{name} (validation)")
        return Dataset(X, y, X_val, y_val, n_classes, name)
    return Dataset(*split(X, y, validation, seed), n_classes, name)


# -- digits -----------------------------------------------------------------------------
def digits(*, validation=0.2, seed=0, images=False, dtype=np.float64):
    """scikit-learn's 8x8 handwritten digits (1,797 samples, shipped, no network).

    Standardised per pixel with the training split's statistics; a deterministic split.

    Parameters
    ----------
    validation : float or int
        Fraction (or count) held out for validation.
    seed : int
        Seed of the split.
    images : bool
        ``[N, 1, 8, 8]`` (for convolutions) instead of ``[N, 64]``.
    dtype : dtype
        Float type of the inputs.
    """
    data, target = _digits_arrays()
    X_tr, y_tr, X_va, y_va = split(data, target, validation, seed)
    X_tr, X_va = standardise(X_tr, X_va)
    if images:
        X_tr, X_va = X_tr.reshape(-1, 1, 8, 8), X_va.reshape(-1, 1, 8, 8)
    ds = Dataset(X_tr, y_tr, X_va, y_va, 10, "digits")
    return ds.astype(dtype)


def _digits_arrays():
    """(data [1797, 64] float64, target int64) from scikit-learn, kept in the kernel cache.

    Importing sklearn.datasets takes about 1.4 s here, longer than loading compiled
    kernels; a copy in the cache folder (keyed by scikit-learn's version) makes a warm
    ``derivekit train`` start in well under a second.
    """
    from importlib import metadata

    from . import cache

    try:
        version = metadata.version("scikit-learn")
    except metadata.PackageNotFoundError:
        version = "unknown"
    path = cache.folder() / f"digits-sklearn-{version}.npz"
    try:
        with np.load(path, allow_pickle=False) as f:
            data, target = f["data"], f["target"]
        if data.shape == (1797, 64) and target.shape == (1797,):
            return data, target
    except (OSError, ValueError, KeyError):
        pass  # missing or unreadable: read it from scikit-learn again
    from sklearn.datasets import load_digits

    raw = load_digits()
    data, target = raw.data.astype(np.float64), raw.target.astype(np.int64)
    buf = io.BytesIO()
    np.savez(buf, data=data, target=target)
    try:
        cache.write_atomic(path, buf.getvalue())
    except OSError:
        pass  # a read-only cache only costs the import next time
    return data, target


# -- MNIST-style files ------------------------------------------------------------------
def _open(path):
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def read_idx(path):
    """Read one IDX file (optionally ``.gz``) into a NumPy array."""
    where = os.fspath(path)
    try:
        with _open(path) as f:
            raw = f.read()
    except OSError as e:
        raise InputError(f"cannot read IDX file: {e.strerror or e}", where=where) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise InputError("not an IDX file (bad magic number)", where=where)
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    need = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != need:
        raise InputError(f"IDX header says {dims} ({need} bytes of data) but the file "
                         f"holds {len(raw) - header}", where=where)
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return values.astype(dtype.newbyteorder("="))


def write_idx(path, array):
    """Write an array as IDX (``.gz`` compresses); used by tests and to export data."""
    array = np.asarray(array)
    code = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}[array.dtype]
    head = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    body = array.astype(_IDX_TYPES[code]).tobytes()
    with (gzip.open(path, "wb") if str(path).endswith(".gz") else open(path, "wb")) as f:
        f.write(head + body)


def mnist(images, labels=None, *, test_images=None, test_labels=None, validation=0.1,
          seed=0, flatten=True, dtype=np.float32, name=None):
    """MNIST or Fashion-MNIST from local files (IDX, IDX.gz, or one ``.npz``).

    Pixels are scaled to [0, 1]. With ``test_images``/``test_labels`` the test set is
    the validation split; otherwise ``validation`` is split off the training set.
    An ``.npz`` holds ``x_train, y_train`` (and optionally ``x_test, y_test``), the
    layout of ``keras.datasets``' ``mnist.npz``.
    """
    name = name or os.path.basename(os.fspath(images))
    if os.fspath(images).endswith(".npz"):
        X, y, X_te, y_te = _read_npz(images)
    else:
        if labels is None:
            raise InputError("IDX images need a labels file too", where=name)
        X, y = read_idx(images), read_idx(labels)
        X_te = read_idx(test_images) if test_images else None
        y_te = read_idx(test_labels) if test_labels else None
    X = _pixels(X, flatten, dtype)
    if X_te is not None:
        val = (_pixels(X_te, flatten, dtype), y_te)
        return arrays(X, y, validation=val, n_classes=10, name=name).astype(dtype)
    return arrays(X, y, validation=validation, n_classes=10, seed=seed, name=name).astype(dtype)


def _read_npz(path):
    where = os.fspath(path)
    try:
        with np.load(path) as f:
            keys = set(f.files)
            if not {"x_train", "y_train"} <= keys:
                raise InputError(f"an .npz needs arrays x_train and y_train, found "
                                 f"{sorted(keys)}", where=where)
            test = ("x_test" in keys and "y_test" in keys)
            return (f["x_train"], f["y_train"],
                    f["x_test"] if test else None, f["y_test"] if test else None)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read .npz file: {e}", where=where) from None


def _pixels(X, flatten, dtype):
    X = np.asarray(X, dtype=dtype)
    if X.size and X.max() > 1:
        X = X / 255  # a Python scalar keeps X's float type (NEP 50)
    return X.reshape(len(X), -1) if flatten else X.reshape(len(X), 1, *X.shape[1:])


# -- synthetic sets (benchmarks and tests) ----------------------------------------------
def blobs(n, d, n_classes=10, *, seed=0, dtype=np.float32, validation=None):
    """``n`` samples in ``d`` dimensions around ``n_classes`` random centres (float)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (n_classes, d))
    y = rng.integers(0, n_classes, n)
    X = centres[y] + rng.normal(0, 1, (n, d))
    ds = arrays(X, y, n_classes=n_classes, validation=validation, seed=seed, name="blobs")
    return ds.astype(dtype)


def sequences(n, T=20, d=8, n_classes=4, *, seed=0, dtype=np.float32, validation=None):
    """A sequence-classification task: ``[n, T, d]`` noisy sequences, label = which of
    ``n_classes`` random templates the sequence follows (learnable by a small RNN)."""
    rng = np.random.default_rng(seed)
    templates = rng.normal(0, 1, (n_classes, T, d))
    y = rng.integers(0, n_classes, n)
    X = templates[y] + rng.normal(0, 1.5, (n, T, d))
    ds = arrays(X, y, n_classes=n_classes, validation=validation, seed=seed, name="sequences")
    return ds.astype(dtype)
