"""``derivekit train``: the default digits MLP reaches 97%; configs and bad input."""
import json
import os

import numpy as np
import pytest

from derive.errors import InputError
from kernels import cli


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DERIVEKIT_CACHE", str(tmp_path_factory.getbasetemp() / "clicache"))


def test_default_run_reaches_97_percent_and_writes_a_report(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.train_main(["--no-progress", "--out", str(out)]) == 0
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 20 and history[-1]["val_accuracy"] >= 0.97
    report = (out / "report.md").read_text()
    assert "## The update rule (sgd)" in report and r"\theta" in report
    assert "total parameters: 9610" in report and "## Derivation of the gradients" in report
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    with np.load(out / "weights.npz") as w:
        assert w["param/W1"].shape == (128, 64)
    assert "val_accuracy 0.97" in capsys.readouterr().out


def test_config_file_and_flags(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {layers: ['linear(64, 16)', tanh, 'linear(16, 10)'], loss: ce}\n"
                   "optimizer: {name: adam, lr: 0.01, schedule: {name: cosine}}\n"
                   f"epochs: 3\nout: {tmp_path / 'o'}\n")
    assert cli.train_main([str(cfg), "--no-progress", "--format", "json", "--epochs", "2"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["final"]["epoch"] == 2 and res["final"]["lr"] < 0.01
    assert os.path.exists(res["files"][0])


@pytest.mark.parametrize("text, message", [
    ("epochz: 3\n", r"unknown key\(s\) \['epochz'\]"),
    ("model: {layers: ['linear(64, 10)', 'frobnicate'], loss: ce}\n",
     r"model.layers\[1\]: unknown layer 'frobnicate'"),
    ("model: {layers: ['linear(64, 10)', '__import__(\"os\")'], loss: ce}\n", "literal|name"),
    ("data: {csv: x.csv}\n", "data: data"),
    ("[1, 2\n", "not valid YAML"),
])
def test_bad_configs_are_one_line(tmp_path, text, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        cli.train_main([str(cfg), "--no-progress"])
    assert "\n" not in str(err.value)
