"""Pooling and flattening over NCHW tensors, each defined once element by element.

* :class:`MaxPool2d`: the window's FIRST maximum (row-major order, as PyTorch and
  ``np.argmax``) is found by two integer routing nodes ``ra`` (row) and ``rb`` (column),
  and ``y[n,c,i,j] = xp[n,c, i·S + ra, j·S + rb]``. The routing is piecewise constant in
  x, so it is held fixed when differentiating (a stated override, zero derivative almost
  everywhere); the gradient itself is derived from that definition and comes out as the
  scatter ``x̄p[n,c,i·S + ra, j·S + rb] += ȳ[n,c,i,j]``: each window's gradient goes to its
  first maximum only. Padding is PyTorch's implicit −∞ padding: windows are clipped to
  the input (reads are clamped to the nearest edge entry, which lies in the same window
  because the padding is at most half the kernel).
* :class:`AvgPool2d`: ``y = (1/k²) Σ_{a,b} xp[n,c,i·S+a,j·S+b]`` (zero padding counted in
  the average, PyTorch's ``count_include_pad=True``).
* :class:`GlobalAvgPool`: ``y[n,c] = (1/(H·W)) Σ_{h,w} x[n,c,h,w]``.
* :class:`Flatten`: ``y[n, c·H·W + h·W + w] = x[n,c,h,w]`` (row-major, as ``torch.flatten``);
  its adjoint is the exact gather ``x̄[n,c,h,w] = ȳ[n, c·H·W + h·W + w]``.
"""
from __future__ import annotations

import sympy as sp

from derive.errors import InputError
from derive.tensor.index import dim, product
from derive.layers.dense import BATCH, Layer
from derive.layers.windows import (as_int_node, check_channels, clamp, shapes_section, stop_gradient,
                      window_options, window_out, zero_pad)

FIRST_MAX = ("Max-pooling routes each window's gradient to its FIRST maximum (row-major "
             "order), as PyTorch does: the routing (ra, rb) is piecewise constant in x, so it "
             "is held fixed when differentiating (its derivative is zero almost everywhere "
             "and undefined at ties).")


class _Pool(Layer):
    """Window options and the NCHW input shared by the pooling layers."""

    out_base = "y"

    def __init__(self, kernel_size=2, stride=None, padding=0, channels="C", height="H",
                 width="W"):
        stride = kernel_size if stride is None else stride
        self.k, self.stride, self.padding = window_options(kernel_size, stride, padding,
                                                           self.title)
        self.channels, self.height, self.width = dim(channels), dim(height), dim(width)

    def options(self):
        return {"kernel_size": self.k, "stride": self.stride, "padding": self.padding}

    def input_specs(self):
        return [("x", (BATCH, self.channels, self.height, self.width), "input", "float", {})]

    def windows(self, g, x, name):
        """Checks, output sizes and the padded input; registers the shapes section."""
        where = f"node {name}"
        check_channels(x, x.shape[1], self.describe(), where)
        k, s, p = self.k, self.stride, self.padding
        _, _, h, w = x.shape
        ho, wo = (window_out(n, k, s, p, where) for n in (h, w))
        axes = [("H_out", h, ho), ("W_out", w, wo)]
        g.checks.append(lambda view: shapes_section(self.title, axes, k, s, p))
        return ho, wo


class MaxPool2d(_Pool):
    """Max pooling; the gradient goes to the first maximum of each window (stated).

    >>> import numpy as np; from derive.tensor import evaluate
    >>> out, g = evaluate(MaxPool2d(2), {"x": np.array([[[[1., 3.], [3., 0.]]]])})
    >>> out.ravel().tolist(), g["x"].ravel().tolist()
    ([3.0], [0.0, 1.0, 0.0, 0.0])
    """

    key, title = "maxpool2d", "MaxPool2d"

    def __init__(self, kernel_size=2, stride=None, padding=0, **sizes):
        super().__init__(kernel_size, stride, padding, **sizes)
        if 2 * self.padding > self.k:
            raise InputError(f"max-pool padding ({self.padding}) must be at most half the "
                             f"kernel size ({self.k})", where=self.title)

    def build(self, g, inputs, tag=""):
        (x,) = inputs
        name = g.unique(f"{self.out_base}{tag}")
        layer = self.describe()
        ho, wo = self.windows(g, x, name)
        k, s, p = self.k, self.stride, self.padding
        _, _, h, w = x.shape

        def at(n, c, u, v):
            # window positions outside the input are clamped onto the nearest edge entry,
            # which lies in the same window (p <= k/2): maxima and first-max order unchanged
            return x[n, c, clamp(u - p, h), clamp(v - p, w)] if p else x[n, c, u, v]

        shape = (x.shape[0], x.shape[1], ho, wo)

        def row(n, c, i, j):
            return g.argmax(k, lambda a: at(n, c, i * s + a, j * s + g.argmax(
                k, lambda b: at(n, c, i * s + a, j * s + b))))

        ra = g.define(g.unique(f"ra{tag}"), shape, row, layer=layer, text="first-max row")
        rb = g.define(g.unique(f"rb{tag}"), shape,
                      lambda n, c, i, j: g.argmax(k, lambda b: at(n, c, i * s + ra[n, c, i, j],
                                                                  j * s + b)),
                      layer=layer, text="first-max column in that row")
        for r in (ra, rb):
            as_int_node(g, r.name, 0, k - 1)
            stop_gradient(g, r.name)
        g.notes.append(FIRST_MAX)
        return g.define(name, shape,
                        lambda n, c, i, j: at(n, c, i * s + ra[n, c, i, j], j * s + rb[n, c, i, j]),
                        layer=layer, text=f"maxpool({x.name}, {k}, stride={s})")


class AvgPool2d(_Pool):
    """Average pooling (zero padding counted in each window's average).

    >>> AvgPool2d(3, stride=2, padding=1, height=7, width=7).graph().nodes["y"].shape[2:]
    (4, 4)
    """

    key, title = "avgpool2d", "AvgPool2d"

    def build(self, g, inputs, tag=""):
        (x,) = inputs
        name = g.unique(f"{self.out_base}{tag}")
        layer = self.describe()
        ho, wo = self.windows(g, x, name)
        k, s = self.k, self.stride
        xp = zero_pad(g, x, self.padding, g.unique(f"xp{tag}"), layer)
        if self.padding:
            g.notes.append("AvgPool2d divides by k² in every window, padding included "
                           "(PyTorch's count_include_pad=True).")
        return g.define(name, (x.shape[0], x.shape[1], ho, wo),
                        lambda n, c, i, j: g.sum(k, lambda a: g.sum(
                            k, lambda b: xp[n, c, i * s + a, j * s + b], "b"), "a") / k ** 2,
                        layer=layer, text=f"avgpool({x.name}, {k}, stride={s})")


class _ImageInput(Layer):
    """A parameter-free layer reading one NCHW image batch ``x: [B, C, H, W]``."""

    def __init__(self, channels="C", height="H", width="W"):
        self.channels, self.height, self.width = dim(channels), dim(height), dim(width)

    def input_specs(self):
        return [("x", (BATCH, self.channels, self.height, self.width), "input", "float", {})]


class GlobalAvgPool(_ImageInput):
    """``y[n,c] = (1/(H·W)) Σ_{h,w} x[n,c,h,w]``: one number per channel.

    >>> GlobalAvgPool(channels=8).graph().nodes["y"].shape
    (B, 8)
    """

    key, title, out_base = "global_avgpool", "GlobalAvgPool", "y"

    def build(self, g, inputs, tag=""):
        (x,) = inputs
        name = g.unique(f"{self.out_base}{tag}")
        check_channels(x, x.shape[1], self.title, f"node {name}")
        _, c, h, w = x.shape
        return g.define(name, (x.shape[0], c),
                        lambda n, ch: g.sum(h, lambda r: g.sum(w, lambda q: x[n, ch, r, q]))
                        / (h * w), layer=self.title, text=f"mean over H, W of {x.name}")


class Flatten(_ImageInput):
    """``y[n, c·H·W + h·W + w] = x[n,c,h,w]``: every axis after the batch, row-major.

    >>> Flatten(channels=2, height=3, width=3).graph().nodes["y"].shape
    (B, 18)
    """

    key, title, out_base = "flatten", "Flatten", "y"

    def build(self, g, inputs, tag=""):
        (x,) = inputs
        name = g.unique(f"{self.out_base}{tag}")
        sizes = x.shape[1:]
        if not sizes:
            raise InputError(f"Flatten needs axes after the batch, got {x.shape}",
                             where=f"node {name}")
        strides = [product(sizes[k + 1:]) for k in range(len(sizes))]

        def element(n, q):
            def inner(done, rest):
                if not rest:
                    pos = sp.Add(*[st * i for st, i in zip(strides, done)])
                    return sp.KroneckerDelta(q, pos) * x[(n,) + tuple(done)]
                return g.sum(rest[0], lambda i: inner(done + [i], rest[1:]))
            return inner([], list(sizes))

        return g.define(name, (x.shape[0], product(sizes)), element, layer=self.title,
                        text=f"flatten({x.name})")
