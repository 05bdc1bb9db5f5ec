"""The benchmark harness: every runner computes the same training run (no timing asserted)."""
import numpy as np
import pytest

from kernels import bench


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DERIVEKIT_CACHE", str(tmp_path_factory.getbasetemp() / "benchcache"))


def test_runners_agree_and_results_are_written(tmp_path):
    out = tmp_path / "RESULTS.md"
    assert bench.main(["--only", "W1", "--epochs", "2", "--peers", "peer_numpy,peer_numba",
                       "--no-compile-times", "-o", str(out)]) == 0
    text = out.read_text()
    assert "## W1: MLP 64-128-10" in text and "| derivekit |" in text and "| numpy |" in text
    losses = {row.split("|")[1].strip(): float(row.split("|")[5])
              for row in text.splitlines() if row.startswith("| ") and "runner" not in row}
    # same data, initial parameters and order: the final training losses agree
    assert losses["derivekit"] == pytest.approx(losses["numpy"], abs=2e-4)
    assert losses["derivekit"] == pytest.approx(losses["numba (hand-fused)"], abs=2e-4)


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
