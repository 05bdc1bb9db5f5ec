"""The values a converted model carries, and the torch state_dict they go back to."""
from __future__ import annotations

import re

import numpy as np

from derive.errors import InputError
from derive.pytorch.torch_chain import target_name


class Bridge:
    """What ties a derivekit model to the torch module it came from."""

    def __init__(self, keys, passthrough, shapes, dtypes):
        self.keys = keys                # torch key -> derivekit name
        self.passthrough = passthrough  # torch key -> tensor kept as it was
        self.shapes = shapes            # torch key -> torch shape
        self.dtypes = dtypes            # torch key -> torch dtype
        self.order = list(shapes)       # the module's state_dict order


#: torch state_dict entry -> derivekit base name, per layer kind
_NAMES = {"weight": ("W", "K", "gamma"), "bias": ("b", "beta"),
          "running_mean": ("running_mean",), "running_var": ("running_var",)}


def bind(module, chain, graph):
    """The torch key -> derivekit name table and the values the module holds now."""
    import torch

    state = module.state_dict()
    keys, values = {}, {}
    for k, (label, op, _) in enumerate(chain):
        if isinstance(op, str):
            continue
        prefix = target_name(module, op)
        prefix = f"{prefix}." if prefix else ""
        leaves = [n for n in graph.nodes.values() if n.is_leaf and n.role in ("param", "state")
                  and str(n.layer).startswith(f"{k + 1}: ")]
        for entry, tensor in op.state_dict().items():
            if entry == "num_batches_tracked":
                continue
            found = [n for n in leaves if any(re.fullmatch(rf"{base}\d+(_\d+)?", n.name)
                                              for base in _NAMES.get(entry, ()))]
            if len(found) != 1:
                raise InputError(f"layer {k + 1} ({label}): no derivekit parameter for "
                                 f"{prefix}{entry}")
            node = found[0]
            if tuple(tensor.shape) != tuple(int(s) for s in node.shape):
                raise InputError(f"layer {k + 1} ({label}): {prefix}{entry} "
                                 f"{list(tensor.shape)} vs {node.name} {list(node.shape)}")
            keys[prefix + entry] = node.name
            values[node.name] = tensor.detach().cpu().to(torch.float64).numpy().copy()
    passthrough = {k: v.detach().clone() for k, v in state.items() if k not in keys}
    bridge = Bridge(keys, passthrough, {k: tuple(v.shape) for k, v in state.items()},
                    {k: v.dtype for k, v in state.items()})
    return bridge, values


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
            array = current[bridge.keys[key]].reshape(bridge.shapes[key])
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
    for key, name in bridge.keys.items():
        tensor = state_dict[key]
        if tuple(tensor.shape) != bridge.shapes[key]:
            raise InputError(f"state_dict {key}: shape {list(tensor.shape)}, the module's is "
                             f"{list(bridge.shapes[key])}")
        values[name] = tensor.detach().cpu().double().numpy().copy()
    for key in bridge.passthrough:
        bridge.passthrough[key] = state_dict[key].detach().clone()
    model.held_values = values
    return model
