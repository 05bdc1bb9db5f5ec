"""Exams: per-student variants, papers and keys (derivekit exam, derive.exam).

The example midterm (examples/exam/) is written for its 30-student roster twice; the
variants must differ between students, agree between runs, and every key's numbers must
be its own variant's, computed here independently of derive (plain NumPy formulas of the
four classic problems).
"""
import json
import os
import shutil

import numpy as np
import pytest

from derive.command_line import main
from derive.errors import InputError
from derive.exam import load_exam, read_roster
from derive.exam import sampling

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAM = os.path.join(ROOT, "examples", "exam", "midterm.yaml")
ROSTER = os.path.join(ROOT, "examples", "exam", "roster.csv")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def class_runs(tmp_path_factory):
    """The example exam for its roster, written twice (.tex: no pdflatex needed): in this
    process, then on a local Dask cluster of two worker processes (a rerun must give the
    same bytes, wherever the variants were solved and rendered)."""
    outs = []
    for name, workers in (("first", "0"), ("second", "2")):
        out = tmp_path_factory.mktemp(name)
        assert main(["exam", EXAM, "--roster", ROSTER, "-o", str(out), "--no-pdf",
                     "--workers", workers, "--quiet"]) == 0
        outs.append(out)
    return outs


def _variants(out):
    return json.load(open(out / "variants.json", encoding="utf-8"))["variants"]


def test_thirty_distinct_papers_and_keys(class_runs):
    out = class_runs[0]
    ids = read_roster(ROSTER)
    assert len(ids) == 30
    assert sorted(os.listdir(out / "papers")) == sorted(f"{i}.tex" for i in ids)
    assert sorted(os.listdir(out / "keys")) == sorted(f"{i}.tex" for i in ids)
    assert (out / "master_key.tex").exists()
    variants = _variants(out)
    assert [v["student_id"] for v in variants] == ids
    params = {json.dumps([p["params"] for p in v["problems"]]) for v in variants}
    assert len(params) == 30
    papers = {(out / "papers" / f"{i}.tex").read_text() for i in ids}
    keys = {(out / "keys" / f"{i}.tex").read_text() for i in ids}
    assert len(papers) == len(keys) == 30


def test_a_rerun_on_dask_writes_the_same_files(class_runs):
    first, second = class_runs
    assert sorted(os.listdir(first / "papers")) == sorted(os.listdir(second / "papers"))
    assert (first / "variants.json").read_bytes() == (second / "variants.json").read_bytes()
    for folder in ("papers", "keys"):
        for name in os.listdir(first / folder):
            assert (first / folder / name).read_bytes() == (second / folder / name).read_bytes()
    assert (first / "master_key.tex").read_bytes() == (second / "master_key.tex").read_bytes()


def _answers(problem):
    return {a["fill"]: a["answer"] for a in problem["answers"]}


def test_each_key_holds_its_own_variants_numbers(class_runs):
    out = class_runs[0]
    for v in _variants(out):
        rnn, tensor, cnn, adam = v["problems"]
        _check_rnn(rnn, (out / "keys" / f"{v['student_id']}.tex").read_text(),
                   (out / "papers" / f"{v['student_id']}.tex").read_text())
        _check_tensor(tensor)
        _check_cnn(cnn)
        _check_adam(adam)


def _check_rnn(problem, key_tex, paper_tex):
    p = problem["params"]
    w, u1, u2, u3 = p["w"], p["u1"], p["u2"], p["u3"]
    assert w != 0 and u1 != 0 and len({u1, u2, u3}) == 3  # the constraints held
    t = u3 + w * (u2 + w * u1)
    dydw = 3 * w ** 2 * u1 + 2 * w * u2 + u3
    assert _answers(problem) == {"adjoint t": w, "adjoint r": w ** 2, "value y": w * t,
                                 "gradient w": dydw}
    answers = key_tex.split("Answers to the blanks", 1)[1].split(r"\end{align*}", 1)[0]
    assert rf"\frac{{\partial y}}{{\partial w}} &= {dydw}" in answers
    assert rf"\bar{{r}} &= {w ** 2}" in answers
    assert f"w &= {w}" in paper_tex  # the paper gives the student's own w ...
    blanks = paper_tex.split(r"\subsection*{Answers}", 1)[1].split(r"\end{align*}", 1)[0]
    assert blanks.count(r"\underline{\hspace{5cm}}") == 4  # ... and blanks, not answers
    assert "Answers to the blanks" not in paper_tex and f"&= {dydw}" not in blanks


def _check_tensor(problem):
    p = problem["params"]
    x, W, y = (np.array(p[k], dtype=float) for k in ("x", "W", "y"))
    v4 = x @ W
    assert np.all(v4 != 0)  # nonzero_values: [v4] held
    v5 = np.maximum(v4, 0)
    v4_bar = 2 * (v5 - y) / len(y) * (v4 > 0)
    answers = _answers(problem)
    np.testing.assert_allclose(answers["adjoint v4"], v4_bar, atol=1e-12)
    np.testing.assert_allclose(answers["gradient W"], np.outer(x, v4_bar), atol=1e-12)


def _check_cnn(problem):
    p = problem["params"]
    c1, c2, k, pad, n = (p[key] for key in ("c1", "c2", "k", "pad", "n"))
    side = (14 - k + 1 + 2 * pad) // 2
    flat = side * side * c2
    assert list(_answers(problem).values()) == [c1 * (9 + 1), c2 * (k * k * c1 + 1),
                                                flat * n + n, flat]


def _check_adam(problem):
    p = problem["params"]
    theta, g = np.array(p["theta"], dtype=float), np.array(p["g"], dtype=float)
    m = v = np.zeros(2)
    thetas = []
    for row in g:
        m = 0.5 * m + 0.5 * row
        v = 0.75 * v + 0.25 * row ** 2
        theta = theta - 0.1 * m / np.sqrt(v)
        thetas.append(theta)
    answers = _answers(problem)
    for t, expected in enumerate(thetas, 1):
        np.testing.assert_allclose(np.ravel(answers[f"step theta_{t}"]), expected, rtol=1e-12)


def test_the_variant_api_matches_variants_json(class_runs):
    exam = load_exam(EXAM)
    v = exam.variant("s007")
    stored = next(s for s in _variants(class_runs[0]) if s["student_id"] == "s007")
    assert [p.params for p in v.problems] == [p["params"] for p in stored["problems"]]
    rnn = v.problems[0]
    assert rnn.spec["values"]["w"] == rnn.params["w"]  # placed as data, not text
    assert rnn.derivation.gradients["w"].value == _answers(stored["problems"][0])["gradient w"]
    assert [b.entry for b in rnn.blanks] == ["adjoint t", "adjoint r", "value y", "gradient w"]


def test_without_a_roster_one_paper_and_one_key(tmp_path, capsys):
    code, out, _ = run(capsys, "exam", EXAM, "-o", str(tmp_path), "--no-pdf")
    assert code == 0 and "one variant" in out
    assert sorted(os.listdir(tmp_path)) == ["key.tex", "paper.tex", "variants.json"]
    assert [v["student_id"] for v in _variants(tmp_path)] == [""]


@pytest.mark.pdf
@pytest.mark.skipif(not shutil.which("pdflatex"), reason="needs pdflatex")
def test_pdf_papers_and_keys(tmp_path, capsys):
    roster = tmp_path / "two.csv"
    roster.write_text("id,name\nA1,Ada\nB2,Ben\n")
    code, out, err = run(capsys, "exam", EXAM, "--roster", str(roster), "-o",
                         str(tmp_path / "out"))
    assert code == 0, err
    for path in ("papers/A1.pdf", "papers/B2.pdf", "keys/A1.pdf", "keys/B2.pdf",
                 "master_key.pdf"):
        assert (tmp_path / "out" / path).read_bytes()[:5] == b"%PDF-"


def test_without_pdflatex_tex_is_written_with_a_note(tmp_path, capsys, monkeypatch):
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "pdflatex" else real(name))
    code, out, _ = run(capsys, "exam", EXAM, "-o", str(tmp_path))
    assert code == 0 and "no PDF: pdflatex is not installed" in out
    assert sorted(os.listdir(tmp_path)) == ["key.tex", "paper.tex", "variants.json"]


# -- bad input: one line, exit 2, nothing already written lost ------------------------------
@pytest.fixture
def earlier(tmp_path):
    """An output folder holding an earlier run's files."""
    out = tmp_path / "out"
    (out / "papers").mkdir(parents=True)
    (out / "variants.json").write_text('{"earlier": true}')
    (out / "papers" / "s001.pdf").write_bytes(b"%PDF-earlier")
    return out


def _unchanged(out):
    assert (out / "variants.json").read_text() == '{"earlier": true}'
    assert (out / "papers" / "s001.pdf").read_bytes() == b"%PDF-earlier"
    assert sorted(os.listdir(out)) == ["papers", "variants.json"]


def _fails(capsys, out, *argv):
    code, _, err = run(capsys, "exam", *argv, "-o", str(out), "--no-pdf")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    _unchanged(out)
    return err.strip()


@pytest.mark.parametrize("rows, message", [
    ("id\ns001\ns002\ns001\n", "roster.csv: line 4: duplicate student id 's001' (first on line 2)"),
    ("id,name\ns001,Ada\n,Ben\n", "roster.csv: line 3: empty student id"),
    ("name\nAda\n", "roster.csv: line 1: the header names no 'id' column"),
    ("id\n../x\n", "roster.csv: line 2: student id '../x' may hold only"),
])
def test_a_bad_roster_is_refused(tmp_path, earlier, capsys, rows, message):
    roster = tmp_path / "roster.csv"
    roster.write_text(rows)
    assert message in _fails(capsys, earlier, EXAM, "--roster", str(roster))


def _exam(tmp_path, problem):
    text = "title: T\nseed: 1\nproblems:\n" + problem
    path = tmp_path / "exam.yaml"
    path.write_text(text)
    return str(path)


RNN = """    problem:
      nodes: {p: w*u, y: w*p}
      output: y
      wrt: [w]
      values: {w: "${w}", u: "${u}"}
"""


def test_constraints_nothing_satisfies_are_named(tmp_path, earlier, capsys):
    exam = _exam(tmp_path, """  - params: {w: {randint: [0, 0]}, u: {choice: [1]}}
    constraints: {nonzero: [w]}
    fill: [gradient w]
""" + RNN)
    err = _fails(capsys, earlier, exam)
    assert err.endswith("exam.yaml: problems[0].constraints: no parameter values satisfy the "
                        "constraint nonzero: [w] after 200 tries")


def test_a_constraint_on_the_derivations_values_is_resampled_then_named(tmp_path, earlier,
                                                                        capsys):
    exam = _exam(tmp_path, """  - params: {w: {randint: [-1, 1]}, u: {choice: [0]}}
    constraints: {nonzero_values: [p]}
    fill: [gradient w]
""" + RNN)
    err = _fails(capsys, earlier, exam)
    assert "constraint nonzero_values: [p] after 25 tries" in err


def test_a_missing_problem_kind_is_named(tmp_path, earlier, capsys):
    exam = _exam(tmp_path, """  - fill: [result]
    problem: {kind: no_such_kind, x: 1}
""")
    err = _fails(capsys, earlier, exam)
    assert "exam.yaml: problems[0].problem.kind: unknown problem kind 'no_such_kind'" in err


@pytest.mark.parametrize("fill, message", [
    ("[adjoint zz]", "problems[0].fill[0]: this problem has no adjoint 'zz'"),
    ("[gradient]", "problems[0].fill[0]: expected '<kind> <name>'"),
    ("[result]", "problems[0].fill[0]: this problem has no result"),
])
def test_a_blank_the_problem_lacks_is_named(tmp_path, earlier, capsys, fill, message):
    exam = _exam(tmp_path, f"""  - params: {{w: {{randint: [1, 3]}}, u: {{choice: [1]}}}}
    fill: {fill}
""" + RNN)
    assert message in _fails(capsys, earlier, exam)


def test_an_unknown_placeholder_is_named(tmp_path, earlier, capsys):
    exam = _exam(tmp_path, """  - params: {w: {randint: [1, 3]}}
    fill: [gradient w]
""" + RNN)
    assert "problems[0]: '${u}' names no parameter (params: w)" in _fails(capsys, earlier, exam)


def test_prompt_text_is_checked_after_substitution(tmp_path, earlier, capsys):
    exam = _exam(tmp_path, """  - params: {w: {randint: [1, 3]}, u: {choice: [1]}}
    prompt: 'With $w = ${w}$ and $\\input{/etc/passwd}$'
    fill: [gradient w]
""" + RNN)
    assert "problems[0].prompt: \\input is not allowed" in _fails(capsys, earlier, exam)


def test_an_output_folder_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "out").write_text("a file")
    code, _, err = run(capsys, "exam", EXAM, "-o", str(tmp_path / "out"), "--no-pdf")
    assert code == 2 and "cannot make the output folder" in err
    assert (tmp_path / "out").read_text() == "a file"


# -- sampling ---------------------------------------------------------------------------------
def test_placeholders_are_replaced_as_data():
    values = {"w": -2, "X": [[1, 2], [3, 4]]}
    spec = {"values": {"w": "${w}", "X": " ${X} "}, "nodes": {"q": "${w}*p"},
            "layers": ["conv2d(${w}, 3)"]}
    out = sampling.substitute(spec, values, "p")
    assert out == {"values": {"w": -2, "X": [[1, 2], [3, 4]]}, "nodes": {"q": "(-2)*p"},
                   "layers": ["conv2d((-2), 3)"]}


def test_choices_are_numbers_never_code():
    with pytest.raises(InputError, match=r"p.w.choice\[0\]: expected a number"):
        sampling.check_ranges({"w": {"choice": ["__import__('os')"]}}, "p")
    with pytest.raises(InputError, match="randint: expected"):
        sampling.check_ranges({"w": {"randint": [3, 1]}}, "p")


def test_draws_depend_on_seed_student_and_problem_only():
    params = {"w": {"randint": [-50, 50]}, "X": {"randint": [-3, 3], "shape": [2, 3]}}

    def draw(*key):
        return sampling.draw(params, sampling.generator(*key))

    assert draw(1, "s1", 1) == draw(1, "s1", 1)
    assert len({json.dumps(draw(*k)) for k in [(1, "s1", 1), (2, "s1", 1), (1, "s2", 1),
                                               (1, "s1", 2)]}) == 4
    x = draw(1, "s1", 1)["X"]
    assert len(x) == 2 and all(len(r) == 3 and all(-3 <= e <= 3 for e in r) for r in x)


def test_parameter_constraints():
    constraints = {"nonzero": ["w"], "positive": ["X"], "distinct": ["a", "b"]}
    ok = {"w": -1, "X": [[1, "1/2"]], "a": 1, "b": 2}
    assert sampling.parameters_fail(constraints, ok) is None
    assert sampling.parameters_fail(constraints, dict(ok, w=0)) == "nonzero: [w]"
    assert sampling.parameters_fail(constraints, dict(ok, X=[[1, 0]])) == "positive: [X]"
    assert sampling.parameters_fail(constraints, dict(ok, b="1")) == "distinct: [a, b]"
    with pytest.raises(InputError, match="'z' is not a parameter"):
        sampling.check_constraints({"nonzero": ["z"]}, {"w": {}}, "p")


def test_smooth_resamples_away_from_a_kink(tmp_path):
    exam_path = _exam(tmp_path, """  - params: {x: {randint: [-1, 1]}}
    constraints: {smooth: true}
    fill: [gradient x]
    problem: {expression: "relu(x) + x", wrt: [x], values: {x: "${x}"}}
""")
    exam = load_exam(exam_path)
    drawn = {exam.variant(f"s{i}").problems[0].params["x"] for i in range(12)}
    assert drawn == {-1, 1}  # x = 0 puts relu at its kink: never given out


def test_a_draw_that_fails_on_a_dask_worker_writes_nothing(tmp_path, earlier, capsys):
    """Variants are drawn on the workers; one that cannot be drawn is the same one line as
    in this process, naming the student, and the output folder is left as it was."""
    exam = _exam(tmp_path, """  - params: {w: {randint: [0, 0]}, u: {choice: [1]}}
    constraints: {nonzero: [w]}
    fill: [gradient w]
""" + RNN)
    roster = tmp_path / "two.csv"
    roster.write_text("id\nA1\nB2\n")
    err = _fails(capsys, earlier, exam, "--roster", str(roster), "--workers", "2", "--quiet")
    assert "exam.yaml: problems[0].constraints: no parameter values satisfy the constraint " \
           "nonzero: [w] after 200 tries (student " in err  # A1 or B2: whichever came first
