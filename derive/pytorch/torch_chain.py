"""A torch module as a chain of steps: nn.Sequential children, or a torch.fx trace of a
forward that is one straight chain; and the shape after each step (torch runs it)."""
from __future__ import annotations

import operator

from derive.errors import InputError
from derive.pytorch.torch_layers import attention_call

#: function calls a traced chain may hold -> the activation they are (name of torch.nn
#: class they behave as); checked by identity against torch's own functions at run time
_FUNCTIONS = ("relu", "sigmoid", "tanh", "gelu", "silu", "mish", "elu", "leaky_relu",
              "softplus", "softmax", "log_softmax", "flatten")


def chain_of(module):
    """``[(label, op, args)]``: op a submodule or a function, in the order they run."""
    import torch
    import torch.fx as fx

    if isinstance(module, torch.nn.Sequential):
        out = []
        for name, child in module.named_children():
            if isinstance(child, torch.nn.Sequential):
                out += [(f"{name}.{lab}", op, a) for lab, op, a in chain_of(child)]
            else:
                out.append((f"{name}: {type(child).__name__}", child, ()))
        return out
    try:
        graph = fx.symbolic_trace(module).graph
    except Exception as exc:  # noqa: BLE001 -- torch.fx raises many kinds
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot trace {type(module).__name__} with torch.fx: {first:.120}")
    chain, prev, used = [], None, set()
    for node in graph.nodes:
        if node.op == "placeholder":
            if prev is not None:
                raise InputError(f"{type(module).__name__}.forward takes more than one input "
                                 f"({node.target}): only a chain with one input converts")
            prev = node
            continue
        if node.op == "output":
            if node.args[0] is not prev:
                raise InputError(f"{type(module).__name__}.forward returns {node.args[0]!r:.60}"
                                 f", not the end of one chain")
            break
        if not node.users and node.target is operator.getitem:
            continue  # an unused part of a tuple (``out, _ = self.lstm(x)``)
        if node.op == "get_attr" and node.users and all(
                u.op == "call_module" and _attention(module, u.target) for u in node.users):
            continue  # a constant mask: refused, named, at its attention call below
        where = f"step {len(chain) + 1} ({node.name})"
        live = [u for u in prev.users if u.users or u.op == "output"]
        rest = list(node.args[1:])
        if node.op == "call_module" and _attention(module, node.target):
            attention_call(node.args[3:], node.kwargs, where)
            if rest[:2] == [prev, prev]:
                rest = rest[2:]  # self-attention: attn(x, x, x, ...) reads one tensor
        others = [a for a in rest + list(node.kwargs.values()) if isinstance(a, fx.Node)]
        if not node.args or node.args[0] is not prev or others or len(live) != 1:
            raise InputError(f"{type(module).__name__}.forward is not a straight chain at "
                             f"{where}: {node.format_node():.100} (a branch or a residual "
                             f"connection does not convert)")
        if node.op == "call_module":
            if node.target in used:
                raise InputError(f"{where}: submodule {node.target} is called twice (shared "
                                 f"weights do not convert)")
            used.add(node.target)
            child = module.get_submodule(node.target)
            args = (tuple(node.args[3:]), dict(node.kwargs)) if _attention(
                module, node.target) else ()
            chain.append((f"{node.target}: {type(child).__name__}", child, args))
        elif node.op in ("call_function", "call_method"):
            name = _function_name(node)
            if name is None:
                raise InputError(f"{where}: the call {node.format_node():.100} is not "
                                 f"supported (known: {', '.join(_FUNCTIONS)})")
            chain.append((f"{node.name}: {name}", name, (node.args[1:], dict(node.kwargs))))
        else:
            raise InputError(f"{where}: {node.op} {node.target} is not supported in a chain")
        prev = node
    return chain


def _attention(module, target):
    import torch

    return isinstance(module.get_submodule(target), torch.nn.MultiheadAttention)


def _function_name(node):
    import torch
    import torch.nn.functional as F

    if node.target is operator.getitem:
        return "getitem"
    if node.op == "call_method":
        return node.target if node.target in _FUNCTIONS else None
    for name in _FUNCTIONS:
        if node.target in (getattr(F, name, None), getattr(torch, name, None)):
            return name
    return None


def torch_shapes(module, chain, shape):
    """The shape after each step of the chain, on zeros in eval mode (a copy of the
    module, so the original's running statistics stay as they are)."""
    import copy

    import torch

    copies = copy.deepcopy(module).eval()
    dtype = next((p.dtype for p in module.parameters()), torch.float32)
    tokens = chain and isinstance(chain[0][1], torch.nn.Embedding)
    x = torch.zeros(shape, dtype=torch.long if tokens else dtype)  # token ids for Embedding
    out = [tuple(x.shape)]
    subs = dict(copies.named_modules())
    with torch.no_grad():
        for k, (label, op, args) in enumerate(chain):
            try:
                if op == "getitem":
                    x = x[args[0][0]]
                elif isinstance(op, str):
                    x = _call(op, x, *args)
                elif isinstance(op, torch.nn.MultiheadAttention):
                    more, kwargs = args or ((), {})
                    x = subs[target_name(module, op)](x, x, x, *more, **kwargs)
                else:
                    x = subs[target_name(module, op)](x)
            except Exception as exc:  # noqa: BLE001 -- torch reports shape errors this way
                first = str(exc).strip().splitlines()[0]
                raise InputError(f"input_shape {tuple(shape)} does not fit layer {k + 1} "
                                 f"({label}): it gets {list(out[-1])}; torch says: "
                                 f"{first:.120}") from None
            if not isinstance(x, torch.Tensor) and (k + 1 == len(chain)
                                                    or chain[k + 1][1] != "getitem"):
                raise InputError(f"layer {k + 1} ({label}) returns a "
                                 f"{type(x).__name__}, not one tensor: it does not chain (in a "
                                 f"forward, take [0] of it: out, _ = self.rnn(x))")
            out.append(tuple(x.shape) if isinstance(x, torch.Tensor) else None)
    return out


def target_name(module, child):
    return next(n for n, m in module.named_modules() if m is child)


def _call(name, x, args, kwargs):
    import torch
    import torch.nn.functional as F

    fn = getattr(F, name, None) or getattr(torch, name)
    return fn(x, *args, **kwargs)
