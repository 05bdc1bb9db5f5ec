"""The ``layer`` problem kind: one layer's derivation from a YAML file.

.. code-block:: yaml

    kind: layer
    layer: conv2d                      # a name of ``derivekit layer``
    options: {kernel_size: 3, stride: 2, padding: 1}
    values: {x: [[[[...]]]], K: ..., b: ...}   # optional: numbers for every input
    upstream: [...]                    # optional: the output's adjoint (default ones)
    wrt: [x, K]                        # optional: default every input and parameter

Values are plain lists, or ``{file: X.npy}`` for a large array (read from the problem's
folder by :func:`derive.problem.prepare`); nothing in the file is executed.
"""
from __future__ import annotations

import numpy as np

from derive.problem import check_keys, get, problem_kind
from derive.layers.catalog import coerce_option, entry

KEYS = ("kind", "title", "layer", "options", "values", "upstream", "wrt")


def find_layer(name, options, where=None):
    """The catalogue's layer ``name`` with ``options`` (text values read as on the command
    line); errors are located at ``where``'s ``layer`` or ``options``."""
    found = entry(name, where and f"{where}: layer")
    options = {k: coerce_option(v) for k, v in options.items()}
    return found.make(where=where and f"{where}: options", **options)


@problem_kind("layer")
def solve(spec, where):
    """A layer's Derivation (numbers included when ``values`` are given)."""
    check_keys(spec, KEYS, where)
    name = get(spec, "layer", where, str)
    options = get(spec, "options", where, dict, {})
    layer = find_layer(name, options, where)
    values = get(spec, "values", where, dict, None)
    upstream = get(spec, "upstream", where, (list, float, int), None)
    wrt = get(spec, "wrt", where, list, None)
    values = None if values is None else {k: np.asarray(v) for k, v in values.items()}
    upstream = None if upstream is None else np.asarray(upstream, dtype=float)
    d = layer.derive(wrt=wrt, values=values, upstream=upstream)
    d.meta["layer"] = layer.key
    if "title" in spec:
        d.title = str(spec["title"])
    return d
