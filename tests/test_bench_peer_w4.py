"""The hand-written numba W4 peer (bench/peer_numba.py, issue 19) trains exactly as before.

Its rewrite for speed must not change what it computes: per-epoch losses and the
parameters after 3 epochs of W4 agree with the straightforward version it replaced (kept
below as the reference), with the NumPy peer and with derivekit's generated kernel, to
float32 rounding. No timing is asserted.
"""
import dataclasses
import functools

import numpy as np
import pytest

from kernels import bench

pytest.importorskip("numba")

EPOCHS = 3
NAMES = ("K", "kb", "W", "b")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DERIVEKIT_CACHE", str(tmp_path_factory.getbasetemp() / "benchcache"))


def _orders(n):
    # the orders run_workload gives every runner
    return [np.random.default_rng([0, e]).permutation(n).astype(np.int64)
            for e in range(EPOCHS)]


def _peer(name):
    (mod,) = bench.load_peers([name])
    return mod


def _train(make, w, X, y):
    """Per-epoch mean losses and the final {K, kb, W, b} of a peer runner."""
    runner = make(w, bench.initial_params(w), X, y)
    losses = [runner.epoch(o) for o in _orders(len(X))]
    params = runner.p if isinstance(runner.p, dict) else dict(zip(NAMES, runner.p))
    return np.array(losses), {k: np.array(params[k]) for k in NAMES}


@functools.lru_cache(maxsize=None)
def _straightforward_epoch():
    """The W4 epoch the peer had before issue 19: the full activation map kept, the pool a
    second pass, the backward a scan of every position (compiled here, uncached)."""
    from numba import njit

    peer = _peer("peer_numba")
    dense_fwd, softmax_ce, dense_bwd = peer._dense_fwd, peer._softmax_ce, peer._dense_bwd

    @njit(error_model="numpy")
    def cnn_epoch(X, y, order, bs, lr, K, kb, W, b, gK, gkb, gW, gb):
        N, (C, H, Wd) = order.shape[0], X.shape[1:]
        F = K.shape[0]
        H2, W2 = H // 2, Wd // 2
        dt = X.dtype
        xp = np.zeros((bs, C, H + 2, Wd + 2), dt)
        a = np.empty((bs, F, H, Wd), dt)
        pooled = np.empty((bs, F * H2 * W2), dt)
        arg = np.empty((bs, F, H2, W2), np.int64)
        z = np.empty((bs, W.shape[0]), dt)
        dz = np.empty((bs, W.shape[0]), dt)
        dp = np.empty((bs, F * H2 * W2), dt)
        da = np.empty((bs, F, H, Wd), dt)
        yb = np.empty(bs, np.int64)
        total = 0.0
        for s in range(0, N, bs):
            n = min(bs, N - s)
            for r in range(n):
                xp[r, :, 1:H + 1, 1:Wd + 1] = X[order[s + r]]
                yb[r] = y[order[s + r]]
            for r in range(n):
                for f in range(F):
                    for i in range(H):
                        for j in range(Wd):
                            acc = kb[f]
                            for c in range(C):
                                for u in range(3):
                                    for v in range(3):
                                        acc += K[f, c, u, v] * xp[r, c, i + u, j + v]
                            a[r, f, i, j] = acc if acc > 0 else 0.0
                    for i in range(H2):
                        for j in range(W2):
                            best, k = a[r, f, 2 * i, 2 * j], 0
                            for q in range(1, 4):
                                val = a[r, f, 2 * i + q // 2, 2 * j + q % 2]
                                if val > best:
                                    best, k = val, q
                            pooled[r, (f * H2 + i) * W2 + j] = best
                            arg[r, f, i, j] = k
            dense_fwd(pooled[:n], W, b, z[:n], False)
            loss, _ = softmax_ce(z[:n], yb, n, dz[:n])
            total += loss
            dense_bwd(dz[:n], pooled[:n], gW, gb)
            np.dot(dz[:n], W, dp[:n])
            da[:n] = 0.0
            for r in range(n):
                for f in range(F):
                    for i in range(H2):
                        for j in range(W2):
                            k = arg[r, f, i, j]
                            ii, jj = 2 * i + k // 2, 2 * j + k % 2
                            if a[r, f, ii, jj] > 0:
                                da[r, f, ii, jj] = dp[r, (f * H2 + i) * W2 + j]
            gK[:] = 0.0
            gkb[:] = 0.0
            for r in range(n):
                for f in range(F):
                    for i in range(H):
                        for j in range(Wd):
                            d = da[r, f, i, j]
                            if d != 0.0:
                                gkb[f] += d
                                for c in range(C):
                                    for u in range(3):
                                        for v in range(3):
                                            gK[f, c, u, v] += d * xp[r, c, i + u, j + v]
            for p, g in ((K.ravel(), gK.ravel()), (kb, gkb), (W.ravel(), gW.ravel()), (b, gb)):
                for i in range(p.size):
                    p[i] -= lr * g[i]
        return total

    class Runner:
        def __init__(self, w, params, X, y):
            self.X, self.y, self.bs, self.lr = X, y, w.batch, w.lr
            self.p = [params[k].copy() for k in NAMES]
            self.g = [np.zeros_like(a) for a in self.p]

        def epoch(self, order):
            return cnn_epoch(self.X, self.y, order, self.bs, self.lr, *self.p, *self.g) / len(order)

    return Runner


def _derivekit(w, X, y):
    model = bench.derivekit_model(w, bench.initial_params(w))
    _, names = bench.derivekit_net(w)
    losses = []
    for o in _orders(len(X)):
        loss, _ = model.run_epoch(X, y, o, np.full(-(-len(o) // w.batch), w.lr), w.batch)
        losses.append(loss)
    return np.array(losses), {k: np.array(model.params[names[k]]) for k in NAMES}


def _assert_same(got, want, rtol, atol):
    (gl, gp), (wl, wp) = got, want
    np.testing.assert_allclose(gl, wl, rtol=rtol)
    for k in NAMES:
        assert gp[k].shape == wp[k].shape and gp[k].dtype == np.float32, k
        np.testing.assert_allclose(gp[k], wp[k], rtol=0, atol=atol, err_msg=k)


@pytest.fixture(scope="module")
def w4():
    w = bench.WORKLOADS["W4"]
    X, y = w.data()
    return w, X, y


@pytest.fixture(scope="module")
def new_w4(w4):
    got = _train(_peer("peer_numba").make, *w4)
    assert got[0][0] - got[0][-1] > 0.5  # it trained: the loss fell
    return got


def test_w4_numba_peer_is_the_straightforward_epoch(w4, new_w4):
    # same forward arithmetic (bias first, then the taps in order: bit for bit); only the
    # kernel gradient's summation order differs (by pooled cell rather than by position)
    _assert_same(new_w4, _train(_straightforward_epoch(), *w4), rtol=1e-6, atol=1e-6)


def test_w4_numba_peer_matches_the_numpy_peer(w4, new_w4):
    _assert_same(new_w4, _train(_peer("peer_numpy").make, *w4), rtol=1e-4, atol=1e-4)


def test_w4_numba_peer_matches_derivekit(w4, new_w4):
    _assert_same(new_w4, _derivekit(*w4), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", [6, 7])
def test_more_channels_other_sizes_and_a_ragged_last_batch(size):
    # the loops are general in channels and image size: 3 channels of 6x6 or 7x7 (the pool
    # then drops the last row and column), 50 samples in batches of 16
    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 3, size, size)).astype(np.float32)
    y = rng.integers(0, 4, 50)
    m = {"kind": "cnn", "channels": 3, "filters": 5, "size": size, "classes": 4}
    w = dataclasses.replace(bench.WORKLOADS["W4"], name="W4-small", model=m, batch=16,
                            lr=0.1, data=lambda: (X, y))
    got = _train(_peer("peer_numba").make, w, X, y)
    _assert_same(got, _train(_straightforward_epoch(), w, X, y), rtol=1e-6, atol=1e-6)
    if size % 2 == 0:  # the NumPy peer's pool reshapes, so it needs even sizes
        _assert_same(got, _train(_peer("peer_numpy").make, w, X, y), rtol=1e-5, atol=1e-5)
