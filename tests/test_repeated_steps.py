"""A sequence's repeated steps: derived once and renamed, shown once in a long document.

* The reverse sweep derives an edge whose shape (up to tensor and fresh-index names) it
  has derived before by renaming the earlier result (derive/tensor/renaming.py). Here the
  sweep with that reuse is compared, adjoint by adjoint and edge by edge, with the sweep
  that derives every edge afresh.
* A document of an LSTM over more than five steps shows steps 1, 2, T-1 and T; the steps
  between are named in a note. The numbers do not change: the gradients equal those of the
  derivation that prints every step, and the program still runs all T steps.
"""
import numpy as np
import pytest
import sympy as sp

import derive as dv
import derive.tensor.reverse_sweep as rs
from derive.layers.sequences import GRU, LSTM
from derive.tensor.index import eliminate, simplify_index, vjp
from derive.tensor.renaming import shape_of


def _fresh_edge(s, consumer, node, K, conv):
    """The edge as derived before reuse: vjp on the edge's own names."""
    c_bar = s.bar_element(consumer.name, consumer.indices)
    contrib, partial = vjp(consumer.rhs, consumer.indices, c_bar, node.symbol, K, conv)
    raw = partial
    partial = simplify_index(eliminate(partial)) if partial != 0 else partial
    s.edges.append(rs.EdgeRecord(node.name, consumer.name, partial, contrib, raw))
    return contrib


def _renamed_like(a, b):
    """Map a's fresh adjoint indices onto b's (each sweep draws its own)."""
    return {x: y for n in a.indices for x, y in zip(a.indices[n], b.indices[n])}


@pytest.mark.parametrize("graph", [
    lambda: LSTM(3, 4, steps=4, output="last", h0="zeros").graph(),
    lambda: GRU(2, 3, steps=3, output="all").graph(),
    lambda: dv.Sequential(dv.RNN(2, 3, steps=4, output="last"), dv.Linear(3, 2),
                          loss=dv.SoftmaxCrossEntropy(), input_shape=(4, 2)).graph(),
    lambda: dv.Sequential(dv.Linear(3, 4), dv.ReLU(), dv.Linear(4, 4), dv.ReLU(),
                          dv.Linear(4, 2), loss=dv.SoftmaxCrossEntropy()).graph(),
], ids=["lstm", "gru", "rnn-model", "mlp"])
def test_reused_edges_equal_fresh_ones(graph, monkeypatch):
    g = graph()
    reused = rs.sweep(g)
    monkeypatch.setattr(rs, "_edge", _fresh_edge)
    fresh = rs.sweep(g)
    m = _renamed_like(reused, fresh)
    assert {n: v.xreplace(m) for n, v in reused.adjoints.items()} == fresh.adjoints
    for a, b in zip(reused.edges, fresh.edges):
        assert (a.src, a.dst) == (b.src, b.dst)
        assert a.contribution.xreplace(m) == b.contribution
        assert sp.simplify(a.partial.xreplace(m) - b.partial) == 0
        assert a.raw.xreplace(m) == b.raw
    assert reused.conventions == fresh.conventions
    # an unrolled sequence is derived from far fewer shapes than it has edges
    if "x1" in g.nodes or "x1_1" in g.nodes:
        assert len(reused.derived) < 0.7 * len(reused.edges)


def test_shape_of_keeps_ranges_and_dimensions():
    B, h = sp.Symbol("B", integer=True, positive=True), sp.Symbol("h", integer=True,
                                                                   positive=True)
    n, i = sp.Idx("i3", B), sp.Idx("i4", h)
    c, f = sp.IndexedBase("c1_2"), sp.IndexedBase("f1_3")
    one = shape_of([c[n, i] * f[n, i] / B], {"c1_2", "f1_3"})
    other = shape_of([sp.IndexedBase("c1_7")[n, i] * sp.IndexedBase("f1_8")[n, i] / B],
                     {"c1_7", "f1_8"})
    assert one.key == other.key
    assert B in one.forward[0].free_symbols or one.forward[0].has(B)  # dims stay
    # a different range is a different shape
    wide = shape_of([c[sp.Idx("i3", B + 1), i] * f[n, i] / B], {"c1_2", "f1_3"})
    assert wide.key != one.key
    assert other.restore(one.forward[0]) == sp.IndexedBase("c1_7")[n, i] \
        * sp.IndexedBase("f1_8")[n, i] / B


def test_long_sequence_document_shows_first_and_last_steps():
    T = 8
    lstm = LSTM(2, 3, steps=T, output="last", h0="zeros")
    rng = np.random.default_rng(0)
    values = {name: rng.normal(size=[2 if str(s) == "B" else int(s) for s in shape])
              for name, shape in _leaf_shapes(lstm).items()}
    short = lstm.derive(values=values)
    full = lstm.derive(values=values, all_steps=True)
    hidden = set(short.meta["elided"])
    # steps 3..6 are left out of the record, steps 1, 2, 7, 8 are in it
    for t in range(1, T + 1):
        assert (f"h{t}" in hidden) == (3 <= t <= 6), t
    shown = {n.name for n in short.nodes}
    assert {"h1", "h2", "h7", "h8", "c8"} <= shown and not shown & hidden
    assert not any(a.name in hidden for a in short.adjoints)
    assert not any(e.src in hidden for e in short.edges)
    assert not any(s.title == f"Adjoint of {n}" for s in short.sections for n in hidden)
    assert any("steps 3 to 6 are step 2's formulas" in t for t in short.notes)
    assert "elided" not in full.meta and len(full.nodes) > len(short.nodes)
    # the numbers are the same, and the program runs every step
    assert set(short.gradients) == set(full.gradients)
    for w, g in short.gradients.items():
        np.testing.assert_allclose(np.asarray(g.value, float),
                                   np.asarray(full.gradients[w].value, float), rtol=1e-12)
    assert {f"h{t}" for t in range(1, T + 1)} <= set(short.program.tensors)
    # and every form the shorter document prints is checked against those numbers
    import reports
    tex = reports.render(short, "tex")
    assert "steps 3 to 6" in tex
    assert short.meta["printed_checked"]["checked"] > 0


def _leaf_shapes(layer):
    g = layer.graph()
    return {n.name: n.shape for n in g.leaves()}


def test_lstm_final_state_is_an_output_and_matches_torch():
    """output="state": [h_T; c_T] stacked as the cell stacks it, split by Network.unstack;
    the gradient through c_T (a loss on both) equals torch.nn.LSTM's autograd."""
    torch = pytest.importorskip("torch")
    from derive.layers.sequences import unstack_weights

    B, T, d, h = 2, 3, 2, 3
    rng = np.random.default_rng(1)
    x = rng.normal(size=(B, T, d))
    W_ih, W_hh, b = rng.normal(size=(4 * h, d)), rng.normal(size=(4 * h, h)), \
        rng.normal(size=4 * h)
    lstm = LSTM(d, h, steps=T, output="state", h0="zeros", gate_order="ifgo")
    net = dv.Network("final state")
    state = net.apply(lstm, net.input("x", ["B", T, d]))
    assert [str(s) for s in state.shape] == ["B", "2", str(h)]
    hT, cT = net.unstack(state, ["h_T", "c_T"])
    net.set_output(net.apply(dv.MulLayer(), hT, cT))  # h_T ⊙ c_T: both states used
    params = unstack_weights(lstm, W_x=W_ih, W_h=W_hh, b=b)
    out, grads = dv.evaluate(net, {"x": x, **{f"{k}1": v for k, v in params.items()}})
    xt = torch.tensor(x, requires_grad=True)
    ref = torch.nn.LSTM(d, h, batch_first=True, bias=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(torch.tensor(W_ih))
        ref.weight_hh_l0.copy_(torch.tensor(W_hh))
        ref.bias_ih_l0.copy_(torch.tensor(b))
        ref.bias_hh_l0.zero_()
    _, (hn, cn) = ref(xt)
    prod = hn[0] * cn[0]
    prod.sum().backward()
    np.testing.assert_allclose(out, prod.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(grads["x"], xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    ref_grads = {"W_x": ref.weight_ih_l0.grad.numpy(), "W_h": ref.weight_hh_l0.grad.numpy(),
                 "b": ref.bias_ih_l0.grad.numpy()}
    mine = unstack_weights(lstm, **ref_grads)
    for k, v in mine.items():
        np.testing.assert_allclose(grads[f"{k}1"], v, rtol=1e-9, atol=1e-12)
    # the final state read back through the Network's names: [h_T; c_T]
    d_ = net.derive()
    assert any(n.name == "state1" for n in d_.nodes)


def test_the_command_line_prints_every_step_when_asked(capsys):
    from derive.command_line import main

    def page(*flags):
        code = main(["layer", "lstm_seq", "-p", "steps=6", "-p", "output=last", "-f", "md",
                     *flags])
        assert code in (0, None)
        return capsys.readouterr().out

    short, full = page(), page("--all-steps")
    assert "Adjoint of h4" not in short and "steps 3 to 4 are step 2's formulas" in short
    assert "Adjoint of h4" in full and "are step 2's formulas" not in full
