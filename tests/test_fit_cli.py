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


def test_the_conv_example_reads_the_flat_digits_as_images(tmp_path, capsys):
    from pathlib import Path

    cfg = Path(__file__).resolve().parent.parent / "examples" / "train" / "digits_cnn.yaml"
    out = tmp_path / "cnn"
    assert cli.train_main([str(cfg), "--no-progress", "--format", "json", "--epochs", "3",
                           "--out", str(out)]) == 0
    res = json.loads(capsys.readouterr().out)
    # 3 epochs of the W4 conv net on 1x8x8 digits: well past chance (10%)
    assert res["final"]["val_accuracy"] > 0.85
    with np.load(out / "weights.npz") as w:
        assert w["param/K1"].shape == (8, 1, 3, 3)


def test_data_that_cannot_take_the_models_input_shape_is_one_line(tmp_path):
    from derive.errors import ShapeError

    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {layers: ['conv2d(1, 2, 3)', flatten, 'linear(84, 10)'], "
                   "loss: ce, input_shape: [1, 8, 9]}\nepochs: 1\n"
                   f"out: {tmp_path / 'o'}\n")
    with pytest.raises(ShapeError, match=r"samples of shape \(64,\) cannot be read as "
                                         r"\(1, 8, 9\)") as err:
        cli.train_main([str(cfg), "--no-progress"])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("epochz: 3\n", r"unknown key\(s\) \['epochz'\]"),
    ("model: {layers: ['linear(64, 10)', 'frobnicate'], loss: ce}\n",
     r"model.layers\[1\]: unknown layer 'frobnicate'"),
    ("model: {layers: ['linear(64, 10)', '__import__(\"os\")'], loss: ce}\n", "literal|name"),
    ("data: {csv: x.csv}\n", "data: data"),
    ("[1, 2\n", "not valid YAML"),
    ("model: {layers: ['linear(64, 10)'], loss: ce, input_shape: 8}\n",
     r"model.input_shape: input_shape must be a list"),
])
def test_bad_configs_are_one_line(tmp_path, text, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        cli.train_main([str(cfg), "--no-progress"])
    assert "\n" not in str(err.value)
