"""The optimizer's update inside the epoch kernel.

Parameters, gradients and optimizer state are flat vectors (``theta``, ``grad``,
``state_k``), so the update is one loop over every parameter element calling the rule
from :mod:`kernels.optim` (pasted into the module with float32 literals where the kernel
is float32, see :func:`typed_literals`). For plain SGD a weight may instead be updated
inside its gradient's product (:func:`product_updates`); the loop then skips it.
"""
from __future__ import annotations

import re

import sympy as sp

from .source_text import indent

_UPDATE_NAMES = {sp.Symbol("eta"): sp.Symbol("_lr")}  # the epoch's name for the rate


def product_updates(kernel, optimizer):
    """Weights whose update is done inside their gradient's product:
    {param: (index of the backward block to print it after, the gemm line)}.

    For plain SGD, with or without L2 decay, the new weight is ``a*W + b*W_bar``
    (:meth:`kernels.optim.Optimizer.affine_form`); when ``W_bar`` is one product
    ``A @ B`` that nothing else reads, BLAS's ``W = beta*W + alpha*(A @ B)`` does the
    update without writing ``W_bar`` and reading it back (5% of the epoch of a 64-128-10
    MLP on digits and of a 784-512-512-10 MLP). The call goes after the last statement
    that reads ``W`` (the backward still needs the old weights), provided nothing in
    between overwrites ``A`` or ``B``. ``kernel`` is the :class:`kernels.train_module.Kernel`.
    """
    form = optimizer.affine_form()
    if form is None:
        return {}
    keep, step = (f"{kernel.cast()}({kernel.printer.doprint(c.subs(_UPDATE_NAMES))})"
                  for c in form)
    p, bwd = kernel.prog, kernel.prog.backward
    reads = [_reads(a) for a in bwd]
    others = set().union(*(_reads(a) for a in p.forward + p.updates))
    out = {}
    for q in p.params:
        g = p.grads[q]
        at = [k for k, a in enumerate(bwd) if a.target == g]
        if len(at) != 1 or g in others or any(g in r for r in reads):
            continue
        k = at[0]
        lines = kernel.backward_blocks[k][1]
        m = re.fullmatch(rf"matmul\(([\w.]+), ([\w.]+), {g}\)", lines[0]) \
            if len(lines) == 1 else None
        if m is None:
            continue
        last = max([k] + [j for j, r in enumerate(reads) if q in r])
        operands = {m.group(1).removesuffix(".T"), m.group(2).removesuffix(".T")}
        if any(bwd[j].target in operands for j in range(k + 1, last + 1)):
            continue
        out[q] = (last, f"gemm({m.group(1)}, {m.group(2)}, {q}, {step}, {keep})")
    return out


def update(kernel, sig, optimizer, states, skip=()):
    """Loops over the parameters (all but ``skip``, which were updated in place)
    applying the optimizer's rule element by element; ``theta`` holds the
    parameters one after another, so neighbours share one loop."""
    outs = ", ".join(["theta[_i]"] + [f"{s}[_i]" for s in states])
    call = ", ".join(["theta[_i]", "_g"] + [f"{s}[_i]" for s in states]
                     + (["_t"] if sig["t"] else []) + ["_lr"] + list(sig["hyper"]))
    body = ["_g = grad[_i]"]
    if optimizer.weight_decay:
        body.append("_g = l2(theta[_i], _g, wd)")
    body.append(f"{outs} = {optimizer.rule.__name__}({call})")
    if not skip:
        return [f"# update every parameter ({optimizer.name})",
                "for _i in range(theta.size):"] + indent(body)
    runs, start = [], 0  # [names, first, end) of consecutive parameters not skipped
    for q in kernel.prog.params:
        size = 1
        for d in kernel.shape_of(q):
            size *= int(d)
        if q not in skip:
            if runs and runs[-1][2] == start:
                runs[-1][0].append(q)
                runs[-1][2] = start + size
            else:
                runs.append([[q], start, start + size])
        start += size
    out = []
    for names, lo, hi in runs:
        out += [f"# update {', '.join(names)} ({optimizer.name})",
                f"for _i in range({lo}, {hi}):"] + indent(body)
    return out


def typed_literals(text, float_type):
    """The update rules' source with number literals wrapped in ``float_type``.

    ``(1 - beta_1) * g`` with an integer 1 makes numba compute in float64 (int64 and
    float32 promote to float64); for Adam on a 64-128-10 MLP that tripled the cost of
    the update loop. Exponents stay as written (``g**2`` is a multiplication only with
    an integer 2).
    """
    import ast

    class Typed(ast.NodeTransformer):
        def visit_BinOp(self, node):
            node.left = self.visit(node.left)
            if not isinstance(node.op, ast.Pow):
                node.right = self.visit(node.right)
            return node

        def visit_Constant(self, node):
            if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
                module, name = float_type.rsplit(".", 1)
                fn = ast.Attribute(ast.Name(module, ast.Load()), name, ast.Load())
                return ast.Call(fn, [node], [])
            return node

    tree = ast.fix_missing_locations(Typed().visit(ast.parse(text)))
    return "\n\n\n".join(ast.unparse(node) for node in tree.body)


def _reads(a):
    """Names of the tensors an assignment's right-hand side reads."""
    return ({str(b.label) for b in a.rhs.atoms(sp.IndexedBase)}
            | {str(s) for s in a.rhs.free_symbols})
