"""The ``derivekit`` command line (also ``python -m derive``).

This is the one module that wires derive/, reports/ and kernels/ together (no other
module of derive imports either; tests/test_imports.py checks it); it imports them lazily
so ``derivekit grad`` does not pay for numba. Every command prints a clear
one-line error and exits non-zero on bad input; no text given to it is ever executed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import sysconfig

from derive.errors import DeriveError, InputError

FORMATS = ("text", "md", "tex", "html", "json")
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
DEBUG_FLAG = "--debug"


def main(argv=None):
    """Run the CLI; returns the exit code.

    0 ok, 1 a check failed, 2 bad input, 3 an internal error (a bug, or memory or
    recursion exhausted), 130 interrupted. Every failure is one line on stderr; the
    traceback of an internal error is printed only with ``--debug``.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = DEBUG_FLAG in argv
    argv = [a for a in argv if a != DEBUG_FLAG]
    command = argv[0] if argv and not argv[0].startswith("-") else None
    try:
        return _dispatch(argv)
    except BrokenPipeError:  # the reader (| head) left: stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except DeriveError as exc:
        _fail(command, f"error: {exc}")
        return EXIT_BAD_INPUT
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
    p = argparse.ArgumentParser(prog="derivekit", description="Worked gradients, fast "
                                "kernels and verdicts from one symbolic definition.")
    p.add_argument(DEBUG_FLAG, action="store_true",
                   help="print the traceback of an internal error")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("demo", help="render the bundled examples (the main job)")
    c.add_argument("-o", "--out", default="derivekit-demo", help="folder to write into")
    c.add_argument("--no-pdf", action="store_true", help="skip PDF even if pdflatex exists")
    c.set_defaults(run=cmd_demo)

    c = sub.add_parser("grad", help="differentiate one expression, node by node")
    c.add_argument("expression")
    c.add_argument("--wrt", help="comma-separated names (default: every input)")
    c.add_argument("--at", help="values, e.g. x=1,y=1/2 (exact unless a float is given)")
    _output_options(c)
    c.set_defaults(run=cmd_grad)

    c = sub.add_parser("solve", help="solve a problem file (YAML)")
    c.add_argument("problem")
    _output_options(c)
    c.set_defaults(run=cmd_solve)

    c = sub.add_parser("layer", help="derive a layer's gradients and render them")
    c.add_argument("name", nargs="?", help="layer name (omit to list them)")
    c.add_argument("--option", "-p", action="append", default=[], metavar="KEY=VALUE",
                   help="layer option, e.g. -p bias=false (repeatable)")
    _output_options(c)
    c.set_defaults(run=cmd_layer)

    c = sub.add_parser("check", help="check hand-derived answers against a problem")
    c.add_argument("problem")
    c.add_argument("answers", help="ANSWERS.yaml, or a folder of them (one per student)")
    _output_options(c)
    c.set_defaults(run=cmd_check)

    # listed for --help; their arguments go to kernels' own parsers (see main)
    sub.add_parser("train", help="train a model: CONFIG.yaml or flags (train --help)")
    sub.add_parser("bench", help="speed against the installed peers (bench --help)")
    return p


def _output_options(c):
    c.add_argument("-o", "--out", help="write to FILE (.pdf .tex .md .html .json)")
    c.add_argument("--format", "-f", choices=FORMATS, help="print this format to stdout")


# -- commands ---------------------------------------------------------------------------
def cmd_grad(args):
    from derive.entry_points import grad

    d = grad(args.expression, wrt=args.wrt, at=_values(args.at) if args.at else None,
             keys={"wrt": "--wrt", "values": "--at"})
    return _emit(d, args)


def cmd_solve(args):
    from derive.entry_points import solve

    return _emit(_one_or_all(solve(args.problem)), args)


def _one_or_all(derivations):
    """A one-problem file is rendered as that problem (not a list of one)."""
    return derivations[0] if len(derivations) == 1 else derivations


def cmd_layer(args):
    from derive.layers import catalog

    if not args.name:
        print("\n".join(catalog.layer_names()))
        return 0
    options = dict(_key_value(o, "--option") for o in args.option)
    return _emit(catalog.layer_derivation(args.name, **options), args)


def cmd_check(args):
    import reports  # noqa: F401  (registers the renderer the reports are written with)

    from derive.verify import cli_check

    out, code = cli_check(args.problem, args.answers, out=args.out, fmt=args.format)
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
