"""The short public entry points: grad() and solve()."""
from __future__ import annotations

import sympy as sp

from derive.derivation import Derivations
from derive.scalar.backprop import backprop
from derive.errors import InputError
from derive.scalar.scalar_graph import from_assignments, from_expression
from derive.problem import solve as _solve_file
from derive.problem import solve_spec


def grad(definition, wrt=None, at=None, inputs=None, params=None, output=None,
         title=None, latex_names=None, where=None, keys=None):
    """Derive the gradient of a scalar computation, node by node.

    Parameters
    ----------
    definition : str, sympy.Expr, dict or list of pairs
        One expression (decomposed into primitive nodes ``v1..vn``), or named
        assignments in order (``{"p": "u1", "q": "w*p", ...}``).
    wrt : str or list of str, optional
        Names to differentiate with respect to (default: every leaf). "x,y" works too.
    at : dict, optional
        Values of the leaves; ints and fraction strings stay exact.
    where, keys : str, dict, optional
        Where error messages point: by default to the arguments ``wrt`` and ``at``;
        the command line passes ``keys={"wrt": "--wrt", "values": "--at"}``.

    Returns
    -------
    Derivation

    Examples
    --------
    >>> d = grad("(x1 + x2)**2 + x2*x3 - x3", wrt="x3", at={"x1": 1, "x2": 2, "x3": 3})
    >>> d.gradients["x3"].expression, d.gradients["x3"].value
    (x2 - 1, 1)
    """
    if isinstance(wrt, str):
        wrt = [w.strip() for w in wrt.split(",") if w.strip()]
    if isinstance(definition, (dict, list, tuple)):
        graph = from_assignments(definition, inputs, params, output)
    elif isinstance(definition, (str, sp.Basic)):
        graph = from_expression(definition, inputs, params)
    else:
        raise InputError(f"cannot derive a {type(definition).__name__}: give an expression "
                         "or named assignments")
    if latex_names:
        graph.latex_names = dict(latex_names)
    return backprop(graph, wrt=wrt, values=at, title=title or _title(definition),
                    where=where, keys={"wrt": "wrt", "values": "at", **(keys or {})})


def _title(definition):
    if isinstance(definition, (str, sp.Basic)):
        return f"Gradient of {definition}"
    return "Backpropagation"


def solve(problem, allow_import=False):
    """Solve a problem file (path) or mapping: its Derivations, one per document.

    ``allow_import=True`` lets a ``module: path/to/file.py:ClassName`` key import and run
    that Python file (your own PyTorch model, converted with from_torch); without it such
    a problem is refused.

    Returns
    -------
    Derivations
        A list; ``print`` gives each one's gradients (the ``derivekit solve`` text) and
        Jupyter shows them as one worked document.
    """
    if isinstance(problem, dict):
        return Derivations([solve_spec(problem, allow_import=allow_import)])
    return Derivations(_solve_file(problem, allow_import=allow_import))
