"""YAML files are read within bounds: size, depth and alias expansion, refused in one line.

Every reader (problem files, answers files, training configs) goes through
derive.yamlio; each hostile file below is refused quickly, naming the file and the limit.
Large arrays are referenced as .npy/.npz files from the problem's own folder.
"""
import os
import time

import numpy as np
import pytest
import yaml

import derive as dv
from derive import problem, yamlio
from derive.verify import cli_check
from kernels import cli as kernels_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNN = os.path.join(ROOT, "examples", "rnn.yaml")
V_PROBLEM = os.path.join(ROOT, "examples", "tensor", "v_problem.yaml")
BOUND = 10.0  # seconds: every input answered or refused in this time


def billion_laughs(key="answers"):
    """1 KB that expands to 9^9 (387 million) strings when aliases are followed."""
    text = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for i in range(1, 10):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n"
    return text + f"{key}: {{w: *a9}}\n"


def deep(n):
    return "[" * n + "1" + "]" * n


def refused(call, match):
    """``call()`` raises a one-line InputError matching ``match``, within BOUND seconds."""
    start = time.perf_counter()
    with pytest.raises(dv.InputError, match=match) as err:
        call()
    elapsed = time.perf_counter() - start
    assert "\n" not in str(err.value) and elapsed < BOUND, (str(err.value), elapsed)
    return str(err.value)


def test_the_c_loader_is_used_when_installed():
    assert yamlio.Loader is getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def test_billion_laughs_answers_file_is_refused_in_bounded_time(tmp_path):
    answers = tmp_path / "laughs.yaml"
    answers.write_text(billion_laughs())
    assert answers.stat().st_size < 1000
    message = refused(lambda: cli_check(RNN, str(answers)), "100,000 values")
    assert message.startswith(f"{answers}:")


def test_billion_laughs_problem_and_config_are_refused(tmp_path):
    spec = tmp_path / "p.yaml"
    spec.write_text(billion_laughs("values"))
    refused(lambda: dv.solve(str(spec)), r"p\.yaml:\d+:\d+: more than the limit of 100,000")
    config = tmp_path / "train.yaml"
    config.write_text(billion_laughs("model"))
    refused(lambda: kernels_cli.train_main([str(config), "--no-progress"]), "100,000")


@pytest.mark.parametrize("text", [
    "values: {w: " + deep(5000) + "}\n",                       # flow style
    "".join("  " * i + "a:\n" for i in range(60)) + "  " * 60 + "1\n",   # block style
    "a: &a " + deep(45) + "\nvalues: " + deep(10).replace("1", "*a") + "\n",  # via an alias
], ids=["flow", "block", "alias"])
def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path, text):
    spec = tmp_path / "deep.yaml"
    spec.write_text(text)
    refused(lambda: dv.solve(str(spec)), "deep.yaml.*nested deeper than the limit of 50")
    refused(lambda: cli_check(RNN, str(spec)), "nested deeper than the limit of 50")


def test_a_recursive_alias_is_refused(tmp_path):
    spec = tmp_path / "self.yaml"
    spec.write_text("values: &a {w: *a}\n")
    refused(lambda: dv.solve(str(spec)), "self.yaml:1:.*recursive")


def test_files_past_the_size_limit_are_refused_before_parsing(tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text("title: x\n" + "# padding\n" * 600_000)
    refused(lambda: dv.solve(str(spec)), "big.yaml: problem file is larger than the limit "
                                         "of 5,000,000 bytes")


@pytest.mark.parametrize("entry", ["0", "0.5"], ids=["4.5MB", "9MB"])  # node / size limit
def test_a_1500_by_1500_matrix_is_refused_in_seconds(tmp_path, entry):
    row = "[" + ",".join([entry] * 1500) + "]"
    spec = tmp_path / "m.yaml"
    spec.write_text("kind: layer\nlayer: linear\noptions: {in_features: 3, out_features: 2}\n"
                    "values:\n  W: [" + ",".join([row] * 1500) + "]\n")
    refused(lambda: dv.solve(str(spec)), r"m\.yaml.*(100,000 values|5,000,000 bytes)")


def test_legal_aliases_and_merges_still_load(tmp_path):
    spec = tmp_path / "ok.yaml"
    spec.write_text("base: &b {x: 1}\nd: {<<: *b, y: 2}\nrows: &r [1, 2]\nagain: *r\n")
    assert yamlio.load(spec) == {"base": {"x": 1}, "d": {"x": 1, "y": 2},
                                 "rows": [1, 2], "again": [1, 2]}


def test_python_tags_are_still_refused(tmp_path):
    spec = tmp_path / "tag.yaml"
    sentinel = tmp_path / "pwned"
    spec.write_text(f"w: !!python/object/apply:os.system ['touch {sentinel}']\n")
    refused(lambda: dv.solve(str(spec)), r"tag\.yaml:1:\d+: not valid YAML")
    assert not sentinel.exists()


def test_a_huge_integer_literal_is_one_line(tmp_path):
    spec = tmp_path / "int.yaml"
    spec.write_text("values: {w: " + "9" * 100_000 + "}\n")
    refused(lambda: dv.solve(str(spec)), r"int\.yaml: not valid YAML \(Exceeds the limit")


# -- large arrays live in .npy / .npz files beside the problem -------------------------------
def _v_problem_with(tmp_path, values):
    spec = yaml.safe_load(open(V_PROBLEM, encoding="utf-8"))
    spec["values"] = values
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_values_read_from_npy_and_npz_give_the_inline_answer(tmp_path):
    inline = yaml.safe_load(open(V_PROBLEM, encoding="utf-8"))["values"]
    np.save(tmp_path / "W.npy", np.array(inline["W"]))
    np.savez(tmp_path / "xy.npz", x=np.array(inline["x"]), y=np.array(inline["y"]))
    path = _v_problem_with(tmp_path, {"x": {"file": "xy.npz", "key": "x"},
                                      "W": {"file": "W.npy"},
                                      "y": {"file": "xy.npz", "key": "y"}})
    want, got = dv.solve(V_PROBLEM)[0], dv.solve(str(path))[0]
    assert set(got.gradients) == {"x", "W", "y"}
    for name, g in want.gradients.items():
        np.testing.assert_allclose(np.asarray(got.gradients[name].value, float),
                                   np.asarray(g.value, float), rtol=0, atol=1e-12)
    # W_bar = x^T @ v4_bar: a real number, not a placeholder
    assert abs(float(np.asarray(got.gradients["W"].value, float)[0, 1]) - 0.2842132) < 1e-6


def test_array_files_outside_the_problem_folder_are_refused(tmp_path):
    outside = tmp_path / "secret.npy"
    np.save(outside, np.ones((3, 3)))
    folder = tmp_path / "problem"
    folder.mkdir()
    os.symlink(outside, folder / "link.npy")
    for name in ("../secret.npy", str(outside), "link.npy"):
        path = _v_problem_with(folder, {"W": {"file": name}})
        refused(lambda: dv.solve(str(path)), r"p\.yaml: values\.W: .* is outside the "
                                             r"problem's folder")


def test_pickled_array_files_are_refused(tmp_path):
    sentinel = tmp_path / "pwned"
    np.save(tmp_path / "W.npy", np.array([{"a": str(sentinel)}], dtype=object),
            allow_pickle=True)
    path = _v_problem_with(tmp_path, {"W": {"file": "W.npy"}})
    refused(lambda: dv.solve(str(path)), r"values\.W: cannot read W\.npy \(Object arrays")
    assert not sentinel.exists()


def test_a_non_finite_entry_of_an_array_file_is_named(tmp_path):
    W = np.zeros((3, 3))
    W[1, 2] = np.inf
    np.save(tmp_path / "W.npy", W)
    path = _v_problem_with(tmp_path, {"W": {"file": "W.npy"}})
    refused(lambda: dv.solve(str(path)),
            r"^p\.yaml: values\.W\[1\]\[2\]: expected a finite number, got inf$")


def test_problem_prepare_leaves_ordinary_specs_alone():
    spec = yaml.safe_load(open(RNN, encoding="utf-8"))
    assert problem.prepare(spec, "rnn.yaml", ROOT) == spec
