"""from_torch for nn.Embedding (integer tokens in) and nn.MultiheadAttention (self-attention
without biases or masks): forward and every gradient equal torch autograd (float64), the
export loads back strictly, and what does not map is refused in one line naming it."""
import numpy as np
import pytest

import derive as dv
from derive.errors import InputError

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from test_pytorch_bridge import autograd_difference  # noqa: E402  (one comparison)


def _matches(module, shape, vocab=None, loss=None, classes=3, tol=1e-10):
    """Converted in float64: output (or loss) and every parameter gradient equal torch
    autograd's to ``tol``; the export loads back strictly. Returns (net, max difference)."""
    net, grads, named, worst = autograd_difference(module, shape, vocab, loss, classes)
    assert set(net.torch_bridge.keys) == set(named)  # every torch parameter is mapped
    assert worst < tol
    assert "x" not in grads or not vocab  # token ids have no gradient
    sd = net.torch_state_dict()
    assert list(sd) == list(module.state_dict())
    for key, value in module.state_dict().items():  # a recurrent layer's biases go back
        assert ".bias_" in key or torch.equal(sd[key], value), key  # summed (tested before)
    module.load_state_dict(sd, strict=True)
    return net, worst


# -- Embedding ----------------------------------------------------------------------------
class Tokens(nn.Module):
    """Embedding -> LSTM -> Linear on the last step (an fx chain)."""

    def __init__(self, cell=nn.LSTM):
        super().__init__()
        self.emb = nn.Embedding(7, 4)
        self.rnn = cell(4, 5, batch_first=True)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        out, _ = self.rnn(self.emb(x))
        return self.fc(out[:, -1])


def test_embedding_then_linear_per_step_matches_torch():
    net, worst = _matches(nn.Sequential(nn.Embedding(7, 4), nn.Linear(4, 3)), (2, 5), vocab=7)
    assert [type(layer).__name__ for layer in net.layers] == ["Embedding", "TemporalAffine"]
    assert net.graph().nodes["x"].dtype == "int"
    print("embedding + linear", worst)


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU], ids=lambda c: c.__name__)
def test_embedding_lstm_last_step_matches_torch_with_a_loss(cell):
    _, worst = _matches(Tokens(cell), (3, 4), vocab=7, loss=nn.CrossEntropyLoss())
    print("embedding", cell.__name__, worst)


def test_embedding_gradient_sums_repeated_tokens():
    """A token used twice gets the sum of both rows' gradients (and unused rows zero)."""
    module = nn.Sequential(nn.Embedding(6, 2)).double()
    net = dv.from_torch(module, input_shape=(1, 3))
    x = np.array([[2, 2, 4]])
    up = np.arange(6, dtype=float).reshape(1, 3, 2)
    _, grads = dv.evaluate(net, {**net.parameter_values(), "x": x}, upstream=up)
    want = np.zeros((6, 2))
    want[2], want[4] = up[0, 0] + up[0, 1], up[0, 2]
    assert np.array_equal(grads["W1"], want)


def test_token_ids_are_checked():
    net = dv.from_torch(nn.Sequential(nn.Embedding(6, 2)).double(), input_shape=(1, 3))
    with pytest.raises(InputError, match="0..5"):
        dv.evaluate(net, {**net.parameter_values(), "x": np.array([[0, 6, 1]])},
                    upstream=np.ones((1, 3, 2)))


@pytest.mark.parametrize("module, words", [
    (nn.Sequential(nn.Embedding(7, 4, padding_idx=0)), "padding_idx=0"),
    (nn.Sequential(nn.Embedding(7, 4, max_norm=1.0)), "max_norm=1.0"),
    (nn.Sequential(nn.Embedding(7, 4, scale_grad_by_freq=True)), "scale_grad_by_freq"),
    (nn.Sequential(nn.Embedding(7, 4, sparse=True)), "sparse=True"),
], ids=["padding_idx", "max_norm", "scale_grad", "sparse"])
def test_embedding_refusals_are_one_line(module, words):
    with pytest.raises(InputError) as exc:
        dv.from_torch(module, input_shape=(2, 3))
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_embedding_not_first_is_refused():
    class Late(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.emb = nn.Linear(3, 3), nn.Embedding(5, 2)

        def forward(self, x):
            return self.emb(self.fc(x).long())

    with pytest.raises(InputError) as exc:
        dv.from_torch(Late(), input_shape=(2, 3))
    assert "\n" not in str(exc.value)


# -- MultiheadAttention -------------------------------------------------------------------
class Attention(nn.Module):
    """``y, _ = attn(x, x, x, need_weights=False)`` then a per-step Linear."""

    def __init__(self, heads=2, embed=4, head=True, call=None, **options):
        super().__init__()
        self.attn = nn.MultiheadAttention(embed, heads, batch_first=True, bias=False,
                                          **options)
        self.fc = nn.Linear(embed, 3) if head else None
        self.call = call or (lambda a, x: a(x, x, x, need_weights=False))

    def forward(self, x):
        y, _ = self.call(self.attn, x)
        return self.fc(y) if self.fc is not None else y


@pytest.mark.parametrize("heads, embed", [(2, 4), (3, 6)])
def test_multihead_self_attention_matches_torch(heads, embed):
    net, worst = _matches(Attention(heads, embed, head=False), (2, 3, embed))
    layer = net.layers[0]
    assert type(layer).__name__ == "SelfAttention" and layer.heads == heads
    print("attention", heads, embed, worst)


def test_attention_in_a_token_chain_with_a_loss():
    class Chain(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(9, 4)
            self.attn = nn.MultiheadAttention(4, 2, batch_first=True, bias=False)
            self.rnn = nn.GRU(4, 5, batch_first=True)
            self.fc = nn.Linear(5, 3)

        def forward(self, x):
            h = self.emb(x)
            y, _ = self.attn(h, h, h, need_weights=False)
            out, _ = self.rnn(torch.tanh(y))
            return self.fc(out[:, -1])

    _, worst = _matches(Chain(), (3, 4), vocab=9, loss=nn.CrossEntropyLoss())
    print("embedding + attention + GRU", worst)


def test_need_weights_default_gives_the_same_output():
    _matches(Attention(call=lambda a, x: a(x, x, x)), (2, 3, 4))


@pytest.mark.parametrize("options, call, words", [
    (dict(bias=True), None, "bias=True"),
    (dict(batch_first=False), None, "batch_first=False"),
    (dict(kdim=3, vdim=3), None, "kdim/vdim"),
    (dict(add_bias_kv=True), None, "add_bias_kv=True"),
    (dict(add_zero_attn=True), None, "add_zero_attn=True"),
    (dict(dropout=0.1), None, "dropout=0.1"),
    (dict(heads=1), None, "num_heads=1"),
    ({}, lambda a, x: a(x, x, x, attn_mask=torch.zeros(3, 3, dtype=torch.bool)), "attn_mask"),
    ({}, lambda a, x: a(x, x, x, key_padding_mask=torch.zeros(2, 3, dtype=torch.bool)),
     "key_padding_mask"),
    ({}, lambda a, x: a(x, x, x, is_causal=True,
                        attn_mask=torch.ones(3, 3).triu(1).bool()), "mask"),
], ids=["bias", "batch_first", "kdim", "bias_kv", "zero_attn", "dropout", "one_head",
        "attn_mask", "padding_mask", "causal"])
def test_attention_refusals_are_one_line(options, call, words):
    options = dict(options)
    heads = options.pop("heads", 2)
    bias = options.pop("bias", False)
    batch_first = options.pop("batch_first", True)
    module = Attention(heads, call=call)
    module.attn = nn.MultiheadAttention(4, heads, bias=bias, batch_first=batch_first,
                                        **options)
    with pytest.raises(InputError) as exc:
        dv.from_torch(module, input_shape=(2, 3, 4))
    assert words in str(exc.value) and "\n" not in str(exc.value), str(exc.value)


def test_cross_attention_is_not_a_chain():
    class Cross(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.attn = nn.MultiheadAttention(4, 2, batch_first=True, bias=False)

        def forward(self, x):
            y, _ = self.attn(self.fc(x), x, x, need_weights=False)
            return y

    with pytest.raises(InputError, match="not a straight chain"):
        dv.from_torch(Cross(), input_shape=(2, 3, 4))
    with pytest.raises(InputError) as exc:  # in nn.Sequential it gets one argument
        dv.from_torch(nn.Sequential(nn.MultiheadAttention(4, 2, batch_first=True,
                                                          bias=False)), (2, 3, 4))
    assert "\n" not in str(exc.value)


@pytest.mark.slow
@pytest.mark.usefixtures("kernel_cache")
def test_token_model_trains_with_kernels_and_goes_back():
    """Embedding -> LSTM -> Linear compiles (token ids come in the float X batch; the
    kernels index the table with int()), trains, and its export loads into torch."""
    import kernels

    torch.manual_seed(0)
    module = Tokens().train()
    net = dv.from_torch(module, input_shape=(8, 4), loss=nn.CrossEntropyLoss())
    km = net.copy_values_to(kernels.compile(net, dtype="float32", optimizer="sgd", lr=0.1))
    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 7, (48, 4)), rng.integers(0, 3, 48)
    with torch.no_grad():
        before = module.eval()(torch.tensor(X)).numpy()
    assert np.abs(km.outputs(X) - before).max() < 1e-5  # the same start
    table = km.params["W1"].copy()
    kernels.fit(km, (X, y), epochs=3, batch_size=8, progress=False)
    assert np.abs(km.params["W1"] - table).max() > 1e-4  # the embedding table trained
    net.set_parameter_values(km)
    module.load_state_dict(net.torch_state_dict(), strict=True)
    with torch.no_grad():
        after = module.eval()(torch.tensor(X)).numpy()
    assert np.abs(after - before).max() > 1e-3
    assert np.abs(km.outputs(X) - after).max() < 1e-5
    with pytest.raises(InputError, match=r"token ids, integers in 0\.\.6"):
        km.outputs(X + 7)
    with pytest.raises(InputError, match="token ids"):
        kernels.fit(km, (X - 1, y), epochs=1, batch_size=8, progress=False)
