"""LSTM and GRU over a whole sequence, as one graph (like :class:`~derive.layers.recurrent.RNN`).

``x: [B, T, d]`` is read one step at a time (``x_t = x[:, t-1, :]``, a [B, d] node); the
cell's weights are shared by every step, so backprop through time is the engine's one
reverse sweep over the unrolled graph: nothing here differentiates. A section shows the
structure of that sweep, ``∂s_T/∂s_0 = J_T ⋯ J_1`` with ``J_t = ∂s_t/∂s_{t-1}`` for the
state ``s_t = (h_t, c_t)`` (LSTM) or ``h_t`` (GRU), and checks the product against the
derived adjoint of the initial state at a random point.

* :class:`LSTM`: gates i, f, o, g (``gate_order="ifog"``, CS231n) or i, f, g, o
  (``"ifgo"``, PyTorch's ``weight_ih`` layout); ``c_t = f ⊙ c_{t-1} + i ⊙ g``,
  ``h_t = o ⊙ tanh(c_t)``. ``h0="input"`` reads ``h0`` and ``c0: [B, h]``; ``"zeros"``
  starts from ``h_0 = c_0 = 0`` (and in a Sequential, which feeds one input).
* :class:`GRU`: ``reset="before"`` is the GRUCell's ``h̃ = tanh(W_xh x + W_hh (r ⊙ h) +
  b_h)``; ``reset="after"`` is PyTorch's ``h̃ = tanh(W_xh x + b_h + r ⊙ (W_hh h + b_hh))``;
  ``h_t = z ⊙ h_{t-1} + (1 − z) ⊙ h̃``.

``output="all"`` gives ``hs: [B, T, h]``, ``"last"`` gives ``h_T``, ``"state"`` the final
state stacked as the cell stacks it: ``[h_T; c_T]: [B, 2, h]`` for the LSTM (``[B, 1, h]``
for the GRU), which ``Network.unstack(state, ["h_T", "c_T"])`` splits into named outputs.
:func:`unstack_weights` turns stacked weights (``W_x: [4h, d]`` in the layer's gate order,
PyTorch's ``weight_ih_l0``) into the layer's per-gate parameters.

>>> [n for n in LSTM(steps=2).parameters()][:4]
['W_xi', 'W_hi', 'b_i', 'W_xf']
>>> LSTM(gate_order="ifgo").GATES[2][0]
'g'
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from derive.errors import InputError, ShapeError
from derive.functions import sigmoid
from derive.shapes import check_size
from derive.tensor.tensor_graph import shape_str
from derive.layers.dense import BATCH
from derive.layers.recurrent import (GRUCell, LSTMCell, affine, check_width, gate_order_note,
                                     gate_params, step_input)


class _Sequence:
    """What the LSTM and GRU over T steps share: options, inputs, unrolling, output."""

    out_base = "hs"
    state_names = ("h",)

    def _sequence(self, steps, output, h0):
        self.steps = check_size(steps, "sequence length", where=self.title)
        if not isinstance(self.steps, int):
            raise InputError(f"the sequence length must be a number to unroll the "
                             f"{self.title}", where=self.title)
        if output not in ("all", "last", "state"):
            raise InputError(f"output must be 'all', 'last' or 'state', got {output!r}",
                             where=self.title)
        if h0 not in ("input", "zeros"):
            raise InputError(f"h0 must be 'input' or 'zeros', got {h0!r}", where=self.title)
        self.output, self.h0 = output, h0

    def _sequence_options(self, opts):
        opts = {**opts, "steps": self.steps, "output": self.output}
        return opts if self.h0 == "input" else {**opts, "h0": self.h0}

    def input_specs(self):
        x = ("x", (BATCH, self.steps, self.input_size), "input", "float", {})
        if self.h0 == "zeros":
            return [x]
        return [x] + [(f"{s}0", (BATCH, self.hidden_size), "input", "float", {})
                      for s in self.state_names]

    def _initial(self, inputs, layer):
        """``x`` and the initial states (None for zeros), their shapes checked."""
        x, states = inputs[0], list(inputs[1:]) or [None] * len(self.state_names)
        if len(x.shape) != 3 or x.shape[1] != self.steps:
            raise ShapeError(f"shapes {shape_str(x.shape)} and [B, {self.steps}, "
                             f"{self.input_size}] do not match: {layer} reads T = "
                             f"{self.steps} steps", where=f"node {x.name}")
        check_width(x, self.input_size, layer, x.name)
        given = [s for s in states if s is not None]
        want = (x.shape[0], self.hidden_size)
        if any(tuple(s.shape) != want for s in given):
            names = " and ".join(f"{s.name} {shape_str(s.shape)}" for s in given)
            raise ShapeError(f"shapes {names} do not match: {layer} starts from states of "
                             f"shape {shape_str(want)} (x is {shape_str(x.shape)})",
                             where=f"node {given[0].name}")
        return x, states

    def build(self, g, inputs, tag=""):
        layer = self.describe()
        x, states = self._initial(inputs, layer)
        p = self.add_params(g, tag)
        chain = [tuple(None if s is None else s.name for s in states)]
        steps = []
        for t in range(1, self.steps + 1):
            before = set(g.nodes)
            suffix = f"{tag}_{t}" if tag else str(t)
            xt = step_input(g, x, t, tag, layer)
            states = self.step(g, xt, states, p, suffix, layer)
            chain.append(tuple(s.name for s in states))
            steps.append(g.step_names(before))
        g.repeats.append((layer, steps))
        g.notes.append(self.note())
        out = self._output(g, x, chain, tag, layer)
        if chain[0][0] is not None or self.steps > 1:
            g.checks.append(lambda view: bptt_section(view, self, chain, p, out.name))
        return out

    def _output(self, g, x, chain, tag, layer):
        h = [c[0] for c in chain[1:]]
        if self.output == "last":
            return g.tensor(h[-1])
        if self.output == "state":
            final = [g.tensor(n) for n in chain[-1]]
            return g.define(g.unique(f"state{tag}"), (x.shape[0], len(final), self.hidden_size),
                            lambda n, s, k: sp.Add(*[sp.KroneckerDelta(s, j) * v[n, k]
                                                     for j, v in enumerate(final)]),
                            layer=layer, text="stack(" + ", ".join(chain[-1]) + ")")
        hs = [g.tensor(n) for n in h]
        return g.define(g.unique(f"{self.out_base}{tag}"),
                        (x.shape[0], self.steps, self.hidden_size),
                        lambda n, t, i: sp.Add(*[sp.KroneckerDelta(t, s) * hs[s][n, i]
                                                 for s in range(self.steps)]),
                        layer=layer, text="stack(" + ", ".join(h) + ")")

    def pre(self, g, p, q, x, h, suffix, layer, extra=None):
        """``a_q = x W_xqᵀ (+ h W_hqᵀ) (+ b_q)``: the recurrent term absent from zeros."""
        b = p.get(f"b_{q}")

        def rhs(n, i):
            out = affine(g, p[f"W_x{q}"], x, n, i, self.input_size)
            if h is not None:
                out += affine(g, p[f"W_h{q}"], h, n, i, self.hidden_size)
            return out + (b[i] if b is not None else 0) + (extra(n, i) if extra else 0)

        text = f"{x.name} @ {p[f'W_x{q}'].name}.T" \
            + (f" + {h.name} @ {p[f'W_h{q}'].name}.T" if h is not None else "") \
            + (f" + {b.name}" if b is not None else "")
        return g.define(g.unique(f"a_{q}{suffix}"), (x.shape[0], self.hidden_size), rhs,
                        layer=layer, text=text)


class LSTM(_Sequence, LSTMCell):
    """The LSTM cell unrolled over ``steps`` steps on ``x: [B, T, d]``.

    >>> LSTM(3, 2, steps=2, h0="zeros").graph().leaves()[0].shape
    (B, 2, 3)
    """

    key, title = "lstm_seq", "LSTM"
    state_names = ("h", "c")

    def __init__(self, input_size="d", hidden_size="h", steps=3, bias=True, output="all",
                 h0="input", gate_order="ifog"):
        LSTMCell.__init__(self, input_size, hidden_size, bias, gate_order)
        self._sequence(steps, output, h0)

    def options(self):
        return self._sequence_options(LSTMCell.options(self))

    def note(self):
        return gate_order_note(self.gate_order)

    def step(self, g, x, states, p, suffix, layer):
        """Nodes ``a_q``, gate ``q`` (q in the gate order), ``c`` and ``h`` of one step; from
        the zero state the forget gate has nothing to forget and is left out."""
        h, c = states
        gate = {}
        for q, fn in self.GATES:
            if q == "f" and c is None:
                continue
            a = self.pre(g, p, q, x, h, suffix, layer)
            gate[q] = g.define(g.unique(f"{q}{suffix}"), a.shape,
                               lambda n, k, a=a, fn=fn: fn(a[n, k]), layer=layer,
                               text=f"{fn.__name__}({a.name})")
        shape = gate["i"].shape
        keep = (lambda n, k: gate["f"][n, k] * c[n, k]) if c is not None else (lambda n, k: 0)
        c2 = g.define(g.unique(f"c{suffix}"), shape,
                      lambda n, k: keep(n, k) + gate["i"][n, k] * gate["g"][n, k], layer=layer,
                      text=(f"f * {c.name} + " if c is not None else "") + "i * g")
        h2 = g.define(g.unique(f"h{suffix}"), shape,
                      lambda n, k: gate["o"][n, k] * sp.tanh(c2[n, k]), layer=layer,
                      text=f"o * tanh({c2.name})")
        return h2, c2

    def jacobian(self, arrays, params, prev, cur, t):
        """``J_t = ∂(h_t, c_t)/∂(h_{t-1}, c_{t-1})`` of example 0 (textbook formulas)."""
        hp, cp = (arrays[n][0] for n in prev)
        s = cur[0][1:]
        gate = {q: arrays[f"{q}{s}"][0] for q in "ifog"}
        i, f, o, gg = gate["i"], gate["f"], gate["o"], gate["g"]
        tc = np.tanh(arrays[cur[1]][0])
        W = {q: params[f"W_h{q}"] for q in "ifog"}
        dc_dh = (cp * f * (1 - f))[:, None] * W["f"] + (gg * i * (1 - i))[:, None] * W["i"] \
            + (i * (1 - gg ** 2))[:, None] * W["g"]
        dh_dh = (tc * o * (1 - o))[:, None] * W["o"] + (o * (1 - tc ** 2))[:, None] * dc_dh
        dh_dc = np.diag(o * (1 - tc ** 2) * f)
        return np.block([[dh_dh, dh_dc], [dc_dh, np.diag(f)]])

    def jacobian_steps(self):
        d, W = sp.Function("diag"), lambda q: sp.MatrixSymbol(f"W_h{q}", self.hidden_size,
                                                             self.hidden_size)
        i, f, o, gg, c = sp.symbols("i_t f_t o_t g_t c_{t-1}")
        tc = sp.tanh(sp.Symbol("c_t"))
        D = sp.Derivative
        h_t, c_t, h_p, c_p = sp.symbols("h_t c_t h_{t-1} c_{t-1}")
        dc = sp.Add(sp.Mul(d(c * f * (1 - f)), W("f"), evaluate=False),
                    sp.Mul(d(gg * i * (1 - i)), W("i"), evaluate=False),
                    sp.Mul(d(i * (1 - gg ** 2)), W("g"), evaluate=False), evaluate=False)
        dh = sp.Add(sp.Mul(d(tc * o * (1 - o)), W("o"), evaluate=False),
                    sp.Mul(d(o * (1 - tc ** 2)), D(c_t, h_p), evaluate=False), evaluate=False)
        return [(D(c_t, h_p), dc, "the forget, input and candidate gates read h_{t-1}"),
                (D(c_t, c_p), d(f), "the cell state's own path: only the forget gate"),
                (D(h_t, h_p), dh, "h_t = o_t ⊙ tanh(c_t)"),
                (D(h_t, c_p), d(o * (1 - tc ** 2) * f), "through c_t alone")]


class GRU(_Sequence, GRUCell):
    """The GRU cell unrolled over ``steps`` steps on ``x: [B, T, d]``.

    >>> list(GRU(reset="after").parameters())[-2:]
    ['b_h', 'b_hh']
    """

    key, title = "gru_seq", "GRU"

    def __init__(self, input_size="d", hidden_size="h", steps=3, bias=True, output="all",
                 h0="input", reset="before"):
        GRUCell.__init__(self, input_size, hidden_size, bias)
        if reset not in ("before", "after"):
            raise InputError(f"reset must be 'before' (the GRUCell's r ⊙ h inside W_hh) or "
                             f"'after' (PyTorch's r ⊙ (W_hh h + b_hh)), got {reset!r}",
                             where=self.title)
        self.reset = reset
        self._sequence(steps, output, h0)

    def options(self):
        opts = self._sequence_options(GRUCell.options(self))
        return opts if self.reset == "before" else {**opts, "reset": self.reset}

    def param_shapes(self):
        shapes = gate_params(self, self.GATES)
        if self.reset == "after" and self.bias:
            shapes["b_hh"] = (self.hidden_size,)
        return shapes

    def note(self):
        where = ("W_hh (r ⊙ h_{t-1}): the reset before the recurrent product, as the GRUCell"
                 if self.reset == "before" else
                 "r ⊙ (W_hh h_{t-1} + b_hh): the reset after the recurrent product, as "
                 "PyTorch's GRU (its gates r, z, n; b_r = b_ir + b_hr, b_z = b_iz + b_hz, "
                 "b_h = b_in, b_hh = b_hn)")
        return (f"GRU over T = {self.steps} steps: r = σ(W_xr x_t + W_hr h_{{t-1}} + b_r), "
                f"z = σ(W_xz x_t + W_hz h_{{t-1}} + b_z), h̃ = tanh(W_xh x_t + b_h + {where}), "
                "h_t = z ⊙ h_{t-1} + (1 − z) ⊙ h̃.")

    def step(self, g, x, states, p, suffix, layer):
        (h,) = states
        shape = (x.shape[0], self.hidden_size)
        bhh = p.get("b_hh")
        need_r = h is not None or bhh is not None
        if need_r:
            a_r = self.pre(g, p, "r", x, h, suffix, layer)
            r = g.define(g.unique(f"r{suffix}"), shape, lambda n, i: sigmoid(a_r[n, i]),
                         layer=layer, text=f"sigmoid({a_r.name})")
        a_z = self.pre(g, p, "z", x, h, suffix, layer)
        z = g.define(g.unique(f"z{suffix}"), shape, lambda n, i: sigmoid(a_z[n, i]),
                     layer=layer, text=f"sigmoid({a_z.name})")
        if self.reset == "before":
            rh = None if h is None else g.define(
                g.unique(f"rh{suffix}"), shape, lambda n, i: r[n, i] * h[n, i], layer=layer,
                text=f"r * {h.name}")
            a_h = self.pre(g, p, "h", x, rh, suffix, layer)
        else:
            W = p["W_hh"]
            u = g.define(g.unique(f"u{suffix}"), shape, lambda n, i: (
                affine(g, W, h, n, i, self.hidden_size) if h is not None else 0)
                + (bhh[i] if bhh is not None else 0), layer=layer,
                text=(f"{h.name} @ {W.name}.T" if h is not None else "")
                + (" + " if h is not None and bhh is not None else "")
                + (bhh.name if bhh is not None else "")) if need_r else None
            a_h = self.pre(g, p, "h", x, None, suffix, layer,
                           extra=(lambda n, i: r[n, i] * u[n, i]) if u is not None else None)
        ht = g.define(g.unique(f"h_tilde{suffix}"), shape, lambda n, i: sp.tanh(a_h[n, i]),
                      layer=layer, text=f"tanh({a_h.name})")
        keep = (lambda n, i: z[n, i] * h[n, i]) if h is not None else (lambda n, i: 0)
        out = g.define(g.unique(f"h{suffix}"), shape,
                       lambda n, i: keep(n, i) + (1 - z[n, i]) * ht[n, i], layer=layer,
                       text=(f"z * {h.name} + " if h is not None else "") + "(1 - z) * h_tilde")
        return (out,)

    def jacobian(self, arrays, params, prev, cur, t):
        """``J_t = ∂h_t/∂h_{t-1}`` of example 0 (textbook formulas)."""
        s = cur[0][1:]
        hp, r, z, ht = (arrays[n][0] for n in (prev[0], f"r{s}", f"z{s}", f"h_tilde{s}"))
        W = {q: params[f"W_h{q}"] for q in "rzh"}
        if self.reset == "before":
            dht = (1 - ht ** 2)[:, None] * (W["h"] @ (np.diag(r) + (hp * r * (1 - r))[:, None]
                                                      * W["r"]))
        else:
            u = arrays[f"u{s}"][0]
            dht = (1 - ht ** 2)[:, None] * (r[:, None] * W["h"] + (u * r * (1 - r))[:, None]
                                            * W["r"])
        return np.diag(z) + ((hp - ht) * z * (1 - z))[:, None] * W["z"] \
            + (1 - z)[:, None] * dht

    def jacobian_steps(self):
        W = {q: sp.Symbol(f"W_h{q}", commutative=False) for q in "rzh"}
        z, r, ht, hp, u = sp.symbols("z_t r_t htilde_t h_{t-1} u_t")
        R, C = sp.Symbol("R_t", commutative=False), sp.Symbol("C_t", commutative=False)
        d = Diag
        if self.reset == "before":
            cand = sp.Mul(d(1 - ht ** 2), W["h"], sp.Add(d(r), sp.Mul(d(hp), R)))
            how = "the reset before W_hh: W_hh (r_t ⊙ h_{t-1})"
        else:
            cand = sp.Mul(d(1 - ht ** 2), sp.Add(sp.Mul(d(r), W["h"]), sp.Mul(d(u), R)))
            how = "the reset after W_hh: r_t ⊙ u_t with u_t = W_hh h_{t-1} + b_hh"
        jt = sp.Add(d(z), sp.Mul(d((hp - ht) * z * (1 - z)), W["z"]), sp.Mul(d(1 - z), C))
        return [(R, sp.Mul(d(r * (1 - r)), W["r"]), "R_t = ∂r_t/∂h_{t-1}"),
                (C, cand, f"C_t = ∂h̃_t/∂h_{{t-1}}, {how}"),
                (sp.Symbol("J_t"), jt, "J_t = ∂h_t/∂h_{t-1}: the kept state, the update "
                 "gate, the candidate")]


#: ``diag(v)``: a matrix, so it keeps its place in a product
Diag = type("diag", (sp.Function,), {"is_commutative": False})


def bptt_section(view, layer, chain, p, out=None):
    """``∂s_T/∂s_0 = J_T ⋯ J_1`` shown, and checked against the derived adjoint of s_0."""
    from derive.derivation import Section, Step

    T, s = layer.steps, 0 if chain[0][0] is not None else 1
    n = len(layer.state_names)
    size = n * layer.hidden_size
    J = [sp.MatrixSymbol(f"J_{t}", size, size) for t in range(s + 1, T + 1)]
    product = sp.MatMul(*reversed(J), evaluate=False) if len(J) > 1 else J[0]
    state = "(h_t, c_t)" if n == 2 else "h_t"
    steps = [Step(lhs, [rhs], note=note) for lhs, rhs, note in layer.jacobian_steps()]
    steps.append(Step(sp.Derivative(sp.Symbol(f"s_{T}"), sp.Symbol(f"s_{s}")), [product],
                      note=f"backprop through time multiplies one Jacobian per step "
                           f"(s_t = {state})"))
    chain_text = f"s̄_T J_T ⋯ J_{s + 1}"
    text = (f"The same weights are used at every step, so each weight's gradient is a sum "
            f"over the T = {T} steps. The error reaching s_{s} = {state.replace('t', str(s))} "
            f"is {chain_text}, one Jacobian J_t = ∂s_t/∂s_{{t-1}} per step; the gates keep "
            "these factors below one or near it, which is how gated cells carry errors "
            "further than a plain RNN.")
    if s:
        text += " The initial state is 0, so the product starts at s_1."
    err = _check_chain(view, layer, chain[s:], p) if out in (None, view.p.output) else None
    if err is not None:
        steps[-1].note += f"; s̄{s} = {chain_text} holds: max |difference| = {err:.1e}"
    return Section(f"{layer.title}: backprop through time", steps, text=text)


def _check_chain(view, layer, chain, p, seed=0):
    """The derived adjoint of the first state vs the Jacobian product (example 0, upstream
    only on h_T)."""
    prog = view.p
    rng = np.random.default_rng(seed)
    sizes = {d: 1 if str(d) == "B" else 3 + k for k, d in enumerate(prog.dims)}
    values = {t.name: rng.normal(0, 0.7, size=[int(sp.sympify(d).xreplace(sizes))
                                               for d in t.shape])
              for t in prog.tensors.values() if t.role in ("input", "param")}
    shape = [int(sp.sympify(d).xreplace(sizes)) for d in prog.tensors[prog.output].shape]
    if not shape or shape[0] != 1:
        return None
    upstream = np.zeros(shape)
    last = rng.normal(size=shape[-1])
    if layer.output == "last":
        upstream[...] = last
    elif layer.output == "state":
        upstream[:, 0, :] = last  # on h_T ([h_T; c_T]), as the product below starts
    else:
        upstream[..., -1, :] = last
    try:
        arrays = prog.run(values, upstream)
        params = {name: values[t.name] for name, t in p.items()}
        row = np.concatenate([last] + [np.zeros_like(last)] * (len(chain[0]) - 1))
        for t in range(len(chain) - 1, 0, -1):
            row = row @ layer.jacobian(arrays, params, chain[t - 1], chain[t], t)
        got = np.concatenate([arrays[prog.grads.get(n, f"{n}_bar")][0] for n in chain[0]])
    except KeyError:
        return None
    if chain[0][0] not in prog.grads:  # a computed h_1 (from zeros): c̄_1 also holds the
        got, row = got[:len(last)], row[:len(last)]  # path through h_1, so compare h̄_1
    return float(np.max(np.abs(row - got)))


def unstack_weights(layer, W_x=None, W_h=None, b=None, b_h=None):
    """Stacked weights -> the layer's per-gate parameters: ``W_x: [k h, d]``, ``W_h: [k h,
    h]`` and biases ``b`` (and ``b_h``, added to ``b``) split in the layer's gate order
    (an LSTM's ``gate_order``; a GRU's r, z, h, PyTorch's r, z, n). For a GRU with
    ``reset="after"``, ``b_h``'s candidate block is ``b_hh`` (inside ``r ⊙ (...)``).

    >>> sorted(unstack_weights(LSTM(1, 1, gate_order="ifgo"), W_x=np.arange(4.)[:, None]))
    ['W_xf', 'W_xg', 'W_xi', 'W_xo']
    """
    gates = layer.gate_order if isinstance(layer, LSTM) else "rzh"
    out = {}
    for name, stacked in (("W_x", W_x), ("W_h", W_h), ("b_", b)):
        if stacked is None:
            continue
        for q, block in zip(gates, np.split(np.asarray(stacked, dtype=float), len(gates))):
            out[f"{name}{q}"] = block.copy()
    if b_h is not None:
        for q, block in zip(gates, np.split(np.asarray(b_h, dtype=float), len(gates))):
            if q == "h" and getattr(layer, "reset", None) == "after":
                out["b_hh"] = block.copy()
            else:
                out[f"b_{q}"] = out.get(f"b_{q}", 0) + block
    return out
