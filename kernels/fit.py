"""Training loops: Python loops over epochs only; each epoch is one compiled call.

Within :func:`fit`, an epoch is: draw this epoch's order of samples (seeded by the run's
seed and the epoch number, so a resumed run sees the same orders), compute the learning
rate of every step from the schedule, call the model's fused epoch kernel (gather,
forward, backward and update for every minibatch), then evaluate on the validation split
and record the epoch.
"""
from __future__ import annotations

import math
import os
import time
import warnings

import numpy as np

from derive.errors import InputError

from . import data as data_mod
from . import optim


class TrainingWarning(UserWarning):
    """Training stopped early or saved a checkpoint because something went wrong."""


def as_dataset(data, validation=None, seed=0):
    """A :class:`kernels.data.Dataset` from a Dataset, an ``(X, y)`` pair or a 4-tuple.

    ``validation``: None (keep the dataset's own split), a fraction/count to split off,
    or an ``(X_val, y_val)`` pair.
    """
    if isinstance(data, data_mod.Dataset):
        if validation is None:
            return data
        data = (data.X, data.y)
    if isinstance(data, (tuple, list)) and len(data) in (2, 4) \
            and hasattr(data[0], "__len__") and len(data[0]) == 0:
        raise InputError("data has no training samples (X is empty)")
    if isinstance(data, (tuple, list)) and len(data) == 4:
        return data_mod.arrays(data[0], data[1], validation=(data[2], data[3]))
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data_mod.arrays(*data, validation=validation, seed=seed)
    raise InputError("data must be a Dataset, an (X, y) pair or (X, y, X_val, y_val)")


def _check(model, ds):
    data_mod.check(ds.X[:1], ds.y[:1], input_shape=model.input_shape, where=f"{ds.name} vs model")
    data_mod.check(ds.X, ds.y, n_classes=model.n_outputs, where=ds.name)
    if ds.X_val is not None:
        data_mod.check(ds.X_val, ds.y_val, n_classes=model.n_outputs,
                       input_shape=model.input_shape, where=f"{ds.name} (validation)")


def fit(model, data, optimizer=None, lr=None, epochs=20, batch_size=32, *, validation=None,
        seed=0, schedule=None, checkpoint=None, resume=True, progress=True, callback=None,
        **hyper):
    """Train ``model`` on ``data``; calling it again continues where it stopped.

    Parameters
    ----------
    model : kernels.Model
    data : Dataset or (X, y) or (X, y, X_val, y_val)
    optimizer : str or kernels.optim.Optimizer, optional
        Name (``"sgd"``, ``"adam"``, ...) or object; None keeps the model's optimizer.
        Hyper-parameters go as keywords (``momentum=0.9``, ``beta1=0.8``,
        ``weight_decay=1e-4``).
    lr : float, optional
        Base learning rate (default: the optimizer's).
    epochs : int
    batch_size : int
        Samples per minibatch, at least 1 (InputError otherwise). A batch size above the
        number of training samples is clamped to it (full-batch training), with a
        TrainingWarning saying so.
    validation : float or (X_val, y_val), optional
        Overrides the dataset's validation split.
    seed : int
        Seeds the shuffling (epoch ``e`` uses ``seed`` and ``e``).
    schedule : str, dict or Schedule, optional
        Learning-rate schedule (per epoch unless ``per="step"``).
    checkpoint : path, optional
        Saved after every epoch (write then rename: a failed write keeps the previous
        one), and on Ctrl-C, which first takes the model back to the end of the last
        completed epoch (parameters, optimizer state, running statistics, step count and
        history together), so resuming reproduces the uninterrupted run. With
        ``resume``, a model that has not trained yet loads an existing checkpoint first
        and trains up to ``epochs`` in all; otherwise each call trains ``epochs`` more.
    progress : bool
        Show a tqdm progress bar.
    callback : callable, optional
        Called as ``callback(model, record)`` after each epoch.

    Returns
    -------
    list of dict
        ``model.history``: one record per epoch.
    """
    ds = as_dataset(data, validation, seed)
    _check(model, ds)
    batch_size = _batch_size(batch_size, len(ds.X))
    _set_optimizer(model, optimizer, lr, schedule, hyper)
    X = np.ascontiguousarray(ds.X, dtype=model.dtype)
    y = np.ascontiguousarray(ds.y, dtype=np.int64)
    start = len(model.history)
    if checkpoint is not None and resume and not model.history and os.path.exists(checkpoint):
        model.load(checkpoint)  # a fresh model resumes a run: train up to `epochs` in all
        start = len(model.history)
        epochs = max(0, epochs - start)
    total = start + epochs
    # the validation split converted once (evaluate still checks it every epoch)
    val_arrays = None if ds.X_val is None or not len(ds.X_val) else \
        (model._inputs(ds.X_val, "validation"), np.ascontiguousarray(ds.y_val, np.int64))
    bar = _Progress(progress, epochs, ds)
    # what an epoch needs besides the compiled call, made once: the order's buffer and
    # the buffers that keep the state before the epoch under way (one copy per flat
    # vector, no allocation), which a non-finite loss or Ctrl-C goes back to
    shuffled = np.empty(len(X), np.int64)
    before = _Snapshot(model)
    started = False  # whether `before` holds the state of an epoch under way
    try:
        for epoch in range(start, total):
            before.take(model)
            started = True
            record = _one_epoch(model, X, y, epoch, total, batch_size, before,
                                epoch_order(len(X), seed, epoch, shuffled), val_arrays)
            if record is None:
                break
            model.history.append(record)
            started = False
            if checkpoint is not None:
                model.save(checkpoint)
            bar.show(record)
            if callback is not None:
                callback(model, record)
    except KeyboardInterrupt:
        # the compiled epoch cannot stop half-way, but Ctrl-C may land after it returned
        # and before its record was kept: go back to the last completed epoch, so the
        # model (and its checkpoint) hold that epoch's parameters, optimizer state, running
        # statistics, step count and history together, and a resumed run repeats nothing
        if started:
            before.restore(model)
        path = model.save(checkpoint or "derivekit-interrupted.npz")
        warnings.warn(f"interrupted: checkpoint saved to {path} (epoch "
                      f"{len(model.history)}, the last completed)", TrainingWarning,
                      stacklevel=2)
        raise
    finally:
        bar.close()
    return model.history


def epoch_order(n, seed, epoch, out=None):
    """The order of ``n`` samples in epoch ``epoch`` of a run seeded ``seed``: a
    permutation fixed by (seed, epoch) alone, so a resumed run draws the orders the
    uninterrupted one would, and ``derivekit bench`` gives every runner fit's orders.
    Written into ``out`` (int64, length n) when given; no allocation then."""
    from .runtime import shuffled_rows

    out = np.empty(n, np.int64) if out is None else out
    shuffled_rows(out, _seed32(seed, epoch))
    return out


_MASK64 = (1 << 64) - 1


def _seed32(seed, epoch):
    """(seed, epoch) -> a 32-bit seed, splitmix64-mixed so nearby pairs differ widely."""
    x = (int(seed) * 0x9E3779B97F4A7C15 + int(epoch) + 0xD1B54A32D192ED03) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) & 0xFFFFFFFF


def _batch_size(batch_size, n):
    """``batch_size`` checked (a whole number >= 1) and clamped to the ``n`` samples."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise InputError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    if n < 1:
        raise InputError("no training samples to make minibatches of")
    if batch_size > n:
        warnings.warn(f"batch_size {batch_size} is larger than the {n} training samples; "
                      f"using {n} (full batch)", TrainingWarning, stacklevel=3)
        return n
    return int(batch_size)


def _set_optimizer(model, optimizer, lr, schedule, hyper):
    if optimizer is None and lr is None and schedule is None and not hyper:
        return
    if optimizer is None:
        opt = model.optimizer
        optimizer = optim.Optimizer(opt.rule, opt.lr if lr is None else float(lr),
                                    dict(opt.hyper), opt.weight_decay,
                                    optim.Schedule.make(schedule) if schedule else opt.schedule)
        if hyper:
            raise InputError("give the optimizer's name with its hyper-parameters")
    else:
        optimizer = optim.make(optimizer, lr=lr, schedule=schedule, **hyper)
    model.use(optimizer)


def _one_epoch(model, X, y, epoch, total, batch_size, before, order, val_arrays):
    steps = -(-len(X) // batch_size)
    opt = model.optimizer
    lrs = opt.schedule.rates(opt.lr, epoch, steps, total)
    t0 = time.perf_counter()
    loss, acc = model.run_epoch(X, y, order, lrs, batch_size)
    seconds = time.perf_counter() - t0
    if not (math.isfinite(loss) and _finite(model)):
        before.restore(model)
        warnings.warn(f"epoch {epoch + 1}: loss became {loss}; stopped, keeping the "
                      f"parameters of epoch {epoch}", TrainingWarning, stacklevel=3)
        return None
    record = {"epoch": epoch + 1, "loss": loss, "accuracy": acc, "lr": float(lrs[0]),
              "seconds": seconds}
    if val_arrays is not None:
        val = model.evaluate(*val_arrays)
        record.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
    return record


def _finite(model):
    """Whether every parameter and running statistic is finite: one test over the flat
    parameter vector (every parameter is a view of it) and one per statistic."""
    return bool(np.isfinite(model.theta).all()) and \
        all(np.isfinite(a).all() for a in model.stats.values())


class _Snapshot:
    """The state before an epoch, kept in preallocated buffers: the flat parameter
    vector (every parameter is a view of it), the flat optimizer states, the running
    statistics, the step count and the length of the history. :meth:`take` copies into
    them (a memcpy per flat vector, no allocation), :meth:`restore` copies back."""

    def __init__(self, model):
        self._arrays = []
        self.take(model)

    def _sources(self, model):
        return [model.theta, *model.flat_state, *model.stats.values()]

    def take(self, model):
        sources = self._sources(model)
        if [a.shape for a in sources] != [b.shape for b in self._arrays]:
            self._arrays = [np.empty_like(a) for a in sources]  # first call, or a new rule
        for keep, a in zip(self._arrays, sources):
            np.copyto(keep, a)
        self.step, self.epochs = model.step, len(model.history)

    def restore(self, model):
        del model.history[self.epochs:]
        for a, keep in zip(self._sources(model), self._arrays):
            np.copyto(a, keep)
        model.step = self.step


class _Progress:
    """A tqdm bar refreshed at most every ``interval`` seconds (and when it closes):
    epochs that take a millisecond must not pay for a redraw each."""

    interval = 0.25

    def __init__(self, progress, epochs, ds):
        self.bar, self.pending, self.last, self.shown = None, 0, None, 0.0
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=epochs, desc=f"train {ds.name}", unit="epoch",
                            mininterval=self.interval)

    def show(self, record):
        if self.bar is None:
            return
        self.pending += 1
        self.last = record
        now = time.perf_counter()
        if now - self.shown >= self.interval:
            self.shown = now
            self._flush()

    def _flush(self):
        if not self.pending:
            return
        record = self.last
        shown = {"loss": f"{record['loss']:.4f}", "acc": f"{record['accuracy']:.3f}"}
        if "val_accuracy" in record:
            shown["val_acc"] = f"{record['val_accuracy']:.3f}"
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(self.pending)
        self.pending = 0

    def close(self):
        if self.bar is not None:
            self._flush()
            self.bar.close()


def predict(model, X):
    """Predicted class per row of ``X`` (see :meth:`Model.predict`)."""
    return model.predict(X)


def evaluate(model, X, y=None):
    """Mean loss and accuracy (see :meth:`Model.evaluate`)."""
    return model.evaluate(X, y)
