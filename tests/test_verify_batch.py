"""ANSWERS.yaml files, `derivekit check` (cli_check), reports of verdicts, and batch mode."""
import csv
import json

import pytest

import derive as dv
import reports  # noqa: F401  (the caller registers the renderer reports are written with)
from derive.verify import check_folder, cli_check
from derive.verify.batch import read_answers

RNN = "examples/rnn.yaml"


def test_cli_check_text_and_exit_codes():
    text, code = cli_check(RNN, "examples/check/rnn_answers.yaml")
    assert code == 1 and "5/6 correct" in text and "first wrong step: w" in text
    text, code = cli_check(RNN, "examples/check/class/ada.yaml")
    assert code == 0 and "6/6 correct" in text


def test_cli_check_json_has_the_issue_shape():
    out, code = cli_check(RNN, "examples/check/rnn_answers.yaml", fmt="json")
    assert code == 1 and out["score"] == pytest.approx(5 / 6, abs=1e-4)
    assert [a["node"] for a in out["answers"]] == ["t", "s", "r", "q", "p", "w"]
    last = out["answers"][-1]
    assert last["verdict"] == "wrong" and last["diagnosis"] == "missing_edge"
    assert last["counterexample"] == {"point": {"u1": 1, "u2": -1, "u3": 3, "w": 2},
                                      "answer": 5.0, "expected": 11.0}
    for entry in out["answers"]:
        assert entry["verdict"] in ("correct", "wrong", "unreadable")
        assert entry["proof"] in ("symbolic", "numeric", None)
    json.dumps(out)  # plain JSON data


def test_latex_answers_file():
    out, code = cli_check("examples/check/bce_fanout.yaml", "examples/check/bce_answers.yaml",
                          fmt="json")
    assert code == 0 and out["score"] == 1.0
    assert all(a["proof"] == "symbolic" for a in out["answers"])


def test_report_files(tmp_path):
    for suffix in ("md", "json", "html"):
        path = tmp_path / f"report.{suffix}"
        cli_check(RNN, "examples/check/class/bo.yaml", out=str(path))
        text = path.read_text(encoding="utf-8")
        if suffix == "json":
            data = json.loads(text)
            assert data["first_wrong"] == "r" and data["score"] == 0.5
        else:
            assert "chain" in text and "Bo" in text
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "\\bar{r}" in md and "first wrong step is r" in md


def test_report_derivation_is_kind_check():
    from derive.verify import check_table

    [d] = dv.solve(RNN)
    report = check_table(d, {"w": "t + w*r", "t": "w"})
    doc = report.derivation()
    assert doc.kind == "check" and doc.meta["check"] == report.to_dict()
    assert doc.result == [{"node": "t", "verdict": "correct", "how": "symbolic proof"},
                          {"node": "w", "verdict": "wrong", "how": "missing_edge"}]
    assert any("Counterexample" in s.text for s in doc.sections)


def test_batch_mode_writes_scores_and_one_report_each(tmp_path):
    rows = check_folder(RNN, "examples/check/class", out_dir=str(tmp_path), fmt="json")
    by_file = {r["file"]: r for r in rows}
    assert by_file["ada.yaml"]["score"] == 1.0
    assert by_file["carol.yaml"]["first_wrong"] == "s" and by_file["carol.yaml"]["correct"] == 5
    assert by_file["eve.yaml"]["error"]  # a malformed file is a row, not a crash
    with open(tmp_path / "scores.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["file"] for r in table] == sorted(by_file)
    assert table[0].keys() >= {"student", "score", "correct", "total", "first_wrong", "error"}
    reports = sorted(p.name for p in tmp_path.glob("*.json"))
    assert reports == ["ada.json", "bo.json", "carol.json", "dan.json"]


def test_cli_check_on_a_folder(tmp_path):
    text, code = cli_check(RNN, "examples/check/class", out=str(tmp_path))
    assert code == 2  # eve.yaml could not be read; the other four are marked
    assert "5 answer files checked, 1 could not be read" in text
    assert "eve.yaml: not marked (could not be read: " in text
    assert (tmp_path / "scores.csv").exists() and (tmp_path / "ada.md").exists()


def test_answers_file_forms(tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text("w: u3 + 2*w*u2 + 3*w**2*u1\n")
    assert read_answers(plain) == ({"w": "u3 + 2*w*u2 + 3*w**2*u1"}, None, None)
    bad = tmp_path / "bad.yaml"
    bad.write_text("w: [unclosed\n")
    with pytest.raises(dv.InputError, match=r"bad.yaml:\d+:\d+: not valid YAML"):
        read_answers(bad)
    with pytest.raises(dv.InputError, match="cannot read"):
        read_answers(tmp_path / "missing.yaml")
    numbers = tmp_path / "numbers.yaml"
    numbers.write_text("w: 11\nt: 2\n")
    out, code = cli_check(RNN, str(numbers), fmt="json")
    assert code == 0 and out["score"] == 1.0


def test_unknown_format_is_an_input_error():
    with pytest.raises(dv.InputError, match="unknown format"):
        cli_check(RNN, "examples/check/rnn_answers.yaml", fmt="docx")
