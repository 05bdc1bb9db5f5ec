"""Architecture arithmetic: the published tables, PyTorch's counts, and bad specs."""
import pytest

from derive.errors import InputError, ShapeError, UnsupportedError
from derive.problem import solve_spec
from reports.latex_printer import latex

CNN = ["conv2d(10, 3, padding=1)", "maxpool(2)", "conv2d(10, 3, padding=1)", "maxpool(2)",
       "flatten", "linear(3)"]


def solve(**spec):
    return solve_spec({"kind": "architecture", **spec}, "net.yaml")


def test_published_cnn_table():
    d = solve(input=[28, 28, 1], layout="hwc", layers=CNN)
    assert [r["parameters"] for r in d.result] == [100, 0, 910, 0, 0, 1473]
    assert [r["shape"] for r in d.result] == [
        ["B", 28, 28, 10], ["B", 14, 14, 10], ["B", 14, 14, 10], ["B", 7, 7, 10], ["B", 490],
        ["B", 3]]
    assert [r["layer"] for r in d.result] == CNN
    assert d.meta["total_parameters"] == 2483


def test_channels_first_layout_gives_the_same_counts():
    d = solve(input=[1, 28, 28], layers=CNN)
    assert [r["shape"] for r in d.result][:2] == [["B", 10, 28, 28], ["B", 10, 14, 14]]
    assert [r["parameters"] for r in d.result] == [100, 0, 910, 0, 0, 1473]


def test_mlp_2_1024_512_3():
    d = solve(mlp=[2, 1024, 512, 3])
    assert d.meta["total_parameters"] == 529411
    assert [r["layer"] for r in d.result] == ["linear(1024)", "relu", "linear(512)", "relu",
                                              "linear(3)"]
    assert solve(input=[2], layers=["linear(1024)", "linear(512)", "linear(3)"]).meta[
        "total_parameters"] == 529411


def test_alexnet_first_layer():
    d = solve(input=[3, 227, 227], layers=["conv2d(96, 11, stride=4)"])
    assert d.result == [{"layer": "conv2d(96, 11, stride=4)", "parameters": 34944,
                         "shape": ["B", 96, 55, 55]}]


def test_padding_conventions():
    total = solve(input=[1, 9, 13], layers=["conv2d(1, 3, stride=2, total_padding=2)"])
    assert total.result[0]["shape"] == ["B", 1, 5, 7]
    per_side = solve(input=[1, 32, 32], layers=["conv2d(4, 3, stride=2, padding=1)"])
    assert per_side.result[0]["shape"] == ["B", 4, 16, 16]
    same = solve(input=[3, 15, 15], layers=["conv2d(4, 5, padding='same')"])
    assert same.result[0]["shape"] == ["B", 4, 15, 15]


def test_output_size_kind_gives_both_answers_when_ambiguous():
    d = solve_spec({"kind": "output_size", "input": [9, 13], "kernel": 3, "stride": 2,
                    "padding": 2, "padding_is": "ambiguous"}, "o.yaml")
    assert d.result == {"per_side": [6, 8], "total": [5, 7]}
    d = solve_spec({"kind": "output_size", "input": 32, "kernel": 3, "stride": 2,
                    "padding": 1}, "o.yaml")
    assert d.result == 16


def test_each_layer_shows_its_formula():
    d = solve(input=[1, 28, 28], layers=CNN[:1])
    step = next(s for s in d.sections[1].steps if latex(s.lhs) == r"\text{parameters}")
    assert latex(step.rhs[1]) == r"\left(3 \cdot 3 \cdot 1 + 1\right) \cdot 10"
    assert step.rhs[2] == 100
    size = next(s for s in d.sections[1].steps if latex(s.lhs) == "H_{out}")
    assert "28 + 2 \\cdot 1 - 3" in latex(size.rhs[1]) and size.rhs[2] == 28


def test_recurrent_and_embedding_against_torch():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    d = solve(input=[50], bias_vectors=2,
              layers=["embedding(1000, 32)", "lstm(64, num_layers=2)",
                      "gru(16, bidirectional=1, return_sequences=0)"])
    assert d.result[2]["shape"] == ["B", 32]
    counts = [r["parameters"] for r in d.result[:3]]

    def count(m):
        return sum(p.numel() for p in m.parameters())

    assert counts == [count(nn.Embedding(1000, 32)), count(nn.LSTM(32, 64, num_layers=2)),
                      count(nn.GRU(64, 16, bidirectional=True))]


def test_rnn_after_last_state_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"layers\[1\].*\[T, d\] sequence"):
        solve(input=[10, 4], layers=["lstm(8, return_sequences=0)", "rnn(8)"])


def test_textbook_lstm_count():
    d = solve(input=[5, 10], layers=["lstm(20)"])
    assert d.result[0]["parameters"] == 4 * (20 * (10 + 20) + 20)
    assert d.result[0]["shape"] == ["B", 5, 20]
    assert any("one bias per gate" in n for n in d.notes)


def test_norm_and_pool_layers():
    d = solve(input=[3, 8, 8], layers=["conv2d(4, 3)", "batchnorm(4)", "relu", "avgpool(2)",
                                       "globalavgpool", "dropout(0.5)", "fc(2)"])
    assert [r["parameters"] for r in d.result] == [112, 8, 0, 0, 0, 0, 10]
    assert d.result[3]["shape"] == ["B", 4, 3, 3] and d.result[4]["shape"] == ["B", 4]


@pytest.mark.parametrize("spec, error, where", [
    ({"input": [1, 28, 28], "layers": ["convolution(3)"]}, UnsupportedError, "layers[0]"),
    ({"input": [1, 28, 28], "layers": ["conv2d(0, 3)"]}, ShapeError, "layers[0]"),
    ({"input": [1, 28, 28], "layers": ["conv2d(4, -3)"]}, ShapeError, "layers[0]"),
    ({"input": [1, 28, 28], "layers": ["conv2d(4, 3, strde=2)"]}, InputError, "strde"),
    ({"input": [1, 28, 28], "layers": ["linear(3)"]}, ShapeError, "flatten"),
    ({"input": [1, 4, 4], "layers": ["maxpool(2)", "conv2d(2, 5)"]}, ShapeError, "layers[1]"),
    ({"input": [0, 28, 28], "layers": ["flatten"]}, ShapeError, "input"),
    ({"input": [1, 28, 28], "layers": ["conv2d(4, 3"]}, InputError, "layers[0]"),
    ({"input": [1, 28, 28], "layers": [3]}, InputError, "layers[0]"),
    ({"input": [1, 28, 28], "layers": ["batchnorm(3)"]}, ShapeError, "layers[0]"),
    ({"input": [1, 28, 28], "layers": []}, InputError, "layers"),
    ({"input": [1, 28, 28], "layers": ["flatten"], "depth": 3}, InputError, "depth"),
])
def test_bad_architecture(spec, error, where):
    with pytest.raises(error) as info:
        solve(**spec)
    assert where in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith("net.yaml")


def test_layer_names_are_the_layer_catalogues():
    # the catalogue's names and aliases (lrelu, softplus, gap) next to this kind's own
    # PyTorch modules (lstm is nn.LSTM here, a stack of layers)
    d = solve(input=[4], layers=["dense(3)", "lrelu", "Softplus", "leakyrelu(0.1)", "fc(2)",
                                 "identity"])
    assert [r["parameters"] for r in d.result] == [15, 0, 0, 0, 8, 0]
    d = solve(input=[2, 6, 6], layers=["conv(4, 3)", "bn", "avgpool2d(2)", "gap"])
    assert [r["parameters"] for r in d.result] == [76, 8, 0, 0]
    assert d.result[-1]["shape"] == ["B", 4]
    with pytest.raises(UnsupportedError, match=r"unknown layer kind 'mse' \(known: .*lrelu"):
        solve(input=[4], layers=["mse"])
