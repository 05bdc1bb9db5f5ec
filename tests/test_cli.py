"""The command line as a newcomer uses it (in-process, through derive.command_line.main)."""
import json
import os
import re

import pytest

from derive.command_line import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_readme_commands_are_what_ci_runs():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    assert blocks[:2] == ['pip install -e ".[test]" && derivekit demo', "python -m pytest"]
    for command in blocks[:2]:
        assert command in ci.splitlines()


def test_grad_prints_the_gradients(capsys):
    code, out, _ = run(capsys, "grad", "(x1 + x2)**2 + x2*x3 - x3", "--at", "x1=1,x2=2,x3=3")
    assert code == 0
    assert "dv5/dx2 = 2*x1 + 2*x2 + x3 = 9" in out
    assert "dv5/dx3 = x2 - 1 = 1" in out


def test_solve_prints_the_rnn_answer(capsys):
    code, out, _ = run(capsys, "solve", os.path.join(ROOT, "examples", "rnn.yaml"))
    assert code == 0 and "dy/dw = 3*u1*w**2 + 2*u2*w + u3 = 11" in out


@pytest.mark.parametrize("argv, message", [
    (["grad", "x**"], "malformed expression"),
    (["grad", "x*y", "--at", "x=__import__('os')"], "unsupported function '__import__'"),
    (["grad", "x*y", "--wrt", "z"], "'z' is not in the graph"),
    (["grad", "x*y", "--at", "x"], "expected KEY=VALUE"),
    (["solve", "no-such-file.yaml"], "no-such-file.yaml: cannot read problem file"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err and err.count("\n") == 1 and out == ""


def test_bad_yaml_names_line_and_column(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: {y: x\ninputs: [x\n")
    code, _, err = run(capsys, "solve", str(bad))
    assert code == 2 and re.search(r"bad\.yaml:\d+:\d+: not valid YAML", err)


def test_json_output_is_the_documented_structure(capsys):
    pytest.importorskip("reports.json_out")
    code, out, _ = run(capsys, "solve", os.path.join(ROOT, "examples", "rnn.yaml"),
                       "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["gradients"]["w"] == {"expression": "3*u1*w**2 + 2*u2*w + u3", "value": "11"}
    w = next(a for a in data["adjoints"] if a["name"] == "w")
    assert w["value"] == "11" and w["in_nodes"] == "p*w**2 + r*w + t"
    assert {(e["from"], e["to"]) for e in data["edges"] if e["from"] == "w"} == \
        {("w", "q"), ("w", "s"), ("w", "y")}


@pytest.mark.slow
def test_demo_writes_solutions_a_verdict_and_a_training_run(tmp_path, capsys):
    out = tmp_path / "demo"
    code, text, _ = run(capsys, "demo", "-o", str(out), "--no-pdf")
    assert code == 0
    for stem in ("rnn", "decompose", "bce_sigmoid", "mlp_2_2_1"):
        for fmt in ("md", "html", "json", "tex"):
            assert (out / f"{stem}.{fmt}").stat().st_size > 0
    assert json.loads((out / "rnn.json").read_text())["gradients"]["w"]["value"] == "11"
    assert "5/6 correct" in text and "first wrong step: w" in text
    history = json.loads((out / "digits-mlp" / "history.json").read_text())
    assert history[-1]["val_accuracy"] >= 0.97
