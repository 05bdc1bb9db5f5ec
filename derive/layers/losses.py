"""Losses and penalties as layers: a 0-d output ``L`` (mean over the batch).

Each is its one-line definition in :mod:`derive.tensor.ops`; the engine derives the
gradient (softmax cross-entropy's logit gradient comes out as ``(p - onehot(y)) / B``).
Labels for cross-entropy, hinge and 0/1 loss are integer class indices ``y: [B]``.

>>> CrossEntropy(classes=3).input_specs()[1][:3]
('y', ('B',), 'label')
"""
from __future__ import annotations

from derive.errors import InputError
from derive.tensor import ops
from derive.tensor.index import dim
from derive.layers.dense import BATCH, Layer


class Loss(Layer):
    """A layer with a scalar output ``L`` and a target / label input."""

    out_base = "L"
    n_inputs = 2
    labels = "float"  # "float": targets shaped like the scores; "int": class indices [B]

    def __init__(self, classes="C"):
        self.classes = dim(classes)

    def options(self):
        return {}

    def input_specs(self):
        scores = (BATCH, self.classes)
        if self.labels == "int":
            return [("z", scores, "input", "float", {}),
                    ("y", (BATCH,), "label", "int", {"classes": self.classes})]
        return [("z", scores, "input", "float", {}), ("y", scores, "target", "float", {})]

    def loss(self, z, y, where):
        raise NotImplementedError

    def build(self, g, inputs, tag=""):
        z, y = inputs
        name = g.unique(self.out_base + tag)
        out = self.loss(z, y, f"node {name}")
        return g.define(name, (), out.element, layer=self.describe(),
                        text=f"{self.key}({z.name}, {y.name})")


class MSE(Loss):
    """``L = mean((z - y)^2)`` over all entries."""

    key, title = "mse", "MSELoss"

    def loss(self, z, y, where):
        return ops.mse(z, y, where)


class BCE(Loss):
    """``L = -mean(y log p + (1-y) log(1-p))`` on probabilities ``p`` (here ``z``)."""

    key, title = "bce", "BCELoss"

    def loss(self, z, y, where):
        return ops.bce(z, y, where)


class BCEWithLogits(Loss):
    """``L = mean(softplus(z) - y z)``: BCE on logits; ∂L/∂z = (σ(z) - y)/N."""

    key, title = "bce_logits", "BCEWithLogitsLoss"

    def loss(self, z, y, where):
        return ops.bce_logits(z, y, where)


class CrossEntropy(Loss):
    """Softmax cross-entropy on logits: ``L = (1/B) Σ_n (LSE_k z[n,k] - z[n, y_n])``."""

    key, title, labels = "cross_entropy", "CrossEntropyLoss", "int"

    def loss(self, z, y, where):
        return ops.cross_entropy(z, y, where)


class Hinge(Loss):
    """Multiclass SVM: ``L = (1/B) Σ_n Σ_{j≠y_n} max(0, z_nj - z_ny + Δ)`` (CS231n).

    PyTorch's ``MultiMarginLoss`` also divides by the number of classes C.
    """

    key, title, labels = "hinge", "MultiClassHinge", "int"

    def __init__(self, classes="C", margin=1):
        super().__init__(classes)
        self.margin = margin

    def options(self):
        return {"margin": self.margin}

    def loss(self, z, y, where):
        return ops.hinge(z, y, self.margin, where)


class ZeroOne(Loss):
    """0/1 loss: the fraction misclassified (argmax ≠ label). No useful gradient."""

    key, title, labels, has_gradient = "zero_one", "ZeroOneLoss", "int", False

    def loss(self, z, y, where):
        return ops.zero_one(z, y, where)


class Penalty(Layer):
    """A weight penalty on one tensor ``w``; output the scalar ``R``.

    ``lam`` is λ (not negative). The squared penalties (L2, elastic net) take ``scale``:
    ``"lambda/2"`` (the default) writes ``(λ/2) Σ w²``, whose gradient is ``λ w`` (PyTorch's
    weight decay); ``"lambda"`` writes ``λ Σ w²`` as the lecture slides do, gradient ``2λ w``.
    """

    out_base = "R"

    def __init__(self, lam=0.01, shape=("h", "d")):
        ops.penalty_weight(lam, f"{self.key} option 'lam'")
        self.lam = lam
        self.shape = tuple(dim(s) for s in shape)

    def options(self):
        return {"lam": self.lam}

    def input_specs(self):
        return [("w", self.shape, "param", "float", {})]

    def penalty(self, w):
        raise NotImplementedError

    def convention(self):
        """The note stating the squared penalty's scale convention (None: no square)."""
        scale = getattr(self, "scale", None)
        if scale is None:
            return None
        form, grad = (("(λ/2) Σ w²", "λ w") if scale == "lambda/2" else ("λ Σ w²", "2λ w"))
        other = "lambda" if scale == "lambda/2" else "lambda/2"
        return (f"L2 convention scale = {scale}: the squared term is {form}, so its gradient "
                f"is {grad} (scale = {other} gives the other textbook form).")

    def derive(self, wrt=None, values=None, upstream=None, all_steps=False):
        d = super().derive(wrt, values, upstream, all_steps)
        if self.convention():
            d.note(self.convention())
        return d

    def build(self, g, inputs, tag=""):
        (w,) = inputs
        name = g.unique(self.out_base + tag)
        out = self.penalty(w)
        return g.define(name, (), out.element, layer=self.describe(),
                        text=f"{self.key}({w.name})")


def _scale(layer, scale):
    """``scale`` checked (one line naming the layer's option otherwise)."""
    try:
        ops.l2_factor(scale)
    except InputError as exc:
        raise InputError(f"{layer.key} option 'scale': {exc.message}") from None
    return scale


class L1(Penalty):
    """``R = λ Σ |w|`` (sign(0) = 0)."""

    key, title = "l1", "L1Penalty"

    def penalty(self, w):
        return ops.l1(w, self.lam)


class L2(Penalty):
    """``R = (λ/2) Σ w²``: gradient ``λ w`` (weight decay); ``scale="lambda"``:
    ``R = λ Σ w²``, gradient ``2λ w``.

    >>> L2(0.1, scale="lambda").options()
    {'lam': 0.1, 'scale': 'lambda'}
    """

    key, title = "l2", "L2Penalty"

    def __init__(self, lam=0.01, shape=("h", "d"), scale="lambda/2"):
        super().__init__(lam, shape)
        self.scale = _scale(self, scale)

    def options(self):
        return {"lam": self.lam, "scale": self.scale}

    def penalty(self, w):
        return ops.l2(w, self.lam, self.scale)


class ElasticNet(Penalty):
    """``R = λ1 Σ |w| + (λ2/2) Σ w²``; ``scale="lambda"``: ``λ1 Σ |w| + λ2 Σ w²``."""

    key, title = "elastic_net", "ElasticNetPenalty"

    def __init__(self, l1=0.01, l2=0.01, shape=("h", "d"), scale="lambda/2"):
        for option, value in (("l1", l1), ("l2", l2)):
            ops.penalty_weight(value, f"{self.key} option {option!r}")
        self.lam, self.shape = l1, tuple(dim(s) for s in shape)
        self.l1_weight, self.l2_weight = l1, l2
        self.scale = _scale(self, scale)

    def options(self):
        return {"l1": self.l1_weight, "l2": self.l2_weight, "scale": self.scale}

    def penalty(self, w):
        return ops.elastic_net(w, self.l1_weight, self.l2_weight, self.scale)


LOSSES = (MSE, BCE, BCEWithLogits, CrossEntropy, Hinge, ZeroOne)
PENALTIES = (L1, L2, ElasticNet)
