"""PyTorch models in and out: ``from_torch`` and ``torch_state_dict``.

:func:`from_torch` (here) reads a ``torch.nn.Sequential``, or a module whose ``forward`` is a
straight chain of submodule calls and ``F.relu``-like functions (traced with
``torch.fx``), and returns a derivekit :class:`~derive.layers.Sequential` that carries the
module's current weights as its **parameter values**: ``net.parameter_values()`` is
``{derivekit name: float64 array}`` (parameters ``W1``, ``K1``, ``gamma2`` ... and
BatchNorm's running statistics), the ``values`` :func:`derive.evaluate` takes and what
``net.copy_values_to(kernel_model)`` writes into a compiled kernels Model before ``fit``.
After training, ``net.set_parameter_values(kernel_model)`` reads them back and
``net.torch_state_dict()`` gives the torch module's ``state_dict`` (same keys, layouts and
dtypes; ``module.load_state_dict(..., strict=True)`` takes it).

Layouts: ``Linear.weight [out, in]`` is ``W``; ``Conv2d.weight [F, C, k, k]`` is ``K``;
norm weights/biases are ``gamma``/``beta``; biases ``b`` -- all as torch stores them.
``nn.LSTM``/``GRU``/``RNN`` (batch_first, one layer, zero start state; in a forward as
``out, _ = self.lstm(x)``, optionally ``out[:, -1]``) become derivekit's LSTM
(gate_order 'ifgo'), GRU (reset 'after') and RNN: ``weight_ih_l0`` is split into the
per-gate ``W_x*``, ``weight_hh_l0`` into ``W_h*``, and ``bias_ih_l0 + bias_hh_l0`` is one
bias per gate (exported as ``bias_ih_l0``, ``bias_hh_l0`` zero; a GRU keeps ``b_hh``).
``nn.Embedding`` maps as the first layer (``x``: integer token ids ``[B, T]``, a plain
row lookup: no padding_idx / max_norm); ``nn.MultiheadAttention`` as derivekit's
SelfAttention where it maps: self-attention ``y, _ = self.attn(x, x, x)`` (batch_first,
bias=False, num_heads > 1, no masks, dropout 0), ``in_proj_weight`` split by rows into
``W_q``, ``W_k``, ``W_v`` and ``out_proj.weight`` as ``W_o``.
Torch is imported only inside these functions (``import derive`` never loads it).

>>> import torch, derive as dv                                    # doctest: +SKIP
>>> net = dv.from_torch(torch.nn.Sequential(torch.nn.Linear(4, 3)), input_shape=(8, 4))
>>> sorted(net.parameter_values())                                # doctest: +SKIP
['W1', 'b1']
"""
from __future__ import annotations

from derive.errors import InputError
from derive.pytorch.torch_chain import chain_of, torch_shapes
from derive.pytorch.torch_layers import attention_options, layer_for, loss_for
from derive.pytorch.torch_state import (bind, copy_values_to, load_torch_state_dict,
                                        parameter_values, set_parameter_values,
                                        torch_state_dict)

__all__ = ["from_torch", "parameter_values", "set_parameter_values", "copy_values_to",
           "torch_state_dict", "load_torch_state_dict"]


def from_torch(module, input_shape, loss=None):
    """A derivekit Sequential for ``module`` with its current weights (see the module doc).

    ``input_shape`` is the shape of one batch, ``(B, ...)``; ``loss`` a torch loss module
    (``nn.CrossEntropyLoss()``, ``nn.MSELoss()``, ``nn.BCEWithLogitsLoss()``,
    ``nn.BCELoss()``) or None. The model is in train mode when ``module.training``.
    Anything that does not map is one InputError line naming it.
    """
    import torch

    from derive.layers.sequential import Sequential

    if not isinstance(module, torch.nn.Module):
        raise InputError(f"from_torch takes a torch.nn.Module, got {type(module).__name__}")
    shape = batch_shape(input_shape)
    chain = chain_of(module)
    for k, (label, op, _) in enumerate(chain):
        if isinstance(op, torch.nn.MultiheadAttention):
            attention_options(op, f"layer {k + 1} ({label})")
    sizes = torch_shapes(module, chain, shape)
    layers, positions, folded = [], [], 0
    for k, (label, op, args) in enumerate(chain):
        if folded:  # ``[0]`` / ``[:, -1]`` after an LSTM: part of its layer
            positions.append(None)
            folded -= 1
            continue
        layer = layer_for(op, args, sizes[k], sizes[k + 1], f"layer {k + 1} ({label})",
                          chain[k + 1:])
        if isinstance(layer, tuple):
            layer, folded = layer
        layers.append(layer)
        positions.append(len(layers))
    net = Sequential(*layers, loss=loss_for(loss), input_shape=shape[1:],
                     train=bool(module.training))
    graph = net.graph()
    out = graph.nodes[graph.prediction or graph.output].shape
    want = sizes[-1]
    if [str(s) for s in out[1:]] != [str(s) for s in want[1:]]:
        raise InputError(f"derivekit's output [B, {', '.join(map(str, out[1:]))}] does not "
                         f"match torch's {list(want)} for input_shape {tuple(shape)}")
    net.torch_bridge, net.held_values = bind(module, chain, graph, positions)
    return net


def batch_shape(input_shape):
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) < 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                       for s in input_shape)):
        raise InputError(f"input_shape is the shape of one batch (B, ...) in positive ints, "
                         f"e.g. (8, 1, 28, 28), got {input_shape!r}")
    return tuple(input_shape)
