"""Peer: JAX with the whole epoch under jax.jit and lax.scan over the minibatches.

Full batches go through one ``lax.scan``; a last, smaller batch (if any) is one more
step inside the same jitted function, so every peer sees exactly the same minibatches.
"""
NAME = "jax jit+scan"


def available():
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def _forward(w):
    import jax
    import jax.numpy as jnp

    m = w.model
    if m["kind"] == "mlp":
        n = len(m["sizes"]) - 1

        def f(p, x):
            for k in range(1, n + 1):
                x = x @ p[f"W{k}"].T + p[f"b{k}"]
                x = jax.nn.relu(x) if k < n else x
            return x
    elif m["kind"] == "cnn":
        def f(p, x):
            z = jax.lax.conv_general_dilated(x, p["K"], (1, 1), ((1, 1), (1, 1)),
                                             dimension_numbers=("NCHW", "OIHW", "NCHW"))
            a = jax.nn.relu(z + p["kb"][None, :, None, None])
            a = jax.lax.reduce_window(a, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
            return a.reshape(a.shape[0], -1) @ p["W"].T + p["b"]
    elif m["kind"] == "lstm":
        H = m["hidden"]

        def f(p, x):
            # the per-gate parameters stacked (gate order i, f, o, g); the input
            # projections of all T steps in one product, the recurrence in lax.scan
            Wx, Wh, b = (jnp.concatenate([p[f"{w}{q}"] for q in "ifog"])
                         for w in ("W_x", "W_h", "b_"))
            ax = jnp.swapaxes(x, 0, 1) @ Wx.T + b  # [T, B, 4H]

            def cell(state, at):
                h, c = state
                a = at + h @ Wh.T
                i, f_, o = (jax.nn.sigmoid(a[:, k * H:(k + 1) * H]) for k in range(3))
                c = f_ * c + i * jnp.tanh(a[:, 3 * H:])
                return (o * jnp.tanh(c), c), None

            z = jnp.zeros((x.shape[0], H), x.dtype)
            (h, _), _ = jax.lax.scan(cell, (z, z), ax)
            return h @ p["Wo"].T + p["bo"]
    else:
        def f(p, x):
            def cell(h, xt):
                return jnp.tanh(xt @ p["Wx"].T + h @ p["Wh"].T + p["bh"]), None
            h0 = jnp.zeros((x.shape[0], p["Wh"].shape[0]), x.dtype)
            h, _ = jax.lax.scan(cell, h0, jnp.swapaxes(x, 0, 1))
            return h @ p["Wo"].T + p["bo"]
    return f


def _epoch_fn(w, n_samples):
    import jax
    import jax.numpy as jnp

    forward = _forward(w)

    def loss_fn(p, x, y):
        z = forward(p, x)
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, y[:, None], 1)[:, 0])

    grad = jax.value_and_grad(loss_fn)
    adam = w.optimizer == "adam"

    def step(carry, batch):
        p, m, v, t = carry
        loss, g = grad(p, *batch)
        t = t + 1
        if adam:
            m = jax.tree.map(lambda a, b: 0.9 * a + 0.1 * b, m, g)
            v = jax.tree.map(lambda a, b: 0.999 * a + 0.001 * b * b, v, g)
            c1, c2 = 1 - 0.9 ** t, 1 - 0.999 ** t
            p = jax.tree.map(lambda a, mm, vv: a - w.lr * (mm / c1) / (jnp.sqrt(vv / c2) + 1e-8),
                             p, m, v)
        else:
            p = jax.tree.map(lambda a, b: a - w.lr * b, p, g)
        return (p, m, v, t), loss * batch[1].shape[0]

    bs = w.batch
    full = n_samples // bs

    @jax.jit
    def epoch(carry, X, y, order):
        xs = X[order[:full * bs]].reshape((full, bs) + X.shape[1:])
        ys = y[order[:full * bs]].reshape(full, bs)
        carry, losses = jax.lax.scan(step, carry, (xs, ys))
        total = losses.sum()
        if n_samples > full * bs:
            rest = order[full * bs:]
            carry, last = step(carry, (X[rest], y[rest]))
            total = total + last
        return carry, total / n_samples

    return epoch


class Runner:
    def __init__(self, w, params, X, y):
        import jax.numpy as jnp

        self.jnp = jnp
        p = {k: jnp.asarray(v) for k, v in params.items()}
        zeros = {k: jnp.zeros_like(v) for k, v in p.items()}
        self.carry = (p, zeros, dict(zeros), jnp.asarray(0.0, jnp.float32))
        self.X, self.y = jnp.asarray(X), jnp.asarray(y.astype("int32"))
        self.fn = _epoch_fn(w, len(X))

    def epoch(self, order):
        order = self.jnp.asarray(order.astype("int32"))
        self.carry, loss = self.fn(self.carry, self.X, self.y, order)
        return float(loss)  # float() waits for the result (JAX dispatches asynchronously)


def make(w, params, X, y):
    return Runner(w, params, X, y)
