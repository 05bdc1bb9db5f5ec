"""Every layer from_torch converts also trains with the kernels and goes back: a small
model per layer (or per group of activations) is converted, trained three epochs with the
compiled kernels, exported with torch_state_dict() and loaded (strict) into the torch
module, whose outputs then equal the kernels' (float32) and derive.evaluate's."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import test_pytorch_bridge as bridge  # noqa: E402  (the train-and-export helper)


class LastStep(nn.Module):
    """``out, _ = rnn(x)`` then a Linear on the last step (an fx chain)."""

    def __init__(self, cell):
        super().__init__()
        self.rnn, self.fc = cell(3, 4, batch_first=True), nn.Linear(4, 3)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


class SelfAttention(nn.Module):
    """``y, _ = attn(x, x, x)``, flattened, then a Linear."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True, bias=False)
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        y, _ = self.attn(x, x, x, need_weights=False)
        return self.fc(torch.flatten(y, 1))


MODELS = {
    "batchnorm1d_dropout": (lambda: nn.Sequential(
        nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 3)),
        (8, 6)),
    "layernorm_tanh": (lambda: nn.Sequential(
        nn.Linear(6, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 3)), (8, 6)),
    "activations": (lambda: nn.Sequential(
        nn.Linear(6, 6), nn.Sigmoid(), nn.Linear(6, 6), nn.LeakyReLU(0.1), nn.Linear(6, 6),
        nn.ELU(), nn.Linear(6, 6), nn.SiLU(), nn.Linear(6, 6), nn.Softplus(),
        nn.Linear(6, 6), nn.GELU(approximate="tanh"), nn.Linear(6, 6), nn.Mish(),
        nn.Linear(6, 3)), (8, 6)),
    "batchnorm2d_avgpool": (lambda: nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(8, 3)), (8, 1, 4, 4)),
    "adaptive_avgpool": (lambda: nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(2, 3)), (8, 1, 4, 4)),
    "gru": (lambda: LastStep(nn.GRU), (8, 4, 3)),
    "rnn": (lambda: LastStep(nn.RNN), (8, 4, 3)),
    "multihead_attention": (lambda: SelfAttention(), (8, 3, 4)),
}


@pytest.mark.slow
@pytest.mark.usefixtures("kernel_cache")
@pytest.mark.parametrize("name", list(MODELS))
def test_each_layer_trains_with_kernels_and_goes_back(name):
    make, shape = MODELS[name]
    torch.manual_seed(0)
    assert bridge._train_and_export(make().train(), shape) < 1e-5
