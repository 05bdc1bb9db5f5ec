"""kernels: the numbers. Generated numba code and the loops that run it.

>>> import derive as dv, kernels                                     # doctest: +SKIP
>>> net = dv.Sequential(dv.Linear(64, 128), dv.ReLU(), dv.Linear(128, 10),
...                     loss=dv.SoftmaxCrossEntropy())
>>> model = kernels.compile(net, dtype="float32", optimizer="adam")
>>> kernels.fit(model, kernels.data.digits(), epochs=20, batch_size=32)
>>> print(model.source)            # the printed forward, backward and fused update

Nothing here differentiates: the backward pass is printed from the assignments of the
network's derivation (:mod:`derive.tensor`), the update from :mod:`kernels.optim`.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from . import cache, data, optim
from .fit import evaluate, fit, predict
from .model import Model

__all__ = ["compile", "fit", "evaluate", "predict", "Model", "data", "optim", "cache"]

DTYPES = ("float32", "float64")


def program_of(net):
    """The tensor engine's Program for ``net`` (a layer, Sequential, graph or Program),
    with gradients for the parameters only (the inputs' adjoints would be wasted work)."""
    from derive.tensor import program
    from derive.tensor.program import Program

    if isinstance(net, Program):
        return net
    graph = net.graph() if hasattr(net, "graph") else net
    params = [n for n, node in graph.nodes.items() if node.role == "param"]
    return program(graph, wrt=params)


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
    lines = [f"dims {prog.dims} constants {sorted(map(str, prog.constants.items()))}"]
    lines += [f"{t.name} {t.shape} {t.role} {t.dtype}" for t in prog.tensors.values()]
    for a in prog.forward + prog.updates + prog.backward:
        lines.append(_canonical(f"{a.target}{list(a.indices)} {a.mode} {a.rhs} @ {a.lhs}",
                                a.rhs, a.indices))
    return "\n".join(lines)


def describe_graph(graph):
    """The network's definition as canonical text (what determines its derivation, with
    the engine's version): hashing it skips deriving again when the cache is warm."""
    lines = [f"output {graph.output} constants {sorted(map(str, graph.constants.items()))}"]
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
    """Hash of the code that decides what gets generated (derive.tensor, this package)."""
    import derive.tensor

    h = hashlib.sha256()
    folders = (Path(derive.tensor.__file__).parent, Path(__file__).parent)
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
    net : layer, Sequential, TensorGraph or Program
        Anything the tensor engine derives a Program from; its loss must read integer
        class labels (cross-entropy, hinge).
    dtype : "float32" or "float64"
    optimizer : str or kernels.optim.Optimizer
        Fused into the epoch kernel (``fit`` may switch it; that recompiles).
    lr, hyper
        Learning rate and hyper-parameters for :func:`kernels.optim.make`.
    init : str
        Weight initialiser (biases start at zero), seeded by ``seed``.
    """
    from derive.errors import InputError

    if str(dtype) not in DTYPES:
        raise InputError(f"dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    dtype = str(dtype)
    from derive.tensor.program import Program

    opt = optim.make(optimizer, lr=lr, **hyper)
    if isinstance(net, Program):
        description, graph = describe(net), None
    else:
        graph = net.graph() if hasattr(net, "graph") else net
        description = describe_graph(graph)
    version = _engine_version()
    derived = []  # the Program, derived only when a module has to be generated

    def generate(opt):
        from .codegen import Kernel

        if not derived:
            derived.append(program_of(net if graph is None else graph))
        prog = derived[0]
        description = prog.title or type(net).__name__
        kernel = Kernel(prog, dtype=dtype, title=docstring_text(description))
        return kernel.source(opt, description)

    def build(opt):
        k = cache.key(description, version, dtype, opt.key())
        module = cache.load(k, lambda: generate(opt))
        return module, module.META

    module, meta = build(opt)
    return Model(build, meta, module, opt, dtype=dtype, seed=seed, init=init)
