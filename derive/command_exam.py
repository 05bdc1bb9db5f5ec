"""``derivekit exam`` and ``derivekit grade``: their arguments and what they run.

Kept apart from :mod:`derive.command_line` (which builds the parser for every command and
must stay light: argparse only); the exam package is imported when a command runs.
"""
from __future__ import annotations

import json
import os


def add_exam_commands(command):
    """Register ``exam`` and ``grade`` with ``command(name, help, run)`` (the parser's)."""
    c = command("exam", "per-student exam papers and answer keys from an exam file",
                cmd_exam)
    c.add_argument("exam", help="EXAM.yaml: problems, points, prompts, blanks, parameters")
    c.add_argument("--roster", help="CSV with an 'id' column: one variant per student "
                                    "(without it: one paper and one key)")
    c.add_argument("-o", "--out", required=True, help="folder to write into")
    c.add_argument("--no-pdf", action="store_true",
                   help="write .tex even if pdflatex exists")
    _cluster_options(c, "make the papers")
    c.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    c = command("grade", "mark every submission against the student's own exam variant",
                cmd_grade)
    c.add_argument("exam", help="EXAM.yaml the papers were made from")
    c.add_argument("submissions", help="folder of submissions (.yaml/.yml/.csv, one per "
                                       "student)")
    c.add_argument("-o", "--out", required=True, help="marks folder to write into")
    c.add_argument("--roster", help="CSV with an 'id' column: other ids score 0, named")
    _cluster_options(c, "grade")
    c.add_argument("--force", action="store_true",
                   help="grade again the files already graded (a rerun skips them)")
    c.add_argument("--batch", type=int, metavar="N",
                   help="submissions per Dask task (default: up to 50)")
    c.add_argument("--no-pdf", action="store_true",
                   help="feedback.md only, no feedback.pdf per student")
    c.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    c.add_argument("--format", "-f", choices=("text", "json"),
                   help="print the summary as text or JSON")


def _cluster_options(c, what):
    c.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help=f"{what} on this running Dask scheduler (default: a local cluster)")
    c.add_argument("--workers", type=int, metavar="N",
                   help="worker processes of the local cluster (default: one per core; "
                        "0: in this process, without Dask)")


def cmd_exam(args):
    import shutil

    import reports  # noqa: F401  (registers the renderer the papers are written with)

    from derive.exam.run import make_papers

    fmt = "pdf" if shutil.which("pdflatex") and not args.no_pdf else "tex"
    written = make_papers(args.exam, args.roster, args.out, fmt, scheduler=args.scheduler,
                          workers=args.workers, progress=not args.quiet)
    if fmt == "tex" and not args.no_pdf:
        print("(no PDF: pdflatex is not installed; the .tex files compile with it)")
    papers = sum(1 for p in written if os.path.basename(os.path.dirname(p)) == "papers")
    students = f"{papers} students" if args.roster else "one variant"
    print(f"wrote {len(written)} files for {students} to {os.path.abspath(args.out)}")
    return 0


def cmd_grade(args):
    from derive.command_line import EXIT_BAD_INPUT, _fail
    from derive.exam.run import grade_class

    formats = ("md",) if args.no_pdf else ("md", "pdf")
    if "pdf" in formats:
        import reports  # noqa: F401  (registers the renderer feedback.pdf is written with)
    run = grade_class(args.exam, args.submissions, args.out, scheduler=args.scheduler,
                      workers=args.workers, force=args.force, batch=args.batch,
                      formats=formats, progress=not args.quiet and args.format != "json",
                      roster=args.roster)
    for line in run.errors:
        _fail("grade", f"error: {line}")
    if args.format == "json":
        print(json.dumps({"graded": run.graded, "skipped": run.skipped,
                          "submissions": run.submissions, "errors": run.errors,
                          "scores": run.scores, "seconds": round(run.seconds, 3),
                          "workers": run.workers}, indent=2, ensure_ascii=False))
    else:
        where = "in this process" if run.workers == 0 else \
            f"on {run.workers} Dask worker{'s' if run.workers != 1 else ''}"
        skipped = f"; {run.skipped} skipped, already graded (--force grades them again)" \
            if run.skipped else ""
        if run.graded or not run.skipped:
            print(f"graded {run.graded} of {run.submissions} submissions {where} in "
                  f"{run.seconds:.1f} s{skipped}; scores: {run.scores}")
        else:
            print(f"nothing to grade: all {run.skipped} submissions are graded already "
                  f"(--force grades them again); scores: {run.scores}")
    return EXIT_BAD_INPUT if run.errors else 0
