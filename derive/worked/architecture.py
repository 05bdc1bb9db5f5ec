"""Architecture arithmetic: per-layer parameter counts and activation shapes.

A network is an input shape per example (the batch ``B`` stays symbolic) and a list of
layer strings such as ``"conv2d(10, 3, padding=1)"``, read with
:func:`~derive.worked.layer_calls.layer_call` (literal arguments only, never
evaluated). Every count and size comes from :mod:`derive.shapes`, the one place those
rules live. Images are channels-first ``[C, H, W]`` unless ``layout: hwc``; sequences
are ``[T, d]``.

Sizes may be symbols the file declares (``symbols: [d, h, C]``, positive integers), in the
input shape, the ``mlp`` sizes and the layer strings (``"linear(h)"``, ``"conv2d(2*C, k)"``);
counts and shapes are then polynomials in them (output sizes may keep a ``floor``).
"""
from __future__ import annotations

import sympy as sp

from derive import shapes
from derive.derivation import Derivation, Section, Step
from derive.errors import InputError, ShapeError, UnsupportedError
from derive.problem import check_keys, get, problem_kind
from derive.stepforms import Word, minus, over, plus, times
from derive.worked.common import SYMBOLS_NOTE, declared_symbols, key_choice, symbol
from derive.worked.layer_calls import layer_call, size_value

B = "B"  # the symbolic batch size, first in every activation shape
PARAMETERS = Word("parameters")


@problem_kind("architecture")
def architecture(spec, where):
    """Per-layer parameters and activation shapes of a network, with totals."""
    check_keys(spec, {"kind", "title", "input", "layers", "layout", "mlp", "activation",
                      "bias_vectors", "symbols"}, where)
    layout = key_choice(spec, "layout", where, ("chw", "hwc"), "chw")
    names = declared_symbols(spec, where, positive=True, integer=True)
    in_shape, layers = _network(spec, where, layout, names)
    ctx = {"bias_vectors": key_choice(spec, "bias_vectors", where, (1, 2), 1)}
    d = Derivation(title=get(spec, "title", where, default="Parameters and shapes"),
                   kind="architecture")
    d.sections.append(Section("Input", [Step(Word("input"), [_shape(in_shape, layout)],
                                             "per example; the batch size B stays symbolic")]))
    shape, rows, total, clashed = in_shape, [], 0, set()
    for i, text in enumerate(layers):
        lw = f"{where}: layers[{i}]"
        if not isinstance(text, str):
            raise InputError(f"expected a layer string, got {text!r:.40}", where=lw)
        name, args, kwargs = layer_call(text, lw, names)
        name, rule = _rule(name, lw)
        steps = []
        params, shape = rule(_Args(name, args, kwargs, lw), shape, steps, ctx)
        params = sp.expand(params) if isinstance(params, sp.Basic) else params
        clashed |= _drop_clashing_formulas(steps, names)
        steps.append(Step(Word("shape"), [_shape(shape, layout)]))
        d.sections.append(Section(f"Layer {i + 1}: {text}", steps))
        rows.append({"layer": text, "parameters": params, "shape": _shape_list(shape, layout)})
        total += params
    total = sp.expand(total) if isinstance(total, sp.Basic) else total
    d.sections.append(Section("Total", [Step(PARAMETERS, [
        plus(*[r["parameters"] for r in rows]), total])]))
    _conventions(d, layers, ctx)
    if names:
        d.note(SYMBOLS_NOTE.format(names=", ".join(names)) + " They are positive integers; "
               "B is the batch size" + (" (declared, as always)." if "B" in names else "."))
    if clashed:
        d.note(f"The general formula of a step is left out where it would use a letter "
               f"declared here with another meaning ({', '.join(sorted(clashed))}); the "
               "step shows the sizes put in and the count.")
    d.meta["total_parameters"] = total
    d.result = rows
    return d


@problem_kind("output_size")
def output_size(spec, where):
    """Output size of a conv/pool layer by the formula; both answers if padding is ambiguous."""
    check_keys(spec, {"kind", "title", "input", "kernel", "stride", "padding", "padding_is",
                      "dilation"}, where)
    size = get(spec, "input", where, types=(int, list))
    size = [size] if isinstance(size, int) else size
    kernel, stride, pad, dil = (_per_axis(spec, k, where, len(size), d) for k, d in
                                (("kernel", None), ("stride", 1), ("padding", 0), ("dilation", 1)))
    mode = key_choice(spec, "padding_is", where, ("per_side", "total", "ambiguous"), "per_side")
    d = Derivation(title=get(spec, "title", where, default="Output size"), kind="output_size")
    answers = {}
    for conv in (("per_side", "total") if mode == "ambiguous" else (mode,)):
        steps, out = [], []
        for axis, (n, k, s, p, dl) in enumerate(zip(size, kernel, stride, pad, dil)):
            kw = {"padding": p} if conv == "per_side" else {"total_padding": p}
            value = shapes.output_size(n, k, stride=s, dilation=dl, where=f"{where}: input", **kw)
            total = 2 * p if conv == "per_side" else p
            k_eff = plus(times(dl, minus(k, 1)), 1) if dl != 1 else k
            n_, P, k_, s_ = sp.symbols("n P k s")
            steps.append(Step(symbol("n", axis + 1), [
                _size_rule(n_, P, k_, s_), _size_rule(n, total, k_eff, s), value]))
            out.append(value)
        label = "per side (P = 2p)" if conv == "per_side" else "total (P = p)"
        d.sections.append(Section(f"Padding {_p_text(pad)} read as {label}", steps))
        answers[conv] = out if len(out) > 1 else out[0]
    if mode == "ambiguous":
        d.note("The problem does not say whether the padding is per side or in total, so "
               "both answers are given.")
    d.result = answers if mode == "ambiguous" else answers[mode]
    return d


def _size_rule(n, P, k, s):
    """floor((n + P - k) / s) + 1, as written."""
    return plus(sp.floor(over(minus(plus(n, P), k), s), evaluate=False), 1)


def _p_text(pad):
    return "x".join(str(p) for p in pad) if len(set(pad)) > 1 else str(pad[0])


def _per_axis(spec, key, where, n, default):
    value = get(spec, key, where, types=(int, list), default=default)
    if value is None:
        raise InputError(f"missing required key '{key}'", where=where)
    value = [value] * n if isinstance(value, int) else value
    if len(value) != n or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise ShapeError(f"expected an integer or {n} integers (one per axis), got {value!r}",
                         where=f"{where}: {key}")
    return value


# -- reading the network --------------------------------------------------------------------
def _network(spec, where, layout, names):
    if "mlp" in spec:
        if "layers" in spec or "input" in spec:
            raise InputError("give either 'mlp' or 'input' + 'layers'", where=where)
        sizes = [size_value(v, f"{where}: mlp[{i}]", names)
                 for i, v in enumerate(get(spec, "mlp", where, types=list))]
        if len(sizes) < 2:
            raise ShapeError("an MLP needs at least an input and an output size",
                             where=f"{where}: mlp")
        act = get(spec, "activation", where, types=str, default="relu")
        layers = []
        for n in sizes[1:]:
            layers += [f"linear({n})", act]
        return _input([sizes[0]], f"{where}: mlp", layout), layers[:-1]
    raw = get(spec, "input", where, types=(int, str, list))
    raw = raw if isinstance(raw, list) else [raw]
    shape = _input([size_value(v, f"{where}: input[{i}]", names) for i, v in enumerate(raw)],
                   f"{where}: input", layout)
    layers = get(spec, "layers", where, types=list)
    if not layers:
        raise InputError("the network has no layers", where=f"{where}: layers")
    return shape, layers


def _drop_clashing_formulas(steps, names):
    """Leave out a step's general formula (its first side) when one of its letters is a
    declared symbol: the formula's ``d`` (a layer's input size) printed beside the file's
    ``d`` would read as the same quantity. Returns the letters that clashed."""
    clashed = set()
    for step in steps:
        first = step.rhs[0] if len(step.rhs) > 1 else None
        if not isinstance(first, sp.Basic):
            continue
        letters = {s.name for s in first.free_symbols if s.name in names}
        if letters:
            step.rhs = step.rhs[1:]
            clashed |= letters
    return clashed


def _input(value, where, layout):
    value = [value] if isinstance(value, int) else value
    if not 1 <= len(value) <= 3:
        raise ShapeError(f"input must be [features], [T, d] or an image, got {value!r}",
                         where=where)
    sizes = tuple(shapes.check_size(v, "input size", where=where) for v in value)
    if len(sizes) == 3 and layout == "hwc":
        sizes = (sizes[2], sizes[0], sizes[1])
    return sizes


class _Args:
    """A layer's arguments bound to names, unknown or missing ones rejected."""

    def __init__(self, name, args, kwargs, where):
        self.name, self.args, self.kwargs, self.where = name, args, kwargs, where

    def bind(self, names, defaults):
        if len(self.args) > len(names):
            raise InputError(f"{self.name} takes at most {len(names)} positional argument(s)"
                             f" ({', '.join(names)})", where=self.where)
        out = dict(defaults)
        for key in self.kwargs:
            if key not in names:
                raise InputError(f"{self.name} has no argument {key!r} (known: "
                                 f"{', '.join(names)})", where=self.where)
        out.update(zip(names, self.args))
        out.update(self.kwargs)
        missing = [n for n in names if n not in out]
        if missing:
            raise InputError(f"{self.name} needs {missing[0]!r}", where=self.where)
        return out

    def size(self, value, what, minimum=1):
        return shapes.check_size(value, f"{self.name} {what}", minimum=minimum, where=self.where)

    def pair(self, value, what, minimum=1):
        pair = value if isinstance(value, list) else [value, value]
        if len(pair) != 2:
            raise ShapeError(f"{self.name} {what} must be an integer or [rows, cols]",
                             where=self.where)
        return [self.size(v, what, minimum) for v in pair]

    def flag(self, value, what):
        if value not in (0, 1, True, False):
            raise InputError(f"{self.name} {what} must be 0 or 1, got {value!r}",
                             where=self.where)
        return bool(value)


# -- the layers: (args, shape, steps, ctx) -> (parameters, output shape) ----------------------
def _need(a, shape, rank, what):
    if len(shape) != rank:
        hint = " (add flatten before it)" if what == "a flat vector" and len(shape) == 3 else ""
        raise ShapeError(f"{a.name} needs {what}, got a per-example shape "
                         f"{'x'.join(map(str, shape))}{hint}", where=a.where)


def _linear(a, shape, steps, ctx):
    o = a.bind(["out_features", "bias"], {"bias": 1})
    if len(shape) == 3:
        _need(a, shape, 1, "a flat vector")
    n_in, n_out = shape[-1], a.size(o["out_features"], "output features")
    bias = a.flag(o["bias"], "bias")
    params = shapes.linear_params(n_in, n_out, bias)
    n_in_, n_out_ = sp.symbols("n_in n_out")
    steps.append(Step(PARAMETERS, [
        plus(times(n_in_, n_out_), n_out_) if bias else times(n_in_, n_out_),
        plus(times(n_in, n_out), n_out) if bias else times(n_in, n_out), params]))
    return params, shape[:-1] + (n_out,)


def _conv(a, shape, steps, ctx, dims=2):
    o = a.bind(["out_channels", "kernel_size", "stride", "padding", "total_padding",
                "dilation", "groups", "bias"],
               {"stride": 1, "padding": 0, "total_padding": None, "dilation": 1, "groups": 1,
                "bias": 1})
    _need(a, shape, dims + 1, f"a [C, {'H, W' if dims == 2 else 'L'}] input")
    c_in, c_out = shape[0], a.size(o["out_channels"], "output channels")
    fix = _per_axis_reader(a, dims)
    k, s, dil = fix(o["kernel_size"], "kernel size"), fix(o["stride"], "stride"), \
        fix(o["dilation"], "dilation")
    if o["padding"] == "same":
        if any(isinstance(v, sp.Basic) and not v.is_number for v in k + dil):
            raise ShapeError("padding='same' needs a numeric (odd) kernel size and dilation",
                             where=a.where)
        pad = [dl * (kk - 1) // 2 for kk, dl in zip(k, dil)]
        if any((dl * (kk - 1)) % 2 for kk, dl in zip(k, dil)):
            raise ShapeError("padding='same' needs an odd kernel", where=a.where)
    else:
        pad = fix(o["padding"], "padding", 0)
    total = None if o["total_padding"] is None else fix(o["total_padding"], "total padding", 0)
    bias, groups = a.flag(o["bias"], "bias"), a.size(o["groups"], "groups")
    params = shapes.conv_params(c_in, c_out, tuple(k), bias, groups)
    c_in_, c_out_, g_ = sp.symbols("C_in C_out g")
    k_syms = sp.symbols("k_h k_w") if dims == 2 else (sp.Symbol("k"),)
    per_out = times(*k_syms, over(c_in_, g_) if groups > 1 else c_in_)
    per_out_n = times(*k, over(c_in, groups) if groups > 1 else c_in)
    steps.append(Step(PARAMETERS, [
        times(plus(per_out, 1) if bias else per_out, c_out_),
        times(plus(per_out_n, 1) if bias else per_out_n, c_out), params]))
    sizes = _window_sizes(a, shape[1:], k, s, pad, total, dil, steps)
    return params, (c_out,) + sizes


def _per_axis_reader(a, dims):
    """Read an int (or [rows, cols] for 2-D) as one size per spatial axis."""
    if dims == 2:
        return lambda v, what, minimum=1: a.pair(v, what, minimum)
    return lambda v, what, minimum=1: [a.size(v, what, minimum)]


def _conv1d(a, shape, steps, ctx):
    return _conv(a, shape, steps, ctx, dims=1)


def _window_sizes(a, sizes, k, s, pad, total, dil, steps, ceil_mode=False):
    out = []
    axes = ("H", "W") if len(sizes) == 2 else ("L",)
    for i, axis in enumerate(axes):
        if total is None:
            value = shapes.output_size(sizes[i], k[i], s[i], pad[i], dilation=dil[i],
                                       ceil_mode=ceil_mode, where=a.where)
            p_sym, p_num = 2 * sp.Symbol("p"), times(2, pad[i])
        else:
            value = shapes.output_size(sizes[i], k[i], s[i], total_padding=total[i],
                                       dilation=dil[i], ceil_mode=ceil_mode, where=a.where)
            p_sym, p_num = sp.Symbol("P"), total[i]
        k_num = plus(times(dil[i], minus(k[i], 1)), 1) if dil[i] != 1 else k[i]
        steps.append(Step(sp.Symbol(f"{axis}_out"), [
            _size_rule(sp.Symbol(axis), p_sym, sp.Symbol("k"), sp.Symbol("s")),
            _size_rule(sizes[i], p_num, k_num, s[i]), value]))
        out.append(value)
    return tuple(out)


def _pool(a, shape, steps, ctx):
    o = a.bind(["kernel_size", "stride", "padding", "ceil_mode"],
               {"stride": None, "padding": 0, "ceil_mode": 0})
    if len(shape) not in (2, 3):
        _need(a, shape, 3, "a [C, H, W] or [C, L] input")
    dims = len(shape) - 1
    fix = _per_axis_reader(a, dims)
    k = fix(o["kernel_size"], "size")
    s = k if o["stride"] is None else fix(o["stride"], "stride")
    pad = fix(o["padding"], "padding", 0)
    sizes = _window_sizes(a, shape[1:], k, s, pad, None, [1] * dims, steps,
                          ceil_mode=a.flag(o["ceil_mode"], "ceil_mode"))
    steps.insert(0, Step(PARAMETERS, [0], "pooling has no parameters"))
    return 0, (shape[0],) + sizes


def _global_pool(a, shape, steps, ctx):
    a.bind([], {})
    if len(shape) not in (2, 3):
        _need(a, shape, 3, "a [C, H, W] or [C, L] input")
    steps.append(Step(PARAMETERS, [0], "one average per channel"))
    return 0, (shape[0],)


def _flatten(a, shape, steps, ctx):
    a.bind([], {})
    n = shapes.numel(shape)
    steps.append(Step(PARAMETERS, [0]))
    steps.append(Step(Word("features"), [times(*shape), n]))
    return 0, (n,)


def _same(a, shape, steps, ctx):
    """Activations and dropout: no parameters, same shape."""
    a.bind(["p", "negative_slope", "dim"], {"p": None, "negative_slope": None, "dim": None})
    steps.append(Step(PARAMETERS, [0], "element-wise: the shape is unchanged"))
    return 0, shape


def _norm(a, shape, steps, ctx):
    """BatchNorm: a scale and shift per channel (C of [C, H, W], else the last size).
    LayerNorm: per normalised feature (all of C x H x W for an image, else the last size)."""
    o = a.bind(["num_features", "affine"], {"num_features": None, "affine": 1})
    affine = a.flag(o["affine"], "affine")
    C, H, W, d = sp.symbols("C H W d")
    if a.name == "batchnorm":
        feats = shape[0] if len(shape) == 3 else shape[-1]
        what = 2 * C if len(shape) == 3 else 2 * d
        note = "a scale and a shift per channel; the running mean and variance are buffers"
    else:
        feats = shapes.numel(shape) if len(shape) == 3 else shape[-1]
        what = 2 * C * H * W if len(shape) == 3 else 2 * d
        note = "a scale and a shift per normalised feature"
    given = o["num_features"]
    if given is not None and a.size(given, "num_features") != feats:
        raise ShapeError(f"{a.name} was given {given} features but its input "
                         f"{'x'.join(map(str, shape))} has {feats}", where=a.where)
    params = shapes.norm_params(feats, affine)
    steps.append(Step(PARAMETERS, [what, times(2, feats), params] if affine else [0], note))
    return params, shape


def _embedding(a, shape, steps, ctx):
    o = a.bind(["num_embeddings", "embedding_dim"], {})
    n, dim = a.size(o["num_embeddings"], "vocabulary size"), a.size(o["embedding_dim"], "size")
    if len(shape) != 1:
        _need(a, shape, 1, "a [T] sequence of token ids")
    params = shapes.embedding_params(n, dim)
    steps.append(Step(PARAMETERS, [sp.Symbol("V") * sp.Symbol("d"), times(n, dim), params]))
    return params, shape + (dim,)


def _recurrent(a, shape, steps, ctx):
    o = a.bind(["hidden_size", "num_layers", "bidirectional", "return_sequences", "bias",
                "bias_vectors"],
               {"num_layers": 1, "bidirectional": 0, "return_sequences": 1, "bias": 1,
                "bias_vectors": ctx["bias_vectors"]})
    _need(a, shape, 2, "a [T, d] sequence")
    h, layers = a.size(o["hidden_size"], "hidden size"), a.size(o["num_layers"], "num_layers")
    dirs = 2 if a.flag(o["bidirectional"], "bidirectional") else 1
    bias, nb = a.flag(o["bias"], "bias"), o["bias_vectors"]
    if nb not in (1, 2):
        raise InputError(f"{a.name} bias_vectors must be 1 or 2, got {nb!r}", where=a.where)
    gates = shapes.GATES[a.name]
    total, n_in = 0, shape[1]
    for layer in range(layers):
        p = dirs * shapes.recurrent_params(a.name, n_in, h, bias, nb)
        lhs = Word(f"parameters of layer {layer + 1}") if layers > 1 else PARAMETERS
        steps.append(Step(lhs, [*_recurrent_count(gates, dirs, bias, nb, n_in, h), p]))
        total += p
        n_in = dirs * h
    out = (shape[0], dirs * h) if a.flag(o["return_sequences"], "return_sequences") else (dirs * h,)
    return total, out


def _recurrent_count(gates, dirs, bias, nb, n_in, h):
    """(symbolic, substituted) count ``dirs * gates * (h (d + h) + nb h)``, as written."""
    lead = [2] * (dirs == 2) + [gates] * (gates > 1)

    def count(h, d):
        weights = times(h, plus(d, h))
        body = plus(weights, times(nb, h) if nb > 1 else h) if bias else weights
        return times(*lead, body)

    return count(*sp.symbols("h d")), count(h, n_in)


#: catalogue key -> (name in messages, rule): the layers of the layer catalogue
#: (:mod:`derive.layers.catalog`, which also resolves their other names) this kind counts;
#: every activation of the catalogue keeps the shape
_RULES = {
    "linear": ("linear", _linear), "conv2d": ("conv2d", _conv), "maxpool2d": ("maxpool", _pool),
    "avgpool2d": ("avgpool", _pool), "global_avgpool": ("globalavgpool", _global_pool),
    "flatten": ("flatten", _flatten), "batchnorm": ("batchnorm", _norm),
    "layernorm": ("layernorm", _norm), "embedding": ("embedding", _embedding),
    "rnn": ("rnn", _recurrent), "dropout": ("dropout", _same),
}
#: PyTorch modules counted here that the catalogue has no layer for, or a different one
#: (nn.LSTM is a stack of layers over a sequence; the catalogue's ``lstm`` is one cell)
_MODULES = {
    "conv1d": ("conv1d", _conv1d), "maxpool1d": ("maxpool", _pool),
    "avgpool1d": ("avgpool", _pool), "batchnorm2d": ("batchnorm", _norm),
    "lstm": ("lstm", _recurrent), "gru": ("gru", _recurrent), "identity": ("identity", _same),
}


def _rule(name, where):
    """(name, rule) of a layer: a PyTorch module of :data:`_MODULES`, else the catalogue's
    layer of that name (UnsupportedError listing the names this kind counts)."""
    from derive.layers.catalog import lookup

    low = name.lower()
    if low in _MODULES:
        return _MODULES[low]
    entry = lookup(low)
    if entry is not None and entry.key in _RULES:
        return _RULES[entry.key]
    if entry is not None and entry.group == "activation":
        return entry.key, _same
    raise UnsupportedError(f"unknown layer kind {name!r} (known: {', '.join(_known())})",
                           where=where)


def _known():
    """Every name this kind counts (catalogue keys and aliases included)."""
    from derive.layers.catalog import ALIASES, CATALOGUE

    keys = {k for k, e in CATALOGUE.items() if k in _RULES or e.group == "activation"}
    return sorted(set(_MODULES) | keys | {a for a, k in ALIASES.items() if k in keys})


def _conventions(d, layers, ctx):
    text = " ".join(str(t) for t in layers).lower()
    if "conv" in text or "pool" in text:
        d.note("Output sizes: floor((n + P - k) / s) + 1 with P the total padding; "
               "'padding=p' is per side (P = 2p), 'total_padding=P' is the total.")
    if any(c in text for c in ("lstm", "gru", "rnn")):
        d.note("Recurrent layers count one bias per gate" if ctx["bias_vectors"] == 1 else
               "Recurrent layers count two biases per gate (b_ih and b_hh, as PyTorch)")
        d.note("Gates per cell: RNN 1, GRU 3, LSTM 4; each has h x d input weights, "
               "h x h recurrent weights and its bias.")


def _shape_list(shape, layout):
    if len(shape) == 3 and layout == "hwc":
        shape = (shape[1], shape[2], shape[0])
    return [B, *shape]


def _shape(shape, layout):
    """The activation shape (B, C, H, W) with the batch size B symbolic."""
    return sp.Tuple(*[sp.Symbol(s) if isinstance(s, str) else s
                      for s in _shape_list(shape, layout)])
