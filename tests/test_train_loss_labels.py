"""``derivekit train --loss mse`` on class-labelled data: the integer labels become one-hot
target rows, the run says so, and its losses and its SGD step equal NumPy's."""
import json

import numpy as np
import pytest

import kernels
from kernels import cli


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DERIVEKIT_CACHE", str(tmp_path_factory.getbasetemp() / "clicache"))


def _run(out, lr, capsys, *extra):
    argv = [*extra, "examples/train/digits_mlp.yaml", "--loss", "mse", "--epochs", "1", "--lr",
            str(lr), "--batch-size", "2000", "--dtype", "float64", "--no-progress",
            "--out", str(out)]
    assert cli.train_main(argv) == 0
    history = json.loads((out / "history.json").read_text())
    with np.load(out / "weights.npz") as w:
        params = {k.split("/")[1]: w[k] for k in w.files if k.startswith("param/")}
    return history[0], params, capsys.readouterr().out


def _numpy_mse(p, X, y):
    """MSE over all B x 10 entries against one-hot rows, and its gradients (NumPy)."""
    z1 = X @ p["W1"].T + p["b1"]
    a1 = np.maximum(z1, 0)
    z2 = a1 @ p["W2"].T + p["b2"]
    diff = z2 - np.eye(10)[y]
    z2_bar = 2 * diff / diff.size
    z1_bar = (z2_bar @ p["W2"]) * (z1 > 0)
    grads = {"W2": z2_bar.T @ a1, "b2": z2_bar.sum(0), "W1": z1_bar.T @ X, "b1": z1_bar.sum(0)}
    return np.mean(diff ** 2), grads


def test_mse_on_digit_labels_trains_on_one_hot_rows(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    ds = kernels.data.digits(seed=0)
    X, y = ds.X.astype(np.float64), ds.y
    # lr 0: the epoch's loss is the loss at the initial weights, which are saved as they were
    first, init, said = _run(tmp_path / "lr0", 0.0, capsys)
    loss0, grads = _numpy_mse(init, X, y)
    assert first["loss"] == pytest.approx(loss0, rel=1e-12)
    assert first["val_loss"] == pytest.approx(_numpy_mse(init, ds.X_val, ds.y_val)[0],
                                              rel=1e-12)
    assert "note: the loss mse compares the scores with one-hot rows" in said
    report = (tmp_path / "lr0" / "report.md").read_text()
    assert "MSELoss() on one-hot labels" in report
    # one full-batch SGD step of lr 0.1 from the same initial weights is NumPy's step
    first, stepped, said = _run(tmp_path / "lr01", 0.1, capsys, "--format", "json")
    assert json.loads(said)["notes"][0].startswith("the loss mse compares the scores")
    assert np.isfinite(first["loss"]) and first["loss"] == pytest.approx(loss0, rel=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(stepped[name], init[name] - 0.1 * g, rtol=1e-10,
                                   atol=1e-12)
    assert first["val_loss"] == pytest.approx(_numpy_mse(stepped, ds.X_val, ds.y_val)[0],
                                              rel=1e-12)
