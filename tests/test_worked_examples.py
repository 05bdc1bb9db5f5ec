"""Every worked-example file solves, renders and is documented; the registry is complete."""
import glob
import json
import os
import re

import pytest

from derive.problem import KINDS, solve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKED = os.path.join(ROOT, "examples", "worked")
FILES = sorted(glob.glob(os.path.join(WORKED, "*.yaml")))
README = open(os.path.join(WORKED, "README.md"), encoding="utf-8").read()


def worked_kinds():
    import derive.worked  # noqa: F401  (registers every kind)

    return sorted(k for k, fn in KINDS.items() if fn.__module__.startswith("derive.worked"))


def test_importing_the_package_registers_every_family():
    kinds = worked_kinds()
    for kind in ("layernorm", "batchnorm", "conv2d", "maxpool", "avgpool", "softmax_loss",
                 "svm_loss", "bce", "mse", "optimizer", "schedule", "dropout", "attention",
                 "architecture", "output_size", "linear_collapse", "conv_collapse",
                 "init_variance", "rnn_jacobian", "mlp_jacobian", "perceptron", "knn",
                 "decoding"):
        assert kind in kinds


def test_every_kind_has_an_example_and_a_readme_section():
    for kind in worked_kinds():
        assert os.path.exists(os.path.join(WORKED, f"{kind}.yaml")), kind
        assert re.search(rf"^### .*`{kind}`", README, re.M), f"README lacks {kind}"


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_example_solves_and_renders(path):
    reports = pytest.importorskip("reports")
    derivations = solve(path)
    for d in derivations:
        assert d.result is not None and d.sections
        for section in d.sections:
            for step in section.steps:
                assert step.lhs is not None and (step.rhs or step.note)
    md = reports.render(derivations if len(derivations) > 1 else derivations[0], "md")
    assert "$$" in md
    data = json.loads(reports.render(derivations[0], "json"))
    assert data["result"] is not None


def test_cli_json_puts_the_answer_under_result(capsys):
    from derive.command_line import main

    code = main(["solve", os.path.join(WORKED, "architecture.yaml"), "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    first = data["problems"][0] if "problems" in data else data
    assert [r["parameters"] for r in first["result"]] == [100, 0, 910, 0, 0, 1473]
    assert first["result"][4]["shape"] == ["B", 490]


def test_cli_bad_layer_is_one_line_and_non_zero(tmp_path, capsys):
    from derive.command_line import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: architecture\ninput: [1, 8, 8]\nlayers: ['conv3d(4, 3)']\n")
    code = main(["solve", str(bad)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err
    assert "bad.yaml: layers[0]" in err and "unknown layer kind 'conv3d'" in err


def test_cli_constant_row(tmp_path, capsys):
    from derive.command_line import main

    bad = tmp_path / "ln.yaml"
    bad.write_text("kind: layernorm\nX: [[2, 2]]\neps: 0\n")
    assert main(["solve", str(bad)]) != 0
    assert "division by zero: the row is constant" in capsys.readouterr().err
