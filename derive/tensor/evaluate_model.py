"""``derive.evaluate``: numbers from a derivation (the oracle kernels are checked against)."""
from __future__ import annotations

import numpy as np
import sympy as sp

from derive.derivation import Derivation
from derive.errors import InputError
from derive.tensor.reverse_sweep import build_program
from derive.tensor.tensor_graph import TensorGraph
from derive.tensor.program import Program


def program(model, wrt=None):
    """The :class:`Program` of a layer, Sequential, Network, TensorGraph or Derivation."""
    if isinstance(model, Program):
        return model
    if isinstance(model, TensorGraph):
        return build_program(model, wrt)[0]
    if isinstance(model, Derivation):
        if isinstance(model.program, Program):
            return model.program
        raise InputError(f"cannot evaluate the derivation {model.title!r}: it has no tensor "
                         "program (a scalar or worked derivation)")
    if callable(getattr(model, "program", None)):
        return model.program(wrt)
    raise InputError(f"cannot evaluate {type(model).__name__}: expected a layer, a model, "
                     "a tensor graph or its Derivation")


def evaluate(model, values, wrt=None, upstream=None, return_nodes=None):
    """Output and gradients of ``model`` at ``values``, in float64 NumPy.

    Runs the forward assignments and the derived VJPs of the model's Program (index form,
    exactly what the Derivation records), so it is the reference every kernel matches.

    Parameters
    ----------
    model : Layer, Sequential, Network, TensorGraph, Program or Derivation
    values : dict
        Arrays by tensor name: inputs, parameters (``layer.parameters()`` names), labels,
        state; Dropout masks are drawn from the layer's seed when not given, and a state
        with a documented start (BatchNorm's running mean 0 and running variance 1, as
        PyTorch) starts there when not given.
    wrt : list of str, optional
        Names to differentiate with respect to (default: every float input/parameter).
    upstream : array, optional
        The adjoint of the output (default: ones; 1.0 for a loss).
    return_nodes : list of str, optional
        Names of further arrays to return: forward nodes (``z1``, ``xhat``), adjoints
        (``z1_bar``), leaves, and a state's updated value ``<state>_new``
        (``running_mean_new``); ``"state"`` in the list stands for every updated state.

    Returns
    -------
    (ndarray, dict) or (ndarray, dict, dict)
        The output and ``{name: Σ upstream ⊙ ∂output/∂name}``; with ``return_nodes`` also
        ``{name: array}`` for each name asked for.

    Examples
    --------
    >>> from derive.layers import Linear
    >>> out, g = evaluate(Linear(2, 1), {"x": [[1.0, 2.0]], "W": [[3.0, 4.0]], "b": [0.5]})
    >>> out.tolist(), g["W"].tolist()
    ([[11.5]], [[1.0, 2.0]])
    """
    prog = program(model, wrt)
    arrays = prog.run(with_initial_state(prog, values), upstream)
    wanted = list(wrt) if wrt is not None else list(prog.grads)
    missing = [w for w in wanted if w not in prog.grads]
    if missing:
        raise InputError(f"no gradient of '{missing[0]}' was derived (derived: "
                         f"{', '.join(prog.grads) or 'none'})")
    grads = {}
    for w in wanted:
        name = prog.grads[w]
        grads[w] = np.asarray(arrays[name]) if name in arrays else \
            np.zeros(np.shape(arrays[w]))
    out = np.asarray(arrays[prog.output])
    if return_nodes is None:
        return out, grads
    return out, grads, picked(prog, arrays, return_nodes)


def with_initial_state(prog, values):
    """``values`` with each state leaf not given set to its documented start
    (``meta["initial"]``: BatchNorm's running mean 0, running variance 1)."""
    if not isinstance(values, dict):
        return values
    absent = [t for t in prog.tensors.values() if t.role == "state" and t.name not in values
              and "initial" in t.meta and t.name not in prog.given]
    if not absent:
        return values
    dims = prog.bind(prog.numeric({**prog.given, **values}))
    out = dict(values)
    for t in absent:
        shape = [sp.sympify(s).xreplace(dims) for s in t.shape]
        if not all(s.is_Integer for s in shape):
            continue  # its size is not known from the values: Program.run names it
        out[t.name] = np.full([int(s) for s in shape], float(t.meta["initial"]))
    return out


def picked(prog, arrays, names):
    """``{name: array}`` for ``return_nodes`` (InputError naming an unknown name)."""
    if isinstance(names, str):
        names = [names]
    wanted = []
    for name in names:
        if name == "state":
            wanted += [a.target + "_new" for a in prog.updates]
        else:
            wanted.append(str(name))
    out = {}
    for name in wanted:
        if name not in arrays:
            known = ", ".join(sorted(arrays))
            raise InputError(f"return_nodes: no array named '{name:.40}' (known: "
                             f"{known[:300]})")
        out[name] = np.asarray(arrays[name])
    return out
