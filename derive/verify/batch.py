"""Answer files and classes: ``derivekit check PROBLEM ANSWERS`` and batch mode.

An answers file is YAML (read by :mod:`derive.yamlio`: safe and bounded), either a plain
mapping ``node: answer`` or ``{student: NAME, answers: {node: answer}}`` (``problem:``
picks a document of a multi-document problem file, by number from 1 or by title)::

    student: Ada
    answers:
      t: w
      r: w**2
      w: u3 + 2*w*u2 + 3*w**2*u1

A folder of such files (one per student) is checked in one go: one report per student
and ``scores.csv`` (file, student, score, correct, total, first_wrong, error). One bad
file becomes a row with its error; it never stops the class.
"""
from __future__ import annotations

import csv
import json
import os

from derive import yamlio
from derive.derivation import renderer
from derive.errors import DeriveError, InputError
from derive.verify.scalar.scalar_table import Report

MAX_BYTES = 1_000_000
ANSWER_KEYS = {"student", "answers", "problem"}
FORMATS = ("md", "html", "tex", "pdf", "json")


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


def check_file(derivations, path):
    """The Report of one answers file against the problem's derivation(s)."""
    from derive.verify import check_table

    answers, student, choice = read_answers(path)
    d = _pick(derivations, choice, os.fspath(path))
    student = student or os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return check_table(d, answers, student=student)


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


def check_folder(problem, folder, out_dir=None, fmt="md"):
    """Check every answers file in ``folder``; write ``scores.csv`` and one report each.

    Parameters
    ----------
    problem : path or list of Derivation
    folder : path
    out_dir : path, optional
        Where the reports and ``scores.csv`` go (default ``<folder>/reports``).
    fmt : {"md", "html", "tex", "pdf", "json"}

    Returns
    -------
    list of dict
        One row per file, as written to the CSV.
    """
    derivations = _derivations(problem)
    out_dir = out_dir or os.path.join(folder, "reports")
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for path in answer_files(folder):
        stem = os.path.splitext(os.path.basename(path))[0]
        row = {"file": os.path.basename(path), "student": stem, "score": 0.0, "correct": 0,
               "total": 0, "first_wrong": "", "error": ""}
        try:
            report = check_file(derivations, path)
            row.update(student=report.student, score=round(report.score, 4),
                       correct=report.correct, total=report.total,
                       first_wrong=report.first_wrong or "")
            write_report(report, os.path.join(out_dir, f"{stem}.{fmt}"), fmt)
        except DeriveError as exc:  # a bad file, or a report that cannot be written:
            row["error"] = str(exc)  # the row keeps any score already found
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


def cli_check(problem, answers, out=None, fmt=None):
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

    Returns
    -------
    (output, exit_code)
        ``output`` is text to print, or a dict when ``fmt == "json"``. Exit code 0 when
        every answer is correct, 1 when some answer is wrong or unreadable; batch mode
        returns 0 once the class is checked (scores are in the CSV). Malformed problem or
        answers files raise :class:`~derive.errors.DeriveError` (one line, with where).
    """
    if fmt == "text":
        fmt = None
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} (use text, {', '.join(FORMATS)})")
    derivations = _derivations(problem)
    if os.path.isdir(answers):
        rows = check_folder(derivations, answers, out, fmt or "md")
        summary = {"files": len(rows), "reports": out or os.path.join(answers, "reports"),
                   "scores": rows}
        if fmt == "json":
            return summary, 0
        return _batch_text(rows, summary["reports"]), 0
    report = check_file(derivations, answers)
    if out is not None:
        write_report(report, out)
    code = 0 if report else 1
    return (report.to_dict() if fmt == "json" else str(report)), code


def _batch_text(rows, out_dir):
    lines = [f"{r['file']}: " + (f"error: {r['error']}" if r["error"] else
                                 f"{r['correct']}/{r['total']} (score {r['score']:.2f})")
             for r in rows]
    lines.append(f"{len(rows)} answer files checked; reports and scores.csv in {out_dir}")
    return "\n".join(lines)


__all__ = ["cli_check", "check_folder", "check_file", "read_answers", "write_report",
           "Report"]
