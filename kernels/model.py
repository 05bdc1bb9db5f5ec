"""A compiled model: parameters, optimizer state and the generated kernels that use them.

The kernels live in a generated module (see :mod:`kernels.train_module`) whose ``META`` dict
describes the parameters; every module exposes the same three functions:

``epoch(X, y, order, lrs, batch_size, t0, hyper, wd, *params, *states)``
    one epoch of minibatch training in one compiled call; returns (loss sum, correct);
``forward(X, *params)``
    the network's output (before the loss) for every row of X, in eval mode;
``evaluate(X, y, *params)``
    (loss sum, correct) without updating anything.

Networks with BatchNorm carry running statistics (``Model.stats``) that training
updates and eval mode reads; Dropout masks are drawn inside ``epoch`` by a generator
seeded per call from the Model's seed and its step count (so the same seed gives the
same run, and a resumed run draws what an uninterrupted one would).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
import zlib

import numpy as np

from derive.errors import InputError, ShapeError

from . import cache, optim
from .init import initialise


class Model:
    """A network compiled to numba kernels (see :func:`kernels.compile`).

    Attributes
    ----------
    params : dict
        Parameter arrays by name (updated in place by training).
    grads : dict
        Gradient arrays by adjoint name (``W1_bar``), written by ``train_step``. The
        epoch kernel may update a weight inside its gradient's product (plain SGD), so
        after training they need not hold the last minibatch's gradient.
    optimizer : kernels.optim.Optimizer
        The optimizer fused into the epoch kernel.
    state : dict
        Optimizer state ``{param: {state name: array}}``.
    stats : dict
        Running statistics by name (BatchNorm's ``running_mean<k>``, ``running_var<k>``),
        updated in place by training, read by evaluate/predict; saved in checkpoints.
    step : int
        Optimizer steps taken so far (Adam's ``t``).
    history : list of dict
        One record per trained epoch (loss, accuracy, validation, lr, seconds).
    source : str
        The generated kernel source (plain loops and BLAS products, ``matmul``).
    """

    def __init__(self, build, meta, module, optimizer, *, dtype, seed=0, init="xavier_uniform"):
        self._build = build  # optimizer -> (module, meta): recompiles for another rule
        self.meta = meta
        self.module = module
        self.dtype = np.dtype(dtype)
        self.optimizer = optimizer
        self.seed = seed
        shapes = {name: tuple(shape) for name, shape in meta["params"]}
        # one flat vector holds every parameter (the views below share its memory), so
        # the fused update is a single loop; gradients and states are laid out alike
        self.theta, self.params = _flat(shapes, self.dtype)
        self.grad, self.grads = _flat(dict(zip(meta["grads"], shapes.values())), self.dtype)
        # normalisation scales start at one (Sequential names them gamma<k>)
        overrides = {n: "ones" for n in shapes if n.startswith("gamma")}
        for name, value in initialise(shapes, init, seed=seed, overrides=overrides).items():
            self.params[name][...] = value
        self.stats = {name: np.full(shape, initial, self.dtype)
                      for name, shape, initial in meta.get("stats", [])}
        self._reset_state()
        self.step = 0
        self.history = []
        self._buffers = {}

    def _reset_state(self):
        shapes = {name: tuple(shape) for name, shape in self.meta["params"]}
        self.flat_state, self.state = [], {p: {} for p in shapes}
        for s in self.optimizer.state_names:
            flat, views = _flat(shapes, self.dtype)
            self.flat_state.append(flat)
            for p, v in views.items():
                self.state[p][s] = v

    # -- description --------------------------------------------------------------------
    @property
    def source(self):
        """Generated source of the kernels (readable: loops and BLAS products)."""
        return self.meta["source"] if "source" in self.meta else open(self.module.__file__).read()

    @property
    def input_shape(self):
        return tuple(self.meta["input_shape"])

    @property
    def n_outputs(self):
        return int(self.meta["n_outputs"])

    def fingerprint(self):
        """What a checkpoint must match: the network description and parameter shapes."""
        text = json.dumps([self.meta["description"], self.meta["params"]])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __repr__(self):
        n = sum(int(np.prod(s)) for _, s in self.meta["params"])
        return (f"Model({self.meta['description']}, {n} parameters, {self.dtype.name}, "
                f"optimizer={self.optimizer.name}, epochs trained={len(self.history)})")

    # -- optimizer ----------------------------------------------------------------------
    def use(self, optimizer):
        """Switch to ``optimizer`` (recompiling the epoch kernel if its rule differs).

        State and step count carry over when the rule is the same (continued training);
        a different rule starts from zero state.
        """
        optimizer = optim.make(optimizer)
        if optimizer.key() != self.optimizer.key():
            self.module, self.meta = self._build(optimizer)
        rule_changed = optimizer.rule is not self.optimizer.rule
        self.optimizer = optimizer
        if rule_changed:
            self._reset_state()
            self.step = 0
        return self

    # -- kernels ------------------------------------------------------------------------
    def _param_list(self):
        """Parameters, then running statistics: the leading arguments of every kernel."""
        return ([self.params[name] for name, _ in self.meta["params"]]
                + [self.stats[name] for name, _, _ in self.meta.get("stats", [])])

    def _mask_seed(self):
        """[seed of the masks' xorshift generator for this epoch call], or [] without masks."""
        masks = self.meta.get("masks", [])
        if not masks:
            return []
        entropy = [int(self.seed), int(self.step)] + [seed for _, _, seed in masks]
        return [int(np.random.default_rng(entropy).integers(1, 2 ** 63))]  # xorshift: not 0

    def buffers(self, rows, names):
        """Work arrays with the batch axis ``rows`` long (gradients: views of ``grad``)."""
        key = (rows, tuple(names))
        if key not in self._buffers:
            out = []
            for name in names:
                if name in self.grads:
                    out.append(self.grads[name])
                    continue
                shape = [rows if d == "B" else d for d in self.meta["buffers"][name]]
                is_int = name in self.meta.get("int_buffers", ())  # argmax routes (pooling)
                out.append(np.zeros(shape, np.int64 if is_int else self.dtype))
            self._buffers[key] = out
        return self._buffers[key]

    def _call(self, fn, *args):
        result, self.module = cache.call(self.module, fn, *args)
        return result

    def run_epoch(self, X, y, order, lrs, batch_size):
        """One compiled epoch over ``order``; returns (mean loss, accuracy).

        ``X``: ``[N, *input_shape]``; ``y``: N integer labels in ``range(n_outputs)``;
        ``order``: int64 row numbers below N, taken ``batch_size`` at a time (a batch size
        above ``len(order)`` is one batch of all of them); ``lrs``: a rate per step.
        InputError (one line, naming the argument and the bad value) otherwise: the
        kernel does not check bounds, so a bad index would read or write past an array.
        """
        opt = self.optimizer
        X, y, order, lrs, bs = self._epoch_args(X, y, order, lrs, batch_size)
        x2 = self._input_buffer(bs)
        xb = x2.reshape((bs,) + self.input_shape)
        yb = self._label_buffer(bs)
        loss, correct = self._call(
            "epoch", X.reshape(len(X), -1), y, order, lrs, bs,
            int(self.step), opt.hyper_values(), float(opt.weight_decay), self.theta,
            self.grad, *self.flat_state, x2, xb, yb, *self._param_list(),
            *self.buffers(bs, self.meta["signature"]["train"]), *self._mask_seed())
        self.step += -(-len(order) // bs)
        return loss / len(order), correct / len(order)

    def _epoch_args(self, X, y, order, lrs, batch_size):
        """run_epoch's arguments checked (one vectorised min/max per array, no copies
        when they already have the kernel's types) and the batch size capped at
        ``len(order)`` (the same single minibatch, without buffers for unused rows)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise InputError(f"run_epoch: need batch_size >= 1 (a whole number), got "
                             f"{batch_size!r}")
        X = self._inputs(X, "run_epoch")
        y = _labels(y, len(X), self.n_outputs, "run_epoch")
        order = np.ascontiguousarray(order)  # (a strided view would compile anew)
        if order.ndim != 1 or order.dtype != np.int64 or not len(order):
            raise InputError(f"run_epoch: need order a non-empty 1-D int64 array of row "
                             f"numbers, got {order.dtype} of shape {list(order.shape)}")
        lo, hi = order.min(), order.max()
        if lo < 0 or hi >= len(X):
            raise InputError(f"run_epoch: need order's row numbers in 0..{len(X) - 1} (the "
                             f"rows of X), got {lo if lo < 0 else hi}")
        bs = min(int(batch_size), len(order))
        steps = -(-len(order) // bs)
        try:
            lrs = np.ascontiguousarray(lrs, dtype=np.float64)
            got = None if lrs.ndim == 1 and len(lrs) >= steps else \
                f"lrs of shape {list(lrs.shape)}"
        except (TypeError, ValueError):
            got = f"lrs that are not numbers ({_clip(lrs)})"
        if got is not None:
            raise InputError(f"run_epoch: need a learning rate per step ({steps} steps of "
                             f"{bs}), got {got}")
        if self.meta.get("running") and (bs == 1 or len(order) % bs == 1):
            raise InputError(f"BatchNorm needs at least 2 samples per minibatch; batch size "
                             f"{bs} over {len(order)} samples leaves one of 1")
        return X, y, order, lrs, bs

    def _input_buffer(self, rows):
        key = ("x", rows)
        if key not in self._buffers:
            self._buffers[key] = np.zeros((rows, int(np.prod(self.input_shape))), self.dtype)
        return self._buffers[key]

    def _label_buffer(self, rows):
        key = ("y", rows)
        if key not in self._buffers:
            self._buffers[key] = np.zeros(rows, np.int64)
        return self._buffers[key]

    def outputs(self, X):
        """The network's outputs (logits for a classifier) for every row of ``X``."""
        X = self._inputs(X, "outputs")
        out = np.empty((len(X), self.n_outputs), self.dtype)
        bufs = self.buffers(self.meta["chunk"], self.meta["signature"]["predict"])
        self._call("forward", X, out, *self._param_list(), *bufs)
        return out

    def predict(self, X):
        """Predicted class index per row of ``X``."""
        return np.argmax(self.outputs(X), axis=1)

    def evaluate(self, X, y=None):
        """{"loss": mean loss, "accuracy": fraction correct} on ``(X, y)`` or a Dataset."""
        if y is None and hasattr(X, "X_val"):
            X, y = X.X_val, X.y_val
        from .data import check

        X = self._inputs(X, "evaluate")
        X, y = check(X, y, n_classes=self.n_outputs, input_shape=self.input_shape,
                     where="evaluate")
        if not len(y):
            raise InputError("evaluate: no samples (X and y are empty)")
        bufs = self.buffers(self.meta["chunk"], self.meta["signature"]["loss"])
        loss, correct = self._call("evaluate", self._inputs(X, "evaluate"), y,
                                   *self._param_list(), *bufs)
        return {"loss": float(loss / len(y)), "accuracy": float(correct / len(y))}

    def _inputs(self, X, where):
        """``X`` as a C-contiguous array of the model's dtype (no copy when it is one),
        [N, *input_shape]; one-line InputError/ShapeError naming ``where`` otherwise."""
        try:
            X = np.ascontiguousarray(X, dtype=self.dtype)
        except (ValueError, TypeError):
            got = np.asarray(X, dtype=object)
            raise InputError(f"{where}: X must be numbers, [N, "
                             f"{', '.join(map(str, self.input_shape))}], got "
                             f"{type(X).__name__} {_clip(got)}") from None
        if X.shape[1:] != self.input_shape:
            raise ShapeError(f"{where}: X of shape {list(X.shape)} does not fit the model's "
                             f"input [N, {', '.join(map(str, self.input_shape))}]")
        tokens = self.meta.get("token_ids")  # the kernels index a table with them, unchecked
        if tokens and X.size and (np.any(X % 1) or X.min() < 0 or X.max() >= tokens):
            raise InputError(f"{where}: X holds token ids, integers in 0..{tokens - 1}, got "
                             f"values in [{X.min():g}, {X.max():g}]")
        return X

    # -- checkpoints --------------------------------------------------------------------
    def save(self, path):
        """Write parameters, optimizer state, running statistics, step count, the masks'
        seed and history to ``path`` (.npz) atomically: a temporary file in the same
        folder, then a rename, so a failed write (a full disk) keeps the previous
        checkpoint, and raises one-line InputError naming the file."""
        arrays = {f"param/{k}": v for k, v in self.params.items()}
        for p, st in self.state.items():
            arrays.update({f"state/{p}/{s}": v for s, v in st.items()})
        arrays.update({f"stat/{k}": v for k, v in self.stats.items()})
        header = {"fingerprint": self.fingerprint(), "description": self.meta["description"],
                  "params": self.meta["params"], "optimizer": self.optimizer.name,
                  "step": self.step, "seed": self.seed, "history": self.history}
        arrays["header"] = np.array(json.dumps(header))
        path = os.fspath(path)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            cache.write_atomic(path, buf.getvalue())
        except OSError as e:
            kept = "the previous checkpoint is kept" if os.path.exists(path) else "nothing saved"
            raise InputError(f"cannot write the checkpoint ({e.strerror or e}); {kept}",
                             where=path) from None
        return path

    def load(self, path):
        """Restore a checkpoint written by :meth:`save` for this same network.

        Everything is checked before anything is changed: a file that is not a readable
        checkpoint (truncated, damaged), one of another network, or an array of the wrong
        shape or kind is a one-line InputError naming the file (and the array), and the
        model keeps its state.
        """
        where = os.fspath(path)
        header, arrays = _read_checkpoint(where)
        if header["fingerprint"] != self.fingerprint():
            raise InputError(f"checkpoint is from another model ({header['description']}), "
                             f"not {self.meta['description']}", where=where)
        same_rule = header["optimizer"] == self.optimizer.name
        wanted = {f"param/{k}": v for k, v in self.params.items()}
        wanted.update({f"stat/{k}": v for k, v in self.stats.items()})
        if same_rule:
            wanted.update({f"state/{p}/{s}": v for p, st in self.state.items()
                           for s, v in st.items()})
        for key, target in wanted.items():
            _check_array(arrays.get(key), key, target.shape, where)
        for key, target in wanted.items():
            target[...] = arrays[key]
        if same_rule:
            self.step = header["step"]
        if header["seed"] is not None:
            self.seed = header["seed"]
        self.history = list(header["history"])
        return self


def _read_checkpoint(where):
    """(header dict, {name: array}) of a checkpoint file; InputError when unreadable."""
    try:
        with np.load(where, allow_pickle=False) as f:
            header = json.loads(str(f["header"]))
            arrays = {k: f[k] for k in f.files if k != "header"}
    except FileNotFoundError:
        raise InputError("no such checkpoint file", where=where) from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise InputError(f"not a readable derivekit checkpoint (truncated or damaged: "
                         f"{str(e) or type(e).__name__})", where=where) from None
    valid = {"fingerprint": lambda v: isinstance(v, str),
             "description": lambda v: isinstance(v, str),
             "optimizer": lambda v: isinstance(v, str),
             "step": lambda v: isinstance(v, int) and v >= 0,
             "seed": lambda v: isinstance(v, int),
             "history": lambda v: isinstance(v, list)}
    if not isinstance(header, dict):
        raise InputError("not a derivekit checkpoint (its header is not a table)", where=where)
    header.setdefault("seed", None)  # checkpoints before the seed was saved
    bad = [k for k, ok in valid.items() if not (ok(header.get(k)) or
                                                 (k == "seed" and header[k] is None))]
    if bad:
        raise InputError(f"not a derivekit checkpoint (its header has no valid '{bad[0]}')",
                         where=where)
    return header, arrays


def _check_array(value, key, shape, where):
    if value is None:
        raise InputError(f"checkpoint has no array '{key}'", where=where)
    if value.dtype.kind not in "iuf" or value.shape != tuple(shape):
        raise InputError(f"array '{key}' is {value.dtype} of shape {list(value.shape)}; the "
                         f"model needs floats of shape {list(shape)}", where=where)
    if not np.isfinite(value).all():
        raise InputError(f"array '{key}' holds NaN or Inf", where=where)


def _labels(y, n, n_classes, where):
    """``y`` as int64 labels (no copy when it is already) for ``n`` rows, each in
    ``range(n_classes)``: the kernels index the scores with them."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise InputError(f"{where}: need X and y of equal length ({n} rows of X), got y of "
                         f"shape {list(y.shape)}")
    if y.dtype.kind not in "iu":
        raise InputError(f"{where}: y must hold integer class labels, got {y.dtype}")
    y = np.ascontiguousarray(y, dtype=np.int64)
    if n:
        lo, hi = y.min(), y.max()
        if lo < 0 or hi >= n_classes:
            raise InputError(f"{where}: label {lo if lo < 0 else hi} in y is outside "
                             f"0..{n_classes - 1} (the model's {n_classes} classes)")
    return y


def _clip(value, width=30):
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _flat(shapes, dtype):
    """One zeroed flat vector and named views of it with the given shapes."""
    sizes = [int(np.prod(s)) for s in shapes.values()]
    flat = np.zeros(sum(sizes), dtype)
    views, start = {}, 0
    for (name, shape), size in zip(shapes.items(), sizes):
        views[name] = flat[start:start + size].reshape(shape)
        start += size
    return flat, views
