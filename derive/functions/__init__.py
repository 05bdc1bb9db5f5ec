"""Elementwise functions: one registry row each (:mod:`derive.functions.registry`).

The scalar parser, the v-notation parser, the LaTeX answer reader, ``evaluate``, the
answer checker, the kernel printer, the report printer, the conventions a derivation
states, the activation layers and the architecture tables all read
:data:`FUNCTIONS`; none keeps its own table.

Adding a function is adding one row to ``FUNCTIONS`` in ``registry.py``: its names, its
SymPy class (a smooth one is made from its definition and derivative by
:func:`~derive.functions.classes.defined`), its kink convention if it has a kink, its
stable NumPy form, its kernel source (a template, or :func:`composed` to print its
definition), its complex form for the checker, its LaTeX head, and ``activation=`` (the
layer class name) if it should also be a layer. tests/test_functions.py then checks the
row's facets against each other, and the layer table checks the layer three ways.
"""
from derive.functions.classes import (elu, gelu_tanh, leaky_relu, maximum, minimum, real_abs, real_diff,
                      relu, sigmoid, softplus, step)
from derive.functions.registry import (ACTIVATIONS, BY_CLASS, BY_NAME, CONVENTIONS, FUNCTIONS, Function,
                       Param, composed, constant, kinks, lookup, parser_table, row_of)

__all__ = ["ACTIVATIONS", "BY_CLASS", "BY_NAME", "CONVENTIONS", "FUNCTIONS", "Function",
           "Param", "composed", "constant", "kinks", "lookup", "parser_table", "row_of",
           "gelu_tanh", "real_abs", "real_diff", "elu", "leaky_relu", "maximum", "minimum",
           "relu", "sigmoid", "softplus", "step"]
# every registry class is importable from here by its name (derive.functions.silu)
_OWN = {r.cls.__name__: r.cls for r in FUNCTIONS
        if r.cls and r.cls.__module__.startswith(__name__)}
globals().update(_OWN)
__all__ += [n for n in _OWN if n not in __all__]
