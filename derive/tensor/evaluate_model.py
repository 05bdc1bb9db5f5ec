"""``derive.evaluate``: numbers from a derivation (the oracle kernels are checked against)."""
from __future__ import annotations

import numpy as np

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


def evaluate(model, values, wrt=None, upstream=None):
    """Output and gradients of ``model`` at ``values``, in float64 NumPy.

    Runs the forward assignments and the derived VJPs of the model's Program (index form,
    exactly what the Derivation records), so it is the reference every kernel matches.

    Parameters
    ----------
    model : Layer, Sequential, Network, TensorGraph, Program or Derivation
    values : dict
        Arrays by tensor name: inputs, parameters (``layer.parameters()`` names), labels,
        state; Dropout masks are drawn from the layer's seed when not given.
    wrt : list of str, optional
        Names to differentiate with respect to (default: every float input/parameter).
    upstream : array, optional
        The adjoint of the output (default: ones; 1.0 for a loss).

    Returns
    -------
    (ndarray, dict)
        The output and ``{name: Σ upstream ⊙ ∂output/∂name}``.

    Examples
    --------
    >>> from derive.layers import Linear
    >>> out, g = evaluate(Linear(2, 1), {"x": [[1.0, 2.0]], "W": [[3.0, 4.0]], "b": [0.5]})
    >>> out.tolist(), g["W"].tolist()
    ([[11.5]], [[1.0, 2.0]])
    """
    prog = program(model, wrt)
    arrays = prog.run(values, upstream)
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
    return np.asarray(arrays[prog.output]), grads
