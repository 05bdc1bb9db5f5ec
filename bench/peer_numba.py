"""Peer: a hand-written, hand-differentiated, fused numba epoch (the baseline to beat).

This is a benchmark peer, written the way a careful person writes numba by hand: one
compiled call per epoch, preallocated buffers, BLAS for the products, the optimizer
update fused in, and ``error_model="numpy"`` (no ZeroDivisionError branch in every
division, which otherwise stops LLVM from vectorising the update loops). Its backward
passes are derived by hand; derivekit's are not (they are printed from the
Derivation), which is the point of comparing the two.
"""
import numpy as np
from numba import njit

NAME = "numba (hand-fused)"


def available():
    return True


# -- shared pieces ------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _softmax_ce(z, y, n, dz):
    """Mean cross-entropy over the first n rows of z; dz = (p - onehot)/n; correct count."""
    loss = 0.0
    correct = 0
    C = z.shape[1]
    for r in range(n):
        m = z[r, 0]
        k = 0
        for c in range(1, C):
            if z[r, c] > m:
                m = z[r, c]
                k = c
        s = 0.0
        for c in range(C):
            e = np.exp(z[r, c] - m)
            dz[r, c] = e
            s += e
        loss += np.log(s) + m - z[r, y[r]]
        correct += k == y[r]
        for c in range(C):
            dz[r, c] = dz[r, c] / s / n
        dz[r, y[r]] -= 1.0 / n
    return loss, correct


@njit(cache=True, error_model="numpy")
def _update(p, g, m, v, t, lr, adam):
    pf, gf, mf, vf = p.ravel(), g.ravel(), m.ravel(), v.ravel()
    if adam:
        c1 = 1.0 - 0.9 ** t
        c2 = 1.0 - 0.999 ** t
        for i in range(pf.size):
            mf[i] = 0.9 * mf[i] + 0.1 * gf[i]
            vf[i] = 0.999 * vf[i] + 0.001 * gf[i] * gf[i]
            pf[i] -= lr * (mf[i] / c1) / (np.sqrt(vf[i] / c2) + 1e-8)
    else:
        for i in range(pf.size):
            pf[i] -= lr * gf[i]


@njit(cache=True, error_model="numpy")
def _dense_fwd(x, W, b, z, relu):
    np.dot(x, W.T, z)
    for r in range(z.shape[0]):
        for c in range(z.shape[1]):
            v = z[r, c] + b[c]
            z[r, c] = v if (v > 0 or not relu) else 0.0


@njit(cache=True, error_model="numpy")
def _dense_bwd(dz, x, gW, gb):
    np.dot(dz.T, x, gW)
    gb[:] = 0.0
    for r in range(dz.shape[0]):
        for c in range(dz.shape[1]):
            gb[c] += dz[r, c]


@njit(cache=True, error_model="numpy")
def _relu_back(da, a):
    for r in range(da.shape[0]):
        for c in range(da.shape[1]):
            if a[r, c] <= 0:
                da[r, c] = 0.0


# -- MLP with one or two hidden layers (W1, W2, W3) ---------------------------------------
@njit(cache=True, error_model="numpy")
def mlp_epoch(X, y, order, bs, lr, t0, adam, Ws, bs_, gWs, gbs, mW, vW, mb, vb):
    N = order.shape[0]  # the samples this epoch visits
    L = len(Ws)
    dt = X.dtype
    acts = [np.empty((bs, Ws[k].shape[0]), dt) for k in range(L)]
    grads = [np.empty((bs, Ws[k].shape[0]), dt) for k in range(L)]
    xb = np.empty((bs, X.shape[1]), dt)
    yb = np.empty(bs, np.int64)
    total, correct, t = 0.0, 0, t0
    for s in range(0, N, bs):
        n = min(bs, N - s)
        for r in range(n):
            xb[r] = X[order[s + r]]
            yb[r] = y[order[s + r]]
        inp = xb[:n]
        for k in range(L):
            _dense_fwd(inp, Ws[k], bs_[k], acts[k][:n], k < L - 1)
            inp = acts[k][:n]
        loss, c = _softmax_ce(acts[L - 1][:n], yb, n, grads[L - 1][:n])
        total += loss
        correct += c
        for k in range(L - 1, -1, -1):
            below = xb[:n] if k == 0 else acts[k - 1][:n]
            _dense_bwd(grads[k][:n], below, gWs[k], gbs[k])
            if k > 0:
                np.dot(grads[k][:n], Ws[k], grads[k - 1][:n])
                _relu_back(grads[k - 1][:n], acts[k - 1][:n])
        t += 1
        for k in range(L):
            _update(Ws[k], gWs[k], mW[k], vW[k], t, lr, adam)
            _update(bs_[k], gbs[k], mb[k], vb[k], t, lr, adam)
    return total, correct


class MLP:
    def __init__(self, w, params, X, y):
        self.X, self.y, self.bs = X, y, w.batch
        n = len(w.model["sizes"]) - 1
        self.Ws = [params[f"W{k + 1}"].copy() for k in range(n)]
        self.bvec = [params[f"b{k + 1}"].copy() for k in range(n)]
        z = lambda arrs: [np.zeros_like(a) for a in arrs]  # noqa: E731
        self.gW, self.gb = z(self.Ws), z(self.bvec)
        self.mW, self.vW, self.mb, self.vb = z(self.Ws), z(self.Ws), z(self.bvec), z(self.bvec)
        self.adam, self.lr, self.t = w.optimizer == "adam", w.lr, 0
        from numba.typed import List
        self.lists = [List(a) for a in (self.Ws, self.bvec, self.gW, self.gb,
                                        self.mW, self.vW, self.mb, self.vb)]

    def epoch(self, order):
        total, _ = mlp_epoch(self.X, self.y, order, self.bs, self.lr, self.t, self.adam,
                             *self.lists)
        self.t += -(-len(order) // self.bs)
        return total / len(order)


# -- W4: conv3x3 (pad 1) -> ReLU -> maxpool 2 -> flatten -> linear ------------------------
# Written for speed on one core. Each minibatch is copied into a zero-bordered
# buffer holding one flat padded image per sample and channel, xp[r, c, t] with
# t = i * (W + 2) + j over the padded grid; the border is zeroed once per epoch call and
# never written again. The 3x3 convolution of one (sample, filter) is then a single
# contiguous loop over t (the two columns per row that fall past the image, and the few
# positions rounding the loop up to whole 8-float vectors, are computed and never read),
# which LLVM vectorises; its three input rows are views starting at offsets 0, W + 2 and
# 2(W + 2), so every index is the loop counter plus 0, 1 or 2. Bias, ReLU and the 2x2
# max-pool are fused in the same pass: the pool writes straight into the linear layer's
# input [B, F*H/2*W/2] in Flatten's (channel, row, column) order, and keeps the position
# of each window's first maximum, or -1 where ReLU made it 0 (no gradient), for the
# backward pass. The max is taken with selects, not jumps (the argmax is data-dependent
# and would mispredict). Indices that LLVM cannot prove non-negative are unsigned
# (np.uint64): numba wraps a signed index below 0, a compare and select on every load,
# which left the first flat loop 2.6x slower and the backward 1.6x slower.
# Everything else matches the straightforward version this replaced: float32 arithmetic,
# the bias added first and then the taps in (c, u, v) order (so the forward pass is
# bit-for-bit the old one's), products and the weight gradient of the linear layer
# through np.dot, the update p -= lr * g. No fastmath: it would reassociate the sums and
# the trajectory would no longer be the other runners' one.
@njit(cache=True, nogil=True)
def _cnn_grid(H, Wd):
    """(padded width, loop length over the padded grid rounded up to whole 8-float
    vectors, length of one flat padded image with room for that loop's reads)."""
    Wp = Wd + 2
    L = -(-((H - 1) * Wp + Wd) // 8) * 8
    return Wp, L, L + 2 * Wp + 2


@njit(cache=True, nogil=True, error_model="numpy")
def _cnn_forward(n, K, kb, xp, a, pooled, arg, H, Wd, zero):
    """Conv + bias + ReLU + 2x2 max-pool of samples 0..n-1 of ``xp`` into ``pooled``
    (and ``arg``: 0..3 = row-major position of the max in its window, -1 = dead)."""
    F, C = K.shape[0], K.shape[1]
    Wp, L, _ = _cnn_grid(H, Wd)
    H2, W2 = H // 2, Wd // 2
    P = H2 * W2
    one = np.uint64(1)
    down = np.uint64(Wp)
    for r in range(n):
        pr, ar = pooled[r], arg[r]
        for f in range(F):
            bias = kb[f]
            for c in range(C):
                k00, k01, k02 = K[f, c, 0, 0], K[f, c, 0, 1], K[f, c, 0, 2]
                k10, k11, k12 = K[f, c, 1, 0], K[f, c, 1, 1], K[f, c, 1, 2]
                k20, k21, k22 = K[f, c, 2, 0], K[f, c, 2, 1], K[f, c, 2, 2]
                x0 = xp[r, c]
                x1 = x0[Wp:]
                x2 = x0[2 * Wp:]
                first = c == 0  # loop-invariant: LLVM makes two loops of this one
                for t in range(L):
                    acc = bias if first else a[t]
                    acc += k00 * x0[t]
                    acc += k01 * x0[t + 1]
                    acc += k02 * x0[t + 2]
                    acc += k10 * x1[t]
                    acc += k11 * x1[t + 1]
                    acc += k12 * x1[t + 2]
                    acc += k20 * x2[t]
                    acc += k21 * x2[t + 1]
                    acc += k22 * x2[t + 2]
                    a[t] = acc
            for i2 in range(H2):
                out = np.uint64(f * P + i2 * W2)
                top = np.uint64(2 * i2 * Wp)
                for j2 in range(W2):
                    t = top + np.uint64(2 * j2)
                    best, k = a[t], 0
                    v = a[t + one]
                    m = v > best
                    best = v if m else best
                    k = 1 if m else k
                    v = a[t + down]
                    m = v > best
                    best = v if m else best
                    k = 2 if m else k
                    v = a[t + down + one]
                    m = v > best
                    best = v if m else best
                    k = 3 if m else k
                    live = best > 0  # ReLU: relu(max) = max(relu), same first argmax
                    o = out + np.uint64(j2)
                    pr[o] = best if live else zero
                    ar[o] = k if live else -1


@njit(cache=True, nogil=True, error_model="numpy")
def _cnn_backward(n, dp, arg, xp, gK, gkb, H, Wd, zero):
    """Kernel and bias gradients from ``dp`` (d loss / d pooled): only each window's
    argmax gets gradient (ReLU's mask folded in through ``arg`` = -1). Nine float32
    accumulators per (filter, channel), summed over the batch's pooled cells; a dead
    cell adds d = 0 rather than branching (a 50/50 branch that mispredicts)."""
    F, C = gK.shape[0], gK.shape[1]
    Wp = Wd + 2
    H2, W2 = H // 2, Wd // 2
    P = H2 * W2
    one, two = np.uint64(1), np.uint64(2)
    d0 = np.uint64(Wp)  # the tap offsets, unsigned
    d1, d2 = d0 + one, d0 + two
    e0 = d0 + d0
    e1, e2 = e0 + one, e0 + two
    for f in range(F):
        for c in range(C):
            g00 = g01 = g02 = g10 = g11 = g12 = g20 = g21 = g22 = zero
            gbias = zero
            for r in range(n):
                x = xp[r, c]
                for i2 in range(H2):
                    cell = f * P + i2 * W2
                    for j2 in range(W2):
                        k = arg[r, cell + j2]
                        d = dp[r, cell + j2] if k >= 0 else zero
                        k &= 3  # a dead cell reads (harmlessly) its window's last position
                        t = np.uint64((2 * i2 + (k >> 1)) * Wp + 2 * j2 + (k & 1))
                        gbias += d
                        g00 += d * x[t]
                        g01 += d * x[t + one]
                        g02 += d * x[t + two]
                        g10 += d * x[t + d0]
                        g11 += d * x[t + d1]
                        g12 += d * x[t + d2]
                        g20 += d * x[t + e0]
                        g21 += d * x[t + e1]
                        g22 += d * x[t + e2]
            gK[f, c, 0, 0], gK[f, c, 0, 1], gK[f, c, 0, 2] = g00, g01, g02
            gK[f, c, 1, 0], gK[f, c, 1, 1], gK[f, c, 1, 2] = g10, g11, g12
            gK[f, c, 2, 0], gK[f, c, 2, 1], gK[f, c, 2, 2] = g20, g21, g22
            if c == 0:
                gkb[f] = gbias


@njit(cache=True, nogil=True, error_model="numpy")
def cnn_epoch(X, y, order, bs, lr, K, kb, W, b, gK, gkb, gW, gb):
    """One SGD epoch of W4 over ``order`` in minibatches of ``bs``; every buffer is
    allocated here, once per call. Returns (summed loss, correct count)."""
    N = order.shape[0]
    C, H, Wd = X.shape[1], X.shape[2], X.shape[3]
    F = K.shape[0]
    Wp, L, padded = _cnn_grid(H, Wd)
    P = (H // 2) * (Wd // 2)
    dt = X.dtype
    zero = np.zeros(1, dt)[0]  # a float32 0 (a literal 0.0 would make sums float64)
    xp = np.zeros((bs, C, padded), dt)  # the zero border stays zero
    a = np.empty(L, dt)  # one (sample, filter)'s conv output on the padded grid
    pooled = np.empty((bs, F * P), dt)
    arg = np.empty((bs, F * P), np.int32)
    z = np.empty((bs, W.shape[0]), dt)
    dz = np.empty((bs, W.shape[0]), dt)
    dp = np.empty((bs, F * P), dt)
    yb = np.empty(bs, np.int64)
    total, correct = 0.0, 0
    for s in range(0, N, bs):
        n = min(bs, N - s)
        for r in range(n):
            src = X[order[s + r]]
            yb[r] = y[order[s + r]]
            for c in range(C):
                for i in range(H):
                    row = xp[r, c, (i + 1) * Wp + 1:]
                    for j in range(Wd):
                        row[j] = src[c, i, j]
        _cnn_forward(n, K, kb, xp, a, pooled, arg, H, Wd, zero)
        _dense_fwd(pooled[:n], W, b, z[:n], False)
        loss, cc = _softmax_ce(z[:n], yb, n, dz[:n])
        total += loss
        correct += cc
        _dense_bwd(dz[:n], pooled[:n], gW, gb)
        np.dot(dz[:n], W, dp[:n])
        _cnn_backward(n, dp, arg, xp, gK, gkb, H, Wd, zero)
        for p, g in ((K.ravel(), gK.ravel()), (kb, gkb), (W.ravel(), gW.ravel()), (b, gb)):
            for i in range(p.size):
                p[i] -= lr * g[i]
    return total, correct


class CNN:
    def __init__(self, w, params, X, y):
        self.X, self.y, self.bs, self.lr = X, y, w.batch, w.lr
        self.p = [params[k].copy() for k in ("K", "kb", "W", "b")]
        self.g = [np.zeros_like(a) for a in self.p]

    def epoch(self, order):
        total, _ = cnn_epoch(self.X, self.y, order, self.bs, self.lr, *self.p, *self.g)
        return total / len(order)


# -- W5: vanilla RNN, h_t = tanh(Wx x_t + Wh h_{t-1} + bh), logits from h_T ---------------
@njit(cache=True, error_model="numpy")
def rnn_epoch(X, y, order, bs, lr, t0, Wx, Wh, bh, Wo, bo, gWx, gWh, gbh, gWo, gbo, M, V):
    N, (T, D) = order.shape[0], X.shape[1:]
    H = Wh.shape[0]
    dt = X.dtype
    xb = np.empty((T, bs, D), dt)
    h = np.zeros((T + 1, bs, H), dt)
    pre = np.empty((bs, H), dt)
    z = np.empty((bs, Wo.shape[0]), dt)
    dz = np.empty((bs, Wo.shape[0]), dt)
    dh = np.empty((bs, H), dt)
    dpre = np.empty((bs, H), dt)
    tmp = np.empty((H, D), dt)
    tmp2 = np.empty((H, H), dt)
    yb = np.empty(bs, np.int64)
    total, correct, t = 0.0, 0, t0
    for s in range(0, N, bs):
        n = min(bs, N - s)
        for r in range(n):
            for k in range(T):
                xb[k, r] = X[order[s + r], k]
            yb[r] = y[order[s + r]]
        for k in range(T):
            np.dot(xb[k, :n], Wx.T, pre[:n])
            np.dot(h[k, :n], Wh.T, h[k + 1, :n])
            for r in range(n):
                for j in range(H):
                    h[k + 1, r, j] = np.tanh(h[k + 1, r, j] + pre[r, j] + bh[j])
        _dense_fwd(h[T, :n], Wo, bo, z[:n], False)
        loss, cc = _softmax_ce(z[:n], yb, n, dz[:n])
        total += loss
        correct += cc
        _dense_bwd(dz[:n], h[T, :n], gWo, gbo)
        np.dot(dz[:n], Wo, dh[:n])
        gWx[:] = 0.0
        gWh[:] = 0.0
        gbh[:] = 0.0
        for k in range(T - 1, -1, -1):
            for r in range(n):
                for j in range(H):
                    hv = h[k + 1, r, j]
                    dpre[r, j] = dh[r, j] * (1.0 - hv * hv)
                    gbh[j] += dpre[r, j]
            np.dot(dpre[:n].T, xb[k, :n], tmp)
            gWx += tmp
            np.dot(dpre[:n].T, h[k, :n], tmp2)
            gWh += tmp2
            np.dot(dpre[:n], Wh, dh[:n])
        t += 1
        _update(Wx, gWx, M[0], V[0], t, lr, True)
        _update(Wh, gWh, M[1], V[1], t, lr, True)
        _update(bh, gbh, M[2], V[2], t, lr, True)
        _update(Wo, gWo, M[3], V[3], t, lr, True)
        _update(bo, gbo, M[4], V[4], t, lr, True)
    return total, correct


class RNN:
    def __init__(self, w, params, X, y):
        self.X, self.y, self.bs, self.lr, self.t = X, y, w.batch, w.lr, 0
        names = ("Wx", "Wh", "bh", "Wo", "bo")
        self.P = tuple(params[k].copy() for k in names)
        self.G, self.M, self.V = (tuple(np.zeros_like(a) for a in self.P) for _ in range(3))

    def epoch(self, order):
        total, _ = rnn_epoch(self.X, self.y, order, self.bs, self.lr, self.t,
                             *self.P, *self.G, self.M, self.V)
        self.t += -(-len(order) // self.bs)
        return total / len(order)


# -- W6: LSTM, gates i, f, o (sigmoid) and g (tanh) stacked, c = f c + i g, h = o tanh(c) --
@njit(cache=True, error_model="numpy")
def lstm_epoch(X, y, order, bs, lr, t0, adam, Wx, Wh, b, Wo, bo, gWx, gWh, gb, gWo, gbo,
               M, V):
    """One epoch from h_0 = c_0 = 0; ``Wx: [4H, D]``, ``Wh: [4H, H]``, ``b: [4H]`` hold
    the gates i, f, o, g in that order. Forward keeps every step's gates and cells; the
    backward pass runs through time by hand, the Adam (or SGD) update fused in."""
    N, (T, D) = order.shape[0], X.shape[1:]
    H = Wh.shape[1]
    G = 4 * H
    dt = X.dtype
    xb = np.empty((T, bs, D), dt)
    h = np.zeros((T + 1, bs, H), dt)
    c = np.zeros((T + 1, bs, H), dt)
    gate = np.empty((T, bs, G), dt)  # activated gates of every step
    rec = np.empty((bs, G), dt)
    z = np.empty((bs, Wo.shape[0]), dt)
    dz = np.empty((bs, Wo.shape[0]), dt)
    dh = np.empty((bs, H), dt)
    dc = np.empty((bs, H), dt)
    da = np.empty((bs, G), dt)
    tmp = np.empty((G, D), dt)
    tmp2 = np.empty((G, H), dt)
    yb = np.empty(bs, np.int64)
    total, correct, t = 0.0, 0, t0
    for s in range(0, N, bs):
        n = min(bs, N - s)
        for r in range(n):
            for k in range(T):
                xb[k, r] = X[order[s + r], k]
            yb[r] = y[order[s + r]]
        for k in range(T):
            a = gate[k]
            np.dot(xb[k, :n], Wx.T, a[:n])
            np.dot(h[k, :n], Wh.T, rec[:n])
            for r in range(n):
                for j in range(G):
                    v = a[r, j] + rec[r, j] + b[j]
                    a[r, j] = 1.0 / (1.0 + np.exp(-v)) if j < 3 * H else np.tanh(v)
                for j in range(H):
                    cv = a[r, H + j] * c[k, r, j] + a[r, j] * a[r, 3 * H + j]
                    c[k + 1, r, j] = cv
                    h[k + 1, r, j] = a[r, 2 * H + j] * np.tanh(cv)
        _dense_fwd(h[T, :n], Wo, bo, z[:n], False)
        loss, cc = _softmax_ce(z[:n], yb, n, dz[:n])
        total += loss
        correct += cc
        _dense_bwd(dz[:n], h[T, :n], gWo, gbo)
        np.dot(dz[:n], Wo, dh[:n])
        dc[:n] = 0.0
        gWx[:] = 0.0
        gWh[:] = 0.0
        gb[:] = 0.0
        for k in range(T - 1, -1, -1):
            a = gate[k]
            for r in range(n):
                for j in range(H):
                    i, f, o, g = a[r, j], a[r, H + j], a[r, 2 * H + j], a[r, 3 * H + j]
                    tc = np.tanh(c[k + 1, r, j])
                    dcv = dc[r, j] + dh[r, j] * o * (1.0 - tc * tc)
                    da[r, j] = dcv * g * i * (1.0 - i)
                    da[r, H + j] = dcv * c[k, r, j] * f * (1.0 - f)
                    da[r, 2 * H + j] = dh[r, j] * tc * o * (1.0 - o)
                    da[r, 3 * H + j] = dcv * i * (1.0 - g * g)
                    dc[r, j] = dcv * f
                for j in range(G):
                    gb[j] += da[r, j]
            np.dot(da[:n].T, xb[k, :n], tmp)
            gWx += tmp
            np.dot(da[:n].T, h[k, :n], tmp2)
            gWh += tmp2
            np.dot(da[:n], Wh, dh[:n])
        t += 1
        _update(Wx, gWx, M[0], V[0], t, lr, adam)
        _update(Wh, gWh, M[1], V[1], t, lr, adam)
        _update(b, gb, M[2], V[2], t, lr, adam)
        _update(Wo, gWo, M[3], V[3], t, lr, adam)
        _update(bo, gbo, M[4], V[4], t, lr, adam)
    return total, correct


class LSTM:
    def __init__(self, w, params, X, y):
        self.X, self.y, self.bs, self.lr, self.t = X, y, w.batch, w.lr, 0
        self.adam = w.optimizer == "adam"
        stack = lambda name: np.concatenate([params[f"{name}{q}"] for q in "ifog"])  # noqa: E731
        self.P = (stack("W_x"), stack("W_h"), stack("b_"), params["Wo"].copy(),
                  params["bo"].copy())
        self.G, self.M, self.V = (tuple(np.zeros_like(a) for a in self.P) for _ in range(3))

    def epoch(self, order):
        total, _ = lstm_epoch(self.X, self.y, order, self.bs, self.lr, self.t, self.adam,
                              *self.P, *self.G, self.M, self.V)
        self.t += -(-len(order) // self.bs)
        return total / len(order)


def make(w, params, X, y):
    """A runner for workload ``w`` (None if this peer does not do it)."""
    kind = w.model["kind"]
    return {"mlp": MLP, "cnn": CNN, "rnn": RNN, "lstm": LSTM}[kind](w, params, X, y)
