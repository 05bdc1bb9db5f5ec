"""A problem file's ``module:`` key (your own PyTorch model) is honoured only on request.

Importing a module runs its code, so without ``--allow-import`` (``allow_import=True``)
the problem is refused in one line naming the key and the flag, and the module file is
never imported: the sentinel module below writes a file when it is imported, and the
tests assert that file does not exist. A malformed reference is refused before any import
even with the flag. With the flag, a small torch module converts and derives.
"""
from __future__ import annotations

import textwrap

import pytest

import derive as dv
from derive import command_line as cli
from derive.errors import InputError

SENTINEL = textwrap.dedent('''
    import os
    open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "IMPORTED"), "w").close()

    import torch


    class Net(torch.nn.Module):
        def __init__(self, hidden=4):
            super().__init__()
            self.fc1 = torch.nn.Linear(3, hidden)
            self.act = torch.nn.ReLU()
            self.fc2 = torch.nn.Linear(hidden, 2)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))
''')


def problem(folder, module="sentinel.py:Net", extra=""):
    (folder / "sentinel.py").write_text(SENTINEL)
    path = folder / "mine.yaml"
    path.write_text(f"title: My net\nmodule: {module}\ninput_shape: [2, 3]\n{extra}")
    return str(path)


def imported(folder):
    return (folder / "IMPORTED").exists()


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- refused without the flag --------------------------------------------------------------
def test_the_command_line_refuses_a_module_in_one_line_without_importing_it(tmp_path, capsys):
    code, out, err = run(capsys, "solve", problem(tmp_path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("derivekit solve: error: mine.yaml: module: ")
    assert "'module:'" in err and "--allow-import" in err
    assert not imported(tmp_path)


def test_python_refuses_a_module_without_allow_import(tmp_path):
    path = problem(tmp_path)
    with pytest.raises(InputError, match="allow_import=True") as info:
        dv.solve(path)
    assert "mine.yaml: module" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InputError, match="--allow-import"):
        dv.solve({"module": "sentinel.py:Net", "input_shape": [2, 3]})
    assert not imported(tmp_path)


def test_every_document_of_a_file_is_refused_before_any_is_imported(tmp_path, capsys):
    path = problem(tmp_path)
    with open(path, "a") as f:
        f.write("---\nexpression: x*y\nwrt: [x]\n")
    code, _, err = run(capsys, "solve", path)
    assert code == 2 and "module" in err and not imported(tmp_path)


@pytest.mark.parametrize("reference, says", [
    ("sentinel.py:Net()", "not a class name"),
    ("sentinel.py", "expected 'path/to/file.py:ClassName'"),
    ("sentinel.py:Net:x", "expected 'path/to/file.py:ClassName'"),
    ("'sent inel.py:Net'", "not a plain file path"),
    ("'sentinel;x.py:Net'", "not a plain file path"),
    ("'os.system(1):Net'", "neither a .py file nor a dotted module name"),
    ("missing.py:Net", "does not exist"),
])
def test_a_bad_reference_is_refused_before_anything_is_imported(tmp_path, reference, says):
    path = problem(tmp_path, module=reference)
    with pytest.raises(InputError, match="module") as info:
        dv.solve(path, allow_import=True)
    assert says in str(info.value)
    assert not imported(tmp_path)


@pytest.mark.parametrize("extra, says", [
    ("args: ['4']\n", "expected a plain number"),
    ("args: [true]\n", "expected a plain number"),
    ("args: {'not a name': 4}\n", "is not an argument name"),
    ("colour: red\n", "unknown key 'colour'"),
])
def test_bad_arguments_are_refused_before_the_import(tmp_path, extra, says):
    with pytest.raises(InputError, match=says):
        dv.solve(problem(tmp_path, extra=extra), allow_import=True)
    assert not imported(tmp_path)


def test_a_bad_input_shape_is_refused_before_the_import(tmp_path):
    path = problem(tmp_path)
    text = open(path).read().replace("input_shape: [2, 3]", "input_shape: [2, 0]")
    open(path, "w").write(text)
    with pytest.raises(InputError, match="input_shape"):
        dv.solve(path, allow_import=True)
    assert not imported(tmp_path)


# -- honoured with the flag ----------------------------------------------------------------
@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def test_with_the_flag_a_torch_module_file_converts_and_derives(tmp_path, capsys, torch):
    code, out, err = run(capsys, "solve", problem(tmp_path, extra="args: [5]\n"),
                         "--allow-import")
    assert code == 0, err
    assert imported(tmp_path)
    assert out.startswith("My net\n")
    assert "W1_bar = z1_bar.T @ x" in out and "W2_bar = z2_bar.T @ a1" in out
    assert "W1: [5, 3]" in out  # args: [5] reached the constructor


def test_python_with_allow_import_takes_keyword_args_and_a_dotted_module(
        tmp_path, torch, monkeypatch):
    package = tmp_path / "mymodels"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "sentinel.py").write_text(SENTINEL)
    path = tmp_path / "dotted.yaml"
    path.write_text("module: mymodels.sentinel:Net\ninput_shape: [4, 3]\nargs: {hidden: 6}\n")
    monkeypatch.chdir(tmp_path)
    d = dv.solve(str(path), allow_import=True)[0]
    assert (package / "IMPORTED").exists()
    assert d.meta["module"] == "mymodels.sentinel:Net"
    assert {"W1", "b1", "W2", "b2"} <= set(d.gradients)
    assert "W1: [6, 3]" in str(d)


def test_a_name_that_is_not_a_class_is_refused(tmp_path, torch):
    with pytest.raises(InputError, match="has no class Nope"):
        dv.solve(problem(tmp_path, module="sentinel.py:Nope"), allow_import=True)


def test_a_loss_key_names_the_torch_loss_and_an_unknown_one_is_refused_first(tmp_path, torch):
    with pytest.raises(InputError, match="unknown loss 'hinge'"):
        dv.solve(problem(tmp_path, extra="loss: hinge\n"), allow_import=True)
    assert not imported(tmp_path)  # refused before the import
    d = dv.solve(problem(tmp_path, extra="loss: cross_entropy\n"), allow_import=True)[0]
    assert d.output == "L" and {"W1", "W2"} <= set(d.gradients)
