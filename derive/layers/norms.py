"""LayerNorm, BatchNorm and Dropout, defined node by node as courses write them.

Both norms use the biased variance (divide by the count) to normalise, as PyTorch does;
BatchNorm's running variance is updated with the unbiased one (``B/(B-1)``), with
``running = (1 - momentum) running + momentum batch_stat``. Their input gradients are
derived through the chain of nodes (mean, centred, variance, σ, x̂, y); the compact
textbook form is given by :meth:`compact` and checked against that chain.
"""
from __future__ import annotations

import sympy as sp

from derive.errors import InputError
from derive.tensor import ops
from derive.tensor.index import ISum, dim, simplify_index
from derive.layers.dense import BATCH, Layer, feature_size


class _Norm(Layer):
    """Shared by LayerNorm and BatchNorm; ``axis`` is the one the statistics run over."""

    out_base = "y"
    axis = 1

    def __init__(self, features="d", eps=1e-5, affine=True):
        self.features, self.eps, self.affine = dim(features), eps, affine

    def options(self):
        return {"features": self.features, "eps": self.eps, "affine": self.affine}

    def param_shapes(self):
        return {"gamma": (self.features,), "beta": (self.features,)} if self.affine else {}

    def input_specs(self):
        return [("x", (BATCH, self.features), "input", "float", {})]

    def stat(self, idx, n, i):
        """The statistics' index for element (n, i): n for LayerNorm, i for BatchNorm."""
        return (n,) if self.axis == 1 else (i,)

    @staticmethod
    def own_tag(g, tag):
        """``tag``, or ``tag_2``, ``tag_3``, ... when a norm of the same block took it
        (BatchNorm then LayerNorm in one block would both define xhat2, mu2, ...)."""
        taken = lambda t: any(f"{b}{t}" in g.nodes for b in ("xhat", "mu", "running_mean"))
        if not taken(tag):
            return tag
        k = 2
        while taken(f"{tag}_{k}"):
            k += 1
        return f"{tag}_{k}"

    def statistics(self, g, x, tag, layer):
        """Nodes mu, xc, var, sigma, xhat (batch statistics); returns xhat."""
        eps = g.constant("epsilon", self.eps)
        size = x.shape[self.axis]
        stat_shape = (x.shape[1 - self.axis],)
        m = ops.mean(x, axes=(self.axis,))
        mu = g.define(f"mu{tag}", stat_shape, m.element, layer=layer, text=f"mean({x.name})")
        s = self.stat
        xc = g.define(f"xc{tag}", x.shape, lambda n, i: x[n, i] - mu[s(None, n, i)],
                      layer=layer, text=f"{x.name} - {mu.name}")
        var = g.define(f"var{tag}", stat_shape,
                       ops.mean(ops.elementwise(lambda v: v ** 2, xc), axes=(self.axis,)).element,
                       layer=layer, text=f"mean({xc.name}^2)")
        sigma = g.define(f"sigma{tag}", stat_shape, lambda k: sp.sqrt(var[k] + eps),
                         layer=layer, text=f"sqrt({var.name} + eps)")
        xhat = g.define(f"xhat{tag}", x.shape, lambda n, i: xc[n, i] / sigma[s(None, n, i)],
                        layer=layer, text=f"{xc.name} / {sigma.name}")
        return xhat, size

    def affine_out(self, g, xhat, tag, layer, x=None):
        name = g.unique(f"{self.out_base}{tag}")
        if x is not None:
            names = {"x": x.name, "y": name, "xhat": xhat.name, "sigma": f"sigma{tag}",
                     "gamma": f"gamma{tag}"}
            g.checks.append(lambda view: compact_section(view, self, names))
        if not self.affine:
            return g.define(name, xhat.shape, lambda n, i: xhat[n, i], layer=layer,
                            text=xhat.name)
        p = self.add_params(g, tag)
        gamma, beta = p["gamma"], p["beta"]
        return g.define(name, xhat.shape, lambda n, i: gamma[i] * xhat[n, i] + beta[i],
                        layer=layer, text=f"{gamma.name} * {xhat.name} + {beta.name}")

    def compact(self, names, K):
        """x̄ in the compact textbook form, in index form at ``K = (n, i)``."""
        n, i = K
        y_bar = sp.IndexedBase(names["y"] + "_bar")
        xhat, sigma = sp.IndexedBase(names["xhat"]), sp.IndexedBase(names["sigma"])
        gamma = sp.IndexedBase(names["gamma"]) if self.affine else None
        stat = self.stat(None, n, i)
        g_ = (lambda a, b: gamma[b] * y_bar[a, b]) if gamma is not None else \
            (lambda a, b: y_bar[a, b])
        size = K[self.axis].upper + 1
        j = sp.Idx("j_c", size)
        at = (lambda j_: (j_, i)) if self.axis == 0 else (lambda j_: (n, j_))
        mean_g = ISum(g_(*at(j)), j) / size
        mean_gx = ISum(g_(*at(j)) * xhat[at(j)], j) / size
        return (g_(n, i) - mean_g - xhat[n, i] * mean_gx) / sigma[stat]


class LayerNorm(_Norm):
    """Normalise each row over its features: ``y = γ ⊙ (x - μ_n)/σ_n + β``."""

    key, title, axis = "layernorm", "LayerNorm", 1

    def build(self, g, inputs, tag=""):
        (x,) = inputs
        layer = self.describe()
        feature_size(x, self.features, f"y{tag}", layer)
        tag = self.own_tag(g, tag)
        xhat, _ = self.statistics(g, x, tag, layer)
        return self.affine_out(g, xhat, tag, layer, x)


class BatchNorm(_Norm):
    """Normalise each feature over the batch (train) or with running statistics (eval)."""

    key, title, axis = "batchnorm", "BatchNorm1d", 0

    def __init__(self, features="d", eps=1e-5, momentum=0.1, affine=True, train=True):
        super().__init__(features, eps, affine)
        self.momentum, self.train = momentum, train

    def options(self):
        return {**super().options(), "momentum": self.momentum, "train": self.train}

    def build(self, g, inputs, tag=""):
        (x,) = inputs
        layer = self.describe()
        feature_size(x, self.features, f"y{tag}", layer)
        tag = self.own_tag(g, tag)
        # each state names the batch statistic it estimates (eval mode reads the state in
        # its place) and its starting value (PyTorch's: mean 0, variance 1)
        rm = g.leaf(f"running_mean{tag}", (self.features,), role="state",
                    estimates=f"mu{tag}", initial=0)
        rv = g.leaf(f"running_var{tag}", (self.features,), role="state",
                    estimates=f"var{tag}", initial=1)
        if not self.train:
            return self.eval_out(g, x, rm, rv, tag, layer)
        xhat, size = self.statistics(g, x, tag, layer)
        self.running_updates(g, rm, rv, tag, size)
        return self.affine_out(g, xhat, tag, layer, x)

    def eval_out(self, g, x, rm, rv, tag, layer):
        eps = g.constant("epsilon", self.eps)
        xhat = g.define(f"xhat{tag}", x.shape,
                        lambda n, i: (x[n, i] - rm[i]) / sp.sqrt(rv[i] + eps),
                        layer=layer, text=f"({x.name} - {rm.name}) / sqrt({rv.name} + eps)")
        return self.affine_out(g, xhat, tag, layer)

    def running_updates(self, g, rm, rv, tag, size):
        m = g.constant("momentum", self.momentum)
        mu, var = g.tensor(f"mu{tag}"), g.tensor(f"var{tag}")
        g.define(f"{rm.name}_next", rm.shape, lambda i: (1 - m) * rm[i] + m * mu[i],
                 update=rm.name, text="running mean update")
        g.define(f"{rv.name}_next", rv.shape,
                 lambda i: (1 - m) * rv[i] + m * var[i] * size / (size - 1),
                 update=rv.name, text="running variance update (unbiased)")


class Dropout(Layer):
    """Inverted dropout: ``y = x ⊙ m / (1 - p)`` with a seeded keep-mask ``m`` (train);
    ``y = x`` in eval mode."""

    key, title, out_base = "dropout", "Dropout", "y"

    def __init__(self, p=0.5, seed=0, train=True, features="d"):
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise InputError(f"dropout probability must be in [0, 1), got {p!r}")
        self.p, self.seed, self.train, self.features = p, seed, train, dim(features)

    def options(self):
        return {"p": self.p, "seed": self.seed, "train": self.train}

    def input_specs(self):
        return [("x", (BATCH, self.features), "input", "float", {})]

    def build(self, g, inputs, tag=""):
        (x,) = inputs
        name = g.unique(f"{self.out_base}{tag}")
        if not self.train:
            return g.define(name, x.shape, lambda *i: x[i], layer=self.describe(),
                            text=x.name)
        # a block may hold several Dropouts: the first mask is m{tag}, then m{tag}_2, ...
        mask = g.leaf(g.unique(f"m{tag}"), x.shape, role="mask",
                      random={"dist": "bernoulli", "keep": 1 - self.p, "seed": self.seed})
        keep = sp.Rational(1, 1) - sp.nsimplify(self.p)
        return g.define(name, x.shape, lambda *i: x[i] * mask[i] / keep,
                        layer=self.describe(), text=f"{x.name} * {mask.name} / (1 - p)")


NORMS = (LayerNorm, BatchNorm, Dropout)


def compact_section(view, layer, names):
    """The compact input gradient, checked against the derived chain at random values."""
    from derive.derivation import Section, Step
    from derive.tensor.display import pretty
    from derive.tensor.record import numeric_check

    x = names["x"]
    if x not in view.s.adjoints:
        return Section(f"{layer.title}: compact form", [], text="(input gradient not asked)")
    K = view.s.indices[x]
    rhs = layer.compact(names, K)
    err, sizes = numeric_check(view, rhs, K, view.p.grads.get(x, x + "_bar"))
    body, labels = pretty(simplify_index(rhs), K)
    sizes_text = ", ".join(f"{k} = {v}" for k, v in sizes.items())
    mean_axis = "the batch" if layer.axis == 0 else "the features"
    step = Step(sp.IndexedBase(x + "_bar")[labels], [body],
                note=f"equals the chain above: max |difference| = {err:.1e} at random values "
                     f"({sizes_text})")
    text = (f"With ĝ = γ ⊙ ȳ and means over {mean_axis}: x̄ = (ĝ − mean(ĝ) − x̂ ⊙ "
            "mean(ĝ ⊙ x̂)) / σ, which for BatchNorm is (γ/σ)(ȳ − mean(ȳ) − x̂ mean(ȳ ⊙ x̂)).")
    return Section(f"{layer.title}: the input gradient in compact form", [step], text=text)
