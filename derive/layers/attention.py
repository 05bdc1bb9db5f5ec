"""Attention layers, defined once element by element (batch-major ``x: [B, T, d]``).

* :class:`SelfAttention`: ``Q = x W_qᵀ``, ``K = x W_kᵀ``, ``V = x W_vᵀ`` (PyTorch layout
  ``W: [out, in]``), scores ``s[t,u] = Σ_j Q[t,j] K[u,j] / √d_k``, ``A = softmax`` over the
  keys u, ``O[t,j] = Σ_u A[t,u] V[u,j]``. With ``heads > 1`` every projection is read per
  head through the affine index ``h·d_k + j`` (PyTorch's ``[heads·d_k, d]`` layout) and
  the heads are joined by ``y[n,t,m] = Σ_{h,j} W_o[m, h·d_k + j] O[n,h,t,j]``; the weight
  gradients read back through those indices as scatters.
* :class:`ArgmaxAttention`: hard attention ``A[t,u] = δ(u, argmax_u' s[t,u'])``, forward
  only: argmax is piecewise constant, so the gradient to the queries and keys is zero
  almost everywhere (and undefined at ties).
* :class:`PositionalEncoding`: ``y = x + PE`` with the sinusoidal
  ``PE[t, 2i] = sin(t / base^{2i/d})``, ``PE[t, 2i+1] = cos(t / base^{2i/d})``.
"""
from __future__ import annotations

import sympy as sp

from derive.errors import InputError
from derive.shapes import check_size
from derive.tensor import ops
from derive.tensor.index import dim
from derive.layers.dense import BATCH, Layer
from derive.layers.recurrent import check_width
from derive.layers.windows import NUMPY_FUNCTIONS  # noqa: F401  (floor, Mod, sin, cos evaluate)

ARGMAX_NOTE = ("Hard (argmax) attention is piecewise constant in the scores: its gradient "
               "with respect to the queries and keys (W_q, W_k) is zero almost everywhere "
               "and undefined at ties, so only the forward pass is given; train with "
               "softmax attention.")


class _Attention(Layer):
    """Sizes and projections shared by soft and hard attention."""

    out_base = "y"

    def build(self, g, inputs, tag=""):
        (x,) = inputs
        layer = self.describe()
        p, q, k, v = self.qkv(g, x, tag, layer)
        a = self.weights(g, self.scores(g, q, k, tag, layer), tag, layer)
        return self.join(g, self.mix(g, a, v, tag, layer), p, tag, layer)

    def weights(self, g, s, tag, layer):
        """The attention weights over the keys from the scores ``s`` (per subclass)."""
        raise NotImplementedError

    def __init__(self, d_model="d", heads=1, d_k="d_k", steps="T"):
        self.heads = check_size(heads, "number of heads", where=self.title)
        if not isinstance(self.heads, int):
            raise InputError("the number of heads must be an integer", where=self.title)
        self.d_model, self.d_k, self.steps = dim(d_model), dim(d_k), dim(steps)

    def options(self):
        return {"d_model": self.d_model, "heads": self.heads, "d_k": self.d_k}

    def param_shapes(self):
        rows = self.heads * self.d_k
        shapes = {w: (rows, self.d_model) for w in ("W_q", "W_k", "W_v")}
        if self.heads > 1:
            shapes["W_o"] = (self.d_model, rows)
        return shapes

    def input_specs(self):
        return [("x", (BATCH, self.steps, self.d_model), "input", "float", {})]

    def project(self, g, x, W, name, layer):
        """``P[n,(h),t,j] = Σ_e W[(h·d_k +) j, e] x[n,t,e]``."""
        d, dk = self.d_model, self.d_k
        if self.heads == 1:
            return g.define(name, (x.shape[0], x.shape[1], dk),
                            lambda n, t, j: g.sum(d, lambda e: W[j, e] * x[n, t, e]),
                            layer=layer, text=f"{x.name} @ {W.name}.T")
        return g.define(name, (x.shape[0], self.heads, x.shape[1], dk),
                        lambda n, h, t, j: g.sum(d, lambda e: W[h * dk + j, e] * x[n, t, e]),
                        layer=layer, text=f"{x.name} @ {W.name}.T, split into heads")

    def scores(self, g, q, k, tag, layer):
        """``s[.., t, u] = Σ_j Q[.., t, j] K[.., u, j] / √d_k``."""
        T, dk = q.shape[-2], self.d_k
        lead = q.shape[:-2]
        return g.define(g.unique(f"s{tag}"), lead + (T, T),
                        lambda *i: g.sum(dk, lambda j: q[i[:-1] + (j,)] * k[i[:-2] + (i[-1], j)])
                        / sp.sqrt(dk), layer=layer, text="Q @ K.T / sqrt(d_k)")

    def mix(self, g, a, v, tag, layer):
        """``O[.., t, j] = Σ_u A[.., t, u] V[.., u, j]``."""
        T = v.shape[-2]
        name = g.unique(f"o{tag}" if self.heads > 1 else f"{self.out_base}{tag}")
        return g.define(name, v.shape,
                        lambda *i: g.sum(T, lambda u: a[i[:-1] + (u,)] * v[i[:-2] + (u, i[-1])]),
                        layer=layer, text="A @ V")

    def join(self, g, o, p, tag, layer):
        """Multi-head: ``y[n,t,m] = Σ_{h,j} W_o[m, h·d_k + j] O[n,h,t,j]``."""
        if self.heads == 1:
            return o
        dk, W = self.d_k, p["W_o"]
        return g.define(g.unique(f"{self.out_base}{tag}"), (o.shape[0], o.shape[2], self.d_model),
                        lambda n, t, m: g.sum(self.heads, lambda h: g.sum(
                            dk, lambda j: W[m, h * dk + j] * o[n, h, t, j])),
                        layer=layer, text="concat(heads) @ W_o.T")

    def qkv(self, g, x, tag, layer):
        check_width(x, self.d_model, layer, f"q{tag}")
        p = self.add_params(g, tag)
        q, k, v = (self.project(g, x, p[f"W_{c}"], g.unique(f"{c}{tag}"), layer) for c in "qkv")
        return p, q, k, v


class SelfAttention(_Attention):
    """Scaled dot-product self-attention, single or multi-head, softmax over the keys.

    >>> SelfAttention(8, heads=2, d_k=4).parameters()["W_o"]
    (8, 8)
    """

    key, title = "self_attention", "SelfAttention"

    def weights(self, g, s, tag, layer):
        soft = ops.softmax(s, axis=-1)
        return g.define(g.unique(f"A{tag}"), s.shape, soft.element, layer=layer,
                        text=f"softmax({s.name}) over the keys")


class ArgmaxAttention(_Attention):
    """Hard attention: each query takes the value of its highest-scoring key (forward only).

    >>> ArgmaxAttention().program().backward
    []
    """

    key, title = "argmax_attention", "ArgmaxAttention"
    has_gradient, no_gradient = False, ARGMAX_NOTE  # its derivation is the definition

    def weights(self, g, s, tag, layer):
        T = s.shape[-1]
        g.notes.append(ARGMAX_NOTE)

        def onehot_argmax(*i):
            return sp.KroneckerDelta(i[-1], g.argmax(T, lambda u: s[i[:-1] + (u,)]))

        return g.define(g.unique(f"A{tag}"), s.shape, onehot_argmax, layer=layer,
                        text=f"onehot(argmax({s.name})) over the keys")

    def program(self, wrt=None):
        return super().program([] if wrt is None else wrt)


class PositionalEncoding(Layer):
    """``y[n,t,j] = x[n,t,j] + PE[t,j]``, sinusoidal (Vaswani et al. 2017).

    >>> import numpy as np; from derive.tensor import evaluate
    >>> out, _ = evaluate(PositionalEncoding(2), {"x": np.zeros((1, 2, 2))})
    >>> np.round(out[0], 4).tolist()
    [[0.0, 1.0], [0.8415, 0.5403]]
    """

    key, title, out_base = "positional_encoding", "PositionalEncoding", "y"

    def __init__(self, d_model="d", steps="T", base=10000):
        self.d_model, self.steps = dim(d_model), dim(steps)
        if isinstance(base, bool) or not isinstance(base, (int, float)) or base <= 1:
            raise InputError(f"the base must be a number above 1, got {base!r}",
                             where=self.title)
        self.base = base

    def options(self):
        return {"d_model": self.d_model, "base": self.base}

    def input_specs(self):
        return [("x", (BATCH, self.steps, self.d_model), "input", "float", {})]

    def build(self, g, inputs, tag=""):
        (x,) = inputs
        layer = self.describe()
        check_width(x, self.d_model, layer, f"pe{tag}")
        d = self.d_model
        base = sp.nsimplify(ops.constant(self.base, "the positional encoding's base"))

        def pe(t, j):
            angle = t / base ** (2 * sp.floor(j / 2) / d)
            return sp.Piecewise((sp.sin(angle), sp.Eq(sp.Mod(j, 2), 0)), (sp.cos(angle), True))

        enc = g.define(g.unique(f"pe{tag}"), x.shape[1:], pe, layer=layer,
                       text="sin / cos of t / base^(2i/d)")
        return g.define(g.unique(f"{self.out_base}{tag}"), x.shape,
                        lambda n, t, j: x[n, t, j] + enc[t, j], layer=layer,
                        text=f"{x.name} + {enc.name}")
