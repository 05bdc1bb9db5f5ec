"""The ``derivekit`` command line (also ``python -m derive``).

This module (with derive.command_exam, its exam and grade commands) is the one place
that wires derive/, reports/ and kernels/ together (no other module of derive imports
either; tests/test_imports.py checks it). Start-up is kept
short: building the parser imports argparse and derive.errors only, and each command
imports what it needs inside its handler, so ``derivekit --help`` loads no SymPy and
``derivekit grad`` no numba, matplotlib or scikit-learn (tests/test_cli_edges.py checks
this; bench/startup.py measures it). Every command prints a clear one-line error and
exits non-zero on bad input; no text given to it is ever executed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import sysconfig

from derive.command_exam import add_exam_commands
from derive.errors import DeriveError, InputError

FORMATS = ("text", "md", "tex", "html", "json")
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_PIPE_CLOSED = 141  # what a shell reports for a program stopped by SIGPIPE
DEBUG_FLAG = "--debug"


def main(argv=None):
    """Run the CLI; returns the exit code.

    0 ok, 1 a check failed (or training diverged), 2 bad input, 3 an internal error (a
    bug, or memory or recursion exhausted), 130 interrupted, 141 the reader of standard
    output left (``| head``). Every failure is one line on stderr; the
    traceback of an internal error is printed only with ``--debug``.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = DEBUG_FLAG in argv
    argv = [a for a in argv if a != DEBUG_FLAG]
    command = argv[0] if argv and not argv[0].startswith("-") else None
    try:
        try:
            code = _dispatch(argv)
        except SystemExit:  # argparse's --help, --version and usage: their text first
            sys.stdout.flush()
            raise
        sys.stdout.flush()  # a reader that left (| head) shows here, not at exit
        return code
    except BrokenPipeError:
        # stop quietly; what is still buffered goes to devnull, so the flush at exit
        # cannot raise again ("Exception ignored ... BrokenPipeError")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE_CLOSED
    except DeriveError as exc:
        _fail(command, f"error: {exc}")
        return getattr(exc, "exit_code", EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        _fail(command, "interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place every other failure ends up
        if debug:
            import traceback

            traceback.print_exc()
        _fail(command, internal_error(exc, debug))
        return EXIT_INTERNAL


def _dispatch(argv):
    parser = _parser()
    if argv and argv[0] in PASS_THROUGH:  # kernels' commands parse their own flags
        args = argparse.Namespace(command=argv[0], rest=argv[1:], run=PASS_THROUGH[argv[0]])
    else:
        args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    return args.run(args) or 0


def internal_error(exc, debug=False):
    """The one line an unexpected exception becomes."""
    if isinstance(exc, MemoryError):
        what = "out of memory (the input is too large for this machine)"
    elif isinstance(exc, RecursionError):
        what = "internal error: RecursionError: the input nests too deeply to process"
    else:
        text = " ".join(str(exc).split())
        text = text if len(text) <= 200 else text[:200] + " ..."
        what = f"internal error: {type(exc).__name__}" + (f": {text}" if text else "")
    hint = "please report this" + ("" if debug else "; run with --debug for the traceback")
    return f"{what} ({hint})"


def _fail(command, message):
    prefix = f"derivekit {command}" if command else "derivekit"
    try:
        print(f"{prefix}: {message}", file=sys.stderr)
    except (OSError, ValueError):  # stderr itself is gone (a closed pipe)
        pass


def _parser():
    """The argument parser (argparse and derive.errors only: no SymPy, no NumPy)."""
    p = argparse.ArgumentParser(
        prog="derivekit", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Worked gradients, fast kernels and verdicts from one symbolic "
                    "definition.", epilog=EXAMPLES["derivekit"])
    p.add_argument("--version", action=_Version, nargs=0, help="print the version and exit")
    p.add_argument(DEBUG_FLAG, action="store_true",
                   help="print the traceback of an internal error")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, help, run, description=None):
        c = sub.add_parser(name, help=help, description=description or help[0].upper()
                           + help[1:] + ".", epilog=EXAMPLES[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        c.set_defaults(run=run)
        return c

    c = command("demo", "render the bundled examples (the main job)", cmd_demo)
    c.add_argument("-o", "--out", default="derivekit-demo", help="folder to write into")
    c.add_argument("--no-pdf", action="store_true", help="skip PDF even if pdflatex exists")

    c = command("grad", "differentiate one expression, node by node", cmd_grad)
    c.add_argument("expression")
    c.add_argument("--wrt", help="comma-separated names (default: every input)")
    c.add_argument("--at", help="values, e.g. x=1,y=1/2 (exact unless a float is given)")
    _output_options(c)

    c = command("solve", "solve a problem file (YAML)", cmd_solve)
    c.add_argument("problem")
    c.add_argument("--allow-import", action="store_true",
                   help="let a 'module: file.py:ClassName' key import and run that file "
                        "(your own PyTorch model)")
    _output_options(c)

    c = command("layer", "derive a layer's gradients and render them", cmd_layer)
    c.add_argument("name", nargs="?", help="layer name (omit to list them)")
    c.add_argument("--option", "-p", action="append", default=[], metavar="KEY=VALUE",
                   help="layer option, e.g. -p bias=false (repeatable)")
    c.add_argument("--all-steps", action="store_true",
                   help="print every step of a long sequence (by default a sequence of more "
                        "than five steps shows steps 1, 2, T-1 and T)")
    _output_options(c)

    c = command("check", "check hand-derived answers against a problem", cmd_check)
    c.add_argument("problem")
    c.add_argument("answers", help="ANSWERS.yaml, or a folder of them (one per student)")
    _output_options(c)

    add_exam_commands(command)

    # listed for --help; their arguments go to kernels' own parsers (see _dispatch)
    sub.add_parser("train", help="train a model: CONFIG.yaml or flags (train --help)")
    sub.add_parser("bench", help="speed against the installed peers (bench --help)")
    return p


EXAMPLES = {
    "derivekit": """examples:
  derivekit grad "(x1 + x2)**2 + x2*x3 - x3" --at x1=1,x2=2,x3=3
  derivekit solve examples/rnn.yaml -o rnn.pdf
  derivekit layer batchnorm
  derivekit check examples/rnn.yaml examples/check/rnn_answers.yaml
  derivekit exam examples/exam/midterm.yaml --roster examples/exam/roster.csv -o exam/
  derivekit grade examples/exam/midterm.yaml submissions/ -o marks/
  derivekit train examples/train/digits_mlp.yaml
  derivekit COMMAND --help          (the options and examples of one command)

exit codes: 0 ok, 1 a check failed or training diverged, 2 bad input,
3 internal error (run with --debug for the traceback), 130 interrupted,
141 the reader of the output left (derivekit layer | head -1).""",
    "demo": """examples:
  derivekit demo                          (into derivekit-demo/)
  derivekit demo -o /tmp/demo --no-pdf""",
    "grad": """examples:
  derivekit grad "(x1 + x2)**2 + x2*x3 - x3" --at x1=1,x2=2,x3=3
  derivekit grad "sigmoid(w*x + b)" --wrt w,b --at w=1/2,x=2,b=0
  derivekit grad "x*y" --at x=1,y=2 -o solution.pdf""",
    "solve": """examples:
  derivekit solve examples/rnn.yaml
  derivekit solve examples/rnn.yaml -o rnn.pdf        (or .tex .md .html .json)
  derivekit solve examples/rnn.yaml --format json""",
    "layer": """examples:
  derivekit layer                         (the list of layers)
  derivekit layer linear -p bias=false    (booleans: true/false, yes/no, 1/0)
  derivekit layer batchnorm -o batchnorm.pdf
  derivekit layer lstm_seq -p steps=20 --all-steps -o lstm.pdf""",
    "check": """examples:
  derivekit check examples/rnn.yaml examples/check/rnn_answers.yaml
  derivekit check examples/rnn.yaml examples/check/class/ -o marks/

A folder is marked as a class: one report per student and scores.csv; a step
left unanswered counts against the score and is named. A file that cannot be
read is named on stderr (exit code 2); the others are marked all the same.""",
    "exam": """examples:
  derivekit exam examples/exam/midterm.yaml -o exam/          (one paper, one key)
  derivekit exam examples/exam/midterm.yaml --roster examples/exam/roster.csv -o exam/

With a roster: papers/<id>.pdf, keys/<id>.pdf, master_key.pdf and variants.json
(every variant's parameters and answers). A student's variant depends only on the
exam's seed and the id, so a rerun writes the same papers. Every variant is drawn
and solved before anything is written; without pdflatex .tex files are written.""",
    "grade": """examples:
  derivekit grade examples/exam/midterm.yaml submissions/ -o marks/
  derivekit grade exam.yaml submissions/ -o marks/ --scheduler tcp://10.0.0.5:8786
  derivekit grade exam.yaml submissions/ -o marks/ --workers 0 --no-pdf

Writes marks/students/<id>/ (results.json for Gradescope, feedback.md,
feedback.pdf, record.json) as results arrive, then marks/scores.csv and lms.csv.
Runs on a local Dask cluster (one worker process per core) or on a running
scheduler; a rerun skips the students already graded unless --force. A file
that cannot be read is named on stderr (exit code 2); the others are marked.""",
}


class _Version(argparse.Action):
    """``--version``: looked up only when asked (importlib.metadata is not free)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"derivekit {version()}")
        parser.exit()


def version():
    """The installed version (importlib.metadata), else setup.cfg's beside the package."""
    from importlib import metadata

    try:
        return metadata.version("derivekit")
    except metadata.PackageNotFoundError:
        pass
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "setup.cfg"), encoding="utf-8")
    return cfg.get("metadata", "version", fallback="unknown")


def _output_options(c):
    c.add_argument("-o", "--out", help="write to FILE (.pdf .tex .md .html .json)")
    c.add_argument("--format", "-f", choices=FORMATS, help="print this format to stdout")


# -- commands ---------------------------------------------------------------------------
def cmd_grad(args):
    from derive.entry_points import grad

    at = _values(args.at) if args.at else None
    d = grad(args.expression, wrt=args.wrt, at=at, keys={"wrt": "--wrt", "values": "--at"})
    names = [n.name for n in d.nodes if n.definition is None]  # the expression's variables
    unknown = [k for k in at or {} if k not in names]
    if unknown:
        raise InputError(f"'{unknown[0]}' is not in the expression (its variables: "
                         f"{', '.join(names)})", where="--at")
    return _emit(d, args)


def cmd_solve(args):
    from derive.entry_points import solve

    return _emit(_one_or_all(solve(args.problem, allow_import=args.allow_import)), args)


def _one_or_all(derivations):
    """A one-problem file is rendered as that problem (not a list of one)."""
    return derivations[0] if len(derivations) == 1 else derivations


def cmd_layer(args):
    from derive.layers import catalog

    if not args.name:
        print("\n".join(catalog.layer_names()))
        return 0
    options = dict(_key_value(o, "--option") for o in args.option)
    return _emit(catalog.layer_derivation(args.name, all_steps=args.all_steps, **options),
                 args)


def cmd_check(args):
    import reports  # noqa: F401  (registers the renderer the reports are written with)

    from derive.verify import cli_check

    out, code = cli_check(args.problem, args.answers, out=args.out, fmt=args.format,
                          on_error=lambda line: _fail("check", f"error: {line}"))
    if out:
        print(json.dumps(out, indent=2, ensure_ascii=False) if isinstance(out, dict) else out)
    return code


def cmd_train(args):
    from kernels import cli as kcli

    return kcli.train_main(args.rest)


def cmd_bench(args):
    from kernels import bench

    return bench.main(args.rest)


def cmd_demo(args):
    """The main job on embedded data: worked solutions, a verdict and a training run."""
    folder = examples_folder()
    os.makedirs(args.out, exist_ok=True)
    print("1. Worked solutions (derive -> reports)")
    written = _demo_solutions(folder, args)
    print("2. A hand derivation checked (derive.verify)")
    written += _demo_check(folder, args.out)
    print("3. Training from the derivation (kernels, scikit-learn's digits)")
    _demo_train(folder, args.out)
    print(f"derivekit demo: wrote {written} documents and a training run to "
          f"{os.path.abspath(args.out)}")
    return 0


def _demo_solutions(folder, args):
    import shutil

    import reports

    from derive.entry_points import solve

    formats = ["md", "html", "json", "tex"]
    if shutil.which("pdflatex") and not args.no_pdf:
        formats.append("pdf")
    for name in DEMO_PROBLEMS:
        derivations = _one_or_all(solve(os.path.join(folder, name)))
        stem = os.path.splitext(os.path.basename(name))[0]
        for fmt in formats:
            reports.write(derivations, os.path.join(args.out, f"{stem}.{fmt}"))
        d = derivations if not isinstance(derivations, list) else derivations[0]
        grads = ", ".join(f"d{d.output}/d{k} = {g.value}" for k, g in d.gradients.items()
                          if g.value is not None)
        print(f"   {d.title}: {grads}")
    if "pdf" not in formats:
        print("   (no PDF: pdflatex is not installed; the .tex files compile with it)")
    return len(DEMO_PROBLEMS) * len(formats)


def _demo_check(folder, out):
    import reports  # noqa: F401  (registers the renderer the report is written with)

    from derive.verify import cli_check

    text, _ = cli_check(os.path.join(folder, "rnn.yaml"),
                        os.path.join(folder, "check", "rnn_answers.yaml"),
                        out=os.path.join(out, "rnn_check.md"))
    print("   " + text.splitlines()[0])
    return 1


def _demo_train(folder, out):
    from kernels import cli as kcli

    kcli.train_main([os.path.join(folder, "train", "digits_mlp.yaml"),
                     "--out", os.path.join(out, "digits-mlp"), "--no-progress"])


DEMO_PROBLEMS = ["rnn.yaml", "decompose.yaml", "bce_sigmoid.yaml", "mlp_2_2_1.yaml"]


def examples_folder():
    """The examples/ folder: beside the package (a checkout) or installed data files."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for folder in (os.path.join(here, "examples"),
                   os.path.join(sysconfig.get_path("data"), "share", "derivekit", "examples")):
        if os.path.isfile(os.path.join(folder, DEMO_PROBLEMS[0])):
            return folder
    raise InputError("bundled examples not found (reinstall derivekit)")


PASS_THROUGH = {"train": cmd_train, "bench": cmd_bench}


# -- output -----------------------------------------------------------------------------
def _emit(derivation, args):
    """Write to -o FILE, print a format, or print a short text summary."""
    import reports

    if args.out:
        path = reports.write(derivation, args.out)
        print(f"wrote {path}")
    elif args.format and args.format != "text":
        print(reports.render(derivation, args.format))
    else:
        from reports.readback import text_readback

        for one in derivation if isinstance(derivation, list) else [derivation]:
            text_readback(one)  # printed = computed: the text is read back before it is shown
        print(summary(derivation))
    return 0


def summary(derivations):
    """Plain text for a terminal: each gradient as expression and value."""
    lines = []
    for d in derivations if isinstance(derivations, list) else [derivations]:
        lines.append(d.title)
        for name, g in d.gradients.items():
            value = "" if g.value is None else f" = {_short(g.value)}"
            lhs = f"{name}_bar" if g.shape else f"d{d.output}/d{name}"
            lines.append(f"  {lhs} = {_text(g.expression)}{value}")
        if d.result is not None and not d.gradients:
            lines.append(f"  result: {_text(d.result)}")
        lines.extend(f"  note: {n}" for n in d.notes)
    return "\n".join(lines)


def _text(expr):
    """Plain text of an expression: Σ, δ, H(x), @ and .T (reports.text_printer)."""
    from reports.text_printer import text

    return text(expr)


def _short(value):
    text = str(value)
    if len(text) > 200:
        return "(array; use --format or -o to see it)"
    if getattr(value, "is_number", False) and not value.is_Rational and not value.is_Float:
        text += f" ≈ {float(value.evalf(20)):.6g}"  # an exact irrational value, and its size
    return text


def _values(text):
    from derive.scalar.parse import parse_number

    return {k: parse_number(v, where=f"--at {k}")
            for k, v in (_key_value(p, "--at") for p in text.split(",") if p.strip())}


def _key_value(text, flag):
    from derive.scalar.parse import check_identifier

    if "=" not in text:
        raise InputError(f"expected KEY=VALUE, got {text!r}", where=flag)
    key, value = (s.strip() for s in text.split("=", 1))
    return check_identifier(key, flag), value


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
