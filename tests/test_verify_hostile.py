"""Hostile and malformed answers: "unreadable" with a clear message, and nothing runs.

(How fast they are rejected is measured in bench/check_speed.py, not asserted here.)
"""
import os

import pytest

import derive as dv
from derive.verify import check, check_table, cli_check
from derive.verify.latex_answers import latex_to_text


@pytest.fixture(scope="module")
def rnn():
    return dv.solve("examples/rnn.yaml")[0]


def hostile(sentinel):
    return [
        (f"__import__('os').system('touch {sentinel}')", "function call"),
        (f"open('{sentinel}', 'w').write('x')", "function call"),
        (f"open('{sentinel}', 'w')", "unsupported function"),
        ("lambda: 1", "lambda"),
        (f"(lambda: __import__('os').system('touch {sentinel}'))()", "function call"),
        ("w.__class__.__bases__", "attribute"),
        ("().__class__", "attribute"),
        ("9**9**9", "too large"),
        ("9^{9^{9}}", "too large"),
        ("(" * 10000 + "w" + ")" * 10000, "too long"),
        ("(" * 1000 + "w" + ")" * 1000, "nested"),
        (r"\frac{" * 100 + "1" + "}{2}" * 100, "nested"),
        ("[w for w in range(10**9)]", "comprehension"),
        ("w if w else w", "if/else"),
        ("'a' * 10**9", "not a number"),
        ("w; import os", "malformed"),
        ("exec('1')", "unsupported function"),
        ("sigmoid(*w)", "starred"),
        (r"\input{/etc/passwd}", "not supported"),
        ("", "empty"),
    ]


def test_hostile_answers_are_unreadable_and_nothing_runs(rnn, tmp_path):
    sentinel = tmp_path / "pwned"
    for text, words in hostile(sentinel):
        v = check(text, against=rnn, wrt="w")
        assert v.verdict == "unreadable", (text[:40], str(v))
        assert v.proof is None and v.diagnosis is None
        assert words in v.message.lower(), (text[:40], v.message)
        assert len(v.message.splitlines()) == 1
    assert not sentinel.exists()


@pytest.mark.parametrize("value", [None, ["w"], {"a": 1}, True])
def test_non_text_answers_are_unreadable(rnn, value):
    v = check(value, against=rnn, wrt="w")
    assert v.verdict == "unreadable" and "expected a formula" in v.message


def test_costly_but_legal_answers_are_judged_not_hung(rnn):
    # legal, but expanding or arbitrary-precision evaluation would not finish
    v = check("exp(exp(exp(exp(exp(u1)))))", against=rnn, wrt="w")
    assert v.verdict == "wrong" and v.counterexample["answer"] == "inf"
    assert check("(u1 + u2)**9999", against=rnn, wrt="w").verdict == "wrong"


def test_hostile_answers_in_a_file_give_a_report_not_a_traceback(rnn, tmp_path):
    sentinel = tmp_path / "pwned"
    answers = tmp_path / "answers.yaml"
    answers.write_text(f"t: \"__import__('os').system('touch {sentinel}')\"\n"
                       "s: 'lambda: w'\nr: w**2\n", encoding="utf-8")
    out, code = cli_check("examples/rnn.yaml", str(answers), fmt="json")
    assert code == 1 and not sentinel.exists()
    verdicts = {a["node"]: a["verdict"] for a in out["answers"]}
    assert verdicts == {"t": "unreadable", "s": "unreadable", "r": "correct"}
    assert all(a["message"] for a in out["answers"] if a["verdict"] == "unreadable")


def test_yaml_is_loaded_safely(tmp_path):
    answers = tmp_path / "answers.yaml"
    answers.write_text("w: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(dv.InputError, match="not valid YAML"):
        cli_check("examples/rnn.yaml", str(answers))


def test_latex_answers_never_reach_latex_in_reports(rnn):
    report = check_table(rnn, {"w": r"$\input{/etc/passwd}$", "t": "w"})
    d = report.derivation()
    texts = [s.text for s in d.sections]
    assert all("$" not in t for t in texts)


def test_latex_translation_is_bounded():
    with pytest.raises(dv.InputError, match="too long"):
        latex_to_text("x+" * 3000 + "x")
    with pytest.raises(dv.InputError, match="nested"):
        latex_to_text("{" * 200 + "x" + "}" * 200)
    with pytest.raises(dv.UnsupportedError):
        latex_to_text(r"\sum_i x_i")
    assert os.path.exists("examples/rnn.yaml")  # nothing above touched the tree
