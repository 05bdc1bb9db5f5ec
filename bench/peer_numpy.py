"""Peer: plain NumPy, hand-differentiated, a Python loop over minibatches."""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

NAME = "numpy"


def available():
    return True


def _softmax_ce(z, y):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    n = len(y)
    loss = float((np.log(s[:, 0]) - z[np.arange(n), y]).sum())
    dz = e / s
    dz[np.arange(n), y] -= 1
    return loss, dz / n


def _mlp(p, n_layers):
    def fb(x, y):
        acts, inp = [], x
        for k in range(1, n_layers + 1):
            z = inp @ p[f"W{k}"].T + p[f"b{k}"]
            inp = np.maximum(z, 0) if k < n_layers else z
            acts.append(inp)
        loss, dz = _softmax_ce(acts[-1], y)
        g = {}
        for k in range(n_layers, 0, -1):
            below = x if k == 1 else acts[k - 2]
            g[f"W{k}"], g[f"b{k}"] = dz.T @ below, dz.sum(axis=0)
            if k > 1:
                dz = (dz @ p[f"W{k}"]) * (below > 0)
        return loss, g
    return fb


def _cnn(p):
    def fb(x, y):
        n, C, H, W = x.shape
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        cols = sliding_window_view(xp, (3, 3), axis=(2, 3))  # [n, C, H, W, 3, 3]
        z = np.einsum("ncijuv,fcuv->nfij", cols, p["K"], optimize=True) + p["kb"][:, None, None]
        a = np.maximum(z, 0)
        win = a.reshape(n, -1, H // 2, 2, W // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(
            n, -1, H // 2, W // 2, 4)
        arg = win.argmax(axis=-1)  # first maximum
        pooled = np.take_along_axis(win, arg[..., None], -1)[..., 0].reshape(n, -1)
        logits = pooled @ p["W"].T + p["b"]
        loss, dz = _softmax_ce(logits, y)
        g = {"W": dz.T @ pooled, "b": dz.sum(axis=0)}
        dwin = np.zeros_like(win)
        np.put_along_axis(dwin, arg[..., None], (dz @ p["W"]).reshape(arg.shape)[..., None], -1)
        da = dwin.reshape(n, -1, H // 2, W // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(a.shape)
        dz1 = da * (z > 0)
        g["K"] = np.einsum("nfij,ncijuv->fcuv", dz1, cols, optimize=True)
        g["kb"] = dz1.sum(axis=(0, 2, 3))
        return loss, g
    return fb


def _rnn(p):
    def fb(x, y):
        n, T, _ = x.shape
        hs = [np.zeros((n, p["Wh"].shape[0]), x.dtype)]
        for k in range(T):
            hs.append(np.tanh(x[:, k] @ p["Wx"].T + hs[-1] @ p["Wh"].T + p["bh"]))
        loss, dz = _softmax_ce(hs[-1] @ p["Wo"].T + p["bo"], y)
        g = {"Wo": dz.T @ hs[-1], "bo": dz.sum(axis=0)}
        dh = dz @ p["Wo"]
        g["Wx"], g["Wh"], g["bh"] = (np.zeros_like(p[k]) for k in ("Wx", "Wh", "bh"))
        for k in range(T - 1, -1, -1):
            dpre = dh * (1 - hs[k + 1] ** 2)
            g["Wx"] += dpre.T @ x[:, k]
            g["Wh"] += dpre.T @ hs[k]
            g["bh"] += dpre.sum(axis=0)
            dh = dpre @ p["Wh"]
        return loss, g
    return fb


GATES = "ifog"  # the order the per-gate parameters are stacked in (kernels.bench.LSTM_GATES)


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def _stack_lstm(p, H):
    """Stack the per-gate W_x*, W_h*, b_* into [4H, d], [4H, H], [4H] (gate order GATES)
    and make ``p``'s per-gate entries views of them, so the in-place update of a view
    updates the stacked arrays the forward pass reads."""
    stacked = {}
    for w in ("W_x", "W_h", "b_"):
        stacked[w] = np.concatenate([p[f"{w}{q}"] for q in GATES])
        for k, q in enumerate(GATES):
            p[f"{w}{q}"] = stacked[w][k * H:(k + 1) * H]
    return stacked


def _lstm(p):
    """Gates a = x_t W_xᵀ + h W_hᵀ + b (i, f, o sigmoid; g tanh), c = f c + i g,
    h = o tanh(c) from h_0 = c_0 = 0; logits from h_T; backprop through time by hand."""
    H = p["W_hi"].shape[0]
    S = _stack_lstm(p, H)

    def fb(x, y):
        n, T, _ = x.shape
        hs, cs, gates = [np.zeros((n, H), x.dtype)], [np.zeros((n, H), x.dtype)], []
        for k in range(T):
            a = x[:, k] @ S["W_x"].T + hs[-1] @ S["W_h"].T + S["b_"]
            gt = np.empty_like(a)
            gt[:, :3 * H] = _sigmoid(a[:, :3 * H])  # i, f, o
            gt[:, 3 * H:] = np.tanh(a[:, 3 * H:])  # g
            i, f, o, g = (gt[:, j * H:(j + 1) * H] for j in range(4))
            cs.append(f * cs[-1] + i * g)
            hs.append(o * np.tanh(cs[-1]))
            gates.append(gt)
        loss, dz = _softmax_ce(hs[-1] @ p["Wo"].T + p["bo"], y)
        grads = {"Wo": dz.T @ hs[-1], "bo": dz.sum(axis=0)}
        dh, dc = dz @ p["Wo"], np.zeros((n, H), x.dtype)
        gS = {k: np.zeros_like(v) for k, v in S.items()}
        da = np.empty((n, 4 * H), x.dtype)
        for k in range(T - 1, -1, -1):
            gt = gates[k]
            i, f, o, g = (gt[:, j * H:(j + 1) * H] for j in range(4))
            tc = np.tanh(cs[k + 1])
            dc = dc + dh * o * (1 - tc ** 2)
            da[:, :H] = dc * g * i * (1 - i)
            da[:, H:2 * H] = dc * cs[k] * f * (1 - f)
            da[:, 2 * H:3 * H] = dh * tc * o * (1 - o)
            da[:, 3 * H:] = dc * i * (1 - g ** 2)
            gS["W_x"] += da.T @ x[:, k]
            gS["W_h"] += da.T @ hs[k]
            gS["b_"] += da.sum(axis=0)
            dh, dc = da @ S["W_h"], dc * f
        for w, gw in gS.items():
            for j, q in enumerate(GATES):
                grads[f"{w}{q}"] = gw[j * H:(j + 1) * H]
        return loss, grads
    return fb


class Runner:
    def __init__(self, w, params, X, y):
        self.p = {k: v.copy() for k, v in params.items()}
        m = w.model
        self.fb = (_mlp(self.p, len(m["sizes"]) - 1) if m["kind"] == "mlp" else
                   _cnn(self.p) if m["kind"] == "cnn" else
                   _lstm(self.p) if m["kind"] == "lstm" else _rnn(self.p))
        self.X, self.y, self.bs, self.lr = X, y, w.batch, w.lr
        self.adam, self.t = w.optimizer == "adam", 0
        self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.p.items()}

    def epoch(self, order):
        total = 0.0
        for s in range(0, len(order), self.bs):
            idx = order[s:s + self.bs]
            loss, g = self.fb(self.X[idx], self.y[idx])
            total += loss
            self.t += 1
            for k, a in self.p.items():
                if self.adam:
                    self.m[k] = 0.9 * self.m[k] + 0.1 * g[k]
                    self.v[k] = 0.999 * self.v[k] + 0.001 * g[k] ** 2
                    mh, vh = self.m[k] / (1 - 0.9 ** self.t), self.v[k] / (1 - 0.999 ** self.t)
                    a -= (self.lr * mh / (np.sqrt(vh) + 1e-8)).astype(a.dtype)
                else:
                    a -= (self.lr * g[k]).astype(a.dtype)
        return total / len(order)


def make(w, params, X, y):
    return Runner(w, params, X, y)
