"""LSTM and GRU over a whole sequence (derive/layers/sequences.py): torch.nn.LSTM and
torch.nn.GRU with copied weights (outputs and the gradients of x, h0, c0 and every
weight), central finite differences, CS231n's gate order, backprop through time shown and
checked, printed = computed, bad input, and an LSTM sequence model's kernels (gradients
equal derive.evaluate to 1e-10 in float64; it trains)."""
from __future__ import annotations

import numpy as np
import pytest

import derive as dv
from derive.errors import InputError, ShapeError
from derive.layers.sequences import GRU, LSTM, unstack_weights
from derive.tensor.printed import check_printed

B, T, D, H = 3, 4, 3, 5


def _torch_run(kind, output, seed, **kw):
    """(our values, upstream, torch outputs and grads by our names)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = getattr(torch.nn, kind)(D, H, batch_first=True, dtype=torch.float64)
    layer = (LSTM(D, H, steps=T, output=output, gate_order="ifgo") if kind == "LSTM"
             else GRU(D, H, steps=T, output=output, reset="after"))
    w = {k: v.detach().numpy() for k, v in net.named_parameters()}
    vals = unstack_weights(layer, W_x=w["weight_ih_l0"], W_h=w["weight_hh_l0"],
                           b=w["bias_ih_l0"], b_h=w["bias_hh_l0"])
    vals["x"] = rng.normal(size=(B, T, D))
    states = ["h0", "c0"] if kind == "LSTM" else ["h0"]
    for s in states:
        vals[s] = rng.normal(size=(B, H))
    up = rng.normal(size=(B, T, H) if output == "all" else (B, H))
    x = torch.tensor(vals["x"], requires_grad=True)
    init = [torch.tensor(vals[s][None], requires_grad=True) for s in states]
    hs, last = net(x, tuple(init) if kind == "LSTM" else init[0])
    out = hs if output == "all" else (last[0] if kind == "LSTM" else last)[0]
    (out * torch.tensor(up)).sum().backward()
    g = {k: p.grad.numpy() for k, p in net.named_parameters()}
    want = unstack_weights(layer, W_x=g["weight_ih_l0"], W_h=g["weight_hh_l0"],
                           b=g["bias_ih_l0"])  # b_q's gradient is bias_ih's (= bias_hh's)
    if kind == "GRU":
        want["b_hh"] = np.split(g["bias_hh_l0"], 3)[2]
    want.update(x=x.grad.numpy(), **{s: t.grad.numpy()[0] for s, t in zip(states, init)})
    return layer, vals, up, out.detach().numpy(), want


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("output", ["all", "last"])
def test_outputs_and_gradients_equal_torch(kind, output):
    layer, vals, up, ref, want = _torch_run(kind, output, seed=len(kind) + len(output))
    out, grads = dv.evaluate(layer, vals, upstream=up)
    assert np.abs(out - ref).max() < 1e-12
    assert set(grads) == set(want) == set(layer.parameters()) | {"x", "h0"} | (
        {"c0"} if kind == "LSTM" else set())
    for k in want:
        assert np.abs(grads[k] - want[k]).max() < 1e-12, k


def test_cs231n_gate_order_is_its_stacked_layout():
    """CS231n's lstm_forward: a = x Wx + h Wh + b, Wx: [d, 4h], blocks i, f, o, g."""
    rng = np.random.default_rng(7)
    Wx, Wh, b = rng.normal(size=(D, 4 * H)), rng.normal(size=(H, 4 * H)), rng.normal(size=4 * H)
    x, h0 = rng.normal(size=(B, T, D)), rng.normal(size=(B, H))
    c, h, hs = np.zeros((B, H)), h0, []
    for t in range(T):
        a = x[:, t] @ Wx + h @ Wh + b
        i, f, o = (1 / (1 + np.exp(-a[:, k * H:(k + 1) * H])) for k in range(3))
        c = f * c + i * np.tanh(a[:, 3 * H:])
        h = o * np.tanh(c)
        hs.append(h)
    layer = LSTM(D, H, steps=T)  # the default order: i, f, o, g
    vals = unstack_weights(layer, W_x=Wx.T, W_h=Wh.T, b=b)
    vals.update(x=x, h0=h0, c0=np.zeros((B, H)))
    out, _ = dv.evaluate(layer, vals, wrt=[])
    assert np.abs(out - np.stack(hs, 1)).max() < 1e-12
    swapped = LSTM(D, H, steps=T, gate_order="ifgo")
    assert list(swapped.parameters())[6:9] == ["W_xg", "W_hg", "b_g"]
    assert np.abs(dv.evaluate(swapped, vals, wrt=[])[0] - out).max() == 0  # same gates
    notes = swapped.derive().notes
    assert any("PyTorch's order i, f, g, o" in n for n in notes)


@pytest.mark.parametrize("layer", [
    LSTM(D, H, steps=3), LSTM(D, H, steps=3, h0="zeros", output="last"),
    GRU(D, H, steps=3), GRU(D, H, steps=3, reset="after", h0="zeros", output="last"),
], ids=["lstm", "lstm_zeros_last", "gru", "gru_after_zeros_last"])
def test_gradients_equal_central_finite_differences(layer):
    rng = np.random.default_rng(3)
    vals = {name: rng.normal(0, 0.7, size=[B if str(s) == "B" else int(s) for s in shape])
            for name, shape, *_ in layer.input_specs()}
    vals.update({k: rng.normal(0, 0.7, size=s) for k, s in layer.parameters().items()})
    out, _ = dv.evaluate(layer, vals, wrt=[])
    up = rng.normal(size=out.shape)
    _, grads = dv.evaluate(layer, vals, upstream=up)
    eps = 1e-6
    for name in grads:
        v = rng.normal(size=vals[name].shape)
        plus = dv.evaluate(layer, {**vals, name: vals[name] + eps * v}, wrt=[])[0]
        minus = dv.evaluate(layer, {**vals, name: vals[name] - eps * v}, wrt=[])[0]
        numeric = float(np.sum((plus - minus) * up)) / (2 * eps)
        assert abs(numeric - float(np.sum(grads[name] * v))) < 1e-7, name


@pytest.mark.parametrize("layer", [LSTM(steps=3), GRU(steps=3), GRU(steps=3, reset="after"),
                                   LSTM(steps=3, h0="zeros", gate_order="ifgo")],
                         ids=["lstm", "gru", "gru_after", "lstm_zeros_ifgo"])
def test_bptt_is_shown_checked_and_every_printed_form_evaluated(layer):
    d = layer.derive()
    bptt = next(s for s in d.sections if s.title == f"{layer.title}: backprop through time")
    start = 0 if layer.h0 == "input" else 1
    assert str(bptt.steps[-1].rhs[0]) == "*".join(f"J_{t}" for t in range(3, start, -1))
    assert float(bptt.steps[-1].note.split("= ")[-1]) < 1e-12
    counts = check_printed(d)
    assert counts["skipped"] == 0, counts.get("skips")
    assert counts["checked"] > 100


def test_markdown_shows_the_product_of_jacobians():
    import reports

    md = reports.render(LSTM(steps=2).derive(), "md")
    assert "## LSTM: backprop through time" in md and r"J_{2} \, J_{1}" in md
    assert r"\operatorname{diag}" in md


def test_bad_input_is_one_line_naming_what_is_wrong():
    with pytest.raises(ShapeError, match="sequence length must be positive, got 0"):
        LSTM(steps=0)
    with pytest.raises(ShapeError, match="sequence length must be positive, got 0"):
        GRU(steps=0)
    with pytest.raises(InputError, match=r"^LSTM: gate_order must be 'ifog' .* got 'iofg'$"):
        LSTM(gate_order="iofg")
    with pytest.raises(InputError, match="reset must be 'before'"):
        GRU(reset="inside")
    net = dv.Network()
    x = net.input("x", ["B", 3, 2])
    h0, c0 = net.input("h0", ["B", 4]), net.input("c0", ["B", 5])
    with pytest.raises(ShapeError) as err:
        net.apply(LSTM(2, 4, steps=3), x, h0, c0)
    msg = str(err.value)
    assert "\n" not in msg and "h0 [B, 4] and c0 [B, 5]" in msg and "[B, 4]" in msg
    with pytest.raises(ShapeError, match="reads T = 3 steps"):
        net.apply(LSTM(2, 4, steps=3), net.input("x2", ["B", 2, 2]), h0, net.input("c", ["B", 4]))


def test_catalogue_rows_and_text_forms():
    assert dv.make_layer("lstm_sequence").key == "lstm_seq"
    assert dv.make_layer("gru_seq", reset="after").describe().endswith("reset=after)")
    from derive.layers.catalog import layer_from_text

    layer = layer_from_text("lstm_seq(3, 16, steps=8, output='last', gate_order='ifgo')")
    assert (layer.steps, layer.output, layer.gate_order) == (8, "last", "ifgo")


# -- kernels ------------------------------------------------------------------------------

C = 3
PARAMS = {"W_xi1": (H, D), "W_hi1": (H, H), "b_i1": (H,)}


def lstm_net():
    return dv.Sequential(LSTM(D, H, steps=T, output="last"), dv.Linear(H, C),
                         loss=dv.SoftmaxCrossEntropy())


@pytest.mark.usefixtures("kernel_cache")
def test_lstm_kernels_equal_evaluate_and_train():
    import kernels
    from kernels import data

    net = lstm_net()
    params = net.parameters()
    assert dict(list(params.items())[:3]) == PARAMS and net.input_shape == (T, D)
    model = kernels.compile(net, dtype="float64", optimizer="adam", lr=1e-2)
    rng = np.random.default_rng(5)
    vals = {k: rng.normal(0, 0.5, s) for k, s in params.items()}
    vals.update(x=rng.normal(size=(6, T, D)), y=rng.integers(0, C, 6))
    for k in params:
        model.params[k][...] = vals[k]
    loss, want = dv.evaluate(net, vals, wrt=list(params))
    bufs = model.buffers(6, model.meta["signature"]["train"])
    got = model.module.train_step(vals["x"], vals["y"], *model._param_list(), *bufs)
    assert abs(got - float(loss)) < 1e-12
    for k, g in zip(model.params, model.meta["grads"]):
        assert np.abs(model.grads[g] - want[k]).max() < 1e-10, k
    ds = data.sequences(240, T=T, d=D, n_classes=C, seed=0, dtype=np.float64, validation=0.2)
    model = kernels.compile(net, dtype="float64", optimizer="adam", lr=1e-2)
    history = kernels.fit(model, ds, lr=0.03, epochs=10, batch_size=16, progress=False)
    first, last = history[0]["loss"], history[-1]["loss"]
    assert last < 0.6 * first, [h["loss"] for h in history]


def test_a_network_splits_the_lstm_cells_stacked_state_into_named_outputs():
    from derive.layers.recurrent import LSTMCell

    net = dv.Network()
    x, h, c = net.input("x", ["B", 3]), net.input("h", ["B", 2]), net.input("c", ["B", 2])
    state = net.apply(LSTMCell(3, 2), x, h, c)
    h1, c1 = net.unstack(state, ["h_next", "c_next"])
    assert (h1.name, c1.name, tuple(map(str, c1.shape))) == ("h_next", "c_next", ("B", "2"))
    net.set_output(net.apply(dv.MulLayer(), h1, c1))
    cell, rng = LSTMCell(3, 2), np.random.default_rng(0)
    vals = {k: rng.normal(size=s) for k, s in cell.parameters().items()}
    vals.update(x=rng.normal(size=(4, 3)), h=rng.normal(size=(4, 2)), c=rng.normal(size=(4, 2)))
    out, grads = dv.evaluate(net, {k + "1" if k in cell.parameters() else k: v
                                   for k, v in vals.items()})
    stacked, _ = dv.evaluate(cell, vals, wrt=[])
    assert np.abs(out - stacked[:, 0] * stacked[:, 1]).max() < 1e-15
    _, want = dv.evaluate(cell, vals, upstream=stacked[:, ::-1])  # d(h c) = c dh + h dc
    for k in want:
        assert np.abs(grads[k + "1" if k in cell.parameters() else k] - want[k]).max() < 1e-12
    with pytest.raises(ShapeError, match=r"shape \[B, 2, 2\] of state1 does not stack 3"):
        net.unstack(state, ["a", "b", "c"])


def test_the_train_example_reads_its_sequences_and_model():
    import os

    from kernels.cli import build_net, load_config, load_data

    path = os.path.join(os.path.dirname(__file__), "..", "examples", "train",
                        "sequences_lstm.yaml")
    cfg = load_config(path)
    net, ds = build_net(cfg["model"]), load_data(cfg["data"], seed=0)
    assert isinstance(net.layers[0], LSTM) and net.input_shape == ds.X.shape[1:] == (8, 3)
    assert len(ds.X) + len(ds.X_val) == 512 and ds.n_classes == 3
    with pytest.raises(InputError, match="sequences.steps: expected one of n, T, d, classes"):
        load_data({"sequences": {"steps": 8}})
