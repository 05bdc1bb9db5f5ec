"""Every failure of the command line is one line that says what and where.

Bad input exits 2 naming the file and key; anything unexpected (a bug, memory or
recursion exhausted) exits 3 with one line and a hint to report it, for the pass-through
commands (train, bench) too; the traceback is shown only with --debug.
"""
import os

import pytest
import yaml

from derive import command_line as cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNN = os.path.join(ROOT, "examples", "rnn.yaml")


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err):
    assert err.count("\n") == 1, err
    return err.strip()


# -- unexpected exceptions -------------------------------------------------------------------
@pytest.mark.parametrize("exc, text", [
    (ZeroDivisionError("division by zero"),
     "internal error: ZeroDivisionError: division by zero (please report this; "
     "run with --debug for the traceback)"),
    (MemoryError(), "out of memory (the input is too large for this machine) (please report "
                    "this; run with --debug for the traceback)"),
    (RecursionError("maximum recursion depth exceeded"),
     "internal error: RecursionError: the input nests too deeply to process (please report "
     "this; run with --debug for the traceback)"),
])
def test_an_unexpected_exception_is_one_line_and_exit_3(capsys, monkeypatch, exc, text):
    def boom(args):
        raise exc

    monkeypatch.setattr(cli, "cmd_solve", boom)
    code, out, err = run(capsys, "solve", RNN)
    assert code == 3 and out == ""
    assert one_line(err) == "derivekit solve: " + text


@pytest.mark.parametrize("command", ["train", "bench"])
def test_pass_through_commands_are_covered(capsys, monkeypatch, command):
    def boom(args):
        raise KeyError("W99")

    monkeypatch.setitem(cli.PASS_THROUGH, command, boom)
    code, _, err = run(capsys, command, "--quick")
    assert code == 3
    assert one_line(err) == (f"derivekit {command}: internal error: KeyError: 'W99' "
                             "(please report this; run with --debug for the traceback)")


def test_train_input_errors_stay_one_line_exit_2(capsys, tmp_path):
    config = tmp_path / "deep.yaml"
    config.write_text("model: " + "[" * 5000 + "]" * 5000 + "\n")
    code, _, err = run(capsys, "train", str(config))
    assert code == 2
    assert one_line(err).startswith(f"derivekit train: error: {config}:1:")
    assert "nested deeper than the limit of 50 levels" in err


def test_debug_shows_the_traceback(capsys, monkeypatch):
    def boom(args):
        return 1 / 0

    monkeypatch.setattr(cli, "cmd_solve", boom)
    for argv in (["--debug", "solve", RNN], ["solve", RNN, "--debug"]):
        code, _, err = run(capsys, *argv)
        assert code == 3
        assert "Traceback (most recent call last)" in err and "in boom" in err
        assert err.rstrip().splitlines()[-1] == ("derivekit solve: internal error: "
                                                 "ZeroDivisionError: division by zero "
                                                 "(please report this)")


def test_a_real_bug_path_in_a_kernel_command_is_one_line(capsys):
    code, _, err = run(capsys, "bench", "--only", "W99", "--peers", "", "--no-derivekit",
                       "-o", os.devnull)
    assert code == 3
    assert one_line(err).startswith("derivekit bench: internal error: KeyError: 'W99'")


# -- bad input: one line, exit 2, naming the file -------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["solve", RNN, "-o", "x.docx"], "x.docx: cannot tell the format from the suffix '.docx'"),
    (["solve", RNN, "-o", "/no/such/folder/x.md"], "/no/such/folder/x.md: cannot write here"),
    (["solve", "missing.yaml"], "missing.yaml: cannot read problem file (No such file"),
    (["check", RNN, "missing.yaml"], "missing.yaml: cannot read answers file (No such file"),
    (["train", "missing.yaml"], "missing.yaml: cannot read config (No such file"),
])
def test_rough_edges_are_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in one_line(err)


# -- non-finite values name the file and key, for every problem kind -------------------------
def write(tmp_path, spec):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(spec) if isinstance(spec, dict) else spec)
    return str(path)


@pytest.mark.parametrize("text, where, value", [
    ("inputs: [u]\nparams: [w]\nnodes: {q: w*u}\nvalues: {w: .nan, u: 1}\n",
     "values.w", "nan"),
    ("inputs: [u]\nparams: [w]\nnodes: {q: w*u}\nvalues: {w: 2, u: '-1e999'}\n",
     "values.u", "-inf"),
    ("tensors: {x: [2], W: [2, 2]}\nnodes: {v: x @ W}\n"
     "values: {x: [1, .inf], W: [[1, 0], [0, 1]]}\n", "values.x[1]", "inf"),
    ("kind: layer\nlayer: linear\noptions: {in_features: 2, out_features: 1}\n"
     "values: {x: [[.nan, 1.0]], W: [[1.0, 2.0]], b: [0.5]}\n", "values.x[0][0]", "nan"),
    ("kind: layernorm\nX: [[8, 2], [0, -.inf]]\neps: 0\n", "X[1][1]", "-inf"),
    ("kind: optimizer\noptimizer: adam\nlr: .nan\ntheta: [1.0]\ngrads: [[0.5]]\n", "lr", "nan"),
])
def test_non_finite_values_name_file_and_key(capsys, tmp_path, text, where, value):
    code, _, err = run(capsys, "solve", write(tmp_path, text))
    assert code == 2
    assert one_line(err) == (f"derivekit solve: error: p.yaml: {where}: expected a finite "
                             f"number, got {value}")
