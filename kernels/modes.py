"""Train and eval mode in the training kernels: Dropout and BatchNorm.

A training Program (:mod:`derive.tensor.program`) is the *train-mode* computation:
Dropout multiplies by a keep-mask ``m`` (a leaf with role ``mask``; inverted dropout,
``y = x ⊙ m / (1 - p)``) and BatchNorm normalises with the batch's statistics, its
running statistics (leaves with role ``state``) being updated by ``prog.updates``
(``running = (1 - momentum) running + momentum batch_stat``, the variance unbiased).

* **Train mode** (the epoch kernel): every minibatch draws fresh masks inside the
  compiled code (Bernoulli with P(keep) = 1 - p; see :func:`draw_masks`), then runs the
  forward, the running-statistics updates (in place), the backward and the optimizer
  update. The uniforms come from xorshift64* (Vigna 2016) kept in a local of the epoch
  and seeded per call by the Model: numba's ``np.random.random()`` (Mersenne Twister
  behind a thread-local state) took 1.44 ms for one digits epoch's 184k draws, this
  0.37 ms, and nothing global is touched.
* **Eval mode** (``evaluate``, ``forward``, ``predict_step``): the Program has no
  eval-mode form of its own, so :func:`eval_program` makes one by substitution (nothing
  is differentiated): each mask is replaced by its expectation ``1 - p``, which turns
  inverted dropout into the identity, and each batch statistic BatchNorm's running
  state *estimates* (the state's ``estimates`` meta) is replaced by that state, which
  gives ``(x - running_mean) / sqrt(running_var + eps)`` -- PyTorch's ``model.eval()``,
  and the same as ``derive.Sequential(..., train=False)``.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from derive.errors import UnsupportedError
from derive.tensor.program import Assignment, Program

XORSHIFT_MUL = 2685821657736338717  # xorshift64*'s output multiplier


def eval_program(prog):
    """The eval-mode forward of ``prog`` (``prog`` itself when it has no masks or updates).

    The result has no masks, updates or backward; its forward assigns the same node
    names as ``prog`` (a statistic's assignment copies its running estimate).
    """
    if not prog.random and not prog.updates:
        return prog
    keep = {name: sp.nsimplify(spec["keep"]) for name, spec in prog.random.items()}
    running = {}
    for a in prog.updates:
        stat = prog.tensors[a.target].meta.get("estimates")
        if stat is None:
            raise UnsupportedError(f"state '{a.target}' does not name the batch statistic "
                                   "it estimates, so its eval mode is unknown")
        running[stat] = a.target
    forward = [_eval_assignment(a, keep, running) for a in prog.forward]
    tensors = {n: t for n, t in prog.tensors.items() if n not in keep}
    return Program(tensors, forward, [], [], prog.output, prog.seed, {}, prog.dims,
                   prog.constants, {}, prog.title)


def _eval_assignment(a, keep, running):
    if a.target in running:
        state = sp.IndexedBase(running[a.target])
        return Assignment(a.target, a.indices, state[a.indices] if a.indices else state)
    rhs = a.rhs.replace(lambda e: isinstance(e, sp.Indexed) and str(e.base.label) in keep,
                        lambda e: keep[str(e.base.label)])
    return a if rhs == a.rhs else Assignment(a.target, a.indices, rhs)


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
