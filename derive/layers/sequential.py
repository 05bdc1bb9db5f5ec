"""Compositions of layers: :class:`Sequential` and general :class:`Network` graphs.

Naming (stable: kernels and reports rely on it): layers are numbered by block, the
counter going up at every layer with parameters; ``Linear`` k has ``W{k}``, ``b{k}`` and
output ``z{k}``, the activation after it ``a{k}``, norms ``gamma{k}``/``beta{k}`` and
state ``running_mean{k}``/``running_var{k}``, Dropout's mask ``m{k}`` (a second
Dropout in the same block ``m{k}_2``, its output ``y{k}_2``); an ``RNN`` k has
``W_xh{k}``, ``W_hh{k}``, ``b{k}`` and per step t the input ``x{k}_t``, pre-activation
``a{k}_t`` and state ``h{k}_t``, starting from ``h_0 = 0`` (a Sequential feeds one
input). The network input is ``x: [B, in]`` (``x: [B, C, H, W]`` for a conv net,
``x: [B, T, d]`` for an RNN, from ``input_shape`` or the first layer), labels ``y`` and
the loss ``L``.

>>> from derive.layers import CrossEntropy, Linear, ReLU
>>> net = Sequential(Linear(4, 8), ReLU(), Linear(8, 3), loss=CrossEntropy())
>>> sorted(net.parameters())
['W1', 'W2', 'b1', 'b2']
"""
from __future__ import annotations

import sympy as sp

from derive.errors import InputError, ShapeError
from derive.tensor.tensor_graph import TensorGraph, shape_str
from derive.tensor.index import dim
from derive.layers.dense import BATCH, Layer, Linear
from derive.layers.losses import Loss, Penalty
from derive.layers.norms import BatchNorm, Dropout


class Model:
    """What Sequential and Network share: graph -> derive / program / summary."""

    title = "Model"

    def graph(self):
        raise NotImplementedError

    def parameters(self):
        """Parameter names and shapes, in order."""
        return {n.name: n.shape for n in self.graph().leaves("param")}

    def derive(self, wrt=None, values=None, upstream=None, all_steps=False):
        """The Derivation of every parameter's gradient (index and matrix form); with conv,
        pooling, recurrent, attention or graph layers also their scatter / gather forms.
        ``all_steps``: print every step of a long sequence (derive.tensor.record)."""
        from derive.tensor.record import derive_graph

        return derive_graph(self.graph(), wrt, values, upstream, kind="model",
                            all_steps=all_steps)

    def program(self, wrt=None):
        """The kernel Program (see :mod:`derive.tensor`)."""
        from derive.tensor.reverse_sweep import build_program

        return build_program(self.graph(), wrt)[0]

    def summary(self):
        """Per layer: output (activation) shape with symbolic batch B, parameters, counts.

        Returns a :class:`Summary`: a list of rows that prints as a table (``print(net.
        summary())`` in a script; a prompt shows it as is) and as an HTML table in Jupyter.
        """
        return Summary(self.graph())

    # values carried from PyTorch and back (derive/pytorch.py; torch loads there, lazily)
    def parameter_values(self):
        """``{name: float64 array}`` of the values this model carries (``dv.from_torch``)."""
        from derive import pytorch

        return pytorch.parameter_values(self)

    def set_parameter_values(self, source):
        """Carry ``source``'s values: a dict by name or a kernels Model after ``fit``."""
        from derive import pytorch

        return pytorch.set_parameter_values(self, source)

    def copy_values_to(self, kernel_model):
        """Write the carried values into a compiled kernels Model; returns it."""
        from derive import pytorch

        return pytorch.copy_values_to(self, kernel_model)

    def torch_state_dict(self, values=None):
        """The source torch module's ``state_dict`` holding this model's values."""
        from derive import pytorch

        return pytorch.torch_state_dict(self, values)

    def load_torch_state_dict(self, state_dict):
        """Carry the values of a torch ``state_dict`` of the source module (strict)."""
        from derive import pytorch

        return pytorch.load_torch_state_dict(self, state_dict)


class Sequential(Model):
    """Layers applied in order to ``x: [B, *input_shape]``, optionally ending in a ``loss``.

    Parameters
    ----------
    *layers : Layer
    loss : Loss, optional
        Adds labels ``y`` and the scalar output ``L`` (batch mean).
    in_features : int or str, optional
        Input width of a dense stack (``x: [B, in]``); default: the first Linear's
        ``in_features``.
    input_shape : tuple of int or str, optional
        The shape of ONE example (the batch ``B`` stays symbolic), e.g. ``(1, 8, 8)`` for
        8x8 single-channel images before a ``Conv2d``. Default: the first layer's own input
        shape when it reads more than one axis per example (``Conv2d(1, 8, 3, height=8,
        width=8)`` gives ``(1, 8, 8)``; without sizes, ``(1, H, W)`` with symbols), else
        ``(in_features,)``.
    train : bool
        Train mode (batch statistics, dropout masks) or eval mode for the whole stack.
    penalty : Penalty class or instance, optional
        Added to the loss for every weight matrix ``W{k}`` (e.g. ``L2(1e-4)``).
    """

    title = "Sequential"

    def __init__(self, *layers, loss=None, in_features=None, input_shape=None, train=True,
                 penalty=None):
        for k, layer in enumerate(layers):
            if not isinstance(layer, Layer) or isinstance(layer, (Loss, Penalty)):
                raise InputError(f"item {k + 1} of Sequential is not a layer: {layer!r:.40}")
        if loss is not None and not isinstance(loss, Loss):
            raise InputError(f"loss must be a Loss layer, got {loss!r:.40}")
        self.layers, self.loss, self.train, self.penalty = list(layers), loss, train, penalty
        if in_features is not None and input_shape is not None:
            raise InputError("give Sequential either in_features or input_shape, not both")
        self.input_shape = self._input_shape(input_shape, in_features)

    @property
    def in_features(self):
        """The input width of a dense stack (the last axis of one example)."""
        return self.input_shape[-1]

    def _input_shape(self, input_shape, in_features):
        if input_shape is not None:
            if isinstance(input_shape, (int, str)) or not len(input_shape):
                raise InputError(f"input_shape must be a non-empty tuple of sizes per example "
                                 f"(e.g. (1, 8, 8)), got {input_shape!r}")
            return tuple(dim(s) for s in input_shape)
        if in_features is not None:
            return (dim(in_features),)
        first = self._first_layer_shape()
        return first if first is not None else (self._infer_in(),)

    def _first_layer_shape(self):
        """The first layer's input shape per example when it has several axes (conv, RNN)."""
        if not self.layers:
            return None
        shape = tuple(self.layers[0].input_specs()[0][1])
        if len(shape) < 3 or str(shape[0]) != BATCH:
            return None
        return tuple(dim(s) for s in shape[1:])

    def _infer_in(self):
        for layer in self.layers:
            if isinstance(layer, Linear):
                return layer.in_features
            if getattr(layer, "features", None) is not None:
                return layer.features
        return dim("d")

    def graph(self):
        g = TensorGraph(self.describe())
        h = g.leaf("x", (dim(BATCH),) + self.input_shape, role="input", **self._input_kind())
        tags = block_tags(self.layers)
        for k, (layer, tag) in enumerate(zip(self.layers, tags)):
            set_mode(layer, self.train)
            try:
                h = build_labelled(layer, g, [h], tag, k + 1)
            except ShapeError as exc:
                raise self._shape_hint(exc, k) from None
        if self.loss is not None:
            g.prediction = h.name  # what the loss scores (kernels' predictions)
            h = self._add_loss(g, h)
        g.output = h.name
        return g

    def _input_kind(self):
        """``x``'s dtype: integer tokens (``dtype="int"``, ``classes``) when the first layer
        reads them (an Embedding), so ``x`` gets no gradient and is checked as indices."""
        spec = self.layers[0].input_specs()[0] if self.layers else None
        if spec is None or spec[3] != "int":
            return {}
        return {"dtype": "int", **spec[4]}

    def _shape_hint(self, exc, k):
        """The ShapeError, with a pointer to ``input_shape`` when symbolic sizes caused it."""
        free = [s for s in self.input_shape if not s.is_Integer]
        if k == 0 or not free or len(self.input_shape) < 2:
            return exc
        sizes = ", ".join(str(s) for s in self.input_shape)
        example = tuple(int(s) if s.is_Integer else 8 for s in self.input_shape)
        return ShapeError(f"{exc.message} (the input is [B, {sizes}] with {free[0]} unknown: "
                          f"give Sequential the size of one example, e.g. "
                          f"input_shape={example})", where=exc.where)

    def _add_loss(self, g, h):
        loss = self.loss
        if loss.labels == "int":
            y = g.leaf("y", (h.shape[0],), role="label", dtype="int", classes=h.shape[-1])
        else:
            y = g.leaf("y", h.shape, role="target")
        out = build_labelled(loss, g, [h, y], "", len(self.layers) + 1)
        if self.penalty is None:
            return out
        terms = [out]
        for w in [n for n in g.leaves("param") if n.name.startswith("W")]:
            terms.append(self.penalty.build(g, [g.tensor(w.name)], w.name[1:]))
        total = g.define("J", (), lambda: sp.Add(*[t[()] for t in terms]),
                         text=" + ".join(t.name for t in terms))
        return total

    def describe(self):
        inner = ", ".join(layer.describe() for layer in self.layers)
        tail = f", loss={self.loss.describe()}" if self.loss else ""
        return f"Sequential({inner}{tail})"


def block_tags(layers):
    """The block number of each layer (goes up at every layer with parameters)."""
    tags, k = [], 0
    for layer in layers:
        if layer.param_shapes() or k == 0:
            k += 1
        tags.append(str(k))
    return tags


def build_labelled(layer, g, inputs, tag, position):
    """``layer.build`` with its nodes labelled ``"<position>: <layer>"`` (for summaries)."""
    before = set(g.nodes)
    out = layer.build(g, inputs, tag)
    for name in g.nodes:
        if name not in before:
            g.nodes[name].layer = f"{position}: {layer.describe()}"
    return out


def set_mode(layer, train):
    if isinstance(layer, (BatchNorm, Dropout)):
        layer.train = train


class Network(Model):
    """A general graph of layers (residual connections, several inputs).

    >>> from derive.layers import AddLayer, ReLU
    >>> net = Network()
    >>> x = net.input("x", ["B", 4])
    >>> h = net.apply(Linear(4, 4), x)
    >>> s = net.apply(AddLayer(), net.apply(ReLU(), h), x)
    >>> net.set_output(s).name
    's3'
    """

    title = "Network"

    def __init__(self, title="Network"):
        self.g = TensorGraph(title)
        self.count = 0
        self.layers = []

    def input(self, name, shape, role="input", dtype="float", **meta):
        return self.g.leaf(name, shape, role=role, dtype=dtype, **meta)

    def apply(self, layer, *inputs):
        """Add ``layer`` reading ``inputs``; returns its output Tensor."""
        if len(inputs) != layer.n_inputs:
            raise InputError(f"{layer.describe()} takes {layer.n_inputs} input(s), "
                             f"got {len(inputs)}")
        self.count += 1
        self.layers.append(layer)
        return build_labelled(layer, self.g, list(inputs), str(self.count), self.count)

    def unstack(self, tensor, names):
        """Named outputs of a stacked one: ``h, c = net.unstack(state, ["h_next", "c_next"])``
        defines ``h_next = state[:, 0, ...]``, ``c_next = state[:, 1, ...]`` (an LSTMCell's
        ``[h'; c']: [B, 2, h]``), nodes the next layers read and the sweep differentiates."""
        shape = tuple(tensor.shape)
        if len(shape) < 2 or shape[1] != len(names):
            raise ShapeError(f"shape {shape_str(shape)} of {tensor.name} does not stack "
                             f"{len(names)} outputs ({', '.join(map(str, names))}) on axis 1")
        return [self.g.define(self.g.unique(str(name)), shape[:1] + shape[2:],
                              lambda n, *rest, k=k: tensor[(n, k) + rest],
                              text=f"{tensor.name}[:, {k}]") for k, name in enumerate(names)]

    def set_output(self, tensor):
        self.g.output = tensor.name
        return tensor

    def graph(self):
        if self.g.output is None:
            raise InputError("the network has no output (call set_output)")
        return self.g


class Summary(list):
    """A per-layer table: output shape, parameters (names, shapes), counts.

    A list of rows (``{"layer", "output", "shape", "params", "count"}``, also as ``.rows``)
    with ``.total``; ``print`` and ``repr`` give the table as text (so ``net.summary()``
    at a prompt shows it), Jupyter an HTML table.
    """

    HEAD = ("layer", "output", "shape", "parameters")

    def __init__(self, graph):
        super().__init__()
        seen = set()
        for node in graph.nodes.values():
            if node.is_leaf or node.meta.get("update") or not node.layer:
                continue
            layer = node.layer
            params = [p for p in graph.nodes.values() if p.role == "param"
                      and p.name in _inputs_of_layer(graph, layer) and p.name not in seen]
            seen.update(p.name for p in params)
            row = {"layer": layer, "output": node.name, "shape": node.shape,
                   "params": {p.name: p.shape for p in params},
                   "count": sum(_numel(p.shape) for p in params)}
            if self and self[-1]["layer"] == layer:
                self[-1].update(output=node.name, shape=node.shape)
                self[-1]["params"].update(row["params"])
                self[-1]["count"] += row["count"]
            else:
                self.append(row)
        self.total = sum(r["count"] for r in self)

    @property
    def rows(self):
        """The rows (this list itself; kept for callers of the former attribute)."""
        return self

    def cells(self):
        """Each row as text: layer, output, shape, parameters (``W1 [4, 3], b1 [4]``)."""
        return [(str(r["layer"]), str(r["output"]), shape_str(r["shape"]),
                 ", ".join(f"{k} {shape_str(v)}" for k, v in r["params"].items()))
                for r in self]

    def __str__(self):
        rows = [self.HEAD] + [c[:3] + (f"{c[3]} = {r['count']}" if c[3] else "",)
                              for r, c in zip(self, self.cells())]
        widths = [max(len(row[k]) for row in rows) for k in range(3)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[3]
                 for row in rows]
        return "\n".join(line.rstrip() for line in lines) + f"\ntotal parameters: {self.total}"

    __repr__ = __str__

    def _repr_pretty_(self, p, cycle):
        p.text("Summary(...)" if cycle else str(self))

    def _repr_html_(self):
        from html import escape

        head = "".join(f"<th>{h}</th>" for h in self.HEAD + ("count",))
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells[:3])
            + f"<td>{escape(cells[3])}</td>"
            + f'<td style="text-align:right">{escape(str(r["count"]))}</td></tr>'
            for r, cells in zip(self, self.cells()))
        return (f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
                f'<tfoot><tr><th colspan="4" style="text-align:left">total parameters</th>'
                f'<th style="text-align:right">{escape(str(self.total))}</th></tr></tfoot>'
                "</table>")

    def _repr_markdown_(self):
        head = "| layer | output | shape | parameters | count |\n|---|---|---|---|---|\n"
        body = "".join(f"| {c[0]} | {c[1]} | {c[2]} | {c[3]} | "
                       f"{r['count']} |\n" for r, c in zip(self, self.cells()))
        return head + body + f"\n**total parameters: {self.total}**\n"


def _inputs_of_layer(graph, layer):
    names = set()
    for n in graph.nodes.values():
        if n.layer == layer:
            names.update(n.inputs)
    return names


def _numel(shape):
    out = sp.S.One
    for s in shape:
        out *= s
    return int(out) if out.is_Integer else out
