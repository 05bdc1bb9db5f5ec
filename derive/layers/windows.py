"""Sliding windows over NCHW tensors: output sizes, padding nodes, window reads.

Shared by :mod:`~derive.layers.conv` and :mod:`~derive.layers.pool`.

* :class:`OutSize` is an output length kept whole while the input length is a symbol
  (``OutSize(H, k, s, P)``); it evaluates through :func:`derive.shapes.output_size` (the
  one place the rule ``floor((n + P - k)/s) + 1`` is written) as soon as its arguments are
  numbers. Index ranges built from it stay the same object under ``simplify`` and
  ``factor_terms`` (a bare ``floor`` does not: SymPy moves it between ``floor((H-1)/2)``
  and ``floor(H/2 - 1/2)``, and two Idx with the two forms would be different indices).
* :func:`zero_pad` defines ``xp[n,c,u,v] = Σ_{h,w} δ(u, h+p) δ(v, w+p) x[n,c,h,w]``: the
  padding as an embedding; its forward becomes a scatter and its adjoint the exact gather
  ``x̄[n,c,h,w] = x̄p[n,c,h+p,w+p]`` (a crop).
* :func:`circular_pad` defines ``xp[n,c,u,v] = x[n,c,(u-p) mod H,(v-p) mod W]`` (wrap
  around, PyTorch's ``padding_mode="circular"``); its adjoint is the scatter
  ``x̄[n,c,(u-p) mod H, (v-p) mod W] += x̄p[n,c,u,v]``.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from derive.errors import InputError, ShapeError
from derive.shapes import check_size, output_size
from derive.tensor.evaluate import NUMPY_FUNCTIONS
from derive.tensor.tensor_graph import shape_str

# Integer index arithmetic met in index forms here: (u - p) mod H for circular padding,
# floor(j/2) for the positional encoding. NumPy's mod is floored like SymPy's Mod.
NUMPY_FUNCTIONS.setdefault(sp.Mod, np.mod)
NUMPY_FUNCTIONS.setdefault(sp.floor, np.floor)
NUMPY_FUNCTIONS.setdefault(sp.sin, np.sin)
NUMPY_FUNCTIONS.setdefault(sp.cos, np.cos)


class OutSize(sp.Function):
    """Output length ``floor((n + P - k)/s) + 1`` of a window of size k, stride s, total
    padding P over n entries (see :func:`derive.shapes.output_size`).

    >>> OutSize(9, 3, 2, 2)
    5
    >>> OutSize(sp.Symbol("H", integer=True, positive=True), 3, 2, 2).formula()
    floor(H/2 - 1/2) + 1
    """

    is_integer = True
    is_positive = True

    @classmethod
    def eval(cls, n, k, s, total):
        if all(a.is_Integer for a in (n, k, s, total)):
            return sp.Integer(output_size(int(n), int(k), int(s), total_padding=int(total)))
        return None  # kept whole: the window check runs when n gets a value

    def formula(self):
        """The rule itself, from :func:`derive.shapes.output_size` (a floor expression)."""
        n, k, s, total = self.args
        return output_size(n, int(k), int(s), total_padding=int(total))

    def _sympystr(self, printer):
        return printer._print(self.formula())

    def _pythoncode(self, printer):
        # the same rule printed for code: integer floor division on integer sizes
        n, k, s, total = (printer._print(a) for a in self.args)
        return f"(({n} + {total} - {k}) // {s} + 1)"

    def _numbacode(self, printer):
        return self._pythoncode(printer)


def window_options(kernel, stride, padding, where):
    """Kernel size, stride and padding checked as integers (stride >= 1, padding >= 0)."""
    out = (check_size(kernel, "kernel size", where=where),
           check_size(stride, "stride", where=where),
           check_size(padding, "padding", minimum=0, where=where))
    if not all(isinstance(v, int) for v in out):
        raise InputError("kernel size, stride and padding must be integers", where=where)
    return out


def window_out(n, kernel, stride, padding, where):
    """The output length along one axis (ShapeError when the kernel exceeds the padded input)."""
    if n.is_Integer:
        return sp.Integer(output_size(int(n), kernel, stride, padding=padding, where=where))
    return OutSize(n, kernel, stride, 2 * padding)


def shapes_section(title, axes, kernel, stride, padding):
    """The output-size rule (from :func:`derive.shapes.output_size`) and its instances.

    ``axes``: (name of the output length, input length, output length) per spatial axis.
    """
    from derive.derivation import Section, Step

    n, k, s, p = sp.symbols("n k s p", integer=True, positive=True)
    rule = output_size(n, k, s, padding=p)
    steps = [Step(sp.Symbol("n_out"), [rule],
                  note="output length of a window of size k, stride s, padding p per side")]
    for name, size, out in axes:
        forms = [output_size(size, kernel, stride, padding=padding)] if not size.is_Integer \
            else [sp.Integer(out)]
        steps.append(Step(sp.Symbol(name), forms,
                          note=f"n = {size}, k = {kernel}, s = {stride}, p = {padding}"))
    return Section(f"{title}: output shape", steps,
                   text="Each spatial axis follows the output-size rule of derive.shapes.")


def check_channels(x, channels, layer, where):
    """ShapeError unless ``x`` is ``[B, channels, H, W]``."""
    if len(x.shape) != 4:
        raise ShapeError(f"{layer} expects an NCHW input [B, C, H, W], got {shape_str(x.shape)}",
                         where=where)
    if x.shape[1] != channels:
        raise ShapeError(f"shapes {shape_str(x.shape)} and [B, {channels}, H, W] do not match: "
                         f"{layer} expects {channels} input channels, got {x.shape[1]}",
                         where=where)


def zero_pad(g, x, p, name, layer):
    """``xp = x`` with ``p`` zeros on each side of both spatial axes (no node when p = 0)."""
    if p == 0:
        return x
    n, c, h, w = x.shape

    def element(b, ch, u, v):
        return g.sum(h, lambda r: g.sum(w, lambda q: sp.KroneckerDelta(u, r + p)
                                        * sp.KroneckerDelta(v, q + p) * x[b, ch, r, q]))

    return g.define(name, (n, c, h + 2 * p, w + 2 * p), element, layer=layer,
                    text=f"pad({x.name}, {p})")


def circular_pad(g, x, p, name, layer, where=None):
    """``xp[n,c,u,v] = x[n,c,(u-p) mod H,(v-p) mod W]``: wrap-around padding."""
    if p == 0:
        return x
    n, c, h, w = x.shape
    for size in (h, w):
        if size.is_Integer and p > size:
            raise ShapeError(f"circular padding {p} is larger than the input size {size}",
                             where=where)
    return g.define(name, (n, c, h + 2 * p, w + 2 * p),
                    lambda b, ch, u, v: x[b, ch, sp.Mod(u - p, h), sp.Mod(v - p, w)],
                    layer=layer, text=f"circular_pad({x.name}, {p})")


class clamp(sp.Function):  # noqa: N801  (a function name, like sympy's floor)
    """``clamp(e, n) = min(max(e, 0), n - 1)``: an index moved onto the nearest entry of
    ``0..n-1`` (an integer function that evaluates on numbers).

    >>> clamp(-1, 4), clamp(5, 4), clamp(2, 4)
    (0, 3, 2)
    """

    is_integer = True

    @classmethod
    def eval(cls, e, n):
        if e.is_Integer and n.is_Integer:
            return sp.Integer(min(max(int(e), 0), int(n) - 1))
        return None

    def index_range(self):
        return sp.S.Zero, self.args[1] - 1

    def _pythoncode(self, printer):
        e, n = (printer._print(a) for a in self.args)
        return f"min(max({e}, 0), {n} - 1)"


NUMPY_FUNCTIONS.setdefault(clamp, lambda e, n: np.clip(e, 0, n - 1))


def stop_gradient(g, name):
    """Treat node ``name`` as a constant for differentiation (its derivative is zero a.e.).

    Used for max-pool routing indices: integer argmax positions are piecewise constant, so
    the gradient is derived from ``y = x[routing]`` with the routing held fixed.
    """
    node = g.nodes[name]
    node.meta["stop_gradient"] = True
    node.inputs = ()
    return g.tensor(name)


def as_int_node(g, name, lo, hi):
    """Mark node ``name`` as an integer tensor with values in ``lo..hi``."""
    node = g.nodes[name]
    node.dtype = "int"
    node.meta["range"] = (lo, hi)
    return g.tensor(name)
