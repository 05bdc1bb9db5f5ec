"""Layers, each defined once element by element; gradients come from the engine.

A layer is a short class: its parameters and their shapes, its notation, and ``build``,
which adds its nodes to a :class:`~derive.tensor.tensor_graph.TensorGraph` using the shared
element-wise ops of :mod:`derive.tensor.ops`. Nothing here says how to differentiate.

>>> lin = Linear(4, 3)
>>> lin.parameters()
{'W': (3, 4), 'b': (3,)}
"""
from __future__ import annotations

import sympy as sp

from derive.errors import InputError, ShapeError
from derive.functions import ACTIVATIONS as FUNCTION_ACTIVATIONS
from derive.tensor import ops
from derive.tensor.tensor_graph import TensorGraph, shape_str
from derive.tensor.index import dim

BATCH = "B"


class Layer:
    """Base of every layer: parameters, a standalone graph, derive/evaluate helpers.

    Subclasses set ``key`` (the CLI name), ``title``, ``out_base`` (base name of the
    output node) and implement :meth:`param_shapes` and :meth:`build`. A layer without a
    useful gradient sets ``has_gradient = False`` and says why in ``no_gradient``: its
    derivation is the definition with that note.
    """

    key = ""
    title = ""
    out_base = "a"
    notation = ""
    n_inputs = 1
    has_gradient = True
    no_gradient = ("{title} is piecewise constant in the scores: its gradient is zero almost "
                   "everywhere and undefined at ties, so it gives no useful gradient; train "
                   "with a surrogate (hinge or cross-entropy) and report it as a metric.")

    # -- what a layer declares ---------------------------------------------------------
    def param_shapes(self):
        """Parameter name (unsuffixed) -> shape."""
        return {}

    def input_specs(self):
        """(name, shape, role, dtype, meta) of the inputs of the standalone layer."""
        return [("x", (BATCH, "d"), "input", "float", {})]

    def build(self, g, inputs, tag=""):
        """Add this layer's nodes to ``g`` reading ``inputs``; return the output Tensor."""
        raise NotImplementedError

    def options(self):
        """The constructor options, for titles and summaries."""
        return {}

    # -- derived conveniences -----------------------------------------------------------
    def parameters(self):
        """Parameter names and shapes, e.g. ``{'W': (3, 4), 'b': (3,)}``."""
        return {k: tuple(int(s) if getattr(s, "is_Integer", False) else s for s in v)
                for k, v in self.param_shapes().items()}

    def add_params(self, g, tag):
        return {k: g.leaf(f"{k}{tag}", v, role="param") for k, v in self.param_shapes().items()}

    def graph(self):
        """The standalone graph: inputs, parameters, this layer; output = its result."""
        g = TensorGraph(self.describe())
        inputs = [g.leaf(n, s, role=r, dtype=t, **m) for n, s, r, t, m in self.input_specs()]
        out = self.build(g, inputs, "")
        g.output = out.name
        return g

    def describe(self):
        opts = ", ".join(f"{k}={v}" for k, v in self.options().items())
        return f"{self.title}({opts})"

    def derive(self, wrt=None, values=None, upstream=None, all_steps=False):
        """The Derivation of every parameter's and input's gradient (index form, deltas,
        matrix form; scatters and gathers where the layer reads through computed indices),
        or of the definition alone, with the reason, when the layer has no gradient."""
        from derive.tensor.record import derive_forward, derive_graph

        if not self.has_gradient:
            d = derive_forward(self.graph(), values,
                               self.no_gradient.replace("{title}", self.title))
            d.meta["layer"] = self.key
            return d
        d = derive_graph(self.graph(), wrt, values, upstream, kind="layer", all_steps=all_steps)
        window = getattr(self, "k", None)
        if isinstance(window, int) and not isinstance(window, bool):
            d.meta["window"] = window  # the range of a pooling offset its forms print
        return d

    def program(self, wrt=None):
        """The kernel :class:`~derive.tensor.program.Program` (see the package docs)."""
        from derive.tensor.reverse_sweep import build_program

        return build_program(self.graph(), wrt)[0]

    def __repr__(self):
        return self.describe()


def feature_size(x, want, node, layer):
    """Check the last axis of ``x`` is ``want`` (ShapeError naming both shapes)."""
    if x.shape[-1] != dim(want):
        raise ShapeError(f"shapes {shape_str(x.shape)} and [.., {want}] do not match: "
                         f"{layer} expects {want} input features", where=f"node {node}")


class Linear(Layer):
    """``z[n,i] = Σ_j W[i,j] x[n,j] + b[i]`` (PyTorch layout ``W: [out, in]``).

    >>> Linear(2, 3, bias=False).parameters()
    {'W': (3, 2)}
    """

    key, title, out_base, notation = "linear", "Linear", "z", r"\operatorname{Linear}"

    def __init__(self, in_features="d", out_features="h", bias=True):
        self.in_features, self.out_features, self.bias = dim(in_features), dim(out_features), bias

    def options(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias}

    def param_shapes(self):
        shapes = {"W": (self.out_features, self.in_features)}
        if self.bias:
            shapes["b"] = (self.out_features,)
        return shapes

    def input_specs(self):
        return [("x", (BATCH, self.in_features), "input", "float", {})]

    def build(self, g, inputs, tag=""):
        (x,) = inputs
        name = g.unique(f"{self.out_base}{tag}")
        feature_size(x, self.in_features, name, self.describe())
        p = self.add_params(g, tag)
        z = ops.matmul(x, ops.transpose(p["W"]), where=f"node {name}")
        if self.bias:
            z = ops.elementwise(lambda a, c: a + c, z, p["b"])
        text = f"{x.name} @ {p['W'].name}.T" + (f" + {p['b'].name}" if self.bias else "")
        return g.define(name, z.shape, z.element, layer=self.describe(), text=text)


class MatMul(Layer):
    """``C[i,k] = Σ_j A[i,j] B[j,k]``."""

    key, title, out_base, n_inputs = "matmul", "MatMul", "C", 2

    def input_specs(self):
        return [("A", ("m", "n"), "input", "float", {}),
                ("B", ("n", "p"), "input", "float", {})]

    def build(self, g, inputs, tag=""):
        a, b = inputs
        name = g.unique(f"{self.out_base}{tag}")
        c = ops.matmul(a, b, where=f"node {name}", text=f"{a.name} @ {b.name}")
        return g.define(name, c.shape, c.element, layer=self.title, text=f"{a.name} @ {b.name}")


class _Binary(Layer):
    """Elementwise combination of two same-shape inputs (residual connections)."""

    n_inputs = 2
    symbol = "+"

    def input_specs(self):
        return [("x", (BATCH, "d"), "input", "float", {}),
                ("y", (BATCH, "d"), "input", "float", {})]

    def combine(self, a, b):
        raise NotImplementedError

    def build(self, g, inputs, tag=""):
        a, b = inputs
        name = g.unique(f"{self.out_base}{tag}")
        out = ops.elementwise(self.combine, a, b, where=f"node {name}",
                              op=f"{a.name} {self.symbol} {b.name}")
        return g.define(name, out.shape, out.element, layer=self.title,
                        text=f"{a.name} {self.symbol} {b.name}")


class AddLayer(_Binary):
    """``s = x + y`` entry by entry (a residual connection)."""

    key, title, out_base, symbol = "add", "Add", "s", "+"

    def combine(self, a, b):
        return a + b


class MulLayer(_Binary):
    """``s = x ⊙ y`` entry by entry (gating)."""

    key, title, out_base, symbol = "mul", "Mul", "s", "*"

    def combine(self, a, b):
        return a * b


class Activation(Layer):
    """``a = f(x)`` entry by entry; ``op`` is the shared definition in :mod:`ops`."""

    out_base = "a"

    def op(self, x):
        raise NotImplementedError

    def build(self, g, inputs, tag=""):
        (x,) = inputs
        out = self.op(x)
        name = g.unique(f"{self.out_base}{tag}")
        return g.define(name, out.shape, out.element, layer=self.describe(),
                        text=f"{self.key}({x.name})")


def _activation(key, title, fn, doc, **defaults):
    """Make an Activation subclass whose options are ``defaults``."""

    def __init__(self, **kw):
        unknown = set(kw) - set(defaults)
        if unknown:
            raise InputError(f"{title} has no option {sorted(unknown)[0]!r} "
                             f"(options: {', '.join(defaults) or 'none'})")
        self.opts = {**defaults, **kw}

    def op(self, x):
        return fn(x, **self.opts)

    def options(self):
        return dict(self.opts)

    return type(title, (Activation,), {"key": key, "title": title, "__doc__": doc,
                                       "__init__": __init__, "op": op, "options": options})


def _elementwise_layer(row):
    """The activation layer of a function registry row (ReLU from the ``relu`` row)."""
    return _activation(row.name, row.activation, lambda x, **o: ops.activation(row, x, **o),
                       row.doc, **{p.name: p.default for p in row.params})


#: class name -> activation layer, one per registry row marked ``activation=``
ELEMENTWISE = {row.activation: _elementwise_layer(row) for row in FUNCTION_ACTIVATIONS}
globals().update(ELEMENTWISE)  # Sigmoid, Tanh, ReLU, ... are attributes of this module
Softmax = _activation("softmax", "Softmax", ops.softmax,
                      "``p[n,i] = exp(x[n,i] - LSE_k x[n,k])`` along ``axis``.", axis=-1)
LogSoftmax = _activation("log_softmax", "LogSoftmax", ops.log_softmax,
                         "``x[n,i] - LSE_k x[n,k]`` along ``axis``.", axis=-1)
Softmax.out_base = "p"
LogSoftmax.out_base = "q"

ACTIVATIONS = tuple(ELEMENTWISE.values()) + (Softmax, LogSoftmax)


def sizes_of(value):
    """A dimension or int as text for summaries."""
    return str(value) if isinstance(value, sp.Basic) else repr(value)
