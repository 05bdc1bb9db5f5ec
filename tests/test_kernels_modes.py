"""Training kernels with Dropout and BatchNorm: train mode in the epoch, eval mode in
evaluate/forward (kernels/modes.py), checked against derive.evaluate and PyTorch."""
import numpy as np
import pytest

import derive as dv
import kernels
from derive.errors import InputError
from kernels import cli


@pytest.fixture(scope="module")
def digits():
    return kernels.data.digits()


def mlp(*middle, hidden=32, loss=True, train=True):
    return dv.Sequential(dv.Linear(64, hidden), *middle, dv.Linear(hidden, 10),
                         loss=dv.SoftmaxCrossEntropy() if loss else None, train=train)


def sgd_epoch(model, X, y, bs, lr=0.1):
    """One epoch in the given order (no shuffling), constant lr."""
    steps = -(-len(X) // bs)
    return model.run_epoch(X, y, np.arange(len(X), dtype=np.int64), np.full(steps, lr), bs)


def buffer(model, rows, name=None):
    """A work array of the training kernels (default: the first Dropout mask)."""
    name = name or model.meta["masks"][0][0]
    names = model.meta["signature"]["train"]
    return model.buffers(rows, names)[names.index(name)]


# -- Dropout -----------------------------------------------------------------------------
def test_dropout_net_trains_on_digits_and_evaluates_without_dropout(digits):
    net = dv.Sequential(dv.Linear(64, 128), dv.ReLU(), dv.Dropout(0.2), dv.Linear(128, 10),
                        loss=dv.SoftmaxCrossEntropy())
    model = kernels.compile(net, dtype="float32")
    kernels.fit(model, digits, epochs=10, batch_size=32, progress=False)
    assert model.history[-1]["val_accuracy"] >= 0.95
    # eval mode is the identity for dropout: the plain forward of the trained weights
    p = {k: v.astype(np.float64) for k, v in model.params.items()}
    want = np.maximum(digits.X_val @ p["W1"].T + p["b1"], 0) @ p["W2"].T + p["b2"]
    got = model.outputs(digits.X_val)
    assert np.abs(got - want).max() < 1e-4
    assert np.array_equal(got, model.outputs(digits.X_val))


def test_masks_are_fresh_per_batch_and_the_step_uses_its_mask(digits):
    net = mlp(dv.ReLU(), dv.Dropout(0.5))
    X, y = digits.X[:64], digits.y[:64]
    one, two = (kernels.compile(net, dtype="float64", optimizer="sgd", lr=0.0) for _ in "12")
    before = {k: v.copy() for k, v in one.params.items()}
    sgd_epoch(one, X[:32], y[:32], 32, lr=0.1)
    first = buffer(one, 32).copy()
    sgd_epoch(two, X, y, 32, lr=0.0)
    second = buffer(two, 32).copy()
    assert set(np.unique(first)) == {0.0, 1.0} and abs(first.mean() - 0.5) < 0.05
    assert not np.array_equal(first, second)  # the second batch drew another mask
    sgd_epoch(two, X, y, 32, lr=0.0)  # the next epoch call draws other masks again
    assert not np.array_equal(second, buffer(two, 32))
    # the step is SGD on the derivation's gradient with the mask that was drawn
    vals = {"x": X[:32], "y": y[:32], one.meta["masks"][0][0]: first, **before}
    _, want = dv.evaluate(net, vals, wrt=list(one.params))
    for k, v in before.items():
        assert np.abs(one.params[k] - (v - 0.1 * want[k])).max() < 1e-10, k


def test_same_seed_same_run_other_seed_other_masks(digits):
    net = mlp(dv.ReLU(), dv.Dropout(0.5))
    runs = []
    for seed in (3, 3, 4):
        model = kernels.compile(net, dtype="float64", seed=3)
        model.seed = seed  # same initial weights; only the masks' seed differs
        kernels.fit(model, digits, epochs=2, batch_size=32, progress=False)
        runs.append(model.theta.copy())
    assert np.array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_dropout_p0_equals_the_network_without_dropout_exactly(digits):
    with_p0 = kernels.compile(mlp(dv.ReLU(), dv.Dropout(0.0)), dtype="float64")
    without = kernels.compile(mlp(dv.ReLU()), dtype="float64")
    assert np.array_equal(with_p0.theta, without.theta)
    h0 = kernels.fit(with_p0, digits, epochs=2, batch_size=32, progress=False)
    h1 = kernels.fit(without, digits, epochs=2, batch_size=32, progress=False)
    assert np.array_equal(with_p0.theta, without.theta)
    assert [r["loss"] for r in h0] == [r["loss"] for r in h1]


# -- BatchNorm ---------------------------------------------------------------------------
def bn_net(momentum=0.1, dropout=None, **kw):
    tail = [dv.Dropout(dropout)] if dropout is not None else []
    return mlp(dv.BatchNorm(32, momentum=momentum), dv.ReLU(), *tail, **kw)


def test_batchnorm_step_equals_the_derivation(digits):
    net = bn_net(dropout=0.3)
    model = kernels.compile(net, dtype="float64")
    rng = np.random.default_rng(1)
    for k, v in model.stats.items():  # running statistics away from their start
        v[...] = rng.uniform(0.5, 1.5, v.shape)
    x, y = digits.X[:9], digits.y[:9]
    mask = (rng.random((9, 32)) < 0.7).astype(float)
    vals = {"x": x, "y": y, "m2": mask, **{k: v.copy() for k, v in model.params.items()},
            **{k: v.copy() for k, v in model.stats.items()}}
    loss, want = dv.evaluate(net, vals, wrt=list(model.params))
    arrays = kernels.program_of(net).run(vals, backward=False)
    bufs = model.buffers(9, model.meta["signature"]["train"])
    bufs[model.meta["signature"]["train"].index("m2")][...] = mask
    got_loss = model.module.train_step(x, y, *model._param_list(), *bufs)
    assert abs(got_loss - loss) < 1e-12
    for k, g in zip(model.params, model.meta["grads"]):
        assert np.abs(model.grads[g] - want[k]).max() < 1e-10, k
    for k, v in model.stats.items():  # updated in place with the unbiased variance
        assert np.abs(v - arrays[k + "_new"]).max() < 1e-12, k


def test_eval_mode_is_the_derivations_eval_form(digits):
    net = bn_net(dropout=0.3)
    model = kernels.compile(net, dtype="float64")
    sgd_epoch(model, digits.X[:96], digits.y[:96], 32)
    # derive's own eval form: Sequential(..., train=False)
    vals = {"x": digits.X_val, **model.params, **model.stats}
    out, _ = dv.evaluate(bn_net(dropout=0.3, loss=False, train=False), vals, wrt=[])
    assert np.abs(model.outputs(digits.X_val) - out).max() < 1e-12
    loss, _ = dv.evaluate(bn_net(dropout=0.3, train=False), {**vals, "y": digits.y_val}, wrt=[])
    assert abs(model.evaluate(digits.X_val, digits.y_val)["loss"] - loss) < 1e-12


def test_batchnorm_running_stats_and_eval_outputs_equal_torch(digits):
    torch = pytest.importorskip("torch")
    momentum, steps, bs = 0.2, 5, 32
    model = kernels.compile(bn_net(momentum), dtype="float64", optimizer="sgd", lr=0.1)
    p = {k: torch.tensor(v.copy()) for k, v in model.params.items()}
    tnet = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.BatchNorm1d(32, momentum=momentum),
                               torch.nn.ReLU(), torch.nn.Linear(32, 10)).double()
    with torch.no_grad():
        for (w, b), mod in zip((("W1", "b1"), ("gamma2", "beta2"), ("W3", "b3")),
                               (tnet[0], tnet[1], tnet[3])):
            mod.weight.copy_(p[w])
            mod.bias.copy_(p[b])
    X, y = digits.X[:steps * bs], digits.y[:steps * bs]
    sgd_epoch(model, X, y, bs)
    opt = torch.optim.SGD(tnet.parameters(), lr=0.1)
    for s in range(0, len(X), bs):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tnet(torch.tensor(X[s:s + bs])),
                                                 torch.tensor(y[s:s + bs]))
        loss.backward()
        opt.step()
    bn = tnet[1]
    assert np.abs(model.stats["running_mean2"] - bn.running_mean.numpy()).max() < 1e-10
    assert np.abs(model.stats["running_var2"] - bn.running_var.numpy()).max() < 1e-10
    tnet.eval()
    with torch.no_grad():
        want = tnet(torch.tensor(digits.X_val)).numpy()
    assert np.abs(model.outputs(digits.X_val) - want).max() < 1e-10


def test_batchnorm_refuses_a_minibatch_of_one(digits):
    model = kernels.compile(bn_net(), dtype="float64")
    with pytest.raises(InputError, match="at least 2 samples per minibatch"):
        sgd_epoch(model, digits.X[:33], digits.y[:33], 32)


def test_checkpoint_round_trip_keeps_running_stats(digits, tmp_path):
    net = bn_net(dropout=0.2)
    model = kernels.compile(net, dtype="float64")
    kernels.fit(model, digits, epochs=1, batch_size=32, progress=False)
    path = model.save(tmp_path / "bn.npz")
    fresh = kernels.compile(net, dtype="float64").load(path)
    assert np.abs(model.stats["running_mean2"]).max() > 0.01  # moved from the start (0)
    for k, v in model.stats.items():
        assert np.array_equal(fresh.stats[k], v), k
    assert np.array_equal(fresh.outputs(digits.X_val), model.outputs(digits.X_val))
    # a resumed run draws the masks an uninterrupted one draws (seeded by the step count)
    kernels.fit(model, digits, epochs=1, batch_size=32, progress=False)
    resumed = kernels.compile(net, dtype="float64")
    kernels.fit(resumed, digits, epochs=2, batch_size=32, progress=False, checkpoint=path)
    assert np.array_equal(resumed.theta, model.theta)
    assert np.array_equal(resumed.stats["running_var2"], model.stats["running_var2"])


def test_cli_trains_the_batchnorm_dropout_example(example, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [example("train", "digits_bn_dropout.yaml"), "--epochs", "3", "--out", str(out),
            "--no-progress", "--format", "json"]
    assert cli.train_main(argv) == 0
    import json

    final = json.loads(capsys.readouterr().out)["final"]
    assert final["epoch"] == 3 and final["val_accuracy"] > 0.9
    assert "BatchNorm1d" in (out / "report.md").read_text()
    with np.load(out / "weights.npz") as w:
        assert w["stat/running_var2"].shape == (128,)


def test_two_dropouts_in_one_block_derive_evaluate_and_train(kernel_cache):
    net = dv.Sequential(dv.Linear(3, 3), dv.Dropout(0.3), dv.ReLU(), dv.Dropout(0.3),
                        dv.Linear(3, 2), loss=dv.SoftmaxCrossEntropy())
    g = net.graph()
    assert [n for n, node in g.nodes.items() if node.role == "mask"] == ["m1", "m1_2"]
    assert set(net.derive().gradients) >= {"W1", "b1", "W2", "b2"}
    model = kernels.compile(net, dtype="float64")
    assert [m[0] for m in model.meta["masks"]] == ["m1", "m1_2"]
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(6, 3)), rng.integers(0, 2, 6)
    m1, m2 = ((rng.random((6, 3)) < 0.7).astype(float) for _ in "12")
    params = {k: v.copy() for k, v in model.params.items()}
    vals = {"x": X, "y": y, "m1": m1, "m1_2": m2, **params}
    loss, want = dv.evaluate(net, vals, wrt=list(params))
    # the same loss by hand: each mask scales its own layer
    h = np.maximum((X @ params["W1"].T + params["b1"]) * m1 / 0.7, 0) * m2 / 0.7
    z = h @ params["W2"].T + params["b2"]
    zmax = z.max(axis=1, keepdims=True)
    logp = z - zmax - np.log(np.exp(z - zmax).sum(axis=1, keepdims=True))
    assert abs(loss - (-logp[np.arange(6), y].mean())) < 1e-12
    # the compiled step with these two masks gives the derivation's loss and gradients
    names = model.meta["signature"]["train"]
    bufs = model.buffers(6, names)
    bufs[names.index("m1")][...] = m1
    bufs[names.index("m1_2")][...] = m2
    got = model.module.train_step(X, y, *model._param_list(), *bufs)
    assert abs(got - loss) < 1e-12
    for k, gname in zip(model.params, model.meta["grads"]):
        assert np.abs(model.grads[gname] - want[k]).max() < 1e-10, k
    hist = kernels.fit(model, (X, y), epochs=1, batch_size=3, validation=0, progress=False)
    assert len(hist) == 1 and np.isfinite(hist[0]["loss"])
    assert not np.array_equal(model.params["W1"], params["W1"])
