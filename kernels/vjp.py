"""One layer's (or graph's) forward and VJP as a compiled kernel, for any Program.

The training module (:mod:`kernels.train_module`) needs a classifier with a batch axis; this
prints *any* Program -- a single layer with an upstream adjoint, a loss, a whole
network -- as one function ``vjp(<leaves>, <seed>, <buffers>)``. Tests use it to check
every layer's generated kernel against :func:`derive.evaluate` (the float64 oracle), and
it is the way to get one layer's gradients out of generated code.

>>> import numpy as np, derive as dv                                  # doctest: +SKIP
>>> out, grads = run(dv.Linear(3, 2), {"x": np.ones((4, 3)), "W": np.ones((2, 3)),
...                                    "b": np.zeros(2)}, upstream=np.ones((4, 2)))
"""
from __future__ import annotations

import numpy as np

from derive.tensor.evaluate import Env

from . import cache, docstring_text
from .printer import helpers
from .source_text import HEADER_VJP, JIT, indent, title_lines, wrap_lines
from .statements import Statements


def source(prog, dtype="float64"):
    """The module text with ``vjp`` for ``prog``; returns (text, argument names)."""
    st = Statements(prog, dtype=dtype)
    body = st.statements(prog.forward) + st.statements(prog.backward)
    leaves = prog.leaf_names()
    bufs = [b for b in st.buffers() if b != prog.seed]
    dims = []
    for d in prog.dims:
        owner = next(t for t in leaves if d in prog.tensors[t].shape)
        dims.append(f"{d} = {owner}.shape[{list(prog.tensors[owner].shape).index(d)}]")
    args = leaves + [prog.seed] + bufs
    ret = prog.output if not prog.tensors[prog.output].shape else "0.0"
    fn = [JIT, f"def vjp({', '.join(args)}):"] + indent(dims + body + [f"return {ret}"])
    code = "\n".join(fn)
    text = (HEADER_VJP.format(title=title_lines(docstring_text(prog.title)))
            + helpers(code) + "\n" + "\n".join(wrap_lines(fn)) + "\n")
    return text, {"leaves": leaves, "buffers": bufs, "temps": dict(st.temps)}


def compile_vjp(net, dtype="float64", wrt=None):
    """(module, info, program) for ``net`` (cached like every generated module)."""
    from derive.tensor import program

    from . import _engine_version, describe

    prog = program(net, wrt)
    k = cache.key("vjp", describe(prog), _engine_version(), dtype)
    text, info = source(prog, dtype)
    return cache.load(k, lambda: text), info, prog


def run(net, values, upstream=None, wrt=None, dtype="float64"):
    """Output and gradients of ``net`` at ``values`` computed by the generated kernel.

    Same arguments and results as :func:`derive.evaluate`.
    """
    module, info, prog = compile_vjp(net, dtype, wrt)
    # the kernel does not check bounds: numbers, shapes and labels (which it indexes
    # with) are checked as derive.evaluate checks them, masks drawn where not given
    arrays, dims = prog.leaf_arrays(values)
    ftype = np.dtype(dtype)
    args = [np.ascontiguousarray(arrays[n], dtype=np.int64 if prog.tensors[n].dtype == "int"
                                 else ftype) for n in info["leaves"]]
    seed = prog.upstream_array(upstream, Env(arrays, dims, prog.constants)).astype(ftype)
    out_shape = seed.shape
    seed_arg = float(seed) if not out_shape else np.ascontiguousarray(seed)
    bufs = {}
    for name in info["buffers"]:
        shape = info["temps"].get(name) or prog.tensors[name].shape
        is_int = name in prog.tensors and prog.tensors[name].dtype == "int"  # argmax routes
        bufs[name] = np.zeros(_shape(shape, dims), np.int64 if is_int else ftype)
    result = module.vjp(*args, seed_arg, *bufs.values())
    output = result if not out_shape else bufs[prog.output]
    bufs[prog.seed] = seed  # a gradient may be the upstream itself (x + y: x_bar = out_bar)
    grads = {w: bufs[g] if g in bufs else np.zeros_like(arrays[w], dtype=ftype)
             for w, g in prog.grads.items()}
    return np.asarray(output), grads


def _shape(shape, dims):
    import sympy as sp

    return tuple(int(sp.sympify(s).xreplace(dims)) for s in shape)
