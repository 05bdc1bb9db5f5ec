"""Stacked convolutions collapse: without a nonlinearity between them, convolution layers
equal one convolution whose kernel is the composition of the kernels.

``conv_collapse``: the stack runs on a symbolic input and the combined kernel is read off its
coefficients (one kernel per pair of output and input channels), then checked at every
output position. With zero padding the single convolution pads by
``P = sum_l p_l (product of the earlier strides)`` and the two are compared position by
position: a later layer that pads reads zeros where the single convolution sees the earlier
layers' outputs, so they can differ at the border.
"""
from __future__ import annotations

import itertools

import sympy as sp

from derive.derivation import Derivation, Section, Step
from derive.errors import InputError, ShapeError
from derive.problem import check_keys, get, problem_kind
from derive.stepforms import Word, minus, plus, power, times
from derive.worked.common import array, dims, matrix, shape, tidy

NONLINEAR_NOTE = ("With a nonlinearity between the layers (e.g. ReLU) the composition is no "
                  "longer affine, which is why deep networks need activations.")


@problem_kind("conv_collapse")
def conv_collapse(spec, where):
    """Stacked (cross-correlation) convolutions equal one convolution: the combined kernel,
    one per pair of channels; with zero padding, the output positions where that holds."""
    check_keys(spec, {"kind", "title", "kernels", "kernel_sizes", "biases", "strides",
                      "channels", "paddings"}, where)
    channels = _channels(spec, where)
    kernels = _kernels(spec, where, channels)
    n_layers, nd = len(kernels), len(shape(kernels[0][0][0]))
    strides = _per_layer(spec, "strides", where, n_layers, 1, 1)
    pads = _per_layer(spec, "paddings", where, n_layers, 0, 0)
    biases = _biases(spec, where, kernels)
    d = Derivation(title=get(spec, "title", where, default="Stacked convolutions collapse"),
                   kind="conv_collapse")
    d.note("Convolutions here are cross-correlations (no flip)" + (
        f"; channels {' -> '.join(map(str, channels))}: output channel o of a layer sums the "
        "correlations of every input channel c with its kernel K_(o,c), plus b_o" if channels
        else ", single channel") + (f"; zero padding {', '.join(map(str, pads))} per layer "
                                    "(entries outside a map are 0)." if any(pads) else
                                    ", no padding."))
    size, jump, pad = [1] * nd, 1, 0  # receptive field, stride and padding of the stack
    for k, s, p in zip(kernels, strides, pads):
        pad += p * jump
        size = [sz + (kk - 1) * jump for sz, kk in zip(size, shape(k[0][0]))]
        jump *= s
    x = _symbolic_input([sz + jump for sz in size], len(kernels[0][0]), channels)
    y = x
    for k, s, b in zip(kernels, strides, biases):
        y = _layer(y, k, s, b, 0)
    combined, bias = _read_kernel(y, x, size)
    d.sections.append(Section("The stack", [
        _conv_formula(nd, i, strides[i], shape(k[0][0]), pads[i], len(k[0]) if channels else 0)
        for i, k in enumerate(kernels)]))
    d.sections.append(Section("Combined kernel (coefficients of one output)",
                              _combined_steps(combined, bias, size, jump, channels)))
    stride = jump if nd == 1 else [jump, jump]
    d.sections.append(Section("Check at every output position", [
        _gap_step(y, _layer(x, combined, jump, bias, 0), "the stack and the single convolution "
                  "agree at every position of a symbolic input")]))
    d.note(NONLINEAR_NOTE)
    d.result = {"kernel": combined if channels else combined[0][0],
                "bias": bias if channels else bias[0], "stride": stride}
    if any(pads):
        d.result.update(_padded_check(d, x, kernels, strides, pads, biases, combined, bias,
                                      jump, pad))
    return d


def _channels(spec, where):
    raw = get(spec, "channels", where, types=list, default=None)
    if raw is not None and (len(raw) < 3 or any(not isinstance(c, int) or isinstance(c, bool)
                                                or c < 1 for c in raw)):
        raise ShapeError("expected [C_0, C_1, ..., C_L]: positive integers, one more than the "
                         "layers", where=f"{where}: channels")
    return raw


def _per_layer(spec, key, where, n_layers, default, minimum):
    raw = get(spec, key, where, types=list, default=[default] * n_layers)
    if len(raw) != n_layers or any(not isinstance(v, int) or isinstance(v, bool) or v < minimum
                                   for v in raw):
        raise ShapeError(f"one integer >= {minimum} per layer ({n_layers} layers), got "
                         f"{raw!r:.40}", where=f"{where}: {key}")
    return raw


def _kernels(spec, where, channels):
    """Every kernel as [C_out][C_in][spatial kernel] (1 x 1 channels without ``channels``)."""
    if ("kernels" in spec) == ("kernel_sizes" in spec):
        raise InputError("give exactly one of 'kernels' (numbers) and 'kernel_sizes' "
                         "(symbolic entries)", where=where)
    key = "kernels" if "kernels" in spec else "kernel_sizes"
    raw = get(spec, key, where, types=list)
    if channels and len(channels) != len(raw) + 1:
        raise ShapeError(f"{len(raw)} layers need {len(raw) + 1} channel counts, got "
                         f"{len(channels)}", where=f"{where}: channels")
    if key == "kernels":
        ks = [array(k, f"{where}: kernels[{i}]", ndim=(3, 4) if channels else (1, 2),
                    name="a kernel" + (" [C_out][C_in][...]" if channels else ""))
              for i, k in enumerate(raw)]
        ks = ks if channels else [[[k]] for k in ks]
    else:
        ks = [_symbolic_kernel(s, i, f"{where}: kernel_sizes[{i}]", channels)
              for i, s in enumerate(raw)]
    if len(ks) < 2 or len({len(shape(k[0][0])) for k in ks}) != 1:
        raise ShapeError("need at least two kernels of the same dimension",
                         where=f"{where}: kernels")
    for i, k in enumerate(ks if channels else []):
        if [len(k), len(k[0])] != [channels[i + 1], channels[i]]:
            raise ShapeError(f"kernel {i + 1} has {len(k)} x {len(k[0])} (output x input) "
                             f"channels but channels say {channels[i + 1]} x {channels[i]}",
                             where=f"{where}: kernels[{i}]")
    return ks


def _symbolic_kernel(size, i, where, channels):
    size = [size] if isinstance(size, int) else size
    if not size or any(not isinstance(s, int) or s < 1 for s in size) or len(size) > 2:
        raise ShapeError(f"expected a positive size or [rows, cols], got {size!r}", where=where)
    letter = "abcdefgh"[i % 8]

    def one(name):
        if len(size) == 1:
            return [sp.Symbol(f"{name}_{a}") for a in range(size[0])]
        return [[sp.Symbol(f"{name}_{a}{b}") for b in range(size[1])] for a in range(size[0])]

    if not channels:
        return [[one(letter)]]
    return [[one(f"{letter}^({o + 1}{c + 1})") for c in range(channels[i])]
            for o in range(channels[i + 1])]


def _biases(spec, where, kernels):
    raw = get(spec, "biases", where, types=list, default=None)
    if raw is None:
        return [[sp.Integer(0)] * len(k) for k in kernels]
    if len(raw) != len(kernels):
        raise ShapeError(f"{len(raw)} biases for {len(kernels)} layers", where=f"{where}: biases")
    out = []
    for i, (b, k) in enumerate(zip(raw, kernels)):
        at = f"{where}: biases[{i}]"
        b = array(b, at, ndim=(0, 1), name="a bias")
        b = b if isinstance(b, list) else [b] * len(k)
        if len(b) != len(k):
            raise ShapeError(f"bias {i + 1} has {len(b)} entries for {len(k)} output channels",
                             where=at)
        out.append(b)
    return out


def _symbolic_input(size, n_channels, channels):
    def grid(name):
        if len(size) == 1:
            return [sp.Symbol(f"{name}_{i}") for i in range(size[0])]
        return [[sp.Symbol(f"{name}_{i}_{j}") for j in range(size[1])] for i in range(size[0])]

    return [grid("x")] if not channels else [grid(f"x^({c + 1})") for c in range(n_channels)]


def _pad(x, p):
    """Zero padding of ``p`` on every side of a 1-D or 2-D nested list."""
    if not p:
        return x
    zero = sp.Integer(0)
    if not isinstance(x[0], list):
        return [zero] * p + list(x) + [zero] * p
    width = len(x[0]) + 2 * p
    return [[zero] * width for _ in range(p)] + [[zero] * p + row + [zero] * p for row in x] + \
        [[zero] * width for _ in range(p)]


def _layer(x, k, stride, b, pad):
    """One convolution layer on channels ``x``: out_o = sum_c x_c (*) K_(o,c) + b_o."""
    x = [_pad(c, pad) for c in x]
    out = []
    for o in range(len(k)):
        parts = [_correlate(x[c], k[o][c], stride) for c in range(len(x))]
        out.append(_entrywise(lambda *v: sp.expand(sp.Add(*v) + b[o]), *parts))
    return out


def _entrywise(fn, *nested):
    if isinstance(nested[0], list):
        return [_entrywise(fn, *items) for items in zip(*nested)]
    return fn(*nested)


def _correlate(x, k, stride):
    """Valid cross-correlation of a 1-D or 2-D nested list (the same stride on each axis)."""
    if not isinstance(x[0], list):
        return [sp.Add(*[x[i * stride + a] * k[a] for a in range(len(k))])
                for i in range((len(x) - len(k)) // stride + 1)]
    rows = (len(x) - len(k)) // stride + 1
    cols = (len(x[0]) - len(k[0])) // stride + 1
    return [[sp.Add(*[x[i * stride + a][j * stride + b] * k[a][b]
                      for a in range(len(k)) for b in range(len(k[0]))])
             for j in range(cols)] for i in range(rows)]


def _read_kernel(y, x, size):
    """Per output channel: the coefficients of its first output in each input channel's
    entries (one kernel per pair of channels), and the constant (the bias)."""
    zero = {s: 0 for c in x for s in _flat(c)}
    kernel, bias = [], []
    for out in y:
        first = out[0] if len(size) == 1 else out[0][0]
        kernel.append([_entrywise(lambda s: tidy(first.coeff(s)), _crop(c, size)) for c in x])
        bias.append(tidy(first.subs(zero)))
    return kernel, bias


def _crop(x, size):
    return x[:size[0]] if len(size) == 1 else [row[:size[1]] for row in x[:size[0]]]


def _combined_steps(combined, bias, size, jump, channels):
    desc = f"size {dims(tuple(size))}, stride {jump}"
    if not channels:
        return [Step(sp.Symbol("K^*"), [matrix(combined[0][0])], desc),
                Step(sp.Symbol("b^*"), [bias[0]], "each bias passes through the later "
                     "kernels' sums")]
    steps = [Step(sp.Symbol(f"K^*_{o + 1}{c + 1}"), [matrix(k)],
                  f"output channel o from input channel c: the sum over the channels m between "
                  f"of K2_(o,m) composed with K1_(m,c); {desc}" if o == c == 0 else "")
             for o, row in enumerate(combined) for c, k in enumerate(row)]
    steps.append(Step(sp.Symbol("b^*"), [matrix(bias)], "one per output channel: each earlier "
                      "bias passes through the later kernels' sums"))
    return steps


def _gap_step(stack, single, note):
    a, b = _flat_all(stack), _flat_all(single)
    if len(a) != len(b):
        raise AssertionError("the stack and the single convolution differ in size")
    residual = sp.expand(sp.Add(*[(p - q) ** 2 for p, q in zip(a, b)]))
    n = sp.Symbol("n", integer=True, positive=True)
    gap = sp.Sum(power(minus(sp.Indexed("y_stack", n), sp.Indexed("y_single", n)), 2),
                 (n, 1, len(a)))
    return Step(gap, [residual], note)


def _padded_check(d, x, kernels, strides, pads, biases, combined, bias, jump, pad):
    """With zero padding: compare the padded stack with the single convolution padded by
    P = sum_l p_l (product of the earlier strides), position by position."""
    y = x
    for k, s, p, b in zip(kernels, strides, pads, biases):
        y = _layer(y, k, s, b, p)
    single = _layer(x, combined, jump, bias, pad)
    nd = len(shape(x[0]))

    def agree(*v):  # every output channel of the stack against the single convolution's
        return int(all(sp.expand(p - q) == 0 for p, q in zip(v[:len(y)], v[len(y):])))

    same = _entrywise(agree, *y, *single)
    flat = _flat(same) if nd == 2 else same
    cols = len(same[0]) if nd == 2 else 1
    differs = [[i // cols, i % cols] if nd == 2 else i for i, v in enumerate(flat) if not v]
    steps = [Step(sp.Symbol("P"), [pad], "sum of each layer's padding times the product of "
                  "the strides before it"),
             Step(Word("agree"), [matrix(same)], f"on a symbolic input of size "
                  f"{dims(tuple(shape(x[0])))}: 1 where the padded stack equals the single "
                  "convolution with padding P, 0 where it differs")]
    if differs:
        pos = differs[0]
        at = (lambda v: v[pos[0]][pos[1]]) if nd == 2 else (lambda v: v[pos])
        name = ",".join(str(i + 1) for i in (pos if nd == 2 else (pos,)))
        steps += [Step(sp.Symbol(f"y^stack_{name}"), [at(y[0])]),
                  Step(sp.Symbol(f"y^single_{name}"), [at(single[0])],
                       "the stack pads its intermediate maps with zeros, where the single "
                       "convolution reads the earlier layers' outputs on the padded input")]
    d.sections.append(Section("With zero padding", steps))
    d.note("With padding, the single convolution pads its input by P; the stack pads each "
           "intermediate map with zeros where the single convolution sees the earlier layers "
           "applied to the padded input. Where those values are not 0 (they reach the image, "
           "or carry a bias) the two differ, at border positions only (listed in the result); "
           "when only the first layer pads they agree everywhere.")
    return {"padding": pad, "differs_at": differs}


def _conv_formula(nd, i, s, size, pad, n_in):
    """The step defining layer ``i``: y_j = sum_(c) sum_a prev_(c, s j + a - p) K_(c, a) + b."""
    prev = sp.IndexedBase("x" if i == 0 else f"y^({i})")
    k, y = sp.IndexedBase(f"K^({i + 1})"), sp.IndexedBase(f"y^({i + 1})")
    a, b, i_, j_, o, c = sp.symbols("a b i j o c", integer=True)
    bias = sp.Indexed(f"b^({i + 1})", o) if n_in else sp.Symbol(f"b_{i + 1}")

    def at(idx, off):
        return minus(plus(s * idx, off), pad) if pad else plus(s * idx, off)

    spatial = [at(j_, a)] if nd == 1 else [at(i_, a), at(j_, b)]
    taps = [a] if nd == 1 else [a, b]
    limits = [(a, 0, size[0] - 1)] + ([(b, 0, size[1] - 1)] if nd == 2 else [])
    lead, out = ([c], [o]) if n_in else ([], [])
    body = times(prev[(*lead, *spatial)], k[(*out, *lead, *taps)])
    body = sp.Sum(body, *([(c, 1, n_in)] if n_in else []), *limits)
    return Step(y[(*out, *([j_] if nd == 1 else [i_, j_]))], [plus(body, bias)])


def _flat(nested):
    return list(itertools.chain.from_iterable(nested)) if isinstance(nested[0], list) else nested


def _flat_all(nested):
    if not isinstance(nested, list):
        return [nested]
    return [v for item in nested for v in _flat_all(item)]
