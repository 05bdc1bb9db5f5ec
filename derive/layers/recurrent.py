"""Recurrent layers, each defined once element by element (batch-major, PyTorch weight
layout ``W: [out, in]``); gradients derived by the engine.

* :class:`RNNCell`: ``a = h W_hhᵀ + x W_xhᵀ + b``, ``h' = tanh(a)`` (``h' = W_hh h + W_xh x
  + b`` through tanh, per example).
* :class:`RNN`: the cell unrolled over ``T`` steps with shared weights (backprop through
  time); the derivation shows ``∂h_T/∂h_0 = Π_t diag(f'(a_t)) W_hh``, checked against the
  derived adjoint. Each step reads its input as a node ``x_t = x[:, t, :]`` so every
  per-step product is a matrix product; from ``h0="zeros"`` (and in a Sequential) the
  first step has no recurrent term.
* :class:`LSTMCell`: gates in the order **i, f, o, g** (input, forget, output, candidate;
  the classic course layout; ``gate_order="ifgo"`` is PyTorch's), each ``σ`` or ``tanh`` of its own ``x W_xqᵀ + h W_hqᵀ + b_q``;
  ``c' = f ⊙ c + i ⊙ g``, ``h' = o ⊙ tanh(c')``; the output is ``[h'; c']: [B, 2, h]``.
* :class:`GRUCell`: reset ``r``, update ``z``, candidate ``h̃ = tanh(W_xh x + W_hh (r ⊙ h) +
  b_h)``, ``h' = z ⊙ h + (1 − z) ⊙ h̃`` (the reset applied before the recurrent product).
* :class:`Embedding`: ``out[n,t,j] = W[w[n,t], j]``; its gradient is the scatter
  ``W̄[w[n,t], j] += out̄[n,t,j]``.
* :class:`TemporalAffine` and :class:`TemporalSoftmaxLoss` (masked, divided by B).
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from derive.errors import InputError, ShapeError
from derive.functions import sigmoid
from derive.shapes import check_size
from derive.tensor import ops
from derive.tensor.tensor_graph import shape_str
from derive.tensor.index import dim
from derive.layers.dense import BATCH, Layer

ACTIVATIONS = {"tanh": sp.tanh, "identity": lambda u: u}


def affine(g, W, v, n, i, j_size):
    """``Σ_j W[i, j] v[n, j]`` with a fresh j (``v`` may be a lambda of (n, j))."""
    read = v if callable(v) else (lambda a, b: v[a, b])
    return g.sum(j_size, lambda j: W[i, j] * read(n, j))


def check_width(t, want, layer, node):
    if t.shape[-1] != want:
        raise ShapeError(f"shapes {shape_str(t.shape)} and [.., {want}] do not match: {layer} "
                         f"expects {want} features", where=f"node {node}")


class _Recurrent(Layer):
    """Sizes shared by the cells: input width d, hidden width h."""

    out_base = "h_next"

    def __init__(self, input_size="d", hidden_size="h", bias=True):
        self.input_size, self.hidden_size, self.bias = dim(input_size), dim(hidden_size), bias

    def options(self):
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "bias": self.bias}

    def input_specs(self):
        return [("x", (BATCH, self.input_size), "input", "float", {}),
                ("h", (BATCH, self.hidden_size), "input", "float", {})]

    @property
    def n_inputs(self):
        return len(self.input_specs())


class RNNCell(_Recurrent):
    """``h' = tanh(h W_hhᵀ + x W_xhᵀ + b)`` (``nonlinearity="identity"`` drops the tanh).

    >>> RNNCell(3, 4).parameters()
    {'W_xh': (4, 3), 'W_hh': (4, 4), 'b': (4,)}
    """

    key, title = "rnn_cell", "RNNCell"

    def __init__(self, input_size="d", hidden_size="h", bias=True, nonlinearity="tanh"):
        super().__init__(input_size, hidden_size, bias)
        if nonlinearity not in ACTIVATIONS:
            raise InputError(f"nonlinearity must be one of {', '.join(ACTIVATIONS)}, got "
                             f"{nonlinearity!r}")
        self.nonlinearity = nonlinearity

    def options(self):
        return {**super().options(), "nonlinearity": self.nonlinearity}

    def param_shapes(self):
        h, d = self.hidden_size, self.input_size
        shapes = {"W_xh": (h, d), "W_hh": (h, h)}
        if self.bias:
            shapes["b"] = (h,)
        return shapes

    def step(self, g, x, h, p, tag, layer, name=None):
        """One step: nodes ``a{tag}`` and ``h_next{tag}`` (or ``name``).

        ``h=None`` is the zero state: the recurrent term ``h W_hhᵀ`` is then absent.
        """
        check_width(x, self.input_size, layer, f"a{tag}")
        if h is not None:
            check_width(h, self.hidden_size, layer, f"a{tag}")
        b = p.get("b")
        shape = (x.shape[0], self.hidden_size)
        recur = (lambda n, i: affine(g, p["W_hh"], h, n, i, self.hidden_size)) \
            if h is not None else (lambda n, i: 0)
        text = (f"{h.name} @ W_hh.T + " if h is not None else "") + f"{x.name} @ W_xh.T + b"
        a = g.define(g.unique(f"a{tag}"), shape,
                     lambda n, i: recur(n, i) + affine(g, p["W_xh"], x, n, i, self.input_size)
                     + (b[i] if b else 0), layer=layer, text=text)
        act = ACTIVATIONS[self.nonlinearity]
        return g.define(name or g.unique(f"{self.out_base}{tag}"), a.shape,
                        lambda n, i: act(a[n, i]), layer=layer,
                        text=f"{self.nonlinearity}({a.name})")

    def build(self, g, inputs, tag=""):
        x, h = inputs
        return self.step(g, x, h, self.add_params(g, tag), tag, self.describe())


class RNN(RNNCell):
    """The RNN cell unrolled over ``steps`` time steps on ``x: [B, T, d]``.

    ``output="all"`` gives ``hs: [B, T, h]`` (every hidden state), ``"last"`` gives h_T.
    ``h0="input"`` (default) reads the initial state ``h0: [B, h]`` as a second input of
    the standalone layer; ``h0="zeros"`` starts from ``h_0 = 0``, so the layer reads only
    ``x`` and the first step is ``h_1 = tanh(x_1 W_xhᵀ + b)``. Inside a
    :class:`~derive.layers.sequential.Sequential`, which feeds a layer one input, the RNN
    starts from zeros either way.

    >>> [n for n in RNN(steps=2).graph().nodes if n.startswith("h")]
    ['h0', 'h1', 'h2', 'hs']
    >>> [n for n in RNN(steps=2, h0="zeros").graph().nodes if n.startswith("h")]
    ['h1', 'h2', 'hs']
    """

    key, title, out_base = "rnn", "RNN", "hs"

    def __init__(self, input_size="d", hidden_size="h", steps=3, bias=True,
                 nonlinearity="tanh", output="all", h0="input"):
        super().__init__(input_size, hidden_size, bias, nonlinearity)
        self.steps = check_size(steps, "sequence length", where="RNN")
        if not isinstance(self.steps, int):
            raise InputError("the sequence length must be a number to unroll the RNN",
                             where="RNN")
        if output not in ("all", "last"):
            raise InputError(f"output must be 'all' or 'last', got {output!r}", where="RNN")
        if h0 not in ("input", "zeros"):
            raise InputError(f"h0 must be 'input' or 'zeros', got {h0!r}", where="RNN")
        self.output, self.h0 = output, h0

    def options(self):
        opts = {**super().options(), "steps": self.steps, "output": self.output}
        return opts if self.h0 == "input" else {**opts, "h0": self.h0}

    def input_specs(self):
        x = ("x", (BATCH, self.steps, self.input_size), "input", "float", {})
        if self.h0 == "zeros":
            return [x]
        return [x, ("h0", (BATCH, self.hidden_size), "input", "float", {})]

    def build(self, g, inputs, tag=""):
        x, h = inputs if len(inputs) == 2 else (inputs[0], None)
        layer = self.describe()
        if len(x.shape) != 3 or x.shape[1] != self.steps:
            raise ShapeError(f"shapes {shape_str(x.shape)} and [B, {self.steps}, "
                             f"{self.input_size}] do not match: {layer} reads T = {self.steps} "
                             "steps", where=f"node {x.name}")
        p = self.add_params(g, tag)
        states, steps = [h], []
        for t in range(1, self.steps + 1):
            before = set(g.nodes)
            xt = step_input(g, x, t, tag, layer)
            states.append(self.step(g, xt, states[-1], p, f"{tag}_{t}" if tag else str(t),
                                    layer, name=g.unique(f"h{tag}_{t}" if tag else f"h{t}")))
            steps.append(g.step_names(before))
        g.repeats.append((layer, steps))
        names = [None if s is None else s.name for s in states]
        if h is not None or self.steps > 1:  # from zeros, one step has no recurrence
            g.checks.append(lambda view: bptt_section(view, self, names, p["W_hh"].name))
        if self.output == "last":
            return states[-1]
        hs = states[1:]
        return g.define(g.unique(f"{self.out_base}{tag}"), (x.shape[0], self.steps,
                                                            self.hidden_size),
                        lambda n, t, i: sp.Add(*[sp.KroneckerDelta(t, s) * hs[s][n, i]
                                                 for s in range(self.steps)]),
                        layer=layer, text="stack(" + ", ".join(s.name for s in hs) + ")")


def step_input(g, x, t, tag, layer):
    """``x_t[n, j] = x[n, t - 1, j]``: step t's input as its own [B, d] node, so that
    ``x_t W_xhᵀ`` and ``W̄_xh = Σ_t ā_tᵀ x_t`` are plain matrix products (BLAS)."""
    return g.define(g.unique(f"x{tag}_{t}" if tag else f"x{t}"), (x.shape[0], x.shape[2]),
                    lambda n, j: x[n, t - 1, j], layer=layer, text=f"{x.name}[:, {t - 1}, :]")


def bptt_section(view, layer, states, w_hh):
    """∂h_T/∂h_s as the product of the step Jacobians, checked against the derived h̄_s.

    ``s = 0`` when the initial state is an input; from a zero state (``states[0]`` is None)
    the product starts at ``h_1``, the first state that depends on W_hh's use.
    """
    from derive.derivation import Section, Step

    T, s = layer.steps, 0 if states[0] is not None else 1
    J = [sp.MatrixSymbol(f"J_{t}", layer.hidden_size, layer.hidden_size)
         for t in range(s + 1, T + 1)]
    product = sp.MatMul(*reversed(J), evaluate=False) if len(J) > 1 else J[0]
    w = sp.MatrixSymbol("W_hh", layer.hidden_size, layer.hidden_size)
    local = (sp.Function("diag")(1 - sp.Symbol("h_t") ** 2) if layer.nonlinearity == "tanh"
             else sp.Symbol("I"))
    chain = f"h̄_T J_T ⋯ J_{s + 1}"
    steps = [Step(sp.Symbol("J_t"), [sp.Mul(local, w, evaluate=False)],
                  note="∂h_t/∂h_{t-1} for one example (h_t = f(W_hh h_{t-1} + W_xh x_t + b))"),
             Step(sp.Derivative(sp.Symbol(f"h_{T}"), sp.Symbol(f"h_{s}")), [product],
                  note="backprop through time multiplies one Jacobian per step")]
    text = ("The same W_hh is used at every step, so W̄_hh = Σ_t ā_tᵀ h_{t-1}: one "
            f"contribution per step. The error reaching h_{s} is {chain}; with |f'| <= 1 "
            "its size is governed by powers of W_hh (vanishing or exploding gradients).")
    if s:
        text += " The initial state is h_0 = 0, so the step t = 1 adds no W_hh term."
    err = _check_product(view, layer, states[s:], w_hh)
    if err is not None:
        steps[-1].note += f"; h̄{s} = {chain} holds: max |difference| = {err:.1e}"
    return Section(f"{layer.title}: backprop through time", steps, text=text)


def _check_product(view, layer, states, w_hh, seed=0):
    """h̄0 from the derivation vs the Jacobian product (batch 1, upstream only on h_T)."""
    prog = view.p
    if states[0] not in prog.grads:
        return None
    rng = np.random.default_rng(seed)
    sizes = {s: 1 if str(s) == "B" else 3 + k for k, s in enumerate(prog.dims)}
    values = {t.name: rng.normal(size=[int(sp.sympify(s).xreplace(sizes)) for s in t.shape])
              for t in prog.tensors.values() if t.role in ("input", "param")}
    last = rng.normal(size=values[states[0]].shape[1])
    shape = [int(sp.sympify(s).xreplace(sizes)) for s in prog.tensors[prog.output].shape]
    upstream = np.zeros(shape)
    upstream[..., -1, :] = last  # "all": only the last step; "last": the whole h_T
    if layer.output == "last":
        upstream[...] = last
    arrays = prog.run(values, upstream)
    w = values[w_hh]
    row = last
    for name in reversed(states[1:]):
        h = arrays[name][0]
        local = 1 - h ** 2 if layer.nonlinearity == "tanh" else np.ones_like(h)
        row = (row * local) @ w
    return float(np.max(np.abs(row - arrays[prog.grads[states[0]]][0])))


class LSTMCell(_Recurrent):
    """LSTM cell with gates i, f, o, g, each with its own weights; output ``[h'; c']``.

    ``a_q = x W_xqᵀ + h W_hqᵀ + b_q`` for q in i, f, o, g; stacking ``[W_xi; W_xf; W_xo;
    W_xg]`` gives the course's ``W_x: [4h, d]`` in that order. The output is the new state
    ``[h'; c']: [B, 2, h]``.

    >>> list(LSTMCell(3, 2).parameters())[:3]
    ['W_xi', 'W_hi', 'b_i']
    """

    key, title, out_base = "lstm_cell", "LSTMCell", "state"

    def __init__(self, input_size="d", hidden_size="h", bias=True, gate_order="ifog"):
        super().__init__(input_size, hidden_size, bias)
        if gate_order not in GATE_ORDERS:
            raise InputError(f"gate_order must be 'ifog' (CS231n: i, f, o, g) or 'ifgo' "
                             f"(PyTorch: i, f, g, o), got {gate_order!r}", where=self.title)
        self.gate_order = gate_order

    def options(self):
        opts = super().options()
        return opts if self.gate_order == "ifog" else {**opts, "gate_order": self.gate_order}

    @property
    def GATES(self):  # noqa: N802  (the gates, in this layer's order, with their functions)
        return tuple((q, LSTM_GATES[q]) for q in self.gate_order)

    def input_specs(self):
        return super().input_specs() + [("c", (BATCH, self.hidden_size), "input", "float", {})]

    def param_shapes(self):
        return gate_params(self, [q for q, _ in self.GATES])

    def build(self, g, inputs, tag=""):
        x, h, c = inputs
        layer = self.describe()
        for t, want in ((x, self.input_size), (h, self.hidden_size), (c, self.hidden_size)):
            check_width(t, want, layer, f"a_i{tag}")
        p = self.add_params(g, tag)
        gate = {}
        for q, fn in self.GATES:
            a = g.define(g.unique(f"a_{q}{tag}"), h.shape, gate_sum(self, g, p, q, x, h),
                         layer=layer, text=f"{x.name} @ W_x{q}.T + {h.name} @ W_h{q}.T + b_{q}")
            gate[q] = g.define(g.unique(f"{q}_t{tag}"), h.shape,
                               lambda n, k, a=a, fn=fn: fn(a[n, k]), layer=layer,
                               text=f"{fn.__name__}({a.name})")
        c2 = g.define(g.unique(f"c_next{tag}"), h.shape,
                      lambda n, k: gate["f"][n, k] * c[n, k] + gate["i"][n, k] * gate["g"][n, k],
                      layer=layer, text="f * c + i * g")
        h2 = g.define(g.unique(f"h_next{tag}"), h.shape,
                      lambda n, k: gate["o"][n, k] * sp.tanh(c2[n, k]), layer=layer,
                      text="o * tanh(c_next)")
        g.notes.append(gate_order_note(self.gate_order))
        return g.define(g.unique(f"{self.out_base}{tag}"), (h.shape[0], 2, self.hidden_size),
                        lambda n, s, k: sp.KroneckerDelta(s, 0) * h2[n, k]
                        + sp.KroneckerDelta(s, 1) * c2[n, k],
                        layer=layer, text=f"stack({h2.name}, {c2.name})")


LSTM_GATES = {"i": sigmoid, "f": sigmoid, "o": sigmoid, "g": sp.tanh}
GATE_ORDERS = ("ifog", "ifgo")


def gate_order_note(order):
    """What the LSTM's gate order means for the stacked ``W_x: [4h, d]``."""
    if order == "ifog":
        return ("LSTM gates in the order i, f, o, g (input, forget, output, candidate; "
                "the classic course layout): stacking W_xi, W_xf, W_xo, W_xg (and the "
                "W_h, b blocks) in this order gives the course's W_x: [4h, d]. PyTorch "
                "stacks them as i, f, g, o.")
    return ("LSTM gates in PyTorch's order i, f, g, o (input, forget, candidate, output): "
            "stacking W_xi, W_xf, W_xg, W_xo in this order gives weight_ih: [4h, d] (W_h: "
            "weight_hh; b = bias_ih + bias_hh). The classic course layout is i, f, o, g.")


def gate_params(cell, gates):
    """``W_x{q}: [h, d]``, ``W_h{q}: [h, h]``, ``b_{q}: [h]`` for every gate q."""
    h, d = cell.hidden_size, cell.input_size
    shapes = {}
    for q in gates:
        shapes.update({f"W_x{q}": (h, d), f"W_h{q}": (h, h)})
        if cell.bias:
            shapes[f"b_{q}"] = (h,)
    return shapes


def gate_sum(cell, g, p, q, x, hin):
    """``(n, i) -> Σ_j W_xq[i,j] x[n,j] + Σ_j W_hq[i,j] hin[n,j] + b_q[i]``."""
    b = p.get(f"b_{q}")
    return lambda n, i: (affine(g, p[f"W_x{q}"], x, n, i, cell.input_size)
                         + affine(g, p[f"W_h{q}"], hin, n, i, cell.hidden_size)
                         + (b[i] if b is not None else 0))


class GRUCell(_Recurrent):
    """GRU cell: r, z gates, candidate h̃ with the reset inside, h' = z⊙h + (1−z)⊙h̃.

    >>> len(GRUCell(3, 2).parameters())
    9
    """

    key, title = "gru_cell", "GRUCell"
    GATES = ("r", "z", "h")

    def param_shapes(self):
        return gate_params(self, self.GATES)

    def build(self, g, inputs, tag=""):
        x, h = inputs
        layer = self.describe()
        check_width(x, self.input_size, layer, f"r_t{tag}")
        check_width(h, self.hidden_size, layer, f"r_t{tag}")
        p = self.add_params(g, tag)

        def gate(q, hin):
            return gate_sum(self, g, p, q, x, hin)

        r = g.define(g.unique(f"r_t{tag}"), h.shape, lambda n, i: sigmoid(gate("r", h)(n, i)),
                     layer=layer, text="σ(x W_xrᵀ + h W_hrᵀ + b_r)")
        z = g.define(g.unique(f"z_t{tag}"), h.shape, lambda n, i: sigmoid(gate("z", h)(n, i)),
                     layer=layer, text="σ(x W_xzᵀ + h W_hzᵀ + b_z)")
        rh = g.define(g.unique(f"rh{tag}"), h.shape, lambda n, i: r[n, i] * h[n, i],
                      layer=layer, text="r * h")
        ht = g.define(g.unique(f"h_tilde{tag}"), h.shape,
                      lambda n, i: sp.tanh(gate("h", rh)(n, i)), layer=layer,
                      text="tanh(x W_xhᵀ + (r * h) W_hhᵀ + b_h)")
        g.notes.append("GRU: r = σ(W_xr x + W_hr h + b_r), z = σ(W_xz x + W_hz h + b_z), "
                       "h̃ = tanh(W_xh x + W_hh (r ⊙ h) + b_h), h' = z ⊙ h + (1 − z) ⊙ h̃ "
                       "(the reset is applied before the recurrent product; PyTorch applies "
                       "it after, and uses h' = (1 − z) ⊙ h̃ + z ⊙ h with the same meaning of z).")
        return g.define(g.unique(f"{self.out_base}{tag}"), h.shape,
                        lambda n, i: z[n, i] * h[n, i] + (1 - z[n, i]) * ht[n, i],
                        layer=layer, text="z * h + (1 - z) * h_tilde")


class Embedding(Layer):
    """``out[n,t,j] = W[w[n,t], j]``: row lookup of integer tokens ``w: [B, T]``.

    >>> Embedding(100, 8).parameters()
    {'W': (100, 8)}
    """

    key, title, out_base = "embedding", "Embedding", "out"

    def __init__(self, num_embeddings="V", embedding_dim="D", steps="T"):
        self.vocab, self.width, self.steps = dim(num_embeddings), dim(embedding_dim), dim(steps)

    def options(self):
        return {"num_embeddings": self.vocab, "embedding_dim": self.width}

    def param_shapes(self):
        return {"W": (self.vocab, self.width)}

    def input_specs(self):
        return [("w", (BATCH, self.steps), "label", "int", {"classes": self.vocab})]

    def build(self, g, inputs, tag=""):
        (w,) = inputs
        p = self.add_params(g, tag)
        return g.define(g.unique(f"{self.out_base}{tag}"), w.shape + (self.width,),
                        lambda n, t, j: p["W"][w[n, t], j], layer=self.describe(),
                        text=f"{p['W'].name}[{w.name}]")


class TemporalAffine(Layer):
    """``out[n,t,m] = Σ_j W[m,j] x[n,t,j] + b[m]``: one Linear applied at every step.

    >>> TemporalAffine(4, 3).parameters()
    {'W': (3, 4), 'b': (3,)}
    """

    key, title, out_base = "temporal_affine", "TemporalAffine", "out"

    def __init__(self, in_features="D", out_features="M", steps="T"):
        self.in_features, self.out_features = dim(in_features), dim(out_features)
        self.steps = dim(steps)

    def options(self):
        return {"in_features": self.in_features, "out_features": self.out_features}

    def param_shapes(self):
        return {"W": (self.out_features, self.in_features), "b": (self.out_features,)}

    def input_specs(self):
        return [("x", (BATCH, self.steps, self.in_features), "input", "float", {})]

    def build(self, g, inputs, tag=""):
        (x,) = inputs
        name = g.unique(f"{self.out_base}{tag}")
        check_width(x, self.in_features, self.describe(), name)
        p = self.add_params(g, tag)
        return g.define(name, x.shape[:-1] + (self.out_features,),
                        lambda n, t, m: g.sum(self.in_features,
                                              lambda j: p["W"][m, j] * x[n, t, j]) + p["b"][m],
                        layer=self.describe(), text=f"{x.name} @ {p['W'].name}.T + b")


class TemporalSoftmaxLoss(Layer):
    """``L = -(1/B) Σ_{n,t} mask[n,t] log softmax(x[n,t,:])[y[n,t]]`` (CS231n's form).

    >>> [s[0] for s in TemporalSoftmaxLoss().input_specs()]
    ['x', 'y', 'mask']
    """

    key, title, out_base, n_inputs = "temporal_softmax_loss", "TemporalSoftmaxLoss", "L", 3

    def __init__(self, classes="V", steps="T"):
        self.classes, self.steps = dim(classes), dim(steps)

    def input_specs(self):
        return [("x", (BATCH, self.steps, self.classes), "input", "float", {}),
                ("y", (BATCH, self.steps), "label", "int", {"classes": self.classes}),
                ("mask", (BATCH, self.steps), "mask", "float", {})]

    def build(self, g, inputs, tag=""):
        x, y, mask = inputs
        name = g.unique(f"{self.out_base}{tag}")
        if y.shape != x.shape[:2] or mask.shape != x.shape[:2]:
            raise ShapeError(f"shapes {shape_str(x.shape)}, {shape_str(y.shape)} and "
                             f"{shape_str(mask.shape)} do not match in {self.title} (scores "
                             "[B, T, V], labels and mask [B, T])", where=f"node {name}")
        lse = ops.logsumexp(x, 2)
        g.notes.append("The loss is summed over the time steps where mask = 1 and divided by "
                       "the batch size B (not by the number of unmasked steps).")
        return g.define(name, (), lambda: -g.sum(x.shape[0], lambda n: g.sum(
            x.shape[1], lambda t: mask[n, t] * (x[n, t, y[n, t]] - lse[n, t]))) / x.shape[0],
                        layer=self.title, text=f"masked softmax loss({x.name}, {y.name})")
