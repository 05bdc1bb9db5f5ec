"""One torch layer, function call or loss -> the derivekit layer doing the same (or one
InputError line saying why not)."""
from __future__ import annotations

from derive.errors import InputError


def _square(value, what, where):
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(set(pair)) != 1:
        raise InputError(f"{where}: {what} {pair} is not square (derivekit's windows are k x k)")
    return pair[0]


def _refuse(where, what):
    raise InputError(f"{where}: {what}")


def layer_for(op, args, before, after, where, rest):
    """The derivekit layer doing what ``op`` does (``before``/``after``: its shapes)."""
    import torch.nn as nn

    from derive.layers import conv, dense, norms, pool

    if isinstance(op, str):
        return _function_layer(op, *args, before=before, where=where)
    plain = {nn.ReLU: dense.ReLU, nn.Sigmoid: dense.Sigmoid, nn.Tanh: dense.Tanh,
             nn.SiLU: dense.SiLU, nn.Mish: dense.Mish, nn.Identity: None}
    kind = type(op)
    if kind in plain and kind is not nn.Identity:
        return plain[kind]()
    if kind is nn.Linear and len(before) == 3 and op.bias is not None:
        from derive.layers.recurrent import TemporalAffine  # x: [B, T, d], per step

        return TemporalAffine(op.in_features, op.out_features, steps=before[1])
    if kind is nn.Linear:
        return dense.Linear(op.in_features, op.out_features, bias=op.bias is not None)
    if kind is nn.LeakyReLU:
        return dense.LeakyReLU(k=op.negative_slope)
    if kind is nn.ELU:
        return dense.ELU(alpha=op.alpha)
    if kind is nn.GELU:
        return _gelu(op.approximate, where)
    if kind is nn.Softplus:
        if op.beta != 1:
            _refuse(where, f"Softplus(beta={op.beta}) does not map (derivekit's has beta 1)")
        return dense.Softplus()
    if kind in (nn.Softmax, nn.LogSoftmax):
        return _softmax(kind is nn.LogSoftmax, op.dim, before, where)
    if kind is nn.Dropout:
        return norms.Dropout(p=op.p)
    if kind is nn.Flatten:
        if op.start_dim != 1 or op.end_dim != -1:
            _refuse(where, f"Flatten(start_dim={op.start_dim}, end_dim={op.end_dim}) does not "
                           f"map (derivekit flattens every axis after the batch)")
        return pool.Flatten()
    if kind is nn.Conv2d:
        if op.groups != 1 or _square(op.dilation, "dilation", where) != 1:
            _refuse(where, "Conv2d with groups or dilation does not map")
        if op.padding_mode not in ("zeros", "circular") or isinstance(op.padding, str):
            _refuse(where, f"Conv2d padding {op.padding!r} / {op.padding_mode} does not map")
        return conv.Conv2d(op.in_channels, op.out_channels,
                           _square(op.kernel_size, "kernel_size", where),
                           stride=_square(op.stride, "stride", where),
                           padding=_square(op.padding, "padding", where),
                           padding_mode=op.padding_mode, bias=op.bias is not None)
    if kind in (nn.MaxPool2d, nn.AvgPool2d):
        if op.ceil_mode or (kind is nn.MaxPool2d and (op.return_indices or _square(
                op.dilation, "dilation", where) != 1)):
            _refuse(where, f"{kind.__name__} with ceil_mode/dilation/indices does not map")
        if kind is nn.AvgPool2d and (not op.count_include_pad or op.divisor_override):
            _refuse(where, "AvgPool2d maps with count_include_pad=True and no divisor_override")
        cls = pool.MaxPool2d if kind is nn.MaxPool2d else pool.AvgPool2d
        return cls(_square(op.kernel_size, "kernel_size", where),
                   stride=_square(op.stride, "stride", where),
                   padding=_square(op.padding, "padding", where))
    if kind is nn.AdaptiveAvgPool2d:
        if _square(op.output_size, "output_size", where) != 1:
            _refuse(where, f"AdaptiveAvgPool2d({op.output_size}) does not map (only 1)")
        if not rest or not _is_flatten(rest[0][1], rest[0][2]):
            _refuse(where, "AdaptiveAvgPool2d(1) maps when a Flatten follows it "
                           "(derivekit's global average gives [B, C])")
        return pool.GlobalAvgPool(channels=before[1])
    if kind in (nn.BatchNorm1d, nn.BatchNorm2d):
        if op.momentum is None or not op.track_running_stats:
            _refuse(where, f"{kind.__name__} maps with running statistics and a momentum")
        if kind is nn.BatchNorm1d:
            return norms.BatchNorm(op.num_features, eps=op.eps, momentum=op.momentum,
                                   affine=op.affine)
        return norms.BatchNorm2d(op.num_features, eps=op.eps, momentum=op.momentum,
                                 affine=op.affine)
    if kind is nn.LayerNorm:
        if op.elementwise_affine and op.bias is None:
            _refuse(where, "LayerNorm(bias=False) does not map (derivekit's has beta)")
        return norms.LayerNorm(eps=op.eps, affine=op.elementwise_affine,
                               normalized_shape=list(op.normalized_shape))
    if kind in (nn.RNN, nn.LSTM, nn.GRU):
        return _recurrent(op, before, where, rest)
    if kind is nn.Embedding:
        return _embedding(op, before, where)
    if kind is nn.MultiheadAttention:
        return _attention(op, args, before, where, rest)
    raise InputError(f"{where}: derivekit has no layer for {kind.__name__} (it converts "
                     f"Linear, Conv2d, pools, Flatten, BatchNorm, LayerNorm, Dropout, "
                     f"RNN/LSTM/GRU, Embedding, MultiheadAttention and activations)")


def _embedding(op, before, where):
    """derivekit's Embedding: the first layer, reading integer tokens ``x: [B, T]``."""
    from derive.layers.recurrent import Embedding

    if not where.startswith("layer 1 ") or len(before) != 2:
        _refuse(where, f"Embedding maps as the first layer on token ids [B, T], got "
                       f"{list(before)} at this place")
    for option, value, default in [("padding_idx", op.padding_idx, None),
                                   ("max_norm", op.max_norm, None),
                                   ("scale_grad_by_freq", op.scale_grad_by_freq, False),
                                   ("sparse", op.sparse, False)]:
        if value != default:
            _refuse(where, f"Embedding({option}={value!r}) does not map (derivekit's is a "
                           f"plain row lookup)")
    return Embedding(op.num_embeddings, op.embedding_dim, steps=before[1])


#: MultiheadAttention.forward's arguments after (query, key, value), in order
_MHA_ARGS = ("key_padding_mask", "need_weights", "attn_mask", "average_attn_weights",
             "is_causal")


def _attention(op, args, before, where, rest):
    """(derivekit SelfAttention, 1): self-attention, ``y, _ = attn(x, x, x)``."""
    from derive.layers.attention import SelfAttention

    attention_options(op, where)
    attention_call(*(args or ((), {})), where=where)
    if not args or not rest or rest[0][1] != "getitem" or rest[0][2][0] != (0,):
        _refuse(where, "MultiheadAttention maps as self-attention in a forward: "
                       "y, _ = self.attn(x, x, x, need_weights=False)")
    if len(before) != 3:
        _refuse(where, f"MultiheadAttention maps on x: [B, T, E], got {list(before)}")
    return SelfAttention(op.embed_dim, heads=op.num_heads, d_k=op.head_dim,
                         steps=before[1]), 1


def attention_call(more, kwargs, where):
    """Masks given to a MultiheadAttention call (after query, key, value), refused."""
    given = {**dict(zip(_MHA_ARGS, more)), **kwargs}
    for option in ("key_padding_mask", "attn_mask"):
        if given.get(option) is not None:
            _refuse(where, f"MultiheadAttention with {option} does not map (no masks)")
    if given.get("is_causal"):
        _refuse(where, "MultiheadAttention with is_causal=True does not map (no masks)")


def attention_options(op, where):
    """A MultiheadAttention's options that do not map, refused (before torch runs it:
    with kdim/vdim, self-attention does not even run)."""
    checks = [("batch_first=False", not op.batch_first),
              (f"dropout={op.dropout}", op.dropout != 0),
              ("kdim/vdim other than embed_dim", not op._qkv_same_embed_dim),
              ("add_bias_kv=True", op.bias_k is not None),
              ("add_zero_attn=True", op.add_zero_attn),
              ("bias=True (derivekit's attention projections have no biases; use "
               "bias=False)", op.in_proj_bias is not None or op.out_proj.bias is not None),
              ("num_heads=1 (derivekit's single head has no output projection)",
               op.num_heads == 1)]
    for what, bad in checks:
        if bad:
            _refuse(where, f"MultiheadAttention({what}) does not map")


def _recurrent(op, before, where, rest):
    """(derivekit RNN/LSTM/GRU, how many ``[...]`` steps after it it takes in)."""
    import torch.nn as nn

    from derive.layers import recurrent, sequences

    kind = type(op).__name__
    if (not op.batch_first or op.num_layers != 1 or op.bidirectional
            or getattr(op, "proj_size", 0) or len(before) != 3):
        _refuse(where, f"{kind} maps with batch_first=True, one layer, one direction and "
                       f"input [B, T, d], got {list(before)}")
    if isinstance(op, nn.RNN) and op.nonlinearity != "tanh":
        _refuse(where, f"RNN(nonlinearity={op.nonlinearity!r}) does not map (tanh only)")
    if not rest or rest[0][1] != "getitem" or rest[0][2][0] != (0,):
        _refuse(where, f"{kind} returns (output, state): the chain must take [0] of it "
                       f"(out, _ = self.rnn(x)) and start from zero state")
    output, folded = "all", 1
    if len(rest) > 1 and rest[1][1] == "getitem" and rest[1][2][0][0] in (
            (slice(None), -1), (slice(None), -1, slice(None))):
        output, folded = "last", 2
    sizes = dict(input_size=op.input_size, hidden_size=op.hidden_size, steps=before[1],
                 bias=op.bias, output=output, h0="zeros")
    if isinstance(op, nn.LSTM):
        return sequences.LSTM(gate_order="ifgo", **sizes), folded
    if isinstance(op, nn.GRU):
        return sequences.GRU(reset="after", **sizes), folded
    return recurrent.RNN(**sizes), folded


def _is_flatten(op, args):
    import torch.nn as nn

    if isinstance(op, str):
        return op == "flatten" and tuple(args[0][:1]) == (1,) and len(args[0]) <= 1
    return isinstance(op, nn.Flatten) and op.start_dim == 1 and op.end_dim == -1


def _gelu(approximate, where):
    from derive.layers import dense

    if approximate != "tanh":
        _refuse(where, f"GELU(approximate={approximate!r}) does not map: derivekit's GELU is "
                       f"the tanh form (use nn.GELU(approximate='tanh'))")
    return dense.GELU()


def _softmax(log, axis, before, where):
    from derive.layers import dense

    if axis is None or axis not in (-1, len(before) - 1):
        _refuse(where, f"softmax over dim={axis} does not map (derivekit's is over the last "
                       f"axis, dim=-1)")
    return dense.LogSoftmax() if log else dense.Softmax()


def _function_layer(name, args, kwargs, before, where):
    from derive.layers import dense, pool

    kwargs = {k: v for k, v in kwargs.items()  # defaults fx writes out
              if k not in ("inplace", "_stacklevel") and not (k == "dtype" and v is None)}
    simple = {"relu": dense.ReLU, "sigmoid": dense.Sigmoid, "tanh": dense.Tanh,
              "silu": dense.SiLU, "mish": dense.Mish}
    if name in simple and not args and not kwargs:
        return simple[name]()
    if name == "flatten" and _is_flatten(name, (args, kwargs)) and not kwargs:
        return pool.Flatten()
    opts = dict(zip({"leaky_relu": ["negative_slope"], "elu": ["alpha"],
                     "softmax": ["dim"], "log_softmax": ["dim"], "gelu": [],
                     "softplus": ["beta"]}.get(name, []), args))
    opts.update(kwargs)
    if name == "leaky_relu" and set(opts) <= {"negative_slope"}:
        return dense.LeakyReLU(k=opts.get("negative_slope", 0.01))
    if name == "elu" and set(opts) <= {"alpha"}:
        return dense.ELU(alpha=opts.get("alpha", 1.0))
    if name == "gelu" and set(opts) <= {"approximate"}:
        return _gelu(opts.get("approximate", "none"), where)
    if name == "softplus" and opts.get("beta", 1) == 1 and set(opts) <= {"beta"}:
        return dense.Softplus()
    if name in ("softmax", "log_softmax") and set(opts) <= {"dim"}:
        return _softmax(name == "log_softmax", opts.get("dim"), before, where)
    raise InputError(f"{where}: {name} with arguments {args} {kwargs} does not map")


def loss_for(loss):
    if loss is None:
        return None
    import torch.nn as nn

    from derive.layers import losses

    known = {nn.CrossEntropyLoss: losses.CrossEntropy, nn.MSELoss: losses.MSE,
             nn.BCEWithLogitsLoss: losses.BCEWithLogits, nn.BCELoss: losses.BCE}
    kind = type(loss)
    if kind not in known:
        raise InputError(f"loss {kind.__name__} does not map (known: "
                         f"{', '.join(k.__name__ for k in known)})")
    if getattr(loss, "reduction", "mean") != "mean":
        raise InputError(f"loss {kind.__name__}(reduction={loss.reduction!r}) does not map "
                         f"(derivekit's losses are batch means)")
    extras = [n for n in ("weight", "pos_weight") if getattr(loss, n, None) is not None]
    if extras or getattr(loss, "label_smoothing", 0) or getattr(loss, "ignore_index", -100) != -100:
        raise InputError(f"loss {kind.__name__} with {', '.join(extras) or 'label smoothing'}"
                         f" / ignore_index does not map")
    return known[kind]()
