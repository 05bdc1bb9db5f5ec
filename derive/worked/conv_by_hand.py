"""Convolution and pooling by hand: every output entry as its sum of products or its window.

``conv2d`` computes the cross-correlation that deep-learning libraries call convolution
(``operation: convolution`` flips the kernel first, as signal processing does). Images are
``[H][W]`` or ``[C][H][W]``; kernels ``[kh][kw]``, ``[C][kh][kw]`` or ``[F][C][kh][kw]``.
Output sizes come from :func:`derive.shapes.output_size`; padding is *per side*.
"""
from __future__ import annotations

import sympy as sp

from derive import shapes
from derive.derivation import Derivation, Section, Step
from derive.errors import InputError, ShapeError
from derive.problem import check_keys, get, problem_kind
from derive.stepforms import MaxOf, minus, over, plus, times
from derive.worked.common import (EXACT_NOTE, all_exact, array, dims, key_choice, matrix, number, products,
                     shape, tidy)

_a, _b, _c, _i, _j = sp.symbols("a b c i j", integer=True)
_K, _S, _P = sp.symbols("k s p", integer=True, positive=True)

_CONV_KEYS = {"kind", "title", "image", "kernel", "bias", "padding", "padding_mode", "stride",
              "operation"}
_POOL_KEYS = {"kind", "title", "image", "size", "stride", "padding"}


@problem_kind("conv2d")
def conv2d(spec, where):
    """A 2-D convolution layer by hand (cross-correlation unless ``operation: convolution``)."""
    check_keys(spec, _CONV_KEYS, where)
    image, two_d = _image(spec, where)
    kernel = _kernel(spec, where, len(image))
    n_f, _, kh, kw = shape(kernel)
    bias = _bias(spec, where, n_f)
    stride = _pair(spec, "stride", where, 1, minimum=1)
    pad = _pair(spec, "padding", where, 0, minimum=0)
    mode = key_choice(spec, "padding_mode", where, ("zeros", "circular"), "zeros")
    op = key_choice(spec, "operation", where, ("cross_correlation", "convolution"),
                    "cross_correlation")
    d = Derivation(title=get(spec, "title", where, default="Convolution by hand"), kind="conv2d")
    if all_exact(image, kernel, bias):
        d.note(EXACT_NOTE)
    out_hw = _size_section(d, shape(image)[1:], (kh, kw), stride, pad, where)
    if op == "convolution":
        kernel = [[[row[::-1] for row in ch[::-1]] for ch in f] for f in kernel]
        d.note("True convolution: the kernel is flipped in both axes, then slid as in "
               "cross-correlation.")
        d.sections.append(Section("Flipped kernel", [
            Step(_kname(f, c, n_f, len(image)), [matrix(kernel[f][c])])
            for f in range(n_f) for c in range(len(image))]))
    else:
        d.note("Cross-correlation, as deep-learning libraries compute 'convolution': "
               "the kernel is not flipped.")
    padded = [_pad(ch, pad, mode) for ch in image]
    if any(pad):
        d.note(f"Padding {pad[0]} row(s) and {pad[1]} column(s) on each side, "
               f"{'with zeros' if mode == 'zeros' else 'circularly (wrapping around)'}.")
        d.sections.append(Section("Padded input", [
            Step(_xname(c, len(image), tilde=True), [matrix(padded[c])])
            for c in range(len(image))]))
    out = [_conv_filter(d, padded, kernel[f], bias[f], f, n_f, out_hw, stride)
           for f in range(n_f)]
    d.result = out[0] if two_d and n_f == 1 else out
    return d


@problem_kind("maxpool", "avgpool")
def pool(spec, where):
    """Max or average pooling by hand, window by window."""
    check_keys(spec, _POOL_KEYS, where)
    kind = spec["kind"]
    image, two_d = _image(spec, where)
    size = _pair(spec, "size", where, None, minimum=1)
    stride = _pair(spec, "stride", where, size, minimum=1)
    pad = _pair(spec, "padding", where, 0, minimum=0)
    title = "Max pooling by hand" if kind == "maxpool" else "Average pooling by hand"
    d = Derivation(title=get(spec, "title", where, default=title), kind=kind)
    out_hw = _size_section(d, shape(image)[1:], size, stride, pad, where)
    if kind == "maxpool":
        d.note("Max pooling takes the largest entry of each window; on a tie the gradient "
               "is routed to the first maximum (row by row).")
        fill = None  # padding never wins a max: it is skipped
    else:
        d.note("Average pooling divides by the window size; padded zeros count "
               "(PyTorch's count_include_pad=True).")
        fill = sp.Integer(0)
    out = []
    for c, channel in enumerate(image):
        padded = _pad(channel, pad, "zeros", fill=fill)
        out.append(_pool_channel(d, padded, c, len(image), kind, size, stride, out_hw,
                                 any(pad)))
    d.result = out[0] if two_d else out
    return d


# -- reading -----------------------------------------------------------------------------
def _image(spec, where):
    image = array(get(spec, "image", where), f"{where}: image", ndim=(2, 3), name="image")
    two_d = not isinstance(image[0][0], list)
    return ([image] if two_d else image), two_d


def _kernel(spec, where, channels):
    w = f"{where}: kernel"
    kernel = array(get(spec, "kernel", where), w, ndim=(2, 3, 4), name="kernel")
    rank = len(shape(kernel))
    kernel = [[kernel]] if rank == 2 else [kernel] if rank == 3 else kernel
    if shape(kernel)[1] != channels:
        raise ShapeError(f"kernel has {shape(kernel)[1]} input channel(s) but the image has "
                         f"{channels} (kernel shape {dims(shape(kernel))})", where=w)
    return kernel


def _bias(spec, where, n_f):
    if "bias" not in spec:
        return [sp.Integer(0)] * n_f
    value = spec["bias"]
    if isinstance(value, list):
        out = [number(v, f"{where}: bias[{i}]") for i, v in enumerate(value)]
        if len(out) != n_f:
            raise ShapeError(f"{len(out)} biases for {n_f} filter(s)", where=f"{where}: bias")
        return out
    return [number(value, f"{where}: bias")] * n_f


def _pair(spec, key, where, default, minimum):
    """An int or a [rows, cols] pair of ints, each at least ``minimum``."""
    value = get(spec, key, where, default=default)
    if value is None:
        raise InputError(f"missing required key '{key}'", where=where)
    pair = value if isinstance(value, (list, tuple)) else (value, value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in pair):
        raise InputError(f"expected an integer or [rows, cols], got {value!r:.40}",
                         where=f"{where}: {key}")
    if min(pair) < minimum:
        raise ShapeError(f"must be at least {minimum}, got {value!r}", where=f"{where}: {key}")
    return tuple(pair)


# -- arithmetic --------------------------------------------------------------------------
def _size_section(d, hw, k, stride, pad, where):
    """Output height and width by the formula, shown; returns (H_out, W_out)."""
    steps, out = [], []
    for axis, n, kk, s, p in zip(("H", "W"), hw, k, stride, pad):
        size = shapes.output_size(n, kk, stride=s, padding=p, where=f"{where}: {axis.lower()} axis")
        steps.append(Step(sp.Symbol(f"{axis}_out"), [
            plus(sp.floor(over(minus(plus(sp.Symbol(axis), 2 * _P), _K), _S), evaluate=False), 1),
            plus(sp.floor(over(minus(plus(n, times(2, p)), kk), s), evaluate=False), 1), size]))
        out.append(size)
    d.sections.append(Section("Output size", steps, text="Padding p is per side."))
    return tuple(out)


def _pad(channel, pad, mode, fill=sp.Integer(0)):
    """``channel`` padded by ``pad`` = (rows, cols) per side; ``fill`` None marks 'skip'."""
    ph, pw = pad
    h, w = len(channel), len(channel[0])
    if mode == "circular":
        if ph > h or pw > w:
            raise ShapeError(f"circular padding {pad} is larger than the image ({h}x{w})")
        return [[channel[(i - ph) % h][(j - pw) % w] for j in range(w + 2 * pw)]
                for i in range(h + 2 * ph)]
    row = [fill] * (w + 2 * pw)
    return ([list(row) for _ in range(ph)]
            + [[fill] * pw + list(r) + [fill] * pw for r in channel]
            + [list(row) for _ in range(ph)])


def _conv_filter(d, padded, kernel, bias, f, n_f, out_hw, stride):
    """One filter's output map, each entry shown as its sum of products."""
    kh, kw = len(kernel[0]), len(kernel[0][0])
    multi = n_f > 1 or len(padded) > 1
    name = f"Y^({f + 1})" if n_f > 1 else "Y"
    kernel_base = sp.IndexedBase(f"K^({f + 1})" if n_f > 1 else "K")
    rows, cols = (plus(times(_S, minus(_i, 1)), _a), plus(times(_S, minus(_j, 1)), _b))
    if multi:
        term = times(sp.IndexedBase("Xtilde")[_c, rows, cols], kernel_base[_c, _a, _b])
        formula = sp.Sum(term, (_c, 1, len(padded)), (_a, 1, kh), (_b, 1, kw))
    else:
        term = times(sp.IndexedBase("Xtilde")[rows, cols], kernel_base[_a, _b])
        formula = sp.Sum(term, (_a, 1, kh), (_b, 1, kw))
    if bias != 0:
        formula = plus(formula, sp.Symbol("b"))
    y = sp.IndexedBase(name)
    steps = [Step(y[_i, _j], [formula], "the general entry (1-based indices)")]
    out = []
    for i in range(out_hw[0]):
        out.append([])
        for j in range(out_hw[1]):
            r0, c0 = i * stride[0], j * stride[1]
            pairs = [(padded[c][r0 + a][c0 + b], kernel[c][a][b])
                     for c in range(len(padded)) for a in range(kh) for b in range(kw)]
            value = tidy(sp.Add(*[x * k for x, k in pairs]) + bias)
            form = products(pairs)
            if bias != 0:
                form = plus(*form.args[0].args, bias) if len(pairs) > 1 else plus(form, bias)
            out[-1].append(value)
            steps.append(Step(y[i + 1, j + 1], [form, value],
                              f"window rows {r0 + 1}-{r0 + kh}, columns {c0 + 1}-{c0 + kw}"))
    steps.append(Step(sp.Symbol(name), [matrix(out)]))
    title = f"Filter {f + 1}" if n_f > 1 else "Output entries"
    d.sections.append(Section(title, steps))
    return out


def _pool_channel(d, padded, c, n_c, kind, size, stride, out_hw, was_padded):
    name = f"Y_{c + 1}" if n_c > 1 else "Y"
    y = sp.IndexedBase(name)
    out, steps = [], []
    for i in range(out_hw[0]):
        out.append([])
        for j in range(out_hw[1]):
            r0, c0 = i * stride[0], j * stride[1]
            window = [(padded[r0 + a][c0 + b], (r0 + a, c0 + b))
                      for a in range(size[0]) for b in range(size[1])]
            if kind == "maxpool":
                value, text, note = _max_window(window, was_padded)
            else:
                vals = [v for v, _ in window]
                value = tidy(sp.Add(*vals) / len(vals))
                text = over(plus(*vals), len(vals))
                note = f"window rows {r0 + 1}-{r0 + size[0]}, columns {c0 + 1}-{c0 + size[1]}"
            out[-1].append(value)
            steps.append(Step(y[i + 1, j + 1], [text, value], note))
    steps.append(Step(sp.Symbol(name), [matrix(out)]))
    d.sections.append(Section(f"Channel {c + 1}" if n_c > 1 else "Windows", steps))
    return out


def _max_window(window, was_padded):
    """(max, the max of the window as written, note naming where the first maximum sits)."""
    real = [(v, pos) for v, pos in window if v is not None]
    if not real:
        raise ShapeError("a pooling window lies entirely in the padding")
    best, pos = real[0]
    for v, p in real[1:]:
        if v > best:
            best, pos = v, p
    text = MaxOf(*[v for v, _ in real])
    where = "the padded input" if was_padded else "the input"
    return best, text, f"maximum at row {pos[0] + 1}, column {pos[1] + 1} of {where}"


def _kname(f, c, n_f, n_c):
    sup = f"^({f + 1})" if n_f > 1 else ""
    return sp.Symbol(f"K{sup}_{c + 1}" if n_c > 1 else f"K{sup}")


def _xname(c, n_c, tilde=False):
    base = "Xtilde" if tilde else "X"
    return sp.Symbol(f"{base}_{c + 1}" if n_c > 1 else base)
