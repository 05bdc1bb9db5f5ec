"""LayerNorm, BatchNorm (1d and 2d) and Dropout, defined node by node as courses write them.

Both norms use the biased variance (divide by the count) to normalise, as PyTorch does.
BatchNorm's running statistics are updated with ``running = (1 - momentum) running +
momentum batch_stat``; the variance it feeds the running estimate is the unbiased one
(``M/(M-1)``, M the entries per channel, PyTorch's) or, with ``running_var="biased"``, the
biased one (needle's and CS231n's). The update is a node of the graph and is shown, in
index form, in the document. Input gradients are derived through the chain of nodes
(mean, centred, variance, σ, x̂, y); the compact textbook form is given by
:meth:`compact` and checked against that chain.

* :class:`BatchNorm`: ``x: [B, d]``, statistics per feature over the batch.
* :class:`BatchNorm2d`: ``x: [B, C, H, W]``, statistics per channel over N, H and W.
* :class:`LayerNorm`: statistics over the last k axes (``normalized_shape``, as
  ``torch.nn.LayerNorm``), γ and β of that shape; ``features`` alone is k = 1.
"""
from __future__ import annotations

import sympy as sp

from derive.errors import InputError, ShapeError
from derive.tensor import ops
from derive.tensor.index import ISum, dim, product, simplify_index
from derive.tensor.tensor_graph import shape_str
from derive.layers.dense import BATCH, Layer, feature_size
from derive.layers.windows import check_channels

RUNNING_VAR = ("unbiased", "biased")


def running_var_option(value, layer):
    """``"unbiased"`` or ``"biased"`` (InputError naming the option otherwise)."""
    if value not in RUNNING_VAR:
        raise InputError(f"option 'running_var' of layer '{layer}' is 'unbiased' or 'biased', "
                         f"got {value!r}")
    return value


class _Norm(Layer):
    """Shared by the norms: statistics over the axes :meth:`reduced` names, γ and β
    indexed by :meth:`param_at`."""

    out_base = "y"

    def __init__(self, features="d", eps=1e-5, affine=True):
        self.features, self.eps, self.affine = dim(features), eps, affine

    def options(self):
        return {"features": self.features, "eps": self.eps, "affine": self.affine}

    def param_shapes(self):
        return {"gamma": (self.features,), "beta": (self.features,)} if self.affine else {}

    def input_specs(self):
        return [("x", (BATCH, self.features), "input", "float", {})]

    # -- axes -----------------------------------------------------------------------------
    def reduced(self, ndim):
        """The axes the statistics run over, for an input of ``ndim`` axes."""
        raise NotImplementedError

    def param_at(self, idx):
        """γ's and β's indices for the input element ``idx``."""
        return (idx[1],)

    def stat_at(self, idx):
        """The statistics' indices for the input element ``idx`` (the axes kept)."""
        red = self.reduced(len(idx))
        return tuple(i for a, i in enumerate(idx) if a not in red)

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
        """Nodes mu, xc, var, sigma, xhat (batch statistics); returns (xhat, count)."""
        eps = g.constant("epsilon", self.eps)
        red = self.reduced(x.ndim)
        size = product(x.shape[a] for a in red)
        stat_shape = tuple(s for a, s in enumerate(x.shape) if a not in red)
        at = self.stat_at
        m = ops.mean(x, axes=red)
        mu = g.define(f"mu{tag}", stat_shape, m.element, layer=layer, text=f"mean({x.name})")
        xc = g.define(f"xc{tag}", x.shape, lambda *i: x[i] - mu[at(i)],
                      layer=layer, text=f"{x.name} - {mu.name}")
        var = g.define(f"var{tag}", stat_shape,
                       ops.mean(ops.elementwise(lambda v: v ** 2, xc), axes=red).element,
                       layer=layer, text=f"mean({xc.name}^2)")
        sigma = g.define(f"sigma{tag}", stat_shape, lambda *k: sp.sqrt(var[k] + eps),
                         layer=layer, text=f"sqrt({var.name} + eps)")
        xhat = g.define(f"xhat{tag}", x.shape, lambda *i: xc[i] / sigma[at(i)],
                        layer=layer, text=f"{xc.name} / {sigma.name}")
        return xhat, size

    def affine_out(self, g, xhat, tag, layer, x=None):
        name = g.unique(f"{self.out_base}{tag}")
        if x is not None:
            names = {"x": x.name, "y": name, "xhat": xhat.name, "sigma": f"sigma{tag}",
                     "gamma": f"gamma{tag}"}
            g.checks.append(lambda view: compact_section(view, self, names))
        if not self.affine:
            return g.define(name, xhat.shape, lambda *i: xhat[i], layer=layer,
                            text=xhat.name)
        p = self.add_params(g, tag)
        gamma, beta = p["gamma"], p["beta"]
        pa = self.param_at
        return g.define(name, xhat.shape, lambda *i: gamma[pa(i)] * xhat[i] + beta[pa(i)],
                        layer=layer, text=f"{gamma.name} * {xhat.name} + {beta.name}")

    def compact(self, names, K):
        """x̄ in the compact textbook form, in index form at the input's indices ``K``."""
        y_bar = sp.IndexedBase(names["y"] + "_bar")
        xhat, sigma = sp.IndexedBase(names["xhat"]), sp.IndexedBase(names["sigma"])
        gamma = sp.IndexedBase(names["gamma"]) if self.affine else None
        red = self.reduced(len(K))
        g_ = (lambda a: gamma[self.param_at(a)] * y_bar[a]) if gamma is not None else \
            (lambda a: y_bar[a])
        sizes = [K[a].upper + 1 for a in red]
        js = [sp.Idx(f"j_c{k}" if k else "j_c", s) for k, s in enumerate(sizes)]

        def at(js_):
            full = list(K)
            for a, j in zip(red, js_):
                full[a] = j
            return tuple(full)

        count = product(sizes)
        mean_g = ISum(g_(at(js)), *js) / count
        mean_gx = ISum(g_(at(js)) * xhat[at(js)], *js) / count
        return (g_(tuple(K)) - mean_g - xhat[tuple(K)] * mean_gx) / sigma[self.stat_at(K)]


class LayerNorm(_Norm):
    """Normalise each sample over its last k axes: ``y = γ ⊙ (x - μ_n)/σ_n + β``.

    ``normalized_shape`` (a size or a list of sizes, as ``torch.nn.LayerNorm``) names the
    k axes; without it the one axis ``features``. γ and β have ``normalized_shape``.

    >>> LayerNorm(normalized_shape=["C", "H", "W"]).parameters()
    {'gamma': (C, H, W), 'beta': (C, H, W)}
    """

    key, title = "layernorm", "LayerNorm"

    def __init__(self, features="d", eps=1e-5, affine=True, normalized_shape=None):
        shape = (features,) if normalized_shape is None else normalized_shape
        shape = tuple(shape) if isinstance(shape, (list, tuple)) else (shape,)
        if not shape:
            raise InputError("option 'normalized_shape' of layer 'layernorm' needs at least "
                             "one axis, got []")
        super().__init__(shape[-1], eps, affine)
        self.normalized_shape = tuple(dim(s) for s in shape)
        self.given_shape = normalized_shape is not None

    def options(self):
        if not self.given_shape:
            return super().options()
        return {"normalized_shape": self.normalized_shape, "eps": self.eps,
                "affine": self.affine}

    def param_shapes(self):
        shape = self.normalized_shape
        return {"gamma": shape, "beta": shape} if self.affine else {}

    def input_specs(self):
        return [("x", (BATCH,) + self.normalized_shape, "input", "float", {})]

    def reduced(self, ndim):
        return tuple(range(ndim - len(self.normalized_shape), ndim))

    def param_at(self, idx):
        return tuple(idx[len(idx) - len(self.normalized_shape):])

    def over(self):
        k = len(self.normalized_shape)
        return "the features" if k == 1 else f"the last {k} axes"

    def build(self, g, inputs, tag=""):
        (x,) = inputs
        layer = self.describe()
        k, want = len(self.normalized_shape), self.normalized_shape
        if k == 1:
            feature_size(x, self.features, f"y{tag}", layer)
        elif x.ndim <= k or tuple(x.shape[-k:]) != want:
            raise ShapeError(f"shapes {shape_str(x.shape)} and [.., {', '.join(map(str, want))}] "
                             f"do not match: {layer} normalises over the last {k} axes",
                             where=f"node y{tag}")
        tag = self.own_tag(g, tag)
        xhat, _ = self.statistics(g, x, tag, layer)
        return self.affine_out(g, xhat, tag, layer, x)


class BatchNorm(_Norm):
    """Normalise each feature over the batch (train) or with running statistics (eval)."""

    key, title, per = "batchnorm", "BatchNorm1d", "feature"

    def __init__(self, features="d", eps=1e-5, momentum=0.1, affine=True, train=True,
                 running_var="unbiased"):
        super().__init__(features, eps, affine)
        self.momentum, self.train = momentum, train
        self.running_var = running_var_option(running_var, self.key)

    def options(self):
        return {**super().options(), "momentum": self.momentum, "train": self.train,
                "running_var": self.running_var}

    def reduced(self, ndim):
        return tuple(a for a in range(ndim) if a != 1)

    def over(self):
        return "the batch"

    def check_input(self, x, node, layer):
        if x.ndim != 2:
            raise ShapeError(f"{layer} expects an input [B, {self.features}], got "
                             f"{shape_str(x.shape)} (BatchNorm2d normalises [B, C, H, W])",
                             where=f"node {node}")
        feature_size(x, self.features, node, layer)

    def build(self, g, inputs, tag=""):
        (x,) = inputs
        layer = self.describe()
        self.check_input(x, f"y{tag}", layer)
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
                        lambda *i: (x[i] - rm[i[1]]) / sp.sqrt(rv[i[1]] + eps),
                        layer=layer, text=f"({x.name} - {rm.name}) / sqrt({rv.name} + eps)")
        return self.affine_out(g, xhat, tag, layer)

    def running_updates(self, g, rm, rv, tag, size):
        m = g.constant("momentum", self.momentum)
        mu, var = g.tensor(f"mu{tag}"), g.tensor(f"var{tag}")
        g.define(f"{rm.name}_next", rm.shape, lambda i: (1 - m) * rm[i] + m * mu[i],
                 update=rm.name, text="running mean update")
        if self.running_var == "unbiased":
            new_var = lambda i: (1 - m) * rv[i] + m * var[i] * size / (size - 1)  # noqa: E731
        else:
            new_var = lambda i: (1 - m) * rv[i] + m * var[i]  # noqa: E731
        g.define(f"{rv.name}_next", rv.shape, new_var, update=rv.name,
                 text=f"running variance update ({self.running_var})")
        g.checks.append(lambda view: running_section(view, self, (rm.name, rv.name),
                                                     var.name, size))


class BatchNorm2d(BatchNorm):
    """Spatial BatchNorm: ``x: [B, C, H, W]``, each channel normalised over N, H and W
    (train) or with its running statistics (eval).

    >>> BatchNorm2d(8).graph().nodes["mu"].shape
    (8,)
    """

    key, title, per = "batchnorm2d", "BatchNorm2d", "channel"

    def __init__(self, features="C", eps=1e-5, momentum=0.1, affine=True, train=True,
                 running_var="unbiased", height="H", width="W"):
        super().__init__(features, eps, momentum, affine, train, running_var)
        self.height, self.width = dim(height), dim(width)

    def input_specs(self):
        return [("x", (BATCH, self.features, self.height, self.width), "input", "float", {})]

    def over(self):
        return "the batch and both spatial axes"

    def check_input(self, x, node, layer):
        check_channels(x, self.features, layer, f"node {node}")


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


NORMS = (LayerNorm, BatchNorm, BatchNorm2d, Dropout)


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
    step = Step(sp.IndexedBase(x + "_bar")[labels], [body],
                note=f"equals the chain above: max |difference| = {err:.1e} at random values "
                     f"({sizes_text})")
    text = (f"With ĝ = γ ⊙ ȳ and means over {layer.over()}: x̄ = (ĝ − mean(ĝ) − x̂ ⊙ "
            "mean(ĝ ⊙ x̂)) / σ, which for BatchNorm is (γ/σ)(ȳ − mean(ȳ) − x̂ mean(ȳ ⊙ x̂)).")
    return Section(f"{layer.title}: the input gradient in compact form", [step], text=text)


def running_section(view, layer, states, var, size):
    """The running-statistics update train mode performs, as the graph defines it (the
    variance also with the batch variance written out)."""
    from derive.derivation import Section, Step
    from derive.tensor.display import pretty
    from derive.tensor.index import inline

    g = view.g
    steps = []
    for state in states:
        node = g.nodes[f"{state}_next"]
        body, labels = pretty(node.rhs, node.indices)
        forms = [body]
        if state.startswith("running_var"):
            defs = {var: (g.nodes[var].indices, g.nodes[var].rhs)}
            written, _ = pretty(simplify_index(inline(node.rhs, defs), expand=False),
                                node.indices)
            if written != body:
                forms.append(written)
        steps.append(Step(sp.IndexedBase(state + "_new")[labels], forms,
                          note=f"{node.text}: {state} becomes "
                               f"{state}_new after each training batch"))
    which = ("the unbiased batch variance var·M/(M − 1), as PyTorch"
             if layer.running_var == "unbiased"
             else "the biased batch variance var (divide by M), as needle and CS231n")
    text = (f"Train mode also updates the running statistics eval mode normalises with: "
            f"running = (1 − momentum) running + momentum · batch statistic, over "
            f"M = {str(size).replace('*', '·')} entries per {layer.per}; the variance fed "
            f"to the estimate is {which} "
            f"(option running_var=\"{layer.running_var}\").")
    return Section(f"{layer.title}: running statistics (train mode)", steps, text=text)
