"""Grading exam submissions (derive.exam.grading): each against the student's own variant.

Thirty synthetic submissions for the example midterm and its roster are made here from
each student's drawn parameters, their answers computed with plain NumPy (not derive):
most are right, one makes each mistake the grader must name (a sign error carried
through the RNN's adjoints, a missing local partial and a transposed matrix in the
tensor graph, an arithmetic slip in Adam's first step carried into the second, a blank
left out, an unreadable file, hostile text), one is for a student not on the roster. The
scores are asserted as numbers; results.json is checked against Gradescope's schema and
against scores.csv.
"""
import csv
import json
import os
import shutil
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from derive.errors import InputError
from derive.exam import load_exam, read_roster
from derive.exam.grading import (grade_text, graded_students, student_files, write_scores,
                                 write_student)
from derive.exam.marks import GRADESCOPE_SCHEMA

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAM = os.path.join(ROOT, "examples", "exam", "midterm.yaml")
ROSTER = os.path.join(ROOT, "examples", "exam", "roster.csv")
EXAMPLES = os.path.join(ROOT, "examples", "exam", "submissions")
FULL = 34.0  # 10 + 10 + 6 + 8 points


# -- each student's answers, computed with NumPy from the variant's drawn parameters ------
def truth(variant):
    """The right answer to every blank, by problem, from the drawn parameters alone."""
    rnn, ten, cnn, adam = (p.params for p in variant.problems)
    w, u1, u2, u3 = rnn["w"], rnn["u1"], rnn["u2"], rnn["u3"]
    r = u2 + w * u1
    t = u3 + w * r
    x, W, y = (np.array(ten[k], dtype=float) for k in ("x", "W", "y"))
    v4 = x @ W
    v5_bar = 2 * (np.maximum(v4, 0) - y) / len(y)
    v4_bar = v5_bar * (v4 > 0)
    side = (14 - cnn["k"] + 1 + 2 * cnn["pad"]) // 2
    flat = side * side * cnn["c2"]
    thetas, states = adam_steps(np.array(adam["theta"], float), np.array(adam["g"], float))
    return {
        "rnn": {"t": w, "r": w ** 2, "y": w * t, "w": 3 * w ** 2 * u1 + 2 * w * u2 + u3,
                "p": u1, "rr": r, "tt": t},
        "tensor": {"x": x, "v4": v4, "v5_bar": v5_bar, "v4_bar": v4_bar,
                   "W_bar": np.outer(x, v4_bar)},
        "cnn": [cnn["c1"] * 10, cnn["c2"] * (cnn["k"] ** 2 * cnn["c1"] + 1),
                flat * cnn["n"] + cnn["n"], flat],
        "adam": {"thetas": thetas, "states": states, "g": np.array(adam["g"], float)},
    }


def adam_steps(theta, g, m=None, v=None):
    """Adam without bias correction, eps 0, lr 1/10, beta 1/2 and 3/4 (the midterm's)."""
    m = np.zeros_like(theta) if m is None else m
    v = np.zeros_like(theta) if v is None else v
    thetas, states = [], []
    for row in g:
        m = 0.5 * m + 0.5 * row
        v = 0.75 * v + 0.25 * row ** 2
        theta = theta - 0.1 * m / np.sqrt(v)
        thetas.append(theta)
        states.append((m, v))
    return thetas, states


def exact(a):
    """An array as text of exact fractions (the tensor answers are thirds)."""
    a = np.asarray(a, float)
    if a.ndim == 0:
        return str(Fraction(float(a)).limit_denominator(1000))
    return "[" + ", ".join(exact(row) for row in a) + "]"


def decimals(a):
    return [float(f"{v:.6g}") for v in np.ravel(a)]


def right_answers(T):
    return {
        1: {"adjoint t": T["rnn"]["t"], "adjoint r": T["rnn"]["r"], "value y": T["rnn"]["y"],
            "gradient w": T["rnn"]["w"]},
        2: {"adjoint v4": exact(T["tensor"]["v4_bar"]), "gradient W": exact(T["tensor"]["W_bar"])},
        3: {"parameters of layer 1": T["cnn"][0], "parameters of layer 3": T["cnn"][1],
            "parameters of layer 6": T["cnn"][2], "length after flatten": T["cnn"][3]},
        4: {"step theta_1": decimals(T["adam"]["thetas"][0]),
            "step theta_2": decimals(T["adam"]["thetas"][1])},
    }


def yaml_text(student, answers):
    return json.dumps({"student": student, "answers": answers})  # JSON is YAML


@pytest.fixture(scope="module")
def exam():
    return load_exam(EXAM)


@pytest.fixture(scope="module")
def roster():
    return read_roster(ROSTER)


def _pick(exam, ids, test):
    """The first student whose variant makes a mistake observable (``test(truth)``)."""
    return next(s for s in ids if test(truth(exam.variant(s))))


@pytest.fixture(scope="module")
def cohort(exam, roster):
    """``{student: (file name, text, expected score, what)}``: 30 submissions + 1 unknown."""
    ids = list(roster)
    # the students whose variant shows the mistake (v4 with a ReLU at 0 hides a missing
    # local partial; a symmetric gradient hides a transpose)
    partial = _pick(exam, ids[5:], lambda T: np.any(T["tensor"]["v4"] < 0))
    transposed = _pick(exam, [s for s in ids[5:] if s != partial],
                       lambda T: not np.allclose(T["tensor"]["W_bar"], T["tensor"]["W_bar"].T))
    special = {ids[1]: "sign", partial: "missing_local_partial", transposed: "transpose",
               ids[2]: "adam_slip", ids[3]: "missing", ids[4]: "unreadable",
               ids[-1]: "hostile", ids[-2]: "formulas", ids[-3]: "csv"}
    out = {}
    for sid in ids:
        T = truth(exam.variant(sid))
        answers = right_answers(T)
        what = special.get(sid, "correct")
        name, score = f"{sid}.yaml", FULL
        if what == "sign":  # t_bar negated, and the rest of the sweep carried from it
            rnn = T["rnn"]
            w = exam.variant(sid).problems[0].params["w"]
            answers[1]["adjoint t"] = -rnn["t"]
            answers[1]["adjoint r"] = -rnn["t"] * w                  # r_bar = t_bar * w
            answers[1]["gradient w"] = (-rnn["t"] * w) * rnn["p"] + (-rnn["t"]) * rnn["rr"] \
                + rnn["tt"]                                        # q_bar p + s_bar r + t
            score = FULL - 2.5
        elif what == "missing_local_partial":  # v4_bar = v5_bar (relu' left out), carried
            ten = T["tensor"]
            answers[2]["adjoint v4"] = exact(ten["v5_bar"])
            answers[2]["gradient W"] = exact(np.outer(ten["x"], ten["v5_bar"]))
            score = FULL - 5
        elif what == "transpose":
            answers[2]["gradient W"] = exact(T["tensor"]["W_bar"].T)
            score = FULL - 5
        elif what == "adam_slip":  # theta_1 off by 0.1 in its first entry; theta_2 from it
            A = T["adam"]
            slipped = A["thetas"][0] + np.array([0.1, 0.0])
            m, v = A["states"][0]
            again, _ = adam_steps(slipped, A["g"][1:], m, v)
            answers[4] = {"step theta_1": decimals(slipped), "step theta_2": decimals(again[0])}
            score = FULL - 4
        elif what == "missing":
            del answers[3]["length after flatten"]
            score = FULL - 1.5
        elif what == "hostile":  # never run, never typeset: unreadable answers
            answers[1]["adjoint t"] = "__import__('os').system('touch /tmp/pwned')"
            answers[1]["value y"] = r"\input{/etc/passwd}"
            answers[2]["gradient W"] = "$(rm -rf ~) `id` {{7*7}}"
            score = FULL - 2.5 - 2.5 - 5
        elif what == "formulas":  # the same marks for formulas as for numbers
            answers[1].update({"adjoint t": "w", "adjoint r": "w**2",
                               "gradient w": "3*w^2*u_1 + 2 w u_2 + u_3"})
            answers[2].update({"adjoint v4": "v5_bar * step(v4)", "gradient W": "x.T @ v4_bar"})
        text = yaml_text(sid, answers)
        if what == "unreadable":
            text, score = "student: %s\nanswers: {1: [unclosed\n" % sid, 0.0
        elif what == "csv":
            name = f"{sid}.csv"
            rows = [["student", "problem", "entry", "answer"]]
            rows += [[sid, str(p), k, json.dumps(v) if isinstance(v, list) else str(v)]
                     for p, blanks in answers.items() for k, v in blanks.items()]
            text = "\n".join(",".join(f'"{c}"' for c in row) for row in rows) + "\n"
        out[sid] = (name, text, score, what)
    out["zz999"] = ("zz999.yaml", yaml_text("zz999", right_answers(truth(exam.variant(ids[0])))),
                    0.0, "unknown")
    return out


@pytest.fixture(scope="module")
def graded(exam, roster, cohort):
    return {sid: grade_text(exam, name, text, roster=roster)
            for sid, (name, text, _, _) in cohort.items()}


@pytest.fixture(scope="module")
def marks(graded, exam, tmp_path_factory):
    out = tmp_path_factory.mktemp("marks")
    for result in graded.values():
        if result.student:
            write_student(out, result.to_dict(), student_files(result, formats=("md",)))
    return out, write_scores(out, exam)


# -- scores ---------------------------------------------------------------------------------
def test_thirty_submissions_get_the_expected_scores(cohort, graded):
    assert len(cohort) == 31
    got = {sid: graded[sid].score for sid in cohort}
    want = {sid: c[2] for sid, c in cohort.items()}
    assert got == want
    kinds = [c[3] for c in cohort.values()]
    assert kinds.count("correct") == 21
    assert sorted(set(kinds)) == sorted(["correct", "sign", "missing_local_partial",
                                         "transpose", "adam_slip", "missing", "unreadable",
                                         "hostile", "formulas", "csv", "unknown"])


def _blanks(result):
    return {(p.number, b.entry): b for p in result.problems for b in p.blanks}


def _who(cohort, what):
    return next(sid for sid, c in cohort.items() if c[3] == what)


def test_sign_error_is_named_and_carried_forward(cohort, graded):
    b = _blanks(graded[_who(cohort, "sign")])
    t = b[1, "adjoint t"]
    assert (t.verdict, t.diagnosis, t.points, t.max_points) == ("wrong", "sign", 0.0, 2.5)
    for later in ("adjoint r", "gradient w"):
        assert b[1, later].verdict == "correct" and b[1, later].carried_forward
        assert b[1, later].points == 2.5 and b[1, later].carried_from == ["t"]
    assert not b[1, "value y"].carried_forward


def test_missing_local_partial_and_transpose_are_named(cohort, graded):
    b = _blanks(graded[_who(cohort, "missing_local_partial")])
    v4, W = b[2, "adjoint v4"], b[2, "gradient W"]
    assert (v4.verdict, v4.diagnosis) == ("wrong", "missing_local_partial")
    assert W.verdict == "correct" and W.carried_forward and W.carried_from == ["v4"]
    b = _blanks(graded[_who(cohort, "transpose")])
    assert (b[2, "gradient W"].verdict, b[2, "gradient W"].diagnosis) == ("wrong", "transpose")
    assert b[2, "adjoint v4"].verdict == "correct"


def test_an_adam_slip_is_carried_into_the_next_step(cohort, graded):
    b = _blanks(graded[_who(cohort, "adam_slip")])
    assert b[4, "step theta_1"].verdict == "wrong" and b[4, "step theta_1"].points == 0
    second = b[4, "step theta_2"]
    assert second.verdict == "correct" and second.carried_forward and second.points == 4
    assert second.carried_from == ["theta_1"]


def test_a_missing_answer_scores_zero_for_that_blank(cohort, graded):
    r = graded[_who(cohort, "missing")]
    b = _blanks(r)[3, "result[4].shape[1]"]
    assert (b.verdict, b.points, b.max_points, b.answer) == ("unanswered", 0.0, 1.5, None)
    assert r.problems[2].score == 4.5 and r.error == ""


def test_unreadable_file_and_unknown_student_score_zero_with_the_reason(cohort, graded):
    bad = graded[_who(cohort, "unreadable")]
    assert bad.score == 0 and bad.max_score == FULL
    assert bad.error.startswith(f"{_who(cohort, 'unreadable')}.yaml") and "YAML" in bad.error
    blanks = [b for p in bad.problems for b in p.blanks]  # each listed: 0, with the reason
    assert len(blanks) == 12 and all(b.verdict == "unreadable" and b.points == 0
                                     and b.output == bad.error for b in blanks)
    data = bad.gradescope()
    assert data["score"] == 0 and data["tests"][-1]["output"] == bad.error
    unknown = graded["zz999"]
    assert unknown.score == 0 and "unknown student 'zz999'" in unknown.error
    assert "zz999.yaml" in unknown.error and unknown.problems == []


@pytest.mark.parametrize("name, text, message", [
    ("s001.yaml", "answers: {1: {adjoint t: -2}}\nextra: 1\n", "unknown key 'extra'"),
    ("s001.yaml", "- a list\n", "expected one mapping"),
    ("s001.yaml", "student: ../../etc\nanswers: {}\n", "may hold only letters"),
    ("s001.yaml", b"\xff\xfe", "not UTF-8"),
    ("s001.yaml", None, "could not be read"),     # what the run passes for a lost file
    ("s001.yaml", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(  # aliases: 10^9
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)),
     "more than the limit"),
    ("s001.csv", "student,problem,entry,answer\ns001,1,adjoint t,-2\ns002,1,adjoint r,4\n",
     "one file is one student"),
    ("s001.csv", "who,what\n", "expected the header"),
    ("s001.yaml", "x" * 1_000_001, "larger than"),
])
def test_a_file_that_cannot_be_read_is_one_line_never_a_crash(exam, name, text, message):
    r = grade_text(exam, name, text)
    assert r.score == 0 and r.error.startswith(name) and "\n" not in r.error
    assert message in r.error


def test_only_the_problem_whose_answers_are_malformed_scores_zero(exam):
    T = truth(exam.variant("s001"))
    answers = right_answers(T)
    answers[1] = 5                                           # not a mapping
    answers[2]["adjoint v4"] = [[1, 2], [3]]                 # ragged
    answers[3]["parameters of layer 1"] = [40, 41]           # a list for a number
    answers[3]["no such blank"] = 1
    answers[9] = {"adjoint t": 1}
    r = grade_text(exam, "s001.yaml", yaml_text("s001", answers))
    assert r.score == FULL - 10 - 5 - 1.5 and not r.error
    b = _blanks(r)
    assert all(b[1, e].verdict == "unreadable" for e in ("adjoint t", "value y"))
    assert b[2, "adjoint v4"].verdict == "unreadable"
    assert "different lengths" in b[2, "adjoint v4"].output
    assert b[3, "result[0].parameters"].verdict == "wrong"
    assert any("no such blank" in n for n in r.notes) and any("'9'" in n for n in r.notes)


def test_hostile_text_is_unreadable_never_run(cohort, graded):
    b = _blanks(graded[_who(cohort, "hostile")])
    for key in ((1, "adjoint t"), (1, "value y"), (2, "gradient W")):
        assert b[key].verdict == "unreadable" and b[key].points == 0, b[key]
        assert b[key].output
    assert b[1, "adjoint t"].answer.startswith("__import__")  # kept as data, with why
    assert "allowed" in b[1, "adjoint t"].output
    assert b[1, "adjoint r"].verdict == "correct"  # the rest is still marked
    assert not os.path.exists("/tmp/pwned")


def test_grading_is_pure_and_deterministic(exam, roster, cohort, graded, tmp_path,
                                           monkeypatch):
    import pickle

    monkeypatch.chdir(tmp_path)
    sid = _who(cohort, "sign")
    name, text, _, _ = cohort[sid]
    again = grade_text(exam, name, text.encode("utf-8"), roster=roster)  # bytes as well
    verdicts = [(b.verdict, b.diagnosis, b.points, b.carried_forward)
                for p in again.problems for b in p.blanks]
    assert verdicts == [(b.verdict, b.diagnosis, b.points, b.carried_forward)
                        for p in graded[sid].problems for b in p.blanks]
    assert again.score == graded[sid].score and not os.listdir(tmp_path)  # writes nothing
    assert pickle.loads(pickle.dumps(again)).to_dict() == again.to_dict()
    assert json.loads(json.dumps(again.to_dict())) == again.to_dict()


# -- files ----------------------------------------------------------------------------------
def _check_schema(data):
    """Gradescope's results.json: top-level and test keys of the documented types."""
    schema = GRADESCOPE_SCHEMA
    assert set(data) <= set(schema["top"]) and {"score", "tests"} <= set(data)
    for key, types in schema["top"].items():
        if key in data:
            assert isinstance(data[key], types), key
    assert data["visibility"] in schema["visibility"]
    for test in data["tests"]:
        assert set(test) <= set(schema["test"]) and {"name", "score", "max_score"} <= set(test)
        for key, types in schema["test"].items():
            if key in test:
                assert isinstance(test[key], types) and not isinstance(test[key], bool), key
        assert test["visibility"] in schema["visibility"] and test["status"] in schema["status"]
        assert 0 <= test["score"] <= test["max_score"] or test["max_score"] == 0


def test_results_json_validates_and_equals_scores_csv(marks, graded):
    out, scores = marks
    rows = {r["student"]: r for r in csv.DictReader(open(scores, encoding="utf-8"))}
    assert set(rows) == {s for s, r in graded.items() if r.student}
    for sid, row in rows.items():
        data = json.loads((out / "students" / sid / "results.json").read_text())
        _check_schema(data)
        assert data["score"] == round(sum(t["score"] for t in data["tests"]), 4)
        assert data["score"] == float(row["score"]) == graded[sid].score
        assert sum(float(row[f"p{n}"]) for n in range(1, 5)) == float(row["score"])
    lms = list(csv.DictReader(open(out / "lms.csv", encoding="utf-8")))
    assert len(lms) == len(rows) and all(r["max_score"] == "34" for r in lms)


def test_scores_csv_names_first_wrong_step_and_errors(marks, cohort):
    out, scores = marks
    rows = {r["student"]: r for r in csv.DictReader(open(scores, encoding="utf-8"))}
    sign = rows[_who(cohort, "sign")]
    assert (sign["first_wrong"], sign["diagnosis"]) == ("problem 1: t_bar", "sign")
    assert "YAML" in rows[_who(cohort, "unreadable")]["error"]
    assert rows["zz999"]["error"] and rows["zz999"]["score"] == "0"


def test_feedback_names_the_first_wrong_step_and_diagnosis(marks, cohort):
    out, _ = marks
    md = (out / "students" / _who(cohort, "sign") / "feedback.md").read_text()
    assert "First wrong step: problem 1, t\\_bar (wrong, sign)" in md
    assert "sign error" in md and "carried forward" in md
    hostile = (out / "students" / _who(cohort, "hostile") / "feedback.md").read_text()
    assert "\\_\\_import\\_\\_" in hostile and "`" not in hostile.replace("\\`", "")


def test_reruns_skip_graded_students_and_ids_are_checked(marks, graded, tmp_path):
    out, _ = marks
    assert graded_students(out) == {s for s, r in graded.items() if r.student}
    for bad in ("../x", "..", "a/b", "", ".hidden"):
        with pytest.raises(InputError):
            write_student(tmp_path, {"student": bad}, {})
    assert not os.listdir(tmp_path)
    # a record is the last file written: without it, a student is not graded
    r = next(iter(graded.values()))
    write_student(tmp_path, r.to_dict(), {"results.json": b"{}"})
    os.remove(tmp_path / "students" / r.student / "record.json")
    assert graded_students(tmp_path) == set()


@pytest.mark.skipif(not shutil.which("pdflatex"), reason="pdflatex is not installed")
def test_feedback_pdf_escapes_student_text(graded, cohort, tmp_path):
    files = student_files(graded[_who(cohort, "hostile")], formats=("md", "pdf"))
    assert set(files) == {"results.json", "feedback.md", "feedback.pdf", "record.json"}
    assert files["feedback.pdf"].startswith(b"%PDF")
    pdf = tmp_path / "feedback.pdf"
    pdf.write_bytes(files["feedback.pdf"])
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True,
                              text=True).stdout
        assert "input{/etc/passwd}" in text and "root:" not in text


def test_example_submissions_grade(exam):
    """examples/exam/submissions: one right, the others each with the mistakes their
    comments name (s003 is the CSV form, with a transposed matrix)."""
    roster = read_roster(ROSTER)
    got = {}
    for name in sorted(os.listdir(EXAMPLES)):
        with open(os.path.join(EXAMPLES, name), encoding="utf-8") as fh:
            got[name] = grade_text(exam, name, fh.read(), roster=roster)
    assert {n: r.score for n, r in got.items()} == {
        "s001.yaml": FULL, "s002.yaml": FULL - 2.5, "s003.csv": FULL - 5,
        "s004.yaml": FULL - 4 - 1.5, "s005.yaml": FULL - 2.5 - 2.5}
    assert not any(r.error or r.notes for r in got.values())
    wrong = {n: [(b.label, b.diagnosis or b.verdict) for p in r.problems for b in p.blanks
                 if b.points < b.max_points] for n, r in got.items()}
    assert wrong == {"s001.yaml": [], "s002.yaml": [("t_bar", "sign")],
                     "s003.csv": [("W_bar", "transpose")],
                     "s004.yaml": [("length after flatten", "unanswered"),
                                   ("theta_1", "other")],
                     "s005.yaml": [("y", "unreadable"), ("dy/dw", "missing_edge")]}


@pytest.mark.parametrize("spec", [
    {"optimizer": "adam", "theta": [1, -2], "grads": [[1, 2], [3, -1], [2, 2]]},
    {"optimizer": "rmsprop", "theta": 0.5, "grads": [1, -2, 3]},
    {"optimizer": "momentum", "momentum": "9/10", "theta": [1, 2], "grads": [[1, 2], [3, -1],
                                                                             [2, 2]]},
    {"optimizer": "sgd", "theta": [1, 2], "function": "x**2 + 3*y**2",
     "variables": ["x", "y"], "steps": 3},
    {"optimizer": "adamw", "weight_decay": "1/10", "theta": [1, 2],
     "grads": [[1, 2], [3, -1], [2, 2]]},
], ids=lambda s: s["optimizer"])
def test_a_step_is_recomputed_by_the_optimizer_kind(spec):
    """From the right theta_{k-1}, the carried step is the derivation's own theta_k (for
    every optimizer: its state is taken from the run, not re-implemented here)."""
    from derive.exam.tables import optimizer_step_from
    from derive.problem import solve_spec

    spec = dict(spec, kind="optimizer", lr="1/10")
    trajectory = solve_spec(spec, "test", ".").meta["trajectory"]
    for k in (2, 3):
        previous = np.array([float(x) for x in trajectory[k - 1]])
        got = optimizer_step_from(spec, k, previous)
        got = np.array([float(x) for x in (got if hasattr(got, "shape") else [got])])
        np.testing.assert_allclose(got, [float(x) for x in trajectory[k]], rtol=1e-12)


def test_gradescope_container_writes_results_json(tmp_path, capsys):
    """python -m derive.exam.autograder, as run_autograder calls it, on one submission."""
    from derive.exam.autograder import main

    submission, results = tmp_path / "submission", tmp_path / "results" / "results.json"
    submission.mkdir()
    shutil.copy(os.path.join(EXAMPLES, "s002.yaml"), submission / "answers.yaml")
    assert main([EXAM, str(submission), str(results)]) == 0
    data = json.loads(results.read_text())
    _check_schema(data)
    assert data["score"] == FULL - 2.5 == sum(t["score"] for t in data["tests"])
    (submission / "more.csv").write_text("student,problem,entry,answer\n")
    assert main([EXAM, str(submission), str(results)]) == 0
    data = json.loads(results.read_text())
    _check_schema(data)
    assert data["score"] == 0 and "found 2 answer files" in data["output"]
    assert main([str(tmp_path / "missing.yaml"), str(submission), str(results)]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_points_split_in_thirds_add_up_to_the_problem(tmp_path):
    """10 points over 3 blanks: 3.3333 + 3.3334 + 3.3333, so full marks are 10, not 9.9999,
    in the record, results.json and scores.csv alike."""
    text = open(EXAM, encoding="utf-8").read()
    first = text.split('  - title: "A tensor graph')[0]  # problem 1 alone
    (tmp_path / "thirds.yaml").write_text(
        first.replace("fill: [adjoint t, adjoint r, value y, gradient w]",
                      "fill: [adjoint t, adjoint r, gradient w]"))
    exam = load_exam(str(tmp_path / "thirds.yaml"))
    T = truth(load_exam(EXAM).variant("s007"))  # problem 1 is drawn the same in both
    answers = {1: {k: v for k, v in right_answers(T)[1].items() if k != "value y"}}
    right = grade_text(exam, "s007.yaml", yaml_text("s007", answers))
    assert [b.max_points for b in right.problems[0].blanks] == [3.3333, 3.3334, 3.3333]
    assert right.score == right.max_score == 10
    answers[1]["adjoint r"] = "1/0"  # unreadable: loses exactly its share
    wrong = grade_text(exam, "s008.yaml", yaml_text("s007", answers))
    assert wrong.score == 6.6666
    out = tmp_path / "marks"
    write_student(out, right.to_dict(), student_files(right, formats=()))
    row = next(csv.DictReader(open(write_scores(out, exam), encoding="utf-8")))
    data = json.loads((out / "students" / "s007" / "results.json").read_text())
    assert row["score"] == "10" and data["score"] == 10
