"""Random tensor compositions from the layer catalogue, and their compiled kernels.

A :class:`TensorCase` is a network written as a list of :class:`Spec` (a constructor of
``derive`` and its arguments: one source for the layer, its PyTorch twin and the
one-line reproduction), random sizes and a seed for the values. Three families:

* dense Sequentials: Linear, every activation, LayerNorm, BatchNorm (train and eval),
  Dropout (train and eval), with or without a loss;
* conv nets: Conv2d (stride, padding, circular padding), pooling, Flatten or global
  average pooling, Linear, a loss;
* single rows of the layer table (tests/test_tensor_table.py: every layer, recurrent,
  attention and message passing included) at random sizes and values.

Checks reuse the table's helpers: ``check_finite_differences`` (float64 central
differences along random directions, JAX's check_vjp) and ``check_torch`` (PyTorch's
autograd through the twin). :func:`check_kernel` compares the generated forward+VJP
kernel (kernels.vjp) with ``derive.evaluate``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fuzzgen import TIME_LIMIT, chance, pick, timed


@dataclass
class Spec:
    """``getattr(derive, ctor)(*args, **kw)``; ``leaves`` counts the leaf tensors it owns
    by role (in the order the graph lists them)."""

    ctor: str
    args: tuple = ()
    kw: dict = field(default_factory=dict)

    def make(self):
        import derive as dv

        return getattr(dv, self.ctor)(*self.args, **self.kw)

    def code(self):
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kw.items()]
        return f"dv.{self.ctor}({', '.join(parts)})"

    def leaves(self, train):
        """{role: count} of the leaves this layer adds (in train or eval mode)."""
        affine, bias = self.kw.get("affine", True), self.kw.get("bias", True)
        return {"Linear": {"param": 1 + bias}, "Conv2d": {"param": 1 + bias},
                "LayerNorm": {"param": 2 * affine},
                "BatchNorm": {"state": 2, "param": 2 * affine},
                "Dropout": {"mask": int(train)}}.get(self.ctor, {})


ACTIVATIONS = ["Sigmoid", "Tanh", "ReLU", "LeakyReLU", "GELU", "ELU", "Softplus", "Softmax",
               "LogSoftmax", "Step"]
LOSSES = [None, "MSE", "SoftmaxCrossEntropy", "CrossEntropy", "BCEWithLogits", "BCE",
          "Hinge"]


def activation(src):
    name = pick(src, ACTIVATIONS)
    if name == "LeakyReLU":
        return Spec(name, kw={"k": pick(src, [0.01, 0.2, -0.5])})
    if name == "ELU":
        return Spec(name, kw={"alpha": pick(src, [1.0, 0.5, 1.5])})
    return Spec(name)


def dense_block(src, d):
    """One random layer on ``d`` features: (Spec, features after it)."""
    kind = src.integer(0, 9)
    if kind < 3:
        out = src.integer(1, 4)
        return Spec("Linear", (d, out), {"bias": chance(src, 75)}), out
    if kind < 6:
        return activation(src), d
    if kind < 7:
        return Spec("LayerNorm", (d,), {"affine": chance(src, 70)}), d
    # train/eval is the Sequential's (it sets the mode of every BatchNorm and Dropout)
    if kind < 8:
        return Spec("BatchNorm", (d,), {"affine": chance(src, 70),
                                        "momentum": pick(src, [0.1, 0.5])}), d
    return Spec("Dropout", (pick(src, [0.1, 0.25, 0.5]),),
                {"seed": src.integer(0, 9), "features": d}), d


def loss_spec(src, layers, d):
    """A loss for ``d`` outputs (BCE gets a Sigmoid in front)."""
    name = pick(src, LOSSES)
    if name == "BCE":
        layers.append(Spec("Sigmoid"))
    if name == "Hinge":
        return Spec(name, kw={"margin": pick(src, [1, 0.5])})
    return Spec(name) if name else None


@dataclass
class TensorCase:
    family: str
    layers: list            # Specs
    loss: Spec | None = None
    input_shape: tuple | None = None
    batch: int = 3
    seed: int = 0
    row: object = None      # a table Row (single-layer family)
    sizes: dict = None
    train: bool = True
    penalty: Spec | None = None

    def make(self):
        import derive as dv

        if self.row is not None:
            return self.row.make()
        kw = {"loss": self.loss.make() if self.loss else None, "train": self.train}
        if self.input_shape:
            kw["input_shape"] = self.input_shape
        if self.penalty:
            kw["penalty"] = self.penalty.make()
        return dv.Sequential(*[s.make() for s in self.layers], **kw)

    def repro(self):
        where = f"sizes={self.sizes}, seed={self.seed}"
        if self.row is not None:
            return f"table row {self.row.name!r}, {where}"
        layers = ", ".join(s.code() for s in self.layers)
        extra = f", loss={self.loss.code()}" if self.loss else ""
        extra += f", input_shape={self.input_shape}" if self.input_shape else ""
        extra += f", penalty={self.penalty.code()}" if self.penalty else ""
        extra += "" if self.train else ", train=False"
        return f"dv.Sequential({layers}{extra}), {where}"

    __repr__ = repro

    def domain(self):
        """Value generators by tensor name (targets of BCE losses in [0, 1])."""
        if self.row is not None:
            return self.row.domain
        if self.loss and self.loss.ctor in ("BCE", "BCEWithLogits"):
            return {"y": lambda rng, shape: rng.uniform(0, 1, shape)}
        return {}


def dense_case(src):
    d = src.integer(1, 4)
    layers, h = [], d
    for _ in range(src.integer(1, 4)):
        spec, h = dense_block(src, h)
        layers.append(spec)
    if not any(s.ctor == "Linear" for s in layers):
        layers.insert(0, Spec("Linear", (d, h)))
    loss = loss_spec(src, layers, h)
    penalty = None
    if loss and chance(src, 30):
        penalty = pick(src, [Spec("L2", (0.3,)), Spec("L1", (0.2,)),
                             Spec("ElasticNet", (0.2, 0.4))])
    train = chance(src, 70)
    # PyTorch refuses batch statistics of one example
    batch = src.integer(1 + (train and any(s.ctor == "BatchNorm" for s in layers)), 4)
    return TensorCase("dense", layers, loss, batch=batch, seed=src.integer(0, 10**6),
                      sizes={"B": batch}, train=train, penalty=penalty)


def _out(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def conv_case(src):
    """Conv2d -> [activation] -> [pool] -> Flatten | GlobalAvgPool -> Linear [-> loss]."""
    c, height, width = src.integer(1, 2), src.integer(3, 6), src.integer(3, 6)
    f, k, s, p = src.integer(1, 3), src.integer(1, 3), src.integer(1, 2), src.integer(0, 1)
    mode = "circular" if p and chance(src, 30) else "zeros"
    layers = [Spec("Conv2d", (c, f, k), {"stride": s, "padding": p, "padding_mode": mode,
                                         "bias": chance(src, 70)})]
    h, w = _out(height, k, s, p), _out(width, k, s, p)
    if chance(src, 70):
        layers.append(activation(src) if chance(src, 50) else Spec("ReLU"))
    if min(h, w) >= 2 and chance(src, 60):
        pool, stride = pick(src, ["MaxPool2d", "AvgPool2d"]), pick(src, [None, 1])
        layers.append(Spec(pool, (2,), {"stride": stride} if stride else {}))
        h, w = _out(h, 2, stride or 2, 0), _out(w, 2, stride or 2, 0)
    if chance(src, 50):
        layers.append(Spec("Flatten"))
        features = f * h * w
    else:
        layers.append(Spec("GlobalAvgPool"))
        features = f
    classes = src.integer(1, 3)
    layers.append(Spec("Linear", (features, classes)))
    loss = loss_spec(src, layers, classes)
    batch = src.integer(1, 3)
    return TensorCase("conv", layers, loss, input_shape=(c, height, width), batch=batch,
                      seed=src.integer(0, 10**6), sizes={"B": batch})


def table_rows():
    """Every row of the layer table, with the sizes it runs at."""
    import test_tensor_table as table

    return [(r, r.sizes) for r in table.ROWS]


def table_case(src):
    """One catalogue row at random sizes (each within one of the table's own) and values."""
    row, base = pick(src, table_rows())
    sizes = {k: src.integer(max(1, v - 1), v + 1) for k, v in base.items()}
    return TensorCase("table", [], row=row, seed=src.integer(0, 10**6), sizes=sizes)


FAMILIES = {"dense": dense_case, "conv": conv_case, "table": table_case}


def tensor_case(src, family=None):
    return FAMILIES[family or pick(src, list(FAMILIES))](src)


# -- the PyTorch twin -----------------------------------------------------------------------
def torch_twin(case, program):
    """``(t, layer) -> output`` in PyTorch for a composition (t: torch tensors by name)."""
    if case.row is not None:
        return case.row.torch
    owned = owned_leaves(case, program)

    def forward(t, layer):
        h = t["x"]
        for spec, names in zip(case.layers, owned):
            h = _torch_layer(spec, h, [t[n] for role in ("state", "param", "mask")
                                       for n in names.get(role, [])], case.train)
        if not case.loss:
            return h
        loss = _torch_loss(case.loss, h, t)
        if case.penalty:
            weights = [t[n] for n in program.tensors if n[:1] == "W" and n[1:].isdigit()]
            loss = loss + sum(_torch_penalty(case.penalty, w) for w in weights)
        return loss

    return forward


def owned_leaves(case, program):
    """Per layer of a composition, {role: [leaf names]} (the graph lists them in order)."""
    queues = {}
    for name, info in program.tensors.items():
        queues.setdefault(info.role, []).append(name)
    return [{role: [queues[role].pop(0) for _ in range(n)]
             for role, n in spec.leaves(case.train).items() if n} for spec in case.layers]


def _torch_penalty(spec, w):
    if spec.ctor == "L2":
        return spec.args[0] / 2 * (w ** 2).sum()
    if spec.ctor == "L1":
        return spec.args[0] * w.abs().sum()
    return spec.args[0] * w.abs().sum() + spec.args[1] / 2 * (w ** 2).sum()


def _torch_layer(spec, h, leaves, train):
    import torch.nn.functional as F

    c, kw = spec.ctor, spec.kw
    if c in ("Linear", "Conv2d"):
        weight, bias = leaves[0], (leaves[1] if len(leaves) > 1 else None)
        if c == "Linear":
            return F.linear(h, weight, bias)
        p = kw.get("padding", 0)
        if kw.get("padding_mode") == "circular":
            h, p = F.pad(h, (p, p, p, p), mode="circular"), 0
        return F.conv2d(h, weight, bias, stride=kw.get("stride", 1), padding=p)
    if c in ("LayerNorm", "BatchNorm"):
        return _torch_norm(spec, h, leaves, train)
    if c == "Dropout":
        return h * leaves[0] / (1 - spec.args[0]) if train else h
    return TORCH_ELEMENTWISE[c](h, spec)


def _torch_norm(spec, h, leaves, train):
    import torch.nn.functional as F

    affine = spec.kw.get("affine", True)
    if spec.ctor == "LayerNorm":
        gamma, beta = leaves if affine else (None, None)
        return F.layer_norm(h, (h.shape[-1],), gamma, beta, 1e-5)
    mean, var = leaves[0].detach().clone(), leaves[1].detach().clone()
    gamma, beta = leaves[2:] if affine else (None, None)
    return F.batch_norm(h, mean, var, gamma, beta, training=train,
                        momentum=spec.kw.get("momentum", 0.1), eps=1e-5)


def _F():
    import torch.nn.functional as F

    return F


TORCH_ELEMENTWISE = {
    "Sigmoid": lambda h, s: h.sigmoid(), "Tanh": lambda h, s: h.tanh(),
    "ReLU": lambda h, s: h.relu(),
    "LeakyReLU": lambda h, s: _F().leaky_relu(h, s.kw["k"]),
    "GELU": lambda h, s: _F().gelu(h, approximate="tanh"),
    "ELU": lambda h, s: _F().elu(h, s.kw["alpha"]),
    "Softplus": lambda h, s: _F().softplus(h),
    "Softmax": lambda h, s: h.softmax(-1), "LogSoftmax": lambda h, s: h.log_softmax(-1),
    "Step": lambda h, s: (h > 0).double() + 0 * h,
    "MaxPool2d": lambda h, s: _F().max_pool2d(h, s.args[0], s.kw.get("stride")),
    "AvgPool2d": lambda h, s: _F().avg_pool2d(h, s.args[0], s.kw.get("stride")),
    "GlobalAvgPool": lambda h, s: h.mean((2, 3)), "Flatten": lambda h, s: h.flatten(1),
}


def _torch_loss(spec, z, t):
    F, y = _F(), t["y"]
    return {"MSE": lambda: F.mse_loss(z, y),
            "SoftmaxCrossEntropy": lambda: F.cross_entropy(z, y),
            "CrossEntropy": lambda: F.cross_entropy(z, y),
            "BCEWithLogits": lambda: F.binary_cross_entropy_with_logits(z, y),
            # derivekit's definition written out: F.binary_cross_entropy's backward divides
            # by max(p (1 - p), 1e-12), so it is not the derivative of its forward where
            # the sigmoid saturates (tensor:148 of the long profile, seed 202)
            "BCE": lambda: -(y * z.log() + (1 - y) * (1 - z).log()).mean(),
            "Hinge": lambda: F.multi_margin_loss(z, y, margin=float(spec.kw["margin"]))
            * z.shape[1]}[spec.ctor]()


# -- checks ---------------------------------------------------------------------------------
def prepare(case):
    """(layer, program, row, values, upstream) with the case's sizes and seed."""
    import derive as dt
    from test_tensor_table import Row, instance

    layer = case.make()
    if case.row is not None:
        import test_tensor_table as table

        program = table.program_of(case.row.name)[1]
        row = case.row
    else:
        program = dt.program(layer)
        row = Row("composition", case.make, None, case.domain())
        row.torch = torch_twin(case, program)
    values = instance(program, case.sizes, row, case.seed)
    values = moderate_logits(case, program, values)
    out, _ = dt.evaluate(program, values)
    upstream = np.random.default_rng(case.seed + 1).normal(size=np.shape(out))
    return layer, program, row, values, upstream


LOGIT_BOUND = 8.0


def moderate_logits(case, program, values, bound=LOGIT_BOUND):
    """``values`` with the logits in front of a BCE loss within ``±bound``.

    BCE reads the sigmoid's output p, and in float64 ``1 - p`` loses about
    ``-log10(1 - p)`` of its 16 digits: at a logit of 30 the loss is a staircase and no
    finite difference can judge its gradient (tensor:586 of the long profile, seed 202).
    Where a logit exceeds the bound, the parameters of the last Linear and of every
    layer after it are scaled down (by at least half each time) until none does; the
    values stay a function of the case's seed, and cases within the bound are untouched.
    At 8, 1 - p >= 3e-4 and the central difference's rounding stays near 1e-7 relative.
    """
    if case.row is not None or not case.loss or case.loss.ctor != "BCE":
        return values
    logits = next(a.rhs.args[0].base.label.name for a in reversed(program.forward)
                  if getattr(a.rhs, "func", None) is not None
                  and getattr(a.rhs.func, "__name__", "") == "sigmoid")
    owned = owned_leaves(case, program)
    last = max(i for i, spec in enumerate(case.layers) if spec.ctor == "Linear")
    params = [n for leaves in owned[last:] for n in leaves.get("param", [])]
    values = dict(values)
    for _ in range(60):
        worst = float(np.abs(program.run(values, backward=False)[logits]).max())
        if worst <= bound:
            break
        factor = min(0.9 * bound / worst, 0.5) if np.isfinite(worst) else 0.5
        values.update({n: values[n] * factor for n in params})
    return values


def check_tensor(case, use_torch=False, limit=TIME_LIMIT):
    """derive.evaluate's VJPs against float64 finite differences (and PyTorch)."""

    def body():
        import derive as dt
        from test_tensor_table import check_finite_differences, check_torch

        layer, program, row, values, upstream = prepare(case)
        out, grads = dt.evaluate(program, values, upstream=upstream)
        try:
            check_finite_differences(program, values, upstream, grads)
        except AssertionError:
            problem = recheck_finite_differences(program, values, upstream, grads)
            if problem:
                return "mismatch", f"finite differences: {problem}"
        if use_torch and row.torch is not None:
            import torch

            try:
                check_torch(torch, row, layer, program, values, upstream, out, grads)
            except AssertionError as exc:
                return "mismatch", f"torch: {str(exc)[:400]}"
        return "ok", ""

    return timed("tensor", case.repro(), body, limit)


def recheck_finite_differences(program, values, upstream, grads, rtol=1e-6):
    """After the tables' check failed: is it the gradient or the difference's rounding?

    The tables' central difference (step 1e-6) loses about 1e-16 |f| / 1e-6 to rounding,
    too much where the forward pass is itself ill-conditioned (a BCE of a sigmoid near
    1). A fourth-order difference with steps 1e-3 and 1e-4 has errors near 1e-12 either
    way; the gradient is wrong only if neither agrees. Returns the worst disagreement as
    text, or "" when the gradient holds."""
    import derive as dt

    rng = np.random.default_rng(11)
    for _ in range(2):
        t = {w: rng.normal(size=np.shape(values[w])) for w in grads}
        analytic = sum(float(np.sum(t[w] * grads[w])) for w in grads)
        scale = sum(float(np.sum(np.abs(t[w] * grads[w]))) for w in grads) + 1e-8

        def f(step):
            shifted = {k: (v + step * t[k] if k in t else v) for k, v in values.items()}
            return float(np.sum(upstream * dt.evaluate(program, shifted)[0]))

        numeric = [(-f(2 * h) + 8 * f(h) - 8 * f(-h) + f(-2 * h)) / (12 * h)
                   for h in (1e-3, 1e-4)]
        if min(abs(n - analytic) for n in numeric) > rtol * scale:
            return (f"<t, vjp> = {analytic!r} but the difference along t gives {numeric[0]!r} "
                    f"(step 1e-3) and {numeric[1]!r} (step 1e-4)")
    return ""


def check_kernel(case, limit=120.0):
    """The compiled forward+VJP kernel gives derive.evaluate's output and gradients."""

    def body():
        import derive as dt
        from kernels import vjp

        layer, program, row, values, upstream = prepare(case)
        want_out, want = dt.evaluate(layer, values, upstream=upstream)
        got_out, got = vjp.run(layer, values, upstream=upstream)
        worst = [("output", _error(got_out, want_out))]
        worst += [(name, _error(got[name], want[name])) for name in want]
        bad = [(n, e) for n, e in worst if not e <= 1e-10]
        return ("mismatch", f"kernel differs from evaluate: {bad}") if bad else ("ok", "")

    return timed("kernel", case.repro(), body, limit)


def _error(got, want):
    got, want = np.asarray(got, float), np.asarray(want, float)
    if got.shape != want.shape:
        return float("inf")
    return float(np.abs(got - want).max(initial=0) / (1 + np.abs(want).max(initial=0)))
