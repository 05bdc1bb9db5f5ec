"""Recurrent, attention and graph layers: the scalar RNN answer, backprop through time,
gate conventions, multi-head scatters, hard attention (forward only), message passing
node by node, and bad input."""
from __future__ import annotations

import os

import numpy as np
import pytest
import sympy as sp

import derive as dt
from derive.errors import InputError, NotDifferentiableError, ShapeError
from derive.layers.attention import ArgmaxAttention, SelfAttention
from derive.layers.graphnet import MessagePassing
from derive.layers.recurrent import RNN, GRUCell, LSTMCell
from derive.tensor.scalar import entry_symbol
from derive.tensor.scatter import scalarise_program
from test_layers import ROOT, solve_layer_file


def section(d, title):
    return next(s for s in d.sections if s.title == title)


# -- recurrent ------------------------------------------------------------------------


def test_rnn_over_three_steps_reproduces_the_scalar_rnn_example():
    """examples/rnn.yaml: h_t = w (u_t + h_{t-1}), dy/dw = u3 + 2w u2 + 3w² u1."""
    layer = RNN(1, 1, steps=3, bias=False, nonlinearity="identity", output="last")
    prog = layer.program(wrt=["W_xh", "W_hh"])
    arrays = scalarise_program(prog, {"B": 1}, leaves={"h0": [[0]], prog.seed: [[1]]})
    w, u1, u2, u3 = sp.symbols("w u1 u2 u3")
    at = {entry_symbol("W_hh", (0, 0)): w, entry_symbol("W_xh", (0, 0)): w}
    at.update({entry_symbol("x", (0, t, 0)): u for t, u in enumerate((u1, u2, u3))})
    total = (arrays["W_hh_bar"][0, 0] + arrays["W_xh_bar"][0, 0]).xreplace(at)
    assert sp.expand(total - (u3 + 2 * w * u2 + 3 * w ** 2 * u1)) == 0
    (d,) = solve_layer_file("rnn_scalar.yaml")
    assert d.gradients["W_hh"].value.item() + d.gradients["W_xh"].value.item() == 11
    from derive.problem import solve

    (scalar,) = solve(os.path.join(ROOT, "examples", "rnn.yaml"))
    assert float(scalar.gradients["w"].value) == 11


@pytest.mark.parametrize("output", ["last", "all"])
def test_bptt_shows_the_product_of_jacobians_and_checks_it(output):
    d = RNN(steps=3, output=output).derive()
    bptt = section(d, "RNN: backprop through time")
    assert "diag(1 - h_t**2)" in str(bptt.steps[0].rhs[0])
    assert str(bptt.steps[1].rhs[0]) == "J_3*J_2*J_1"
    err = float(bptt.steps[1].note.split("= ")[-1])
    assert err < 1e-12


def test_sequence_length_zero_is_rejected():
    with pytest.raises(ShapeError, match="sequence length must be positive, got 0"):
        RNN(steps=0)


def test_gate_conventions_are_stated():
    lstm = LSTMCell().derive().notes
    assert any("i, f, o, g" in n and "PyTorch stacks them as i, f, g, o" in n for n in lstm)
    gru = GRUCell().derive().notes
    assert any("h' = z ⊙ h + (1 − z) ⊙ h̃" in n for n in gru)
    assert list(LSTMCell().parameters())[:9:3] == ["W_xi", "W_xf", "W_xo"]


# -- attention ------------------------------------------------------------------------


def test_multihead_projection_gradients_are_scatters_through_h_dk_plus_j():
    prog = SelfAttention(heads=2).program()
    scatters = {a.target: a for a in prog.backward if a.mode == "+="}
    assert set(scatters) == {"W_q_bar", "W_k_bar", "W_v_bar", "W_o_bar"}
    assert "d_k*" in str(scatters["W_o_bar"].lhs[1])


def test_argmax_attention_is_forward_only_and_says_why():
    layer = ArgmaxAttention(d_model=3, d_k=2)
    rng = np.random.default_rng(0)
    v = {"x": rng.normal(size=(2, 4, 3))}
    v.update({k: rng.normal(size=s) for k, s in layer.parameters().items()})
    out, grads = dt.evaluate(layer, v, wrt=[])
    q, k, val = (v["x"] @ v[f"W_{c}"].T for c in "qkv")
    pick = (q @ k.transpose(0, 2, 1)).argmax(-1)
    assert grads == {} and np.allclose(out, np.take_along_axis(val, pick[..., None], 1))
    assert "zero almost everywhere" in layer.derive().notes[-1]
    with pytest.raises(NotDifferentiableError, match="argmax"):
        layer.program(wrt=["W_q"])



def test_bind_solves_a_product_size_like_heads_times_d_k():
    layer = dt.SelfAttention(d_model=4, heads=2, d_k="d_k", steps=3)
    prog = dt.program(layer.graph())  # a plain Program: no layer-specific binding
    rng = np.random.default_rng(4)
    values = {"x": rng.normal(size=(2, 3, 4)), "W_o": rng.normal(size=(4, 6)),
              **{w: rng.normal(size=(6, 4)) for w in ("W_q", "W_k", "W_v")}}
    dims = prog.bind(values)
    assert dims[sp.Symbol("d_k", integer=True, positive=True)] == 3
    assert np.allclose(prog.run(values)["y"], layer.program().run(values)["y"], atol=0)
    with pytest.raises(ShapeError, match="W_q"):
        prog.bind({**values, "W_q": rng.normal(size=(5, 4))})  # 2·d_k = 5: no d_k


# -- graphs ---------------------------------------------------------------------------


def test_message_passing_expanded_node_by_node():
    d = MessagePassing([[0, 1, 1], [1, 0, 0], [1, 1, 0]], expand=True).derive()
    steps = section(d, "MessagePassing, node by node").steps
    node0, node1 = (str(s.rhs[0]) for s in steps[:2])
    assert "m[0, 1," in node0 and "m[0, 2," in node0 and "/2" in node0 and "m[0, 0," not in node0
    assert "m[1, 0," in node1 and "/2" not in node1
    w2 = next(str(s.rhs[0]) for s in steps if str(s.lhs).startswith("W2_bar"))
    assert "m[0, 1, j]" in w2 and "m[0, 0, j]" not in w2  # only neighbours contribute


def test_isolated_node_under_mean_aggregation_states_the_convention():
    with pytest.raises(InputError, match="node 1 has no neighbours.*isolated='zero'"):
        MessagePassing([[0, 1], [0, 0]])
    layer = MessagePassing([[0, 1], [0, 0]], isolated="zero", features=2, hidden=2,
                           message_size=2)
    ones = {"s": np.ones((2, 2)), "m": np.ones((2, 2, 2)), "W1": np.ones((2, 2)),
            "W2": np.ones((2, 2))}
    out, _ = dt.evaluate(layer, ones)
    assert np.allclose(out[1], 1.0)  # s_1 + W1·0: the mean of no messages is 0
    assert any("taken to be 0" in n for n in layer.derive().notes)



def test_a_program_carries_the_adjacency_as_a_default_value():
    layer = MessagePassing([[0, 1], [1, 0]], features=2, hidden=2, message_size=2)
    for prog in (layer.program(), dt.program(layer.graph()), layer.derive().program):
        assert sorted(prog.given) == ["A", "n"]
        values = {"s": np.ones((2, 2)), "m": np.ones((2, 2, 2)), "W1": np.eye(2),
                  "W2": np.eye(2)}
        out, _ = dt.evaluate(prog, values)  # each node hears one neighbour: s + tanh(1)
        assert np.allclose(out, 1 + np.tanh(1.0))
        alone, _ = dt.evaluate(prog, {**values, "A": np.zeros((2, 2))})  # a value given wins
        assert np.allclose(alone, 1.0)
