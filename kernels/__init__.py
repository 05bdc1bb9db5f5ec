"""kernels: the numbers. Generated numba code and the loops that run it.

>>> import derive as dv, kernels                                     # doctest: +SKIP
>>> net = dv.Sequential(dv.Linear(64, 128), dv.ReLU(), dv.Linear(128, 10),
...                     loss=dv.SoftmaxCrossEntropy())
>>> model = kernels.compile(net.derive(), dtype="float32", optimizer="adam")
>>> kernels.fit(model, kernels.data.digits(), epochs=20, batch_size=32)
>>> print(model.source)            # the printed forward, backward and fused update

Nothing here differentiates: the forward, backward and eval-mode passes and the
prediction node are printed from the record the network's Derivation holds
(``derivation.program``, :mod:`derive.tensor`), the update from :mod:`kernels.optim`.
``kernels.compile(net)`` derives the network first.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from . import cache, data, init, optim
from .fit import evaluate, fit, predict
from .model import Model

__all__ = ["compile", "fit", "evaluate", "predict", "Model", "data", "init", "optim", "cache"]

DTYPES = ("float32", "float64")


def program_of(net):
    """The record the kernels print for ``net``, with parameter gradients only.

    A Derivation gives the Program it holds (``derivation.program``; nothing is derived
    again) and a Program is taken as it is; a layer, Sequential, Network or TensorGraph is
    derived first, with respect to its parameters (the sweep's record, the same Program
    ``net.derive(wrt=params).program`` holds, without laying out the derivation for
    people). Backward assignments no parameter's gradient reads are dropped (an input's
    adjoint would be wasted work): see :func:`for_parameters`.
    """
    from derive.derivation import Derivation
    from derive.errors import InputError
    from derive.tensor import program
    from derive.tensor.program import Program

    if isinstance(net, Derivation):
        if not isinstance(net.program, Program):
            raise InputError(f"cannot compile the derivation {net.title!r}: it has no tensor "
                             "program (a scalar or worked derivation)")
        return for_parameters(net.program)
    if isinstance(net, Program):
        return for_parameters(net)
    graph = net.graph() if hasattr(net, "graph") else net  # built once (an LSTM's: ~0.3 s)
    params = [n for n, node in graph.nodes.items() if node.role == "param"]
    return for_parameters(program(graph, wrt=params))


def for_parameters(prog):
    """``prog`` computing the parameters' gradients only: the backward assignments none of
    them reads (directly or through other adjoints) are dropped, with their arrays. This
    prints less; it derives nothing (what is kept is the record's own assignments)."""
    from dataclasses import replace

    import sympy as sp

    params = set(prog.params)
    grads = {w: g for w, g in prog.grads.items() if w in params}
    needed = set(grads.values())
    kept = []
    for a in reversed(prog.backward):
        if a.target not in needed:
            continue
        kept.append(a)
        exprs = [a.rhs] + list(a.lhs or ())
        for e in exprs:
            if isinstance(e, sp.Basic):
                needed |= {str(b.label) for b in e.atoms(sp.IndexedBase)}
                needed |= {str(x) for x in e.free_symbols}
    if len(kept) == len(prog.backward) and grads == prog.grads:
        return prog
    written = {a.target for a in prog.backward}
    dropped = written - {a.target for a in kept}
    tensors = {n: t for n, t in prog.tensors.items() if n not in dropped}
    return replace(prog, tensors=tensors, backward=kept[::-1], grads=grads)


def docstring_text(text):
    """``text`` safe inside a triple-quoted docstring of generated source: a title holds
    what a user typed (layer options from a config file), so quotes and backslashes are
    escaped and it can never end the docstring and become code."""
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def describe(prog):
    """The derivation as text with index names made canonical: the cache key's main part.

    Index labels come from a process-wide counter, so the same network derived after
    something else gets other labels; renaming them in order of appearance makes equal
    derivations give equal text.
    """
    lines = [f"dims {prog.dims} constants {sorted(map(str, prog.constants.items()))} "
             f"prediction {prog.prediction}"]
    lines += [f"{t.name} {t.shape} {t.role} {t.dtype}" for t in prog.tensors.values()]
    inference = prog.inference.forward if prog.inference is not None else []
    for a in prog.forward + prog.updates + prog.backward + [None] + inference:
        if a is None:
            lines.append("eval mode")
            continue
        lines.append(_canonical(f"{a.target}{list(a.indices)} {a.mode} {a.rhs} @ {a.lhs}",
                                a.rhs, a.indices))
    return "\n".join(lines)


def describe_graph(graph):
    """The network's definition as canonical text (what determines its derivation, with
    the engine's version): hashing it skips deriving again when the cache is warm."""
    lines = [f"output {graph.output} prediction {graph.prediction} "
             f"constants {sorted(map(str, graph.constants.items()))}"]
    for n in graph.nodes.values():
        head = f"{n.name} {n.shape} {n.role} {n.dtype} {sorted(map(str, n.meta.items()))}"
        lines.append(head if n.rhs is None else _canonical(f"{head} {list(n.indices)} = {n.rhs}",
                                                           n.rhs, n.indices))
    return "\n".join(lines)


def _canonical(text, rhs, indices):
    import sympy as sp

    idx = set(rhs.atoms(sp.Idx)) | set(indices) if isinstance(rhs, sp.Basic) else set(indices)
    ranges = sorted(str(i.upper) for i in idx)
    for k, i in enumerate(sorted(idx, key=lambda i: (text.find(str(i.label)), str(i.label)))):
        text = _rename(text, str(i.label), f"_{k}")
    return f"{text} ranges {ranges}"


def _rename(text, old, new):
    import re

    return re.sub(rf"(?<![A-Za-z0-9_]){re.escape(old)}(?![A-Za-z0-9_])", new, text)


def _engine_version():
    """Hash of the code that decides what gets generated (the tensor engine, the layer
    library, the function registry, this package)."""
    import derive.functions
    import derive.layers
    import derive.tensor

    h = hashlib.sha256()
    folders = (Path(derive.tensor.__file__).parent, Path(derive.layers.__file__).parent,
               Path(derive.functions.__file__).parent, Path(__file__).parent)
    for folder in folders:
        for f in sorted(folder.glob("*.py")):
            if f.name not in ("fit.py", "bench.py", "cli.py", "data.py", "model.py", "cache.py"):
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def compile(net, dtype="float32", optimizer="sgd", *, lr=None, init="xavier_uniform", seed=0,
            **hyper):
    """Compile ``net`` to numba kernels and return a :class:`Model` ready for :func:`fit`.

    Parameters
    ----------
    net : Derivation, or a layer, Sequential, Network, TensorGraph or Program
        A tensor Derivation (``net.derive()``) is compiled from the record it holds,
        without deriving again; anything else is derived first (see :func:`program_of`).
        Its loss must read integer class labels (cross-entropy, hinge).
    dtype : "float32" or "float64"
    optimizer : str or kernels.optim.Optimizer
        Fused into the epoch kernel (``fit`` may switch it; that recompiles).
    lr, hyper
        Learning rate and hyper-parameters for :func:`kernels.optim.make`.
    init : str
        Weight initialiser (biases start at zero), seeded by ``seed``.
    """
    from derive.derivation import Derivation
    from derive.errors import InputError
    from derive.tensor.program import Program

    if str(dtype) not in DTYPES:
        raise InputError(f"dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    dtype = str(dtype)
    opt = optim.make(optimizer, lr=lr, **hyper)
    if isinstance(net, (Derivation, Program)):
        # a record: printed as it is, keyed by its own (canonical) text
        record, graph = [program_of(net)], None
        description = describe(record[0])
    else:
        # a definition: keyed by its text, so a warm cache skips deriving it
        graph = net.graph() if hasattr(net, "graph") else net
        if not hasattr(graph, "nodes"):
            raise InputError(f"cannot compile {type(net).__name__}: expected a Derivation, a "
                             "layer, a Sequential, a Network, a TensorGraph or a Program")
        description, record = describe_graph(graph), []
    version = _engine_version()

    def generate(opt):
        from .train_module import Kernel

        if not record:  # derived only when a module has to be generated (from the graph
            record.append(program_of(graph))  # the key was made of: built once)
        prog = record[0]
        description = prog.title or type(net).__name__
        kernel = Kernel(prog, dtype=dtype, title=docstring_text(description))
        return kernel.source(opt, description)

    def build(opt):
        k = cache.key(description, version, dtype, opt.key())
        module = cache.load(k, lambda: generate(opt))
        return module, module.META

    module, meta = build(opt)
    return Model(build, meta, module, opt, dtype=dtype, seed=seed, init=init)
