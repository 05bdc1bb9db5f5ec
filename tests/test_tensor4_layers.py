"""Convolution, pooling, recurrent, attention and graph layers: what their derivations must
show, the scalar RNN answer, composition, kernels' loops, problem files and bad input."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import sympy as sp

import derive.tensor as dt
from derive.errors import InputError, NotDifferentiableError, ShapeError
from derive.shapes import output_size
from derive.tensor.attention import ArgmaxAttention, SelfAttention
from derive.tensor.catalog4 import ALIASES4, layers4
from derive.tensor.conv import Conv2d
from derive.tensor.graphnet import MessagePassing
from derive.tensor.index import dim
from derive.tensor.layerfile import solve as solve_layer
from derive.tensor.pool import FIRST_MAX, Flatten, MaxPool2d
from derive.tensor.recurrent import RNN, GRUCell, LSTMCell
from derive.tensor.scalar import entry_symbol
from derive.tensor.scatter import fits, index_range, scalarise_program, split
from derive.tensor.windows import OutSize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples", "tensor")


def section(d, title):
    return next(s for s in d.sections if s.title == title)


def random_values(layer, sizes, seed=0):
    rng = np.random.default_rng(seed)
    values = {n: rng.normal(size=s) for n, s in sizes.items()}
    values.update({k: rng.normal(size=s) for k, s in layer.parameters().items()})
    return values


# -- convolution ------------------------------------------------------------------------------


def test_conv_output_size_rule_appears_in_the_derivation_of_shapes():
    d = Conv2d(stride=2, padding=1).derive()
    shapes = section(d, "Conv2d: output shape")
    n, k, s, p = sp.symbols("n k s p", integer=True, positive=True)
    rule = shapes.steps[0].rhs[0]
    assert rule == sp.floor((n + 2 * p - k) / s) + 1
    assert rule.subs({n: 32, k: 3, s: 2, p: 1}) == 16
    H = dim("H")
    assert shapes.steps[1].rhs[0] == sp.floor((H + 2 - 3) / sp.Integer(2)) + 1
    assert d.node("y").shape[2] == OutSize(H, 3, 2, 2)
    g = Conv2d(3, 4, kernel_size=3, stride=2, padding=1, height=7, width=8).graph()
    assert g.nodes["y"].shape[2:] == (output_size(7, 3, 2, 1), output_size(8, 3, 2, 1)) == (4, 4)


def test_conv_input_gradient_is_a_scatter_then_a_crop_and_a_transposed_convolution():
    layer = Conv2d(2, 3, kernel_size=3, stride=2, padding=1)
    prog = layer.program()
    back = {a.target: a for a in prog.backward}
    scatter = back["xp_bar"]
    assert scatter.mode == "+=" and len(scatter.indices) == 6  # n, c, i, a, j, b
    assert [str(e).count("2*") for e in scatter.lhs] == [0, 0, 1, 1]  # i*S + a
    crop = back["x_bar"]
    assert crop.mode == "=" and str(crop.rhs).startswith("xp_bar[") and "+ 1" in str(crop.rhs)
    d = layer.derive()
    note = section(d, "Conv2d: gradients as convolutions").steps[0].note
    assert float(note.split("= ")[-1].split(" ")[0]) < 1e-12
    torch = pytest.importorskip("torch")
    values = random_values(layer, {"x": (2, 2, 7, 6)})
    out, _ = dt.evaluate(prog, values)
    y_bar = np.random.default_rng(3).normal(size=out.shape)
    _, grads = dt.evaluate(prog, values, upstream=y_bar)
    extra = [7 - ((out.shape[2] - 1) * 2 - 2 + 3), 6 - ((out.shape[3] - 1) * 2 - 2 + 3)]
    ref = torch.nn.functional.conv_transpose2d(torch.tensor(y_bar), torch.tensor(values["K"]),
                                               stride=2, padding=1, output_padding=extra)
    assert np.allclose(grads["x"], ref.numpy(), atol=1e-12)


def test_kernel_larger_than_the_padded_input_is_one_clear_line():
    with pytest.raises(ShapeError, match=r"window \(5\) is larger than the padded input") as e:
        Conv2d(kernel_size=5, padding=0, height=3, width=3).graph()
    assert "\n" not in str(e.value)
    prog = Conv2d(1, 1, kernel_size=5).program()  # symbolic H, W: caught at evaluation
    with pytest.raises(ShapeError, match="larger than the padded input"):
        dt.evaluate(prog, {"x": np.zeros((1, 1, 3, 3)), "K": np.zeros((1, 1, 5, 5)),
                           "b": np.zeros(1)})


@pytest.mark.parametrize("make", [lambda: Conv2d(stride=0), lambda: MaxPool2d(2, stride=0)])
def test_stride_zero_is_rejected(make):
    with pytest.raises(ShapeError, match="stride must be positive, got 0"):
        make()


def test_mismatched_channels_name_both_shapes():
    net = dt.Network()
    x = net.input("x", ["B", 3, 8, 8])
    with pytest.raises(ShapeError, match=r"\[B, 3, 8, 8\] and \[B, 4, H, W\].*expects 4 input "
                                         r"channels, got 3"):
        net.apply(Conv2d(4, 2), x)


# -- pooling -------------------------------------------------------------------------------


def test_maxpool_routes_to_the_first_maximum_and_says_so():
    x = np.array([[[[3, 1, 0, 2], [3, 2, 5, 5], [1, 0, 2, 2], [4, 4, 0, 6]]]], dtype=float)
    out, g = dt.evaluate(MaxPool2d(2), {"x": x})
    assert out.tolist() == [[[[3, 5], [4, 6]]]]
    want = np.zeros_like(x)
    for r, c in [(0, 0), (1, 2), (3, 0), (3, 3)]:  # first maximum of each window, row-major
        want[0, 0, r, c] = 1
    assert np.array_equal(g["x"], want)
    assert FIRST_MAX in MaxPool2d(2).derive().notes


def test_maxpool_routing_matches_torch_on_ties():
    torch = pytest.importorskip("torch")
    x = np.round(np.random.default_rng(0).normal(size=(2, 2, 6, 5)))  # many ties
    up = np.random.default_rng(1).normal(size=(2, 2, 3, 3))
    _, g = dt.evaluate(MaxPool2d(3, stride=2, padding=1), {"x": x}, upstream=up)
    t = torch.tensor(x, requires_grad=True)
    (torch.nn.functional.max_pool2d(t, 3, 2, 1) * torch.tensor(up)).sum().backward()
    assert np.allclose(g["x"], t.grad.numpy())


def test_flatten_gradient_is_an_exact_gather():
    prog = Flatten().program()
    (fwd,) = prog.forward
    (back,) = prog.backward
    assert fwd.mode == "+=" and back.mode == "=" and back.lhs is None
    assert str(back.rhs) == "y_bar[{0}, H*W*{1} + W*{2} + {3}]".format(*back.indices)


# -- recurrent ---------------------------------------------------------------------------------


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


# -- attention and graphs ----------------------------------------------------------------------


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


# -- composition, kernels, files, catalogue ---------------------------------------------------


def small_cnn():
    net = dt.Network()
    x = net.input("x", ["B", 1, 6, 6])
    h = net.apply(Conv2d(1, 2, kernel_size=3, padding=1), x)
    h = net.apply(MaxPool2d(2), net.apply(dt.ReLU(), h))
    z = net.apply(dt.Linear(18, 3), net.apply(Flatten(), h))
    y = net.input("y", ["B"], role="label", dtype="int", classes=3)
    net.set_output(net.apply(dt.CrossEntropy(), z, y))
    return net


def test_a_small_cnn_summarises_and_matches_torch():
    net = small_cnn()
    s = net.summary()
    assert s.total == 2 * 1 * 3 * 3 + 2 + 18 * 3 + 3
    assert s.rows[0]["params"] == {"K1": (2, 1, 3, 3), "b1": (2,)}
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    v = {"x": rng.normal(size=(4, 1, 6, 6)), "y": np.array([0, 2, 1, 2]),
         "K1": rng.normal(size=(2, 1, 3, 3)), "b1": rng.normal(size=2),
         "W5": rng.normal(size=(3, 18)), "b5": rng.normal(size=3)}
    out, g = dt.evaluate(net, v)
    t = {k: torch.tensor(a, requires_grad=k != "y") for k, a in v.items()}
    F = torch.nn.functional
    h = F.max_pool2d(F.conv2d(t["x"], t["K1"], t["b1"], padding=1).relu(), 2).flatten(1)
    loss = F.cross_entropy(F.linear(h, t["W5"], t["b5"]), t["y"])
    loss.backward()
    assert float(out) == pytest.approx(loss.item(), abs=1e-12)
    for k in ("x", "K1", "b1", "W5", "b5"):
        assert np.allclose(g[k], t[k].grad.numpy(), atol=1e-12), k


def test_kernels_print_the_scatters_as_loops_that_compute_the_same_numbers():
    """kernels.printer turns every assignment (scatters, clamps, mod, argmax) into loops."""
    from kernels.printer import NumbaPrinter, loops

    rng = np.random.default_rng(0)
    for layer in (Conv2d(2, 3, 2, padding=1, padding_mode="circular"),
                  MaxPool2d(3, stride=2, padding=1)):
        prog = layer.program()
        values = random_values(layer, {"x": (2, 2, 5, 6)})
        out = prog.run(values)[prog.output]
        upstream = rng.normal(size=out.shape)
        want = prog.run(values, upstream)
        dims = {str(k): int(v) for k, v in prog.bind(values).items()}
        env = {"np": np, "math": math, **dims, **values, prog.seed: upstream}
        for a in prog.forward + prog.backward:
            info = prog.tensors[a.target]
            env[a.target] = np.zeros(np.shape(want[a.target]),
                                     dtype=int if info.dtype == "int" else float)
            src = "\n".join(loops(a.target, a.indices, a.rhs, NumbaPrinter(), mode=a.mode,
                                  lhs=a.lhs))
            exec(compile(src, a.target, "exec"), env)  # generated from our own Program
            assert np.allclose(env[a.target], want[a.target]), a.target


def solve_layer_file(name):
    from derive.problem import read

    path = os.path.join(EXAMPLES, name)
    return [solve_layer(doc, name) for doc in read(path)]


LAYER_FILES = sorted(f for f in os.listdir(EXAMPLES)
                     if f.split("_")[0] in ("conv", "maxpool", "rnn", "attention", "message"))


@pytest.mark.parametrize("name", LAYER_FILES)
def test_example_files_solve(name):
    (d,) = solve_layer_file(name)
    assert d.sections and d.meta["layer"] in layers4()


def test_conv_example_numbers_match_torch():
    torch = pytest.importorskip("torch")
    (d,) = solve_layer_file("conv_stride.yaml")
    x = torch.tensor([[[[1, 2, 0, 1], [0, 1, 3, 1], [2, 2, 1, 0], [1, 0, 0, 2]]]],
                     dtype=torch.float64, requires_grad=True)
    K = torch.tensor([[[[1, 0, -1], [2, 0, -2], [1, 0, -1]]]], dtype=torch.float64)
    y = torch.nn.functional.conv2d(x, K, torch.tensor([0.5], dtype=torch.float64), stride=2,
                                   padding=1)
    y.sum().backward()
    assert np.allclose(d.node("y").value, y.detach().numpy())
    assert np.allclose(d.gradients["x"].value, x.grad.numpy())


@pytest.mark.parametrize("name", ["conv2d", "maxpool2d", "lstm_cell", "self_attention",
                                  "message_passing"])
def test_derivations_render(name):
    import json

    import reports

    d = layers4()[name]().derive()
    assert "\\bar" in reports.render(d, "tex")
    assert json.loads(reports.render(d, "json"))["gradients"]


def test_catalogue_names_and_aliases_resolve():
    table = layers4()
    assert set(ALIASES4.values()) <= set(table)
    assert all(cls.key == key for key, cls in table.items())


def test_scatter_ranges_are_proved_on_symbolic_sizes():
    H = dim("H")
    i, a = sp.Idx("i", OutSize(H, 3, 2, 2)), sp.Idx("a", 3)
    assert index_range(2 * i + a) == (0, 2 * OutSize(H, 3, 2, 2))
    assert fits(2 * i + a, H + 2) and not fits(2 * i + a + 1, H + 2)
    k = sp.Idx("k", H)
    u = sp.Idx("u", H + 2)
    x_bar = sp.IndexedBase("xp_bar")
    gather, scatters, changed = split(
        dt.ISum(sp.KroneckerDelta(u, k + 1) * x_bar[u], u), (k,))
    assert changed and not scatters and gather == x_bar[k + 1]
    y = sp.IndexedBase("y")
    _, scatters, _ = split(dt.ISum(sp.KroneckerDelta(2 * i + a, u) * y[i], i, a), (u,))
    ((loop, lhs, rhs),) = scatters
    out, window = loop if lhs[0] == 2 * loop[0] + loop[1] else loop[::-1]
    assert lhs == (2 * out + window,) and rhs == y[out]  # for i, a: x̄[2i + a] += y[i]


@pytest.fixture
def merged_catalogue(monkeypatch):
    """The catalogue with this issue's layers merged, as the one-line merge does."""
    from derive.tensor import catalog

    for key, cls in layers4().items():
        monkeypatch.setitem(catalog.LAYERS, key, cls)
    for alias, key in ALIASES4.items():
        monkeypatch.setitem(catalog.ALIASES, alias, key)


def test_derivekit_layer_derives_and_rejects_bad_input(merged_catalogue, capsys):
    from derive.cli import main

    assert main(["layer", "conv", "-p", "stride=2", "-p", "padding=1", "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "output shape" in out and "Scatter-accumulate" in out
    for argv, message in ((["layer", "conv2d", "-p", "stride=0"], "stride must be positive"),
                          (["layer", "rnn", "-p", "steps=0"], "sequence length must be"),
                          (["layer", "conv2d", "-p", "padding_mode=reflect"], "padding_mode")):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert message in captured.err and captured.err.count("\n") == 1 and not captured.out
