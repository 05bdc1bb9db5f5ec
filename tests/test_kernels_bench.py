"""The benchmark harness: every runner computes the same training run (no timing asserted)."""
import json

import numpy as np
import pytest

from kernels import bench, bench_children, bench_report
from kernels.bench_children import epoch_orders


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DERIVEKIT_CACHE", str(tmp_path_factory.getbasetemp() / "benchcache"))


def test_runners_agree_and_results_are_written(tmp_path):
    out = tmp_path / "RESULTS.md"
    assert bench.main(["--only", "W1", "--epochs", "2", "--peers", "peer_numpy,peer_numba",
                       "--processes", "1", "--threads", "1", "--no-compile-times",
                       "-o", str(out)]) == 0
    text = out.read_text()
    assert "## W1 at 1 thread: MLP 64-128-10" in text and "| derivekit |" in text
    assert "| numpy |" in text and "| derivekit kernels.fit |" in text
    losses = {row.split("|")[1].strip(): float(row.split("|")[7].split()[0])
              for row in text.splitlines() if row.startswith("| ") and "runner" not in row}
    # same data, initial parameters and order: the final training losses agree
    assert losses["derivekit"] == pytest.approx(losses["numpy"], abs=2e-4)
    assert losses["derivekit"] == pytest.approx(losses["numba (hand-fused)"], abs=2e-4)
    assert losses["derivekit kernels.fit"] == losses["derivekit"]  # the same kernel and run
    assert "differs" not in text
    raw = json.loads(out.with_suffix(".json").read_text())
    assert sorted(r["runner"] for r in raw) == ["derivekit", "peer_numba", "peer_numpy"]


def test_child_protocol_one_runner_one_workload_json():
    # what the parent starts for each process: one runner, one workload, a JSON line
    cores = bench_children.pinned_cores(1)
    res = bench_children.run_child("W1", "peer_numpy", 2, threads=1, cores=cores)
    assert "skipped" not in res, res
    assert res["workload"] == "W1" and res["name"] == "numpy" and res["threads"] == 1
    assert len(res["times"]) == 2 and res["first"] >= res["times"][0] > 0
    assert res["loss"] == res["losses"][-1] and 0 < res["loss"] < 2.5
    assert res["cores"] == cores
    assert any(b["internal_api"] == "openblas" and b["num_threads"] == 1 for b in res["blas"])
    missing = bench_children.run_child("W1", "peer_nonesuch", 2)
    assert "skipped" in missing


def test_children_drop_the_openblas_pins_unless_asked():
    base = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512", "PATH": "/bin"}
    env = bench_children.child_env("peer_jax", 1, base=base)
    assert "OPENBLAS_CORETYPE" not in env and "OPENBLAS_L2_SIZE" not in env
    assert env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == "1"
    assert "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]
    assert "intra_op_parallelism_threads=1" in env["XLA_FLAGS"]
    kept = bench_children.child_env("peer_jax", 2, blas_pin=True, base=base)
    assert kept["OPENBLAS_CORETYPE"] == "Haswell" and kept["OPENBLAS_NUM_THREADS"] == "2"
    assert "multi_thread_eigen" not in kept["XLA_FLAGS"]


def test_shared_initialisation_is_deterministic():
    w = bench.WORKLOADS["W4"]
    a, b = bench.initial_params(w), bench.initial_params(w)
    assert list(a) == ["K", "kb", "W", "b"] and a["K"].shape == (8, 1, 3, 3)
    assert all(np.array_equal(a[k], b[k]) and a[k].dtype == np.float32 for k in a)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_runner_orders_balance_who_runs_after_whom(n):
    # the runner after PyTorch finds the shared data evicted; each runner must come
    # after every other equally often, within an epoch's order
    rows = bench.runner_orders(n)
    assert all(sorted(r) == list(range(n)) for r in rows)
    follows = {}
    for r in rows:
        for a, b in zip(r, r[1:]):
            follows[a, b] = follows.get((a, b), 0) + 1
    assert len(follows) == n * (n - 1)
    assert len(set(follows.values())) <= 1
    assert len(rows) == (n if n % 2 == 0 else 2 * n) or n == 1


# -- W6, the LSTM: a tiny version of it run by every installed runner -------------------
def _tiny_lstm(optimizer="adam", lr=1e-2):
    """W6 with T = 3, hidden 4 and 64 sequences in batches of 24 (the last one 16 long)."""
    import dataclasses

    from kernels import data

    ds = data.sequences(64, T=3, d=8, n_classes=4, seed=1, dtype=np.float32)
    w = dataclasses.replace(bench.WORKLOADS["W6"], name="W6-tiny", batch=24,
                            optimizer=optimizer, lr=lr, data=lambda: (ds.X, ds.y),
                            model={"kind": "lstm", "d": 8, "hidden": 4, "T": 3, "classes": 4})
    return w, ds.X, ds.y


def _trajectory(make, epochs=2):
    w, X, y = _tiny_lstm()
    runner = make(w, bench.initial_params(w), X, y)
    # the orders run_workload gives every runner
    return [runner.epoch(order) for order in epoch_orders(len(X), epochs)]


@pytest.fixture(scope="module")
def derivekit_lstm_losses(tmp_path_factory):
    import os

    old = os.environ.get("DERIVEKIT_CACHE")
    os.environ["DERIVEKIT_CACHE"] = str(tmp_path_factory.getbasetemp() / "benchcache")
    try:
        return _trajectory(bench.DerivekitRunner)
    finally:
        if old is None:
            os.environ.pop("DERIVEKIT_CACHE")
        else:
            os.environ["DERIVEKIT_CACHE"] = old


@pytest.mark.slow
@pytest.mark.parametrize("peer, needs", [("peer_numpy", None), ("peer_numba", "numba"),
                                         ("peer_torch", "torch"), ("peer_jax", "jax")])
def test_lstm_peers_follow_derivekits_loss_trajectory(peer, needs, derivekit_lstm_losses):
    # same data, initial parameters (torch: restacked i, f, g, o), order and Adam steps:
    # every epoch's mean loss is the same to float32 rounding
    if needs:
        pytest.importorskip(needs)
    (mod,) = bench.load_peers([peer])
    losses = _trajectory(mod.make)
    assert losses[0] != pytest.approx(losses[1], abs=1e-3)  # training moved
    assert losses == pytest.approx(derivekit_lstm_losses, abs=1e-4)


@pytest.mark.slow
def test_lstm_gradient_is_torch_autograds():
    # one epoch taken as one batch with SGD at rate 1: derivekit's step is its gradient of
    # the mean loss, against torch autograd through the LSTM written out gate by gate
    torch = pytest.importorskip("torch")
    w, X, y = _tiny_lstm(optimizer="sgd", lr=1.0)
    params = bench.initial_params(w)
    model = bench.derivekit_model(w, params)
    _, names = bench.derivekit_net(w)
    assert set(names) == set(params)  # every workload parameter has its model parameter
    model.run_epoch(X, y, np.arange(len(X), dtype=np.int64), np.ones(1), len(X))

    p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    x = torch.tensor(X, dtype=torch.float64)
    h = c = torch.zeros(len(X), 4, dtype=torch.float64)
    for t in range(3):
        a = {q: x[:, t] @ p[f"W_x{q}"].T + h @ p[f"W_h{q}"].T + p[f"b_{q}"] for q in "ifog"}
        c = torch.sigmoid(a["f"]) * c + torch.sigmoid(a["i"]) * torch.tanh(a["g"])
        h = torch.sigmoid(a["o"]) * torch.tanh(c)
    loss = torch.nn.functional.cross_entropy(h @ p["Wo"].T + p["bo"], torch.tensor(y))
    loss.backward()
    for k, v in p.items():
        step = params[k].astype(np.float64) - model.params[names[k]]
        assert np.abs(v.grad.numpy()).max() > 1e-3, k
        np.testing.assert_allclose(step, v.grad.numpy(), atol=2e-6, rtol=1e-4, err_msg=k)


def test_thread_counts_and_a_loss_that_differs_is_flagged():
    import os

    from derive.errors import InputError

    cores = len(os.sched_getaffinity(0))
    assert bench._thread_counts("1,all") == sorted({1, cores})
    with pytest.raises(InputError, match="--threads"):
        bench._thread_counts("0")

    def child(name, steady, loss, fit=None):
        out = {"runner": name, "name": name, "first": 1.0, "steady": steady, "loss": loss,
               "blas": [{"internal_api": "openblas", "architecture": "Zen", "num_threads": 1}]}
        return {**out, "fit": {"steady": fit, "first": 0.1, "loss": loss}} if fit else out

    runs = {"derivekit": [child("derivekit", 1.0, 0.5, fit=1.02), child("derivekit", 1.2, 0.5,
                                                                        fit=1.25)],
            "peer_a": [child("a", 2.0, 0.5)], "peer_b": [child("b", 3.0, 0.7)],
            "peer_c": [{"runner": "peer_c", "name": "peer_c", "skipped": "c is not installed"}]}
    res = bench_report.summarise(runs)
    assert res["derivekit"]["steady"] == pytest.approx(1.1)
    assert res["derivekit"]["fit"]["steady"] == pytest.approx(1.135)
    assert res["peer_c"] == {"skipped": "c is not installed"}
    line = bench_report.verdict("W1", res)
    assert "best peer (a) = 0.55" in line and "kernels.fit / compiled epoch = 1.031" in line
    assert "differ from derivekit's: b" in line
