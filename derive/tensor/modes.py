"""Train mode, eval mode and the prediction: what a network computes when it is used.

A :class:`~derive.tensor.program.Program` is the *train-mode* computation: Dropout
multiplies by a keep-mask ``m`` (a leaf with role ``mask``; inverted dropout,
``y = x ⊙ m / (1 - p)``) and BatchNorm normalises with the batch's statistics, its
running statistics (leaves with role ``state``) being updated by ``program.updates``
(``running = (1 - momentum) running + momentum batch_stat``, the variance unbiased).

Its *eval mode* (:func:`eval_program`, kept on the record as ``program.inference``) is
made by substitution; nothing is differentiated. Each mask is replaced by its expectation
``1 - p``, which turns inverted dropout into the identity, and each batch statistic a
running state *estimates* (the state's ``estimates`` meta) is replaced by that state,
which gives ``(x - running_mean) / sqrt(running_var + eps)``: PyTorch's ``model.eval()``,
and the same as ``derive.Sequential(..., train=False)``.

The *prediction* (:func:`prediction_node`, kept as ``program.prediction``) is the node a
classifier's loss reads its scores from: the network's output before the loss.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from derive.errors import UnsupportedError


def eval_program(program):
    """The eval-mode forward of ``program``, or None when train and eval mode compute the
    same (no masks, no running statistics) or a state does not name the statistic it
    estimates (:meth:`Program.eval_mode` then says which).

    The result has no masks, updates or backward; its forward assigns the same node names
    as ``program`` (a statistic's assignment copies its running estimate).
    """
    if not program.random and not program.updates:
        return None
    if unknown_estimates(program):
        return None
    keep = {name: sp.nsimplify(spec["keep"]) for name, spec in program.random.items()}
    running = {program.tensors[a.target].meta["estimates"]: a.target for a in program.updates}
    forward = [_eval_assignment(a, keep, running) for a in program.forward]
    tensors = {n: t for n, t in program.tensors.items() if n not in keep}
    return replace(program, tensors=tensors, forward=forward, backward=[], updates=[],
                   grads={}, random={}, inference=None)


def unknown_estimates(program):
    """States updated by ``program`` that do not name the batch statistic they estimate."""
    return [a.target for a in program.updates
            if program.tensors[a.target].meta.get("estimates") is None]


def no_eval_mode(program):
    """The error for a program whose eval mode is unknown."""
    name = unknown_estimates(program)[0]
    return UnsupportedError(f"state '{name}' does not name the batch statistic it estimates, "
                            "so its eval mode is unknown")


def _eval_assignment(a, keep, running):
    if a.target in running:
        state = sp.IndexedBase(running[a.target])
        return replace(a, rhs=state[a.indices] if a.indices else state, matrix=None,
                       mode="=", lhs=None)
    rhs = a.rhs.replace(lambda e: isinstance(e, sp.Indexed) and str(e.base.label) in keep,
                        lambda e: keep[str(e.base.label)])
    return a if rhs == a.rhs else replace(a, rhs=rhs, matrix=None)


def prediction_candidates(program):
    """Nodes the output's assignment reads that are ``[batch, k]`` (batch = the first axis
    of the one input); empty when the program has no output assignment or not one input."""
    out = next((a for a in program.forward if a.target == program.output), None)
    inputs = program.names("input")
    if out is None or len(inputs) != 1 or not program.tensors[inputs[0]].shape:
        return []
    batch = program.tensors[inputs[0]].shape[0]
    used = {str(b.label) for b in out.rhs.atoms(sp.IndexedBase)}
    return sorted(n for n in used if n in program.tensors
                  and program.tensors[n].role == "node" and len(program.tensors[n].shape) == 2
                  and program.tensors[n].shape[0] == batch)


def prediction_node(program):
    """The node the loss reads its scores from, or None when there is not exactly one."""
    cands = prediction_candidates(program)
    return cands[0] if len(cands) == 1 else None
