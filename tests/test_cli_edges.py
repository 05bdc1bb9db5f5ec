"""The rough edges a newcomer hits first: each is one line on stderr, a non-zero exit code
and nothing written half-way. Also: the command line starts without loading what it does
not need (import structure only; bench/startup.py measures the time)."""
import csv
import os
import subprocess
import sys
import textwrap

import pytest

from derive import command_line as cli

from test_cli_errors import one_line, run  # the CLI test helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNN = os.path.join(ROOT, "examples", "rnn.yaml")
CLASS = os.path.join(ROOT, "examples", "check", "class")


def fresh(code, **env):
    """Run ``code`` in a fresh interpreter from the checkout; its stdout."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": ROOT, **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DERIVEKIT_CACHE", str(tmp_path_factory.getbasetemp() / "edgecache"))


# -- layer options ----------------------------------------------------------------------------
def test_a_number_option_given_a_word_is_one_line_exit_2(capsys):
    code, out, err = run(capsys, "layer", "batchnorm", "-p", "eps=abc")
    assert code == 2 and out == ""
    assert one_line(err).startswith("derivekit layer: error: ") and "'abc'" in err


def test_a_boolean_option_takes_true_false_yes_no_1_0_only(capsys):
    code, out, err = run(capsys, "layer", "linear", "-p", "bias=maybe")
    assert code == 2 and out == ""
    assert one_line(err) == ("derivekit layer: error: option 'bias' of layer 'linear' is "
                             "true or false (also yes/no, 1/0), got 'maybe'")
    for word, value in [("no", False), ("YES", True), ("0", False), ("1", True),
                        ("false", False)]:
        code, out, _ = run(capsys, "layer", "linear", "-p", f"bias={word}")
        assert code == 0 and out.splitlines()[0].endswith(f"bias={value})")


# -- train ------------------------------------------------------------------------------------
def test_train_batch_size_0_is_one_line_exit_2(capsys, tmp_path):
    out_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "--batch-size", "0", "--out", str(out_dir))
    assert code == 2 and out == ""
    assert one_line(err) == ("derivekit train: error: --batch-size: expected a whole "
                             "number >= 1, got 0")
    assert not out_dir.exists()


def test_train_refuses_an_output_folder_it_cannot_make_before_training(
        capsys, tmp_path, monkeypatch):
    from kernels import cli as kcli

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the output folder was checked")

    monkeypatch.setattr(kcli, "build_net", no_training)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, out, err = run(capsys, "train", "--out", str(blocker / "run"), "--no-progress")
    assert code == 2 and out == ""
    assert one_line(err) == (f"derivekit train: error: --out: cannot write the run into "
                             f"'{blocker / 'run'}': {blocker} is not a folder")
    config = tmp_path / "c.yaml"
    config.write_text(f"out: {blocker}/deeper/run\n")
    code, _, err = run(capsys, "train", str(config))
    assert code == 2 and f"error: {config}: out: cannot write the run into" in one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "c.yaml"]


@pytest.mark.slow
def test_a_diverging_run_says_so_exits_1_and_writes_nothing(capsys, tmp_path, kernel_cache):
    out_dir = tmp_path / "new" / "run"
    code, out, err = run(capsys, "train", "--lr", "-5",
                         "--epochs", "2", "--no-progress", "--out", str(out_dir))
    assert code == 1 and "trained" not in out
    assert one_line(err) == ("derivekit train: error: training diverged (epoch 1: loss "
                             "became nan); nothing written (learning rate -5.0: try a "
                             "smaller positive one)")
    assert list(tmp_path.iterdir()) == []  # the folders made for the run are taken back


# -- a closed pipe ----------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--help"], ["layer"]])
@pytest.mark.parametrize("buffered", [True, False])
def test_a_reader_that_left_ends_the_command_quietly(argv, buffered):
    # as in `derivekit layer | head -1`: the reader is gone before the output is written
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "derive", *argv], stdout=write,
                              stderr=subprocess.PIPE, cwd=ROOT, timeout=600,
                              env={**env, "PYTHONPATH": ROOT})
    finally:
        os.close(write)
    assert done.returncode in (0, 141) and done.stderr == b""


# -- grad -------------------------------------------------------------------------------------
def test_at_naming_a_symbol_not_in_the_expression_is_an_error(capsys):
    code, out, err = run(capsys, "grad", "x*y", "--at", "x=1,y=2,z=3")
    assert code == 2 and out == ""
    assert one_line(err) == ("derivekit grad: error: --at: 'z' is not in the expression "
                             "(its variables: x, y)")


# -- bench ------------------------------------------------------------------------------------
def test_bench_writes_where_o_says_and_never_over_the_tracked_results(capsys, tmp_path,
                                                                      monkeypatch):
    from kernels import bench

    # nothing is timed here (every workload "runs" in no time: only the file matters),
    # and the tracked file is a copy, so a regression cannot overwrite the real one
    monkeypatch.setattr(bench, "run_workload", lambda *args, **kwargs: {})
    monkeypatch.setattr(bench, "compile_times", lambda *args, **kwargs: None)
    monkeypatch.setattr(bench, "BENCH_DIR", tmp_path / "bench")
    (tmp_path / "bench").mkdir()
    tracked = tmp_path / "bench" / "RESULTS.md"
    tracked.write_text("# curated\n")
    code, out, err = run(capsys, "bench", "--quick", "-o", str(tracked))
    assert code == 2 and out == "" and "bench/RESULTS.md is curated" in one_line(err)
    code, _, err = run(capsys, "bench", "-o", str(tmp_path / "missing" / "r.md"))
    assert code == 2 and "cannot write the results here" in one_line(err)
    monkeypatch.chdir(tmp_path)
    args = ["--only", "W1", "--peers", "", "--no-derivekit", "--no-compile-times"]
    assert run(capsys, "bench", *args)[0] == 0  # default: the working directory
    assert (tmp_path / "bench-results.md").read_text().startswith("# derivekit benchmark")
    (tmp_path / "out").mkdir()
    assert run(capsys, "bench", *args, "-o", "out")[0] == 0  # a folder
    assert (tmp_path / "out" / "bench-results.md").exists()
    assert tracked.read_text() == "# curated\n"


# -- --version, --help ------------------------------------------------------------------------
def test_version_is_the_installed_one_or_setup_cfg(capsys, monkeypatch):
    import configparser
    from importlib import metadata

    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"), encoding="utf-8")
    expected = cfg["metadata"]["version"]
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    printed = capsys.readouterr().out
    try:
        assert printed == f"derivekit {metadata.version('derivekit')}\n"
    except metadata.PackageNotFoundError:
        assert printed == f"derivekit {expected}\n"

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert cli.version() == expected


def subcommands():
    parser = cli._parser()
    sub = next(a for a in parser._actions if isinstance(a.choices, dict))
    return list(sub.choices)


@pytest.mark.parametrize("command", [None] + subcommands())
def test_every_help_has_examples_and_no_raw_markup(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"] if command else ["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "example" in text and "``" not in text and text.startswith("usage: derivekit")


# -- dv.check ---------------------------------------------------------------------------------
def test_check_takes_the_problem_first_and_refuses_the_old_order():
    import derive as dv

    [d] = dv.solve(RNN)
    right = "u3 + 2*w*u2 + 3*w**2*u1"
    assert dv.check(d, right).correct and dv.check(RNN, right, wrt="w").correct
    assert dv.check(against=d, answer="t + w*r").diagnosis == "missing_edge"
    assert dv.check("t + w*r", against=d, wrt="w").diagnosis == "missing_edge"
    for args in [(right, d), (right, RNN), (right, {"nodes": {"y": "w*x"}})]:
        with pytest.raises(TypeError, match="takes the problem first and the answer "
                                            "second"):
            dv.check(*args)
    with pytest.raises(TypeError, match="needs a problem and an answer"):
        dv.check(d)


# -- marking a class --------------------------------------------------------------------------
def test_marking_counts_unanswered_steps_and_names_unreadable_files(capsys, tmp_path):
    code, out, err = run(capsys, "check", RNN, CLASS, "-o", str(tmp_path))
    assert code == 2  # eve.yaml could not be read ...
    assert one_line(err) == (f"derivekit check: error: {os.path.join(CLASS, 'eve.yaml')}: "
                             "'answers' must be a mapping of node: answer")
    lines = out.splitlines()  # ... and every other file is marked all the same
    assert "dan.yaml: 2/6 (score 0.33); unanswered: s, q" in lines  # 4 of 6 steps answered
    assert "ada.yaml: 6/6 (score 1.00)" in lines
    assert "eve.yaml: not marked (could not be read)" in lines
    with open(tmp_path / "scores.csv", newline="") as fh:
        rows = {r["file"]: r for r in csv.DictReader(fh)}
    assert (rows["dan.yaml"]["correct"], rows["dan.yaml"]["total"],
            rows["dan.yaml"]["unanswered"]) == ("2", "6", "s q")
    assert rows["ada.yaml"]["unanswered"] == "" and rows["eve.yaml"]["error"]
    assert "Not answered: s, q" in (tmp_path / "dan.md").read_text(encoding="utf-8")


# -- start-up: import structure, not time -----------------------------------------------------
HEAVY = ("sympy", "numpy", "numba", "matplotlib", "sklearn", "torch", "reports", "kernels")


def test_the_parser_and_help_load_nothing_heavy():
    out = fresh(f"""
        import sys, contextlib, io
        import derive, derive.command_line as cli
        cli._parser()
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                cli.main(["--help"])
            except SystemExit:
                pass
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    assert out.strip() == "[]"


def test_a_small_grad_loads_no_numba_matplotlib_sklearn_or_torch():
    out = fresh("""
        import sys, contextlib, io
        from derive.command_line import main
        with contextlib.redirect_stdout(io.StringIO()) as text:
            assert main(["grad", "x*y", "--at", "x=1,y=2"]) == 0
        assert "dv1/dx = y = 2" in text.getvalue()
        print(sorted(m for m in ("numba", "matplotlib", "sklearn", "torch", "kernels")
                     if m in sys.modules))
    """)
    assert out.strip() == "[]"


def test_derive_exports_every_name_it_did_when_it_imported_everything():
    import derive as dv
    import derive.derivation
    import derive.entry_points
    import derive.errors
    import derive.functions
    import derive.layers
    import derive.scalar.parse
    import derive.tensor
    import derive.verify

    eager = {}  # what the package's star imports used to bind, in their order
    for module, names in [
            (derive.entry_points, ["grad", "solve"]),
            (derive.derivation, ["Adjoint", "Derivation", "Edge", "Gradient", "Node",
                                 "Section", "Step", "bar"]),
            (derive.errors, ["DeriveError", "InputError", "NotDifferentiableError",
                             "ShapeError", "UnsupportedError"]),
            (derive.functions, ["maximum", "minimum", "relu", "sigmoid"]),
            (derive.scalar.parse, ["parse", "parse_call"]),
            (derive.tensor, derive.tensor.__all__), (derive.layers, derive.layers.__all__),
            (derive.verify, ["check", "gradcheck"])]:
        eager.update({n: getattr(module, n) for n in names})
    assert {n: getattr(dv, n) for n in eager} == eager
    added = {"from_torch"}  # names added since (each imported on first use too)
    assert set(dv.__all__) == set(eager) | added and set(eager) | added <= set(dir(dv))
    assert dv.tensor is derive.tensor and dv.Step is derive.layers.Step
    with pytest.raises(AttributeError):
        dv.no_such_name  # noqa: B018
