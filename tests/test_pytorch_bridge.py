"""PyTorch models in and out (derive/pytorch.py): from_torch, torch_state_dict.

Each supported layer makes the round trip: torch module -> derivekit model carrying its
weights -> forward and gradients (derive.evaluate, float64) equal torch autograd ->
torch_state_dict loads back strictly. An MLP and a small CNN also train with the kernels
and the torch module loaded with the exported state gives the kernels' outputs.
"""
import numpy as np
import pytest

import derive as dv
from derive.errors import InputError

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


def autograd_difference(module, shape, vocab=None, loss=None, classes=3):
    """from_torch(module) in float64 against torch autograd: ``(net, grads, named torch
    parameters, the largest difference over the output (or loss) and every mapped
    parameter gradient)``; ``vocab`` feeds token ids instead of a float input."""
    torch.manual_seed(0)
    module = module.double()
    net = dv.from_torch(module, input_shape=shape, loss=loss)
    x = (torch.randint(0, vocab, shape) if vocab else torch.randn(*shape, dtype=torch.float64))
    values = {**net.parameter_values(), "x": x.numpy()}
    out_t = module(x)
    if loss is None:
        upstream = torch.randn_like(out_t)
        out, grads = dv.evaluate(net, values, upstream=upstream.numpy())
        (out_t * upstream).sum().backward()
    else:
        y = (torch.randint(0, classes, (shape[0],)) if isinstance(loss, nn.CrossEntropyLoss)
             else torch.rand_like(out_t))
        out, grads = dv.evaluate(net, {**values, "y": y.numpy()})
        out_t = loss(out_t, y)
        out_t.backward()
    worst = np.abs(out - out_t.detach().numpy()).max()
    named = dict(module.named_parameters())
    for key, parts in net.torch_bridge.keys.items():
        for name, rows, _ in parts if key in named else ():
            want = named[key].grad.numpy()[rows or slice(None)]
            worst = max(worst, np.abs(grads[name] - want).max())
    return net, grads, named, worst


def _gradients_match(module, shape, loss=None, classes=3, tol=1e-10):
    """from_torch(module) in float64: output (or loss) and every parameter gradient of
    derive.evaluate equal torch autograd's to ``tol``; returns the converted model."""
    net, _, _, worst = autograd_difference(module, shape, loss=loss, classes=classes)
    assert worst < tol
    assert net.torch_bridge.keys, "nothing mapped"
    module.load_state_dict(net.torch_state_dict(), strict=True)
    return net


LAYERS = {
    "linear": (lambda: nn.Sequential(nn.Linear(4, 3)), (5, 4)),
    "linear_no_bias": (lambda: nn.Sequential(nn.Linear(4, 3, bias=False)), (5, 4)),
    "relu": (lambda: nn.Sequential(nn.Linear(4, 3), nn.ReLU()), (5, 4)),
    "sigmoid": (lambda: nn.Sequential(nn.Linear(4, 3), nn.Sigmoid()), (5, 4)),
    "tanh": (lambda: nn.Sequential(nn.Linear(4, 3), nn.Tanh()), (5, 4)),
    "leaky_relu": (lambda: nn.Sequential(nn.Linear(4, 3), nn.LeakyReLU(0.2)), (5, 4)),
    "elu": (lambda: nn.Sequential(nn.Linear(4, 3), nn.ELU(0.7)), (5, 4)),
    "gelu": (lambda: nn.Sequential(nn.Linear(4, 3), nn.GELU(approximate="tanh")), (5, 4)),
    "silu": (lambda: nn.Sequential(nn.Linear(4, 3), nn.SiLU()), (5, 4)),
    "mish": (lambda: nn.Sequential(nn.Linear(4, 3), nn.Mish()), (5, 4)),
    "softplus": (lambda: nn.Sequential(nn.Linear(4, 3), nn.Softplus()), (5, 4)),
    "softmax": (lambda: nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=-1)), (5, 4)),
    "log_softmax": (lambda: nn.Sequential(nn.Linear(4, 3), nn.LogSoftmax(dim=1)), (5, 4)),
    "dropout_eval": (lambda: nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.3)).eval(), (5, 4)),
    "batchnorm1d": (lambda: nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)), (5, 4)),
    "batchnorm1d_eval": (lambda: _stats(nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)))
                         .eval(), (5, 4)),
    "layernorm": (lambda: nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3)), (5, 4)),
    "conv2d": (lambda: nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1)), (2, 2, 5, 5)),
    "conv2d_circular": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1,
                                                        padding_mode="circular")), (2, 1, 4, 4)),
    "maxpool2d": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2)), (2, 1, 6, 6)),
    "avgpool2d": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2, padding=1)),
                  (2, 1, 5, 5)),
    "global_avgpool": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1),
                                             nn.Flatten()), (2, 1, 5, 5)),
    "batchnorm2d": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)),
                    (3, 1, 4, 4)),
    "flatten_linear": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(),
                                             nn.Linear(8, 3)), (2, 1, 4, 4)),
}


def _stats(module):
    """A module whose BatchNorm running statistics are not the starting ones."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return module


@pytest.mark.parametrize("name", list(LAYERS))
def test_each_layer_matches_torch_autograd_and_goes_back(name):
    make, shape = LAYERS[name]
    _gradients_match(make(), shape)


@pytest.mark.parametrize("loss", [nn.CrossEntropyLoss(), nn.MSELoss(), nn.BCEWithLogitsLoss()],
                         ids=lambda m: type(m).__name__)
def test_losses_match_torch(loss):
    _gradients_match(nn.Sequential(nn.Linear(4, 3)), (6, 4), loss=loss)


def test_bce_on_probabilities():
    _gradients_match(nn.Sequential(nn.Linear(4, 3), nn.Sigmoid()), (6, 4), loss=nn.BCELoss())


def test_float32_module_within_round_off():
    torch.manual_seed(1)
    module = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    net = dv.from_torch(module, input_shape=(5, 4))
    x = torch.randn(5, 4)
    out, grads = dv.evaluate(net, {**net.parameter_values(), "x": x.numpy()})
    module(x).sum().backward()
    assert np.abs(out - module(x).detach().numpy()).max() < 1e-6
    assert np.abs(grads["W1"] - module[0].weight.grad.numpy()).max() < 1e-6
    sd = net.torch_state_dict()
    assert sd["0.weight"].dtype == torch.float32 and list(sd) == list(module.state_dict())


def test_batchnorm_running_statistics_and_counter_go_back():
    module = _stats(nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)))
    module[1].num_batches_tracked += 7
    net = dv.from_torch(module, input_shape=(4, 4))
    assert np.allclose(net.parameter_values()["running_var2"],
                       module[1].running_var.numpy())
    sd = net.torch_state_dict()
    assert int(sd["1.num_batches_tracked"]) == 7
    assert torch.equal(sd["1.running_mean"], module[1].running_mean)


class FxChain(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(8, 5)
        self.fc2 = nn.Linear(5, 3)

    def forward(self, x):
        x = self.pool(F.relu(self.conv(x)))
        x = torch.flatten(x, 1)
        return F.log_softmax(self.fc2(F.leaky_relu(self.fc1(x), 0.1)), dim=-1)


class Recurrent(nn.Module):
    """An fx chain through a recurrent layer: ``out, _ = rnn(x)`` (then the last step)."""

    def __init__(self, cell, last, **options):
        super().__init__()
        self.rnn = cell(3, 4, batch_first=True, **options)
        self.fc = nn.Linear(4, 2)
        self.last = last

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1] if self.last else torch.tanh(out))


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN], ids=lambda c: c.__name__)
@pytest.mark.parametrize("last", [True, False], ids=["last", "all"])
def test_recurrent_layers_match_torch_and_go_back(cell, last):
    net = _gradients_match(Recurrent(cell, last), (2, 4, 3))
    kind = type(net.layers[0])
    assert kind.__name__ == cell.__name__ and net.layers[0].output == ("last" if last else "all")
    sd = net.torch_state_dict()  # the summed biases go back as bias_ih (bias_hh zero)
    assert torch.all(sd["rnn.bias_hh_l0"][:8] == 0)


def test_recurrent_without_bias_and_refusals():
    _gradients_match(Recurrent(nn.LSTM, True, bias=False), (2, 3, 3))
    with pytest.raises(InputError, match="one layer, one direction"):
        dv.from_torch(Recurrent(nn.GRU, True, num_layers=2), (2, 3, 3))
    with pytest.raises(InputError, match=r"returns a tuple.*take \[0\]"):
        dv.from_torch(nn.Sequential(nn.LSTM(3, 4, batch_first=True)), (2, 3, 3))


def test_fx_traced_chain_converts():
    net = _gradients_match(FxChain(), (3, 1, 4, 4))
    assert [type(layer).__name__ for layer in net.layers] == [
        "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "LeakyReLU", "Linear",
        "LogSoftmax"]


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return F.relu(self.fc(x)) + x


class Branch(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        h = self.a(x)
        return self.b(h) * h


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.cumsum(self.fc(x), 1)


@pytest.mark.parametrize("module, words", [
    (Residual(), "not a straight chain"), (Branch(), "not a straight chain"),
    (Unsupported(), "is not supported"),
    (nn.Sequential(nn.Linear(4, 4), nn.Hardswish()), "layer 2 (1: Hardswish)"),
    (nn.Sequential(nn.Linear(4, 4), nn.GELU()), "approximate='none'"),
    (nn.Sequential(nn.Conv2d(1, 1, (3, 2))), "not square"),
], ids=["residual", "branch", "cumsum", "unknown_layer", "gelu_erf", "rect_kernel"])
def test_refusals_are_one_line(module, words):
    with pytest.raises(InputError) as exc:
        dv.from_torch(module, input_shape=(2, 4) if words != "not square" else (2, 1, 5, 5))
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_input_shape_that_does_not_fit_names_the_shapes():
    with pytest.raises(InputError) as exc:
        dv.from_torch(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)), input_shape=(2, 5))
    text = str(exc.value)
    assert "(2, 5)" in text and "layer 1 (0: Linear)" in text and "\n" not in text
    with pytest.raises(InputError, match="shape of one batch"):
        dv.from_torch(nn.Sequential(nn.Linear(4, 3)), input_shape=4)


def test_unsupported_losses_are_refused():
    for loss, words in [(nn.L1Loss(), "L1Loss"), (nn.MSELoss(reduction="sum"), "sum")]:
        with pytest.raises(InputError, match=words):
            dv.from_torch(nn.Sequential(nn.Linear(4, 3)), (2, 4), loss=loss)


def test_loading_a_state_dict_with_wrong_keys_names_them():
    module = nn.Sequential(nn.Linear(4, 3))
    net = dv.from_torch(module, input_shape=(2, 4))
    sd = module.state_dict()
    sd["0.weight"] = torch.ones(3, 4)
    net.load_torch_state_dict(sd)
    assert np.all(net.parameter_values()["W1"] == 1)
    bad = {"0.weight": sd["0.weight"], "extra": torch.ones(1)}
    with pytest.raises(InputError, match=r"missing keys \['0.bias'\].*unexpected keys "
                                         r"\['extra'\]"):
        net.load_torch_state_dict(bad)
    with pytest.raises(InputError, match="shape"):
        net.load_torch_state_dict({**sd, "0.bias": torch.ones(4)})
    with pytest.raises(InputError, match="missing"):
        net.set_parameter_values({"W1": np.ones((3, 4))})


def test_a_model_not_from_torch_says_so():
    with pytest.raises(InputError, match="from_torch"):
        dv.Sequential(dv.Linear(4, 3)).torch_state_dict()


def test_torch_is_not_imported_by_derive():
    import subprocess
    import sys

    code = "import derive as dv, sys; dv.from_torch; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def _train_and_export(module, shape, n=48, tol=1e-5):
    """Convert, train with the kernels a few steps, export; the torch module loaded with
    the export gives the kernels' outputs (float32)."""
    import kernels

    torch.manual_seed(0)
    net = dv.from_torch(module, input_shape=shape, loss=nn.CrossEntropyLoss())
    km = kernels.compile(net, dtype="float32", optimizer="sgd", lr=0.1)
    net.copy_values_to(km)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n,) + shape[1:]).astype(np.float32)
    y = rng.integers(0, 3, n)
    with torch.no_grad():
        before = module.eval()(torch.tensor(X)).numpy()
    assert np.abs(km.outputs(X) - before).max() < tol  # the same start
    kernels.fit(km, (X, y), epochs=3, batch_size=8, progress=False)
    assert km.history[-1]["loss"] < km.history[0]["loss"] + 1e-3
    net.set_parameter_values(km)
    module.load_state_dict(net.torch_state_dict(), strict=True)
    with torch.no_grad():
        after = module.eval()(torch.tensor(X)).numpy()
    assert np.abs(after - before).max() > 1e-3  # it trained
    assert np.abs(km.outputs(X) - after).max() < tol
    out, _ = dv.evaluate(dv.from_torch(module.double(), input_shape=shape),
                         {**net.parameter_values(), "x": X.astype(np.float64)}, wrt=[])
    return np.abs(out - after).max()


@pytest.mark.slow
@pytest.mark.usefixtures("kernel_cache")
def test_mlp_trains_with_kernels_and_goes_back():
    module = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).train()
    assert _train_and_export(module, (8, 6)) < 1e-5


@pytest.mark.slow
@pytest.mark.usefixtures("kernel_cache")
def test_cnn_trains_with_kernels_and_goes_back():
    module = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Flatten(), nn.Linear(8, 3)).train()
    assert _train_and_export(module, (8, 1, 4, 4)) < 1e-5


@pytest.mark.slow
@pytest.mark.usefixtures("kernel_cache")
def test_lstm_trains_with_kernels_and_goes_back():
    module = Recurrent(nn.LSTM, True)
    module.fc = nn.Linear(4, 3)
    assert _train_and_export(module.train(), (8, 4, 3)) < 1e-5
