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
    if m["kind"] == "lstm":
        return _lstm_class()(m, params)
    return _rnn_class()(t)


def _lstm_class():
    import numpy as np
    import torch
    from torch import nn

    class LSTM(nn.Module):
        """nn.LSTM (h_0 = c_0 = 0) and a linear layer on h_T. The workload's per-gate
        parameters are stacked in nn.LSTM's gate order i, f, g, o; its second bias
        (bias_hh_l0) is held at zero and not trained: trained, it would get the same
        gradient as bias_ih_l0 and Adam would move the gates' bias twice as far."""

        def __init__(self, m, params):
            super().__init__()
            self.lstm = nn.LSTM(m["d"], m["hidden"], batch_first=True)
            cat = lambda w: torch.from_numpy(  # noqa: E731
                np.concatenate([params[f"{w}{q}"] for q in "ifgo"]))
            with torch.no_grad():
                self.lstm.weight_ih_l0.copy_(cat("W_x"))
                self.lstm.weight_hh_l0.copy_(cat("W_h"))
                self.lstm.bias_ih_l0.copy_(cat("b_"))
                self.lstm.bias_hh_l0.zero_()
            self.lstm.bias_hh_l0.requires_grad_(False)
            self.out = nn.Linear(m["hidden"], m["classes"])
            with torch.no_grad():
                self.out.weight.copy_(torch.from_numpy(params["Wo"]))
                self.out.bias.copy_(torch.from_numpy(params["bo"]))

        def forward(self, x):  # x: [B, T, D]
            _, (h, _) = self.lstm(x)
            return self.out(h[-1])

    return LSTM


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
        self.opt = cls([q for q in self.net.parameters() if q.requires_grad], lr=w.lr)
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
