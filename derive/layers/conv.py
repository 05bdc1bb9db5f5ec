"""Conv2d (NCHW), defined once element by element; its gradients derived by the engine.

``y[n,f,i,j] = Σ_c Σ_a Σ_b K[f,c,a,b] · xp[n,c, i·S + a, j·S + b] + b[f]``

with ``xp`` the padded input (zeros or circular wrap-around, :mod:`.windows`), kernel
``K: [F, C, k, k]`` (PyTorch's ``weight`` layout), stride ``S``, dilation 1. Because the
input is read through the affine index ``i·S + a``, its adjoint comes out as a
scatter-accumulate (:mod:`.scatter`): for every (n, c, i, j, a, b),
``x̄p[n,c,i·S+a,j·S+b] += Σ_f ȳ[n,f,i,j] K[f,c,a,b]``, which is the transposed
convolution of ȳ with K; ``K̄[f,c,a,b] = Σ_{n,i,j} ȳ[n,f,i,j] xp[n,c,i·S+a,j·S+b]`` is an
exact gather (a correlation of the input with ȳ). The derivation shows both, checks the
transposed-convolution reading numerically, and states the output-size rule.

>>> Conv2d(3, 8, kernel_size=3).parameters()
{'K': (8, 3, 3, 3), 'b': (8,)}
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from derive.errors import InputError
from derive.tensor.index import dim
from derive.layers.dense import BATCH, Layer
from derive.layers.windows import (check_channels, circular_pad, shapes_section, window_options,
                      window_out, zero_pad)

PADDING_MODES = ("zeros", "circular")


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as PyTorch) over ``x: [B, C, H, W]``.

    Parameters
    ----------
    in_channels, out_channels : int or str
        C and F (names become dimension symbols).
    kernel_size, stride, padding : int
        Square kernel k, stride S >= 1, padding p >= 0 per side.
    padding_mode : {"zeros", "circular"}
    bias : bool
    height, width : int or str
        Input height and width of the standalone layer (symbols ``H``, ``W`` by default).
    """

    key, title, out_base = "conv2d", "Conv2d", "y"
    notation = r"\operatorname{conv}"

    def __init__(self, in_channels="C", out_channels="F", kernel_size=3, stride=1, padding=0,
                 padding_mode="zeros", bias=True, height="H", width="W"):
        where = "Conv2d"
        self.k, self.stride, self.padding = window_options(kernel_size, stride, padding, where)
        if padding_mode not in PADDING_MODES:
            raise InputError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got "
                             f"{padding_mode!r}", where=where)
        self.in_channels, self.out_channels = dim(in_channels), dim(out_channels)
        self.padding_mode, self.bias = padding_mode, bias
        self.height, self.width = dim(height), dim(width)

    def options(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.k, "stride": self.stride, "padding": self.padding,
                "padding_mode": self.padding_mode, "bias": self.bias}

    def param_shapes(self):
        shapes = {"K": (self.out_channels, self.in_channels, self.k, self.k)}
        if self.bias:
            shapes["b"] = (self.out_channels,)
        return shapes

    def input_specs(self):
        return [("x", (BATCH, self.in_channels, self.height, self.width), "input", "float", {})]

    def build(self, g, inputs, tag=""):
        (x,) = inputs
        name = g.unique(f"{self.out_base}{tag}")
        layer, where = self.describe(), f"node {name}"
        check_channels(x, self.in_channels, layer, where)
        k, s, p = self.k, self.stride, self.padding
        _, _, h, w = x.shape
        ho, wo = (window_out(n, k, s, p, where) for n in (h, w))
        pad = circular_pad if self.padding_mode == "circular" else zero_pad
        xp = pad(g, x, p, g.unique(f"xp{tag}"), layer) if pad is zero_pad \
            else pad(g, x, p, g.unique(f"xp{tag}"), layer, where)
        params = self.add_params(g, tag)
        kern, c = params["K"], self.in_channels

        def element(n, f, i, j):
            body = g.sum(c, lambda ch: g.sum(k, lambda a: g.sum(
                k, lambda b: kern[f, ch, a, b] * xp[n, ch, i * s + a, j * s + b], "b"), "a"), "c")
            return body + params["b"][f] if self.bias else body

        y = g.define(name, (x.shape[0], self.out_channels, ho, wo), element, layer=layer,
                     text=f"conv2d({x.name}, {kern.name}, stride={s}, padding={p})")
        axes = [("H_out", h, ho), ("W_out", w, wo)]
        g.checks.append(lambda view: shapes_section(self.title, axes, k, s, p))
        g.checks.append(lambda view: transposed_section(view, self, xp.name, y.name, kern.name))
        if p and self.padding_mode == "circular":
            g.notes.append("Circular padding wraps around: xp[u] = x[(u - p) mod H]; its "
                           "adjoint adds each padded entry's gradient back onto the input "
                           "entry it copies (x̄[(u - p) mod H] += x̄p[u]).")
        return y


# -- the input gradient as a transposed convolution ---------------------------------------------


def dilated_padded(y_bar, stride, k, covering=None):
    """ȳ⁺: ȳ with S − 1 zeros between entries and k − 1 zeros around (and, given the
    padded input's spatial shape, zeros after it until every window ȳ⁺[u + a] of that
    input is in range: rows a stride leaves over read zeros)."""
    B, F, ho, wo = y_bar.shape
    dil = np.zeros((B, F, stride * (ho - 1) + 1, stride * (wo - 1) + 1))
    dil[:, :, ::stride, ::stride] = y_bar
    extra = [0, 0] if covering is None else \
        [max(0, c - n) for c, n in zip(covering, dil.shape[2:])]
    return np.pad(dil, ((0, 0), (0, 0), (k - 1, k - 1 + extra[0]), (k - 1, k - 1 + extra[1])))


def full_correlation_grad(y_bar, kern, stride, padded_shape):
    """x̄p by the textbook rule: dilate ȳ by the stride, zero-pad by k−1, correlate with K
    rotated by 180°. Independent of the derived scatter; used to check it."""
    B, C = y_bar.shape[0], kern.shape[1]
    k = kern.shape[2]
    full = dilated_padded(y_bar, stride, k)
    rot = kern[:, :, ::-1, ::-1]
    rows, cols = full.shape[2] - k + 1, full.shape[3] - k + 1
    out = np.zeros((B, C) + tuple(padded_shape))
    for a in range(k):
        for b in range(k):
            window = full[:, :, a:a + rows, b:b + cols]
            out[:, :, :rows, :cols] += np.einsum("nfuv,fc->ncuv", window, rot[:, :, a, b])
    return out


def transposed_section(view, layer, xp, y, kern):
    """The input gradient read as a transposed convolution, checked at random values."""
    from derive.derivation import Section, Step

    text = ("The scatter x̄p[n,c,iS+a,jS+b] += Σ_f ȳ[n,f,i,j] K[f,c,a,b] is the transposed "
            "convolution of ȳ with K (conv_transpose2d): dilate ȳ by the stride (S − 1 zeros "
            "between entries), pad it with k − 1 zeros, and correlate with K rotated by 180° "
            "and with its channel axes swapped. K̄ is the correlation of the padded input with "
            "ȳ, an exact gather.")
    if xp not in view.s.adjoints:
        return Section(f"{layer.title}: gradients as convolutions", [], text=text)
    err = _check_transposed(view, layer, xp, y, kern)
    n, c, u, v, f, a, b = sp.symbols("n c u v f a b", integer=True)
    ybar_plus = sp.IndexedBase("y^+_bar")  # printed ȳ⁺ (reports' printer reads _bar)
    rotated = sp.IndexedBase(kern)[f, c, layer.k - 1 - a, layer.k - 1 - b]
    rhs = sp.Sum(ybar_plus[n, f, u + a, v + b] * rotated, (f, 0, layer.out_channels - 1),
                 (a, 0, layer.k - 1), (b, 0, layer.k - 1))
    step = Step(sp.IndexedBase(xp + "_bar")[n, c, u, v], [rhs],
                note=f"ȳ⁺: ȳ dilated by {layer.stride} and padded by {layer.k - 1}; equals the "
                     f"derived scatter: max |difference| = {err:.1e} at random values",
                auxiliary={"y^+_bar": lambda arrays: dilated_padded(
                    arrays[y + "_bar"], layer.stride, layer.k, arrays[xp].shape[2:])})
    return Section(f"{layer.title}: gradients as convolutions", [step], text=text)


def _check_transposed(view, layer, xp, y, kern, seed=0):
    rng = np.random.default_rng(seed)
    prog = view.p
    sizes = {d: {"B": 2, "C": 2, "F": 3}.get(str(d), layer.k + 2 + j)
             for j, d in enumerate(prog.dims)}
    values = {}
    for t in prog.tensors.values():
        if t.role in ("node", "adjoint"):
            continue
        shape = [int(sp.sympify(s).xreplace(sizes)) for s in t.shape]
        if t.dtype == "int":  # class labels of a loss after the convolution (a conv net)
            classes = int(sp.sympify(t.meta.get("classes", 2)).xreplace(sizes))
            values[t.name] = rng.integers(0, classes, size=shape)
        else:
            values[t.name] = rng.normal(size=shape)
    out_shape = [int(sp.sympify(s).xreplace(sizes)) for s in prog.tensors[prog.output].shape]
    arrays = prog.run(values, rng.normal(size=out_shape))
    want = full_correlation_grad(arrays[y + "_bar"], arrays[kern], layer.stride,
                                 arrays[xp + "_bar"].shape[2:])
    return float(np.max(np.abs(want - arrays[xp + "_bar"])))
