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
