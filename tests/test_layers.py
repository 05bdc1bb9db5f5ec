"""Layer derivations (index form -> deltas -> matrix form), composition, evaluate, and
the layer catalogue: names, aliases, options, layers from text, layer files and
``derivekit layer``."""
from __future__ import annotations

import os

import numpy as np
import pytest
import sympy as sp

import derive as dv
import derive as dt
from derive.errors import InputError, ShapeError, UnsupportedError
from derive.layers.catalog import (ALIASES, CATALOGUE, GROUPS, LAYER_NAMES, UnknownLayer,
                                   entry, layer_from_text, lookup, split_layers)
from derive.layers.layerfile import solve as solve_layer
from derive.tensor.matrix import MatMul, Reduce, Ref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples", "tensor")
SPATIAL_GROUPS = ("conv", "pool", "recurrent", "attention", "graph")


def test_linear_gradients_in_matrix_form():
    d = dt.layer_derivation("linear")
    assert str(d.gradients["W"].expression) == "z_bar.T*x"  # W_bar = Z_bar^T X
    assert str(d.gradients["b"].expression) == "ones(1, B)*z_bar"  # sum over the batch
    assert str(d.gradients["x"].expression) == "z_bar*W"  # X_bar = Z_bar W
    B, h = sp.symbols("B h", integer=True, positive=True)
    assert d.gradients["b"].expression.shape == (1, h)
    assert d.gradients["x"].expression.shape == (B, sp.Symbol("d", integer=True, positive=True))


def test_linear_sections_show_index_form_deltas_and_matrix_form():
    d = dt.layer_derivation("linear")
    section = next(s for s in d.sections if s.title == "Adjoint of W")
    partial, chain = section.steps
    assert "KroneckerDelta" in str(partial.rhs[0])  # before elimination
    assert [str(r) for r in chain.rhs][1:] == ["ISum(x[n, j]*z_bar[n, i], n)", "z_bar.T*x"]
    assert "KroneckerDelta" in str(chain.rhs[0])
    assert str(chain.lhs) == "W_bar[i, j]"


def test_linear_kernel_program_uses_matmul_with_transpose_flags():
    prog = dt.Linear(4, 3).program(wrt=["W", "b", "x"])
    back = {a.target: a.matrix for a in prog.backward}
    w = back["W_bar"]
    assert isinstance(w, MatMul) and w.ta and not w.tb and w.a.name == "z_bar"
    assert isinstance(back["b_bar"], Reduce) and back["b_bar"].axis == (0,)
    x = back["x_bar"]
    assert isinstance(x, MatMul) and (x.ta, x.tb) == (False, False) and x.b.name == "W"
    assert prog.grads == {"W": "W_bar", "b": "b_bar", "x": "x_bar"} and prog.seed == "z_bar"
    fwd = prog.forward[0].matrix
    assert isinstance(fwd.ops[0], MatMul) and fwd.ops[0].tb and isinstance(fwd.ops[0].b, Ref)


def test_cross_entropy_logit_gradient():
    d = dt.layer_derivation("cross_entropy")
    assert str(d.gradients["z"].expression) == "1/B*(-onehot(y) + softmax(z))"
    z = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]])
    y = np.array([2, 0])
    out, g = dt.evaluate(dt.CrossEntropy(), {"z": z, "y": y})
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    assert np.allclose(g["z"], (p - np.eye(3)[y]) / 2, atol=1e-15)


def test_softmax_is_stable_for_large_logits():
    out, g = dt.evaluate(dt.CrossEntropy(), {"z": np.array([[1000.0, 0.0, -1000.0]]),
                                             "y": np.array([1])})
    assert np.isfinite(out) and float(out) == pytest.approx(1000.0)
    assert np.allclose(g["z"], [[1.0, -1.0, 0.0]])


def test_batchnorm_compact_form_equals_the_chain():
    d = dt.layer_derivation("batchnorm")
    section = d.sections[-1]
    assert "compact" in section.title and "(γ/σ)(ȳ − mean(ȳ) − x̂ mean(ȳ ⊙ x̂))" in section.text
    note = section.steps[0].note
    err = float(note.split("= ")[1].split(" ")[0])
    assert err < 1e-12
    rhs = str(section.steps[0].rhs[0])
    assert "gamma[i]/sigma[i]" in rhs and "ISum(y_bar[m, i], m)/B" in rhs


def test_batchnorm_compact_form_symbolically_on_a_small_batch():
    from derive.layers.norms import BatchNorm
    from derive.tensor.scalar import scalarise

    layer = BatchNorm(features=1)
    prog = layer.program(wrt=["x"])
    arrays = scalarise(prog, {"B": 3})
    K = prog.backward[-1].indices
    compact = layer.compact({"y": "y", "xhat": "xhat", "sigma": "sigma", "gamma": "gamma"}, K)
    from derive.tensor.scalar import Scalariser

    sc = Scalariser({"B": 3}, arrays)
    got = sc.tensor(K, compact)
    chain = arrays["x_bar"]
    point = {s: sp.Rational(k + 2, 7) * (-1) ** k
             for k, s in enumerate(sorted(set().union(*[e.free_symbols for e in chain.ravel()]),
                                          key=str))}
    point[sp.Symbol("epsilon", positive=True)] = sp.Rational(1, 100)
    for a, b in zip(got.ravel(), chain.ravel()):
        assert sp.nsimplify(sp.N((a - b).xreplace(point), 40), tolerance=1e-30) == 0


def test_sequential_summary_with_symbolic_batch():
    net = dt.Sequential(dt.Linear(64, 128), dt.ReLU(), dt.Linear(128, 10),
                        loss=dt.SoftmaxCrossEntropy())
    s = net.summary()
    assert s.total == 64 * 128 + 128 + 128 * 10 + 10
    assert [r["output"] for r in s.rows] == ["z1", "a1", "z2", "L"]
    assert s.rows[0]["params"] == {"W1": (128, 64), "b1": (128,)}
    assert s.rows[1]["shape"] == (sp.Symbol("B", integer=True, positive=True), 128)
    assert "total parameters: 9610" in str(s)
    assert net.parameters() == {"W1": (128, 64), "b1": (128,), "W2": (10, 128), "b2": (10,)}


def test_sequential_derive_names_every_parameter_gradient():
    net = dt.Sequential(dt.Linear(4, 8), dt.Sigmoid(), dt.Linear(8, 2), loss=dt.MSE())
    d = net.derive()
    assert set(d.gradients) == {"x", "W1", "b1", "W2", "b2"}
    assert str(d.gradients["W1"].expression) == "z1_bar.T*x"
    assert "sigmoid(z1)" in str(d.adjoint("z1").in_nodes)


def test_network_with_a_residual_connection_matches_numpy():
    net = dt.Network()
    x = net.input("x", ["B", 3])
    h = net.apply(dt.Linear(3, 3), x)
    s = net.apply(dt.AddLayer(), net.apply(dt.Tanh(), h), x)
    y = net.input("y", ["B", 3], role="target")
    net.set_output(net.apply(dt.MSE(), s, y))
    rng = np.random.default_rng(4)
    v = {"x": rng.normal(size=(5, 3)), "y": rng.normal(size=(5, 3)),
         "W1": rng.normal(size=(3, 3)), "b1": rng.normal(size=3)}
    out, g = dt.evaluate(net, v, wrt=["x", "W1"])
    z = v["x"] @ v["W1"].T + v["b1"]
    r = np.tanh(z) + v["x"] - v["y"]
    assert float(out) == pytest.approx(np.mean(r ** 2))
    s_bar = 2 * r / r.size
    z_bar = s_bar * (1 - np.tanh(z) ** 2)
    assert np.allclose(g["W1"], z_bar.T @ v["x"])
    assert np.allclose(g["x"], z_bar @ v["W1"] + s_bar)


def test_dropout_mask_is_seeded_and_inverted():
    layer = dt.Dropout(p=0.5, seed=11)
    x = np.ones((4, 6))
    out1, g = dt.evaluate(layer, {"x": x})
    out2, _ = dt.evaluate(dt.Dropout(p=0.5, seed=11), {"x": x})
    assert np.array_equal(out1, out2) and set(np.unique(out1)) <= {0.0, 2.0}
    assert np.array_equal(g["x"], out1)  # upstream ones: gradient = mask / (1 - p)
    out3, _ = dt.evaluate(dt.Dropout(p=0.5, train=False), {"x": x})
    assert np.array_equal(out3, x)


def test_batchnorm_eval_uses_running_statistics():
    layer = dt.BatchNorm(features=2, train=False)
    x = np.array([[1.0, 2.0], [3.0, 5.0]])
    rm, rv = np.array([1.0, 1.0]), np.array([4.0, 9.0])
    v = {"x": x, "gamma": np.array([2.0, 1.0]), "beta": np.array([0.0, 1.0]),
         "running_mean": rm, "running_var": rv}
    out, g = dt.evaluate(layer, v, wrt=["x"])
    assert np.allclose(out, v["gamma"] * (x - rm) / np.sqrt(rv + 1e-5) + v["beta"])
    assert np.allclose(g["x"], np.broadcast_to(v["gamma"] / np.sqrt(rv + 1e-5), x.shape))


def test_evaluate_is_exported_at_top_level():
    values = {"x": np.ones((2, 4)), "W": np.eye(3, 4), "b": np.zeros(3)}
    out, g = dv.evaluate(dv.Linear(4, 3), values, wrt=["W", "x"], upstream=np.ones((2, 3)))
    assert out.shape == (2, 3) and np.allclose(g["W"], 2 * np.ones((3, 4)))
    assert set(g) == {"W", "x"}


def test_evaluate_bad_input():
    lin = dt.Linear(4, 3)
    good = {"x": np.ones((2, 4)), "W": np.ones((3, 4)), "b": np.zeros(3)}
    with pytest.raises(ShapeError, match=r"tensor 'W' has shape \[3, 4\].*\[4, 4\]"):
        dt.evaluate(lin, {**good, "W": np.ones((4, 4))})
    with pytest.raises(InputError, match="no value for 'b'"):
        dt.evaluate(lin, {"x": good["x"], "W": good["W"]})
    with pytest.raises(InputError, match="labels in 'y' must lie in 0..2"):
        dt.evaluate(dt.CrossEntropy(classes=3), {"z": np.ones((2, 3)), "y": np.array([0, 3])})
    with pytest.raises(ShapeError, match="upstream gradient has shape"):
        dt.evaluate(lin, good, upstream=np.ones((3, 3)))


@pytest.mark.parametrize("name, value, words", [
    ("x", "abc", r"tensor 'x' \[B, 4\] needs real numbers, got text 'abc'"),
    ("x", [["a", "b", "c", "d"]], r"tensor 'x' \[B, 4\] needs real numbers, got text"),
    ("b", ["a", "b", "c"], r"tensor 'b' \[3\] needs real numbers, got text"),
    ("x", [[1.0, 2.0], [3.0]], r"tensor 'x' \[B, 4\] needs real numbers, got a ragged list"),
    ("b", np.zeros(3) + 1j, r"tensor 'b' \[3\] needs real numbers, got complex numbers"),
    ("W", None, r"tensor 'W' \[3, 4\] needs real numbers, got NoneType None"),
])
def test_evaluate_refuses_non_numbers_in_one_line(name, value, words):
    good = {"x": np.ones((2, 4)), "W": np.ones((3, 4)), "b": np.zeros(3)}
    with pytest.raises(InputError, match=words) as info:
        dt.evaluate(dt.Linear(4, 3), {**good, name: value})
    assert "\n" not in str(info.value)


def test_evaluate_refuses_text_labels_and_upstream():
    with pytest.raises(InputError, match=r"tensor 'y' \[B\] needs integer class labels, got "
                                         r"text \['a', 'b'\]"):
        dt.evaluate(dt.CrossEntropy(classes=3), {"z": np.ones((2, 3)), "y": ["a", "b"]})
    good = {"x": np.ones((2, 4)), "W": np.ones((3, 4)), "b": np.zeros(3)}
    with pytest.raises(InputError, match=r"upstream \(the adjoint of 'z'\) \[B, 3\] needs "
                                         r"real numbers, got text 'g'"):
        dt.evaluate(dt.Linear(4, 3), good, upstream="g")


def test_sequential_shape_mismatch_names_node_and_shapes():
    with pytest.raises(ShapeError) as info:
        dt.Sequential(dt.Linear(4, 8), dt.ReLU(), dt.Linear(6, 2)).graph()
    msg = str(info.value)
    assert "[B, 8]" in msg and "6" in msg and "z2" in msg


def test_unknown_layer_is_unsupported():
    with pytest.raises(UnsupportedError, match="unknown layer 'conv9d'"):
        dt.layer_derivation("conv9d")
    with pytest.raises(InputError, match="no option 'slope'"):
        dt.layer_derivation("leaky_relu", slope=0.2)


def test_layer_names_cover_the_issue():
    wanted = {"linear", "matmul", "add", "mul", "sigmoid", "tanh", "relu", "leaky_relu",
              "gelu", "elu", "softplus", "step", "softmax", "log_softmax", "mse", "bce",
              "bce_logits", "cross_entropy", "hinge", "zero_one", "l1", "l2", "elastic_net",
              "layernorm", "batchnorm", "dropout"}
    assert wanted <= set(dt.LAYER_NAMES)


def test_step_and_relu_state_their_conventions():
    assert any("zero gradient almost everywhere" in n for n in dt.layer_derivation("step").notes)
    assert any("ReLU'(0) = 0" in n for n in dt.layer_derivation("relu").notes)


def test_program_documents_random_masks_and_constants():
    prog = dt.Sequential(dt.Linear(4, 4), dt.BatchNorm(4), dt.Dropout(0.2, seed=5),
                         loss=dt.MSE()).program()
    assert prog.random["m2"]["keep"] == pytest.approx(0.8) and prog.random["m2"]["seed"] == 5
    assert {str(k) for k in prog.constants} == {"epsilon", "momentum"}
    assert [a.target for a in prog.updates] == ["running_mean2", "running_var2"]
    assert prog.tensors["running_mean2"].role == "state"


def test_two_norms_in_one_block_get_their_own_names_and_right_gradients():
    # BatchNorm then LayerNorm (no parameters, same block) both defined xhat2, mu2, ...
    net = dv.Sequential(dv.Linear(4, 4), dv.BatchNorm(4), dv.LayerNorm(4, affine=False),
                        dv.BatchNorm(4), loss=dv.MSE())
    g = net.graph()
    assert {"xhat2", "xhat2_2", "xhat3"} <= set(g.nodes)
    rng = np.random.default_rng(5)
    vals = {"x": rng.normal(size=(5, 4)), "y": rng.normal(size=(5, 4)),
            "W1": rng.normal(size=(4, 4)), "b1": rng.normal(size=4),
            "gamma2": rng.normal(size=4), "beta2": rng.normal(size=4),
            "gamma3": rng.normal(size=4), "beta3": rng.normal(size=4)}
    vals.update({k: np.zeros(4) if "mean" in k else np.ones(4)
                 for k, node in g.nodes.items() if node.role == "state"})
    loss, grads = dv.evaluate(net, vals, wrt=["W1", "gamma2", "x"])
    for name in ("W1", "gamma2", "x"):  # central differences along a random direction
        t = rng.normal(size=vals[name].shape)
        h = 1e-6
        up = dv.evaluate(net, {**vals, name: vals[name] + h * t})[0]
        down = dv.evaluate(net, {**vals, name: vals[name] - h * t})[0]
        assert (up - down) / (2 * h) == pytest.approx(float((grads[name] * t).sum()),
                                                      rel=1e-6, abs=1e-8), name


# -- the catalogue, layer files and the command line ----------------------------------


def solve_layer_file(name):
    from derive.problem import read

    path = os.path.join(EXAMPLES, name)
    return [solve_layer(doc, name) for doc in read(path)]


LAYER_FILES = sorted(f for f in os.listdir(EXAMPLES)
                     if f.split("_")[0] in ("conv", "maxpool", "rnn", "attention", "message"))


@pytest.mark.parametrize("name", LAYER_FILES)
def test_example_files_solve(name):
    (d,) = solve_layer_file(name)
    assert d.sections and lookup(d.meta["layer"]).group in SPATIAL_GROUPS


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

    d = dt.make_layer(name).derive()
    assert "\\bar" in reports.render(d, "tex")
    assert json.loads(reports.render(d, "json"))["gradients"]


def test_catalogue_names_and_aliases_resolve():
    assert set(ALIASES.values()) <= set(CATALOGUE)
    assert not set(ALIASES) & set(CATALOGUE)  # an alias never hides a key
    assert all(e.cls.key == key and e.key == key for key, e in CATALOGUE.items())
    assert list(LAYER_NAMES) == list(CATALOGUE) == dt.layer_names()
    assert [e.group for e in CATALOGUE.values()] == \
        [g for g, classes in GROUPS for _ in classes]  # each class once, in group order
    assert entry("BatchNorm1d").key == "batchnorm" and entry(" GAP ").key == "global_avgpool"


#: every other name the command line, layer files and ``train --model`` accepted before
#: the catalogues were merged
OLD_ALIASES = {
    "softmax_cross_entropy": "cross_entropy", "ce": "cross_entropy", "svm": "hinge",
    "multiclass_hinge": "hinge", "0-1": "zero_one", "bn": "batchnorm",
    "batchnorm1d": "batchnorm", "ln": "layernorm", "bce_with_logits": "bce_logits",
    "lrelu": "leaky_relu", "logsoftmax": "log_softmax", "conv": "conv2d",
    "maxpool": "maxpool2d", "avgpool": "avgpool2d", "gap": "global_avgpool",
    "global_average_pool": "global_avgpool", "rnn_step": "rnn_cell", "lstm": "lstm_cell",
    "gru": "gru_cell", "word_embedding": "embedding", "attention": "self_attention",
    "multihead_attention": "self_attention", "hard_attention": "argmax_attention",
    "positional": "positional_encoding", "graph": "message_passing",
    "gnn": "message_passing",
}


@pytest.mark.parametrize("alias", sorted(OLD_ALIASES))
def test_every_alias_that_worked_still_names_its_layer(alias):
    assert entry(alias).key == entry(alias.upper()).key == OLD_ALIASES[alias]
    assert dt.make_layer(alias).key == OLD_ALIASES[alias]


def test_options_are_read_from_the_constructor():
    assert entry("linear").options() == {"in_features": "d", "out_features": "h",
                                         "bias": True}
    assert entry("lrelu").options() == {"k": 0.01}  # a generated class: its defaults
    conv = entry("conv").options()
    assert conv["stride"] == 1 and conv["padding_mode"] == "zeros"
    assert entry("maxpool").aliases == ("maxpool", "pool")


def test_layers_from_text_as_train_model_writes_them():
    assert split_layers("linear(64,128), relu,conv2d(1, 8, 3, padding=1)") == \
        ["linear(64,128)", "relu", "conv2d(1, 8, 3, padding=1)"]
    lin = layer_from_text("linear(64, 128, bias=False)")
    assert isinstance(lin, dt.Linear) and lin.parameters() == {"W": (128, 64)}
    assert layer_from_text("LReLU(k=0.2)").options() == {"k": 0.2}
    conv = layer_from_text("conv(1, 8, 3, padding=1)")
    assert conv.key == "conv2d" and conv.parameters()["K"] == (8, 1, 3, 3)


@pytest.mark.parametrize("make, error, message", [
    (lambda: dt.make_layer("conv9d"), UnknownLayer, "unknown layer 'conv9d' (known: linear, "),
    (lambda: layer_from_text("frobnicate(2)", where="m.layers[1]"), UnknownLayer,
     "m.layers[1]: unknown layer 'frobnicate'"),
    (lambda: layer_from_text("linear(1, 2, 3, 4)", where="m.layers[0]"), InputError,
     "m.layers[0]: bad options for layer 'linear': "),
    (lambda: dt.make_layer("conv2d", strid=2), InputError, "bad options for layer 'conv2d'"),
    (lambda: dt.make_layer("relu", slope="x y"), InputError, "is not a number"),
    (lambda: solve_layer({"kind": "layer", "layer": "conv9d"}, "f.yaml"), UnknownLayer,
     "f.yaml: layer: unknown layer 'conv9d'"),
    (lambda: solve_layer({"kind": "layer", "layer": "conv", "options": {"strde": 2}},
                         "f.yaml"), InputError, "f.yaml: options: bad options for layer"),
], ids=["unknown", "unknown-from-text", "bad-arguments", "bad-option", "bad-option-text",
        "file-unknown", "file-bad-option"])
def test_unknown_layers_and_bad_options_are_one_line(make, error, message):
    with pytest.raises(error) as info:
        make()
    assert message in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, (UnsupportedError, InputError))


def test_layers_without_a_gradient_give_their_definition_and_their_reason():
    from derive.layers.attention import ARGMAX_NOTE

    zero_one = dt.ZeroOne().derive()  # the layer itself, as the catalogue does
    assert zero_one.meta["layer"] == "zero_one" and not zero_one.adjoints
    assert zero_one.notes[-1].startswith("ZeroOneLoss is piecewise constant in the scores")
    hard = dt.layer_derivation("hard_attention")
    assert hard.notes[-1] == ARGMAX_NOTE and hard.notes.count(ARGMAX_NOTE) == 1
    assert [s.title for s in hard.sections] == ["Definition"]


def test_derivekit_layer_derives_and_rejects_bad_input(capsys):
    from derive.command_line import main

    assert main(["layer", "conv", "-p", "stride=2", "-p", "padding=1", "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "output shape" in out and "Scatter-accumulate" in out
    for argv, message in ((["layer", "conv2d", "-p", "stride=0"], "stride must be positive"),
                          (["layer", "rnn", "-p", "steps=0"], "sequence length must be"),
                          (["layer", "conv2d", "-p", "padding_mode=reflect"], "padding_mode")):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert message in captured.err and captured.err.count("\n") == 1 and not captured.out
