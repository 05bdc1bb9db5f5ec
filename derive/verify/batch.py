"""Answer files and classes: ``derivekit check PROBLEM ANSWERS`` and batch mode.

An answers file is YAML (read by :mod:`derive.yamlio`: safe and bounded), either a plain
mapping ``node: answer`` or ``{student: NAME, answers: {node: answer}}`` (``problem:``
picks a document of a multi-document problem file, by number from 1 or by title)::

    student: Ada
    answers:
      t: w
      r: w**2
      w: u3 + 2*w*u2 + 3*w**2*u1

A folder of such files (one per student) is marked in one go: one report per student
and ``scores.csv`` (file, student, score, correct, total, unanswered, first_wrong, error).
A step the student left out is *unanswered*: named in the row and the report and counted
in the total, so 2 right of 6 steps scores 2/6, not 2/4. One bad file becomes a row with
its error (and a line saying which file); it never stops the class.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field, fields

from derive import yamlio
from derive.derivation import renderer
from derive.errors import DeriveError, InputError
from derive.verify.scalar.scalar_table import Report

MAX_BYTES = 1_000_000
ANSWER_KEYS = {"student", "answers", "problem"}
FORMATS = ("md", "html", "tex", "pdf", "json")
EXIT_UNREADABLE = 2  # batch mode: some answers file could not be read (bad input)


def read_answers(path):
    """``(answers, student, problem)`` from an answers file; InputError naming the file."""
    where = os.fspath(path)
    try:
        if os.path.getsize(where) > MAX_BYTES:
            raise InputError(f"answers file is larger than {MAX_BYTES} bytes", where=where)
    except OSError as exc:
        raise InputError(f"cannot read answers file ({exc.strerror})", where=where) from None
    data = yamlio.load(where, "answers file")
    if not isinstance(data, dict) or not data:
        raise InputError("expected a mapping of node: answer", where=where)
    if "answers" in data and set(data) <= ANSWER_KEYS:
        answers = data["answers"]
        if not isinstance(answers, dict):
            raise InputError("'answers' must be a mapping of node: answer", where=where)
        student = data.get("student")
        return answers, None if student is None else str(student), data.get("problem")
    return data, None, None


def _pick(derivations, choice, where):
    if choice is None:
        return derivations[0]
    if isinstance(choice, int) and not isinstance(choice, bool) \
            and 1 <= choice <= len(derivations):
        return derivations[choice - 1]
    for d in derivations:
        if d.title == choice:
            return d
    raise InputError(f"problem {choice!r} is not in the problem file (give 1.."
                     f"{len(derivations)} or a title)", where=f"{where}: problem")


def check_file(derivations, path, mark=False):
    """The Report of one answers file against the problem's derivation(s).

    With ``mark`` (marking a class) it is a :class:`MarkedReport`: the steps the file
    leaves out are named and counted; without it only the steps answered are judged (a
    student checking the steps they wrote).
    """
    from derive.verify import check_table

    answers, student, choice = read_answers(path)
    d = _pick(derivations, choice, os.fspath(path))
    student = student or os.path.splitext(os.path.basename(os.fspath(path)))[0]
    report = check_table(d, answers, student=student)
    if not mark:
        return report
    answered = {v.node for v in report.verdicts}
    return MarkedReport(**{f.name: getattr(report, f.name) for f in fields(report)},
                        unanswered=[n for n in steps(d) if n not in answered])


def steps(d):
    """The steps of a derivation's adjoint table, in sweep order: the adjoint of every
    inner node but the output, and of every name the gradient is taken with respect to."""
    inner = {n.name for n in d.nodes if n.role == "node"}
    return [a.name for a in d.adjoints
            if a.name != d.output and (a.name in inner or a.name in d.wrt)]


@dataclass(repr=False)
class MarkedReport(Report):
    """A Report that also counts the steps left unanswered (``unanswered``, sweep order):
    they are in ``total`` (and so lower ``score``), in ``to_dict()`` and in the text and
    document, and a report with one is not all correct."""

    unanswered: list = field(default_factory=list)

    @property
    def total(self):
        return len(self.verdicts) + len(self.unanswered)

    def to_dict(self):
        return {**super().to_dict(), "unanswered": list(self.unanswered)}

    def __str__(self):
        text = super().__str__()
        if self.unanswered:
            text += "\nunanswered: " + ", ".join(self.unanswered)
        return text

    def derivation(self):
        from derive.derivation import Section

        d = super().derivation()
        if self.unanswered:
            d.sections.insert(1, Section("Unanswered", text="Not answered: " + ", ".join(
                self.unanswered) + ". Each counts as a step not correct."))
            d.result = list(d.result or []) + [{"node": n, "verdict": "unanswered",
                                                "how": ""} for n in self.unanswered]
        return d


def answer_files(folder):
    """The answers files of a folder (``*.yaml``, ``*.yml``), sorted by name."""
    names = sorted(f for f in os.listdir(folder) if f.lower().endswith((".yaml", ".yml")))
    return [os.path.join(folder, f) for f in names]


def write_report(report, path, fmt=None):
    """Write a Report: its own JSON directly, other formats through the registered
    ``write`` renderer (:func:`derive.derivation.renderer`: reports, once imported)."""
    fmt = (fmt or os.path.splitext(os.fspath(path))[1].lstrip(".") or "md").lower()
    if fmt == "json":
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(report.to_dict(), fh, indent=2)
            fh.write("\n")
        return path
    renderer("write")(report.derivation(), path, fmt)
    return path


def check_folder(problem, folder, out_dir=None, fmt="md", on_error=None):
    """Mark every answers file in ``folder``; write ``scores.csv`` and one report each.

    Parameters
    ----------
    problem : path or list of Derivation
    folder : path
    out_dir : path, optional
        Where the reports and ``scores.csv`` go (default ``<folder>/reports``).
    fmt : {"md", "html", "tex", "pdf", "json"}
    on_error : callable, optional
        Called with one line (naming the file) for each file that could not be marked.

    Returns
    -------
    list of dict
        One row per file, as written to the CSV (``unanswered``: the steps left out,
        space-separated; ``error``: why a file could not be marked).
    """
    derivations = _derivations(problem)
    out_dir = out_dir or os.path.join(folder, "reports")
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for path in answer_files(folder):
        stem = os.path.splitext(os.path.basename(path))[0]
        row = {"file": os.path.basename(path), "student": stem, "score": 0.0, "correct": 0,
               "total": 0, "unanswered": "", "first_wrong": "", "error": ""}
        try:
            report = check_file(derivations, path, mark=True)
            row.update(student=report.student, score=round(report.score, 4),
                       correct=report.correct, total=report.total,
                       unanswered=" ".join(report.unanswered),
                       first_wrong=report.first_wrong or "")
            write_report(report, os.path.join(out_dir, f"{stem}.{fmt}"), fmt)
        except DeriveError as exc:  # a bad file, or a report that cannot be written:
            text = str(exc)         # the row keeps any score already found
            row["error"] = text if path in text else f"{path}: {text}"
            if on_error is not None:
                on_error(row["error"])
        rows.append(row)
    with open(os.path.join(out_dir, "scores.csv"), "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["file"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def _derivations(problem):
    if isinstance(problem, list):
        return problem
    from derive.entry_points import solve

    return solve(problem)


def cli_check(problem, answers, out=None, fmt=None, on_error=None):
    """What ``derivekit check PROBLEM ANSWERS [-o OUT] [--format FMT]`` runs.

    Parameters
    ----------
    problem : path
        The problem file (solved once).
    answers : path
        An answers file, or a folder of them (batch mode).
    out : path, optional
        One file: the report, format from the suffix (``.json`` is the report's own JSON,
        ``.md`` / ``.html`` / ``.tex`` / ``.pdf`` go through the registered renderer,
        reports). A folder:
        the directory for the reports and ``scores.csv`` (default ``ANSWERS/reports``).
    fmt : {"text", "json", "md", "html", "tex", "pdf"}, optional
        ``json``: return the JSON dict instead of text (default: text). In batch mode
        also the format of each student's report (default md).
    on_error : callable, optional
        Batch mode: called with one line naming each file that could not be marked.

    Returns
    -------
    (output, exit_code)
        ``output`` is text to print, or a dict when ``fmt == "json"``. Exit code 0 when
        every answer is correct, 1 when some answer is wrong or unreadable; batch mode
        returns 0 once the class is marked (scores are in the CSV), 2 when some file
        could not be read (the others are marked all the same). A malformed problem
        file, or the one answers file, raises :class:`~derive.errors.DeriveError`.
    """
    if fmt == "text":
        fmt = None
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} (use text, {', '.join(FORMATS)})")
    derivations = _derivations(problem)
    if os.path.isdir(answers):
        rows = check_folder(derivations, answers, out, fmt or "md", on_error=on_error)
        summary = {"files": len(rows), "reports": out or os.path.join(answers, "reports"),
                   "scores": rows}
        code = EXIT_UNREADABLE if any(r["error"] for r in rows) else 0
        if fmt == "json":
            return summary, code
        return _batch_text(rows, summary["reports"], said=on_error is not None), code
    report = check_file(derivations, answers)
    if out is not None:
        write_report(report, out)
    code = 0 if report else 1
    return (report.to_dict() if fmt == "json" else str(report)), code


def _batch_text(rows, out_dir, said=False):
    """The class as text; an unreadable file's reason only when not ``said`` already."""
    lines = []
    for r in rows:
        if r["error"]:
            lines.append(f"{r['file']}: not marked (could not be read" +
                         ("" if said else f": {r['error']}") + ")")
            continue
        line = f"{r['file']}: {r['correct']}/{r['total']} (score {r['score']:.2f})"
        if r["unanswered"]:
            line += f"; unanswered: {r['unanswered'].replace(' ', ', ')}"
        lines.append(line)
    bad = sum(1 for r in rows if r["error"])
    lines.append(f"{len(rows)} answer files checked" +
                 (f", {bad} could not be read" if bad else "") +
                 f"; reports and scores.csv in {out_dir}")
    return "\n".join(lines)


__all__ = ["cli_check", "check_folder", "check_file", "read_answers", "write_report",
           "steps", "Report", "MarkedReport"]
