"""Peer: PyTorch eager on CPU (autograd, torch.optim), the usual training loop."""
NAME = "pytorch eager"


def available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _module(w, params):
    import torch
    from torch import nn

    m = w.model
    t = lambda k: nn.Parameter(torch.from_numpy(params[k].copy()))  # noqa: E731
    if m["kind"] == "mlp":
        n = len(m["sizes"]) - 1
        layers = []
        for k in range(n):
            lin = nn.Linear(m["sizes"][k], m["sizes"][k + 1])
            lin.weight, lin.bias = t(f"W{k + 1}"), t(f"b{k + 1}")
            layers += [lin] + ([nn.ReLU()] if k < n - 1 else [])
        return nn.Sequential(*layers)
    if m["kind"] == "cnn":
        conv = nn.Conv2d(m["channels"], m["filters"], 3, padding=1)
        conv.weight, conv.bias = t("K"), t("kb")
        lin = nn.Linear(m["filters"] * m["size"] ** 2 // 4, m["classes"])
        lin.weight, lin.bias = t("W"), t("b")
        return nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), lin)
    return _rnn_class()(t)


def _rnn_class():
    import torch
    from torch import nn

    class RNN(nn.Module):
        def __init__(self, t):
            super().__init__()
            names = ("Wx", "Wh", "bh", "Wo", "bo")
            self.Wx, self.Wh, self.bh, self.Wo, self.bo = (t(k) for k in names)

        def forward(self, x):  # x: [B, T, D]
            h = torch.zeros(x.shape[0], self.Wh.shape[0], dtype=x.dtype)
            for k in range(x.shape[1]):
                h = torch.tanh(x[:, k] @ self.Wx.T + h @ self.Wh.T + self.bh)
            return h @ self.Wo.T + self.bo

    return RNN


class Runner:
    def __init__(self, w, params, X, y):
        import torch

        self.torch = torch
        self.net = _module(w, params)
        self.X, self.y = torch.from_numpy(X), torch.from_numpy(y)
        self.bs = w.batch
        cls = torch.optim.Adam if w.optimizer == "adam" else torch.optim.SGD
        self.opt = cls(self.net.parameters(), lr=w.lr)
        self.loss = torch.nn.CrossEntropyLoss()

    def epoch(self, order):
        torch = self.torch
        order = torch.from_numpy(order)
        total = 0.0
        for s in range(0, len(order), self.bs):
            idx = order[s:s + self.bs]
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss(self.net(self.X[idx]), self.y[idx])
            loss.backward()
            self.opt.step()
            total += loss.item() * len(idx)
        return total / len(order)


def make(w, params, X, y):
    return Runner(w, params, X, y)
