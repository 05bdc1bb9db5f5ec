"""Dropout masks and BatchNorm running statistics in the training kernels (train mode).

The derivation's Program is the *train-mode* computation (:mod:`derive.tensor.modes`):
Dropout multiplies by a keep-mask (a leaf with role ``mask``) and BatchNorm updates its
running statistics (``prog.updates``). Its eval mode is the record's ``inference``, made in
derive; this module only prints what train mode needs around the derivation's statements:

* every minibatch draws fresh masks inside the compiled code (Bernoulli with
  P(keep) = 1 - p; see :func:`draw_masks`), then the forward, the running-statistics
  updates (in place), the backward and the optimizer update run. The uniforms come from
  xorshift64* (Vigna 2016) kept in a local of the epoch and seeded per call by the Model:
  numba's ``np.random.random()`` (Mersenne Twister behind a thread-local state) took
  1.44 ms for one digits epoch's 184k draws, this 0.37 ms, and nothing global is touched.
"""
from __future__ import annotations

import numpy as np

XORSHIFT_MUL = 2685821657736338717  # xorshift64*'s output multiplier


def stat_info(prog):
    """``[name, initial value]`` of every running statistic (running_var starts at 1)."""
    return [[n, prog.tensors[n].meta.get("initial", 0)] for n in prog.state]


def mask_info(prog):
    """``[name, P(keep), layer seed]`` of every Dropout mask, in Program order."""
    return [[n, float(spec["keep"]), int(spec.get("seed", 0))] for n, spec in prog.random.items()]


def draw_masks(prog, printer):
    """Epoch-kernel lines drawing every mask's first ``_n`` rows into its ``<m>_buf``.

    Run before the minibatch's views are taken; ``_flat_<m>`` (a 1-D view of the
    buffer) is made once, before the loop. The draws follow the buffer's memory order,
    sample by sample: ``m = 1`` when the top 53 bits of the next xorshift64* output,
    read as an integer below 2^53, are below ``keep * 2^53`` (so P(m = 1) = keep).
    """
    one, zero = printer._one(), printer._zero()
    lines = []
    for name, spec in prog.random.items():
        below = int(round(float(spec["keep"]) * 2.0 ** 53))
        row = int(np.prod([int(d) for d in prog.tensors[name].shape[1:]]))
        lines += [f"for _q in range(_n * {row}):",
                  "    _rng ^= _rng >> np.uint64(12)",
                  "    _rng ^= _rng << np.uint64(25)",
                  "    _rng ^= _rng >> np.uint64(27)",
                  f"    _u = (_rng * np.uint64({XORSHIFT_MUL})) >> np.uint64(11)",
                  f"    _flat_{name}[_q] = {one} if _u < np.uint64({below}) else {zero}"]
    return lines


def mask_setup(prog):
    """Lines before the minibatch loop: the generator's state (``rseed``, never 0) and
    the 1-D views :func:`draw_masks` fills."""
    return (["_rng = np.uint64(rseed)"]
            + [f"_flat_{name} = {name}_buf.reshape(-1)" for name in prog.random])
