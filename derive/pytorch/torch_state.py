"""The values a converted model carries, and the torch state_dict they go back to."""
from __future__ import annotations

import re

import numpy as np

from derive.errors import InputError
from derive.pytorch.torch_chain import target_name


class Bridge:
    """What ties a derivekit model to the torch module it came from.

    Each mapped torch key has parts ``(name, rows, mode)``: rows ``slice`` of the torch
    tensor (None: all of it) hold derivekit's ``name``. Mode "set" copies; "add" is a
    second bias derivekit sums into ``name`` (an RNN's ``bias_hh_l0``): it is added on the
    way in and written as zeros on the way out (the sum, and so the outputs, the same).
    """

    def __init__(self, keys, passthrough, shapes, dtypes):
        self.keys = keys                # torch key -> [(derivekit name, rows, mode)]
        self.passthrough = passthrough  # torch key -> tensor kept as it was
        self.shapes = shapes            # torch key -> torch shape
        self.dtypes = dtypes            # torch key -> torch dtype
        self.order = list(shapes)       # the module's state_dict order


#: torch state_dict entry -> derivekit base name, per layer kind
_NAMES = {"weight": ("W", "K", "gamma"), "bias": ("b", "beta"),
          "running_mean": ("running_mean",), "running_var": ("running_var",)}


def bind(module, chain, graph, positions):
    """The torch key -> parts table and the values the module holds now (``positions``:
    each chain step's layer number in the Sequential, None for a step folded away)."""
    import torch

    state = module.state_dict()
    keys, values = {}, {}
    for k, (label, op, _) in enumerate(chain):
        if isinstance(op, str) or positions[k] is None:
            continue
        prefix = target_name(module, op)
        prefix = f"{prefix}." if prefix else ""
        leaves = {_base(n.name): n for n in graph.nodes.values() if n.is_leaf
                  and n.role in ("param", "state")
                  and str(n.layer).startswith(f"{positions[k]}: ")}
        for entry, tensor in op.state_dict().items():
            if entry == "num_batches_tracked":
                continue
            parts = _parts(op, entry, leaves)
            if not parts:
                raise InputError(f"layer {k + 1} ({label}): no derivekit parameter for "
                                 f"{prefix}{entry}")
            array = tensor.detach().cpu().to(torch.float64).numpy()
            for base, rows, mode in sorted(parts, key=lambda p: p[2] == "add"):
                node, block = leaves[base], array[rows or slice(None)]
                if block.shape != tuple(int(s) for s in node.shape):
                    raise InputError(f"layer {k + 1} ({label}): {prefix}{entry} "
                                     f"{list(block.shape)} vs {node.name} {list(node.shape)}")
                values[node.name] = values[node.name] + block if mode == "add" else block.copy()
            keys[prefix + entry] = [(leaves[b].name, r, m) for b, r, m in parts]
    passthrough = {k: v.detach().clone() for k, v in state.items() if k not in keys}
    bridge = Bridge(keys, passthrough, {k: tuple(v.shape) for k, v in state.items()},
                    {k: v.dtype for k, v in state.items()})
    return bridge, values


def _base(name):
    """``W_xi3`` -> ``W_xi``, ``running_mean2_2`` -> ``running_mean`` (the layer's tag off)."""
    return re.sub(r"\d+(_\d+)?$", "", name)


def _parts(op, entry, leaves):
    """The parts of torch's ``entry`` of layer ``op`` (see :class:`Bridge`)."""
    import torch.nn as nn

    if isinstance(op, (nn.LSTM, nn.GRU, nn.RNN)):
        gates = {nn.LSTM: "ifgo", nn.GRU: "rzh", nn.RNN: "h"}[type(op)]
        h = op.hidden_size
        kind, _, _ = entry.partition("_l0")
        out = []
        for g, q in enumerate(gates):
            rows = slice(g * h, (g + 1) * h)
            single = type(op) is nn.RNN
            name = {"weight_ih": "W_xh" if single else f"W_x{q}",
                    "weight_hh": "W_hh" if single else f"W_h{q}",
                    "bias_ih": "b" if single else f"b_{q}"}.get(kind)
            if kind == "bias_hh":
                name = "b" if single else ("b_hh" if q == "h" and gates == "rzh" else f"b_{q}")
                out.append((name, rows, "set" if name == "b_hh" else "add"))
            elif name:
                out.append((name, rows, "set"))
        return out
    if isinstance(op, nn.MultiheadAttention):  # in_proj_weight: q, k, v stacked by rows
        e = op.embed_dim
        if entry == "in_proj_weight":
            return [(f"W_{c}", slice(g * e, (g + 1) * e), "set") for g, c in enumerate("qkv")]
        return [("W_o", None, "set")] if entry == "out_proj.weight" else []
    found = [b for b in _NAMES.get(entry, ()) if b in leaves]
    return [(found[0], None, "set")] if len(found) == 1 else []


# -- values and back to torch -----------------------------------------------------------
def parameter_values(model):
    """``{name: float64 array}``: the parameter (and running-statistic) values ``model``
    carries, a copy (the ``values`` :func:`derive.evaluate` takes, with ``x`` and ``y``)."""
    values = getattr(model, "held_values", None)
    if values is None:
        raise InputError(f"{type(model).__name__} carries no parameter values (a model from "
                         f"dv.from_torch does; or call set_parameter_values)")
    return {k: np.array(v, dtype=np.float64) for k, v in values.items()}


def set_parameter_values(model, source):
    """Replace the values ``model`` carries with ``source``: a dict by derivekit name, or a
    compiled kernels Model (its ``params`` and ``stats``, e.g. after ``fit``). Every
    parameter must be given, each with its shape; refused in one line otherwise."""
    if hasattr(source, "params"):
        source = {**dict(source.params), **dict(getattr(source, "stats", {}))}
    graph = model.graph()
    wanted = {n.name: tuple(int(s) for s in n.shape) for n in graph.nodes.values()
              if n.is_leaf and n.role in ("param", "state")}
    params = {n for n in wanted if graph.nodes[n].role == "param"}
    missing = sorted(params - set(source))
    extra = sorted(set(source) - set(wanted))
    if missing or extra:
        raise InputError(f"parameter values: missing {missing or 'none'}, unknown "
                         f"{extra or 'none'}")
    new = dict(getattr(model, "held_values", None) or {})
    for name, value in source.items():
        value = np.asarray(value, dtype=np.float64)
        if value.shape != wanted[name]:
            raise InputError(f"parameter value {name}: shape {list(value.shape)}, the model's "
                             f"is {list(wanted[name])}")
        new[name] = value.copy()
    model.held_values = new
    return model


def copy_values_to(model, kernel_model):
    """Write the values ``model`` carries into a compiled kernels Model (before ``fit``)."""
    for name, value in parameter_values(model).items():
        target = kernel_model.params.get(name)
        if target is None:
            target = kernel_model.stats.get(name)
        if target is None:
            raise InputError(f"the compiled model has no array {name} (compiled from another "
                             f"network?)")
        target[...] = value.reshape(target.shape)
    return kernel_model


def _bridge(model):
    bridge = getattr(model, "torch_bridge", None)
    if bridge is None:
        raise InputError(f"{type(model).__name__} was not made by dv.from_torch: it has no "
                         f"torch state_dict layout")
    return bridge


def torch_state_dict(model, values=None):
    """The torch module's ``state_dict`` with ``model``'s values (or ``values``: a dict or
    a kernels Model): same keys, order, shapes and dtypes; entries derivekit does not
    hold (``num_batches_tracked``, unused submodules) as the module had them."""
    import torch

    bridge = _bridge(model)
    if values is not None:
        set_parameter_values(model, values)
    current = parameter_values(model)
    out = {}
    for key in bridge.order:
        if key in bridge.keys:
            array = np.zeros(bridge.shapes[key])
            for name, rows, mode in bridge.keys[key]:
                if mode == "set":
                    array[rows or slice(None)] = current[name]
            out[key] = torch.tensor(array, dtype=bridge.dtypes[key])
        else:
            out[key] = bridge.passthrough[key].clone()
    return out


def load_torch_state_dict(model, state_dict):
    """Set ``model``'s values from a torch ``state_dict`` of the module it came from
    (strict: missing or extra keys, or a wrong shape, refused in one line naming them)."""
    bridge = _bridge(model)
    missing = [k for k in bridge.order if k not in state_dict]
    extra = [k for k in state_dict if k not in bridge.shapes]
    if missing or extra:
        raise InputError(f"state_dict does not fit: missing keys {missing or 'none'}, "
                         f"unexpected keys {extra or 'none'}")
    values = dict(getattr(model, "held_values", None) or {})
    for key in bridge.keys:
        if tuple(state_dict[key].shape) != bridge.shapes[key]:
            raise InputError(f"state_dict {key}: shape {list(state_dict[key].shape)}, the "
                             f"module's is {list(bridge.shapes[key])}")
    parts = [(key, part) for key, ps in bridge.keys.items() for part in ps]
    for key, (name, rows, mode) in sorted(parts, key=lambda p: p[1][2] == "add"):
        block = state_dict[key].detach().cpu().double().numpy()[rows or slice(None)]
        values[name] = values[name] + block if mode == "add" else block.copy()
    for key in bridge.passthrough:
        bridge.passthrough[key] = state_dict[key].detach().clone()
    model.held_values = values
    return model
