"""What grading writes: per-student feedback and results.json, and the class's scores.csv.

Layout of an output folder (a rerun skips the students whose ``record.json`` exists)::

    MARKS/scores.csv                   student, file, score, max_score, p1..pN, first_wrong,
                                       diagnosis, error (rebuilt from every record.json)
    MARKS/lms.csv                      student, score, max_score, percent (any LMS import)
    MARKS/students/<id>/results.json   Gradescope autograder results (score, tests[])
    MARKS/students/<id>/feedback.md    per blank: given, expected, verdict, points
    MARKS/students/<id>/feedback.pdf   the same through reports (feedback.tex without pdflatex)
    MARKS/students/<id>/record.json    StudentResult.to_dict(), written last

Every file is written atomically (a temporary file renamed over it). Student text is data:
in Markdown it is escaped, in the PDF it reaches TeX only as escaped prose.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile

from derive.errors import DeriveError, InputError
from derive.exam.roster import SAFE_ID

STUDENTS = "students"
RECORD = "record.json"
VISIBILITY = "visible"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>$~])")


def num(x):
    """A score as written everywhere (CSV, JSON output, feedback): up to 4 decimals."""
    return f"{float(x):.4f}".rstrip("0").rstrip(".")


def _record(result):
    return result if isinstance(result, dict) else result.to_dict()


# -- Gradescope ------------------------------------------------------------------------------
def gradescope(record):
    """The Gradescope ``results.json`` of a record: one test per blank, ``score`` = their
    sum (an unreadable file is one test scoring 0 with the reason)."""
    tests = []
    for p in record["problems"]:
        for k, b in enumerate(p["blanks"], 1):
            tests.append({
                "name": f"Problem {p['number']}: {_short(b['label'])}",
                "number": f"{p['number']}.{k}",
                "score": b["points"], "max_score": b["max_points"],
                "status": "passed" if b["points"] >= b["max_points"] else "failed",
                "output": _blank_line(b), "visibility": VISIBILITY})
    if record.get("error"):
        tests.append({"name": "Submission readable", "number": "0", "score": 0.0,
                      "max_score": 0.0 if tests else record["max_score"],
                      "status": "failed", "output": record["error"],
                      "visibility": VISIBILITY})
    total = round(sum(t["score"] for t in tests), 4)
    output = f"{num(total)} of {num(record['max_score'])} points."
    if record.get("error"):
        output += " " + record["error"]
    return {"score": total, "output": output, "visibility": VISIBILITY,
            "stdout_visibility": "hidden", "tests": tests}


#: The part of the Gradescope results.json schema written here (types of each key).
GRADESCOPE_SCHEMA = {
    "top": {"score": (int, float), "output": str, "visibility": str,
            "stdout_visibility": str, "tests": list},
    "test": {"name": str, "number": str, "score": (int, float), "max_score": (int, float),
             "status": str, "output": str, "visibility": str},
    "visibility": {"hidden", "after_due_date", "after_published", "visible"},
    "status": {"passed", "failed"},
}


def _short(text):
    text = _CONTROL.sub(" ", str(text))
    return text if len(text) <= 80 else text[:77] + "..."


def _blank_line(b):
    """One line for people about a marked blank (plain text)."""
    given = "(not answered)" if b["answer"] is None else _short(b["answer"])
    head = f"{b['verdict']}"
    if b["carried_forward"]:
        head = "correct (error carried forward)"
    elif b["diagnosis"]:
        head += f" [{b['diagnosis']}]"
    text = f"{head}: given {given}, expected {_short(b['expected'])}; " \
           f"{num(b['points'])}/{num(b['max_points'])} points"
    if b["output"] and b["verdict"] != "unanswered":
        text += f". {_short(b['output'])}"
    return text


# -- feedback --------------------------------------------------------------------------------
def _md(text):
    """User text for Markdown: control characters removed, every markup character escaped."""
    return _MD_SPECIAL.sub(r"\\\1", _CONTROL.sub(" ", str(text)))


def first_wrong(record):
    for p in record["problems"]:
        for b in p["blanks"]:
            if b["points"] < b["max_points"]:
                return p, b
    return None


def feedback_markdown(record, title=""):
    """The student's feedback as Markdown."""
    from derive.verify.verdict import EXPLAIN

    lines = [f"# Feedback{': ' + _md(title) if title else ''}", "",
             f"Student: {_md(record['student'] or '(unknown)')}  ",
             f"Submission: {_md(record['file'])}  ",
             f"Score: **{num(record['score'])} / {num(record['max_score'])}**", ""]
    if record.get("error"):
        lines += [f"**Not graded:** {_md(record['error'])}", ""]
    found = first_wrong(record)
    if found and not record.get("error"):
        p, b = found
        why = EXPLAIN.get(b["diagnosis"] or "", "") if b["diagnosis"] != "other" else ""
        lines += [f"First wrong step: problem {p['number']}, {_md(b['label'])} "
                  f"({_md(b['verdict'])}"
                  f"{', ' + _md(b['diagnosis'].replace('_', ' ')) if b['diagnosis'] else ''})"
                  f"{': ' + _md(why) if why else ''}.", ""]
    for p in record["problems"]:
        lines += [f"## Problem {p['number']}: {_md(p['title'])} ({num(p['score'])} / "
                  f"{num(p['points'])})", "",
                  "| blank | your answer | expected | verdict | points |",
                  "|---|---|---|---|---|"]
        for b in p["blanks"]:
            verdict = b["verdict"] + (" (carried forward)" if b["carried_forward"] else "")
            if b["diagnosis"]:
                verdict += f", {b['diagnosis'].replace('_', ' ')}"
            given = "" if b["answer"] is None else _md(_short(b["answer"]))
            lines.append(f"| {_md(b['label'])} | {given} | {_md(b['expected'])} | "
                         f"{_md(verdict)} | {num(b['points'])} / {num(b['max_points'])} |")
        notes = [b for b in p["blanks"] if b["output"] and b["verdict"] != "correct"
                 or b["carried_forward"]]
        if notes:
            lines.append("")
            lines += [f"- {_md(b['label'])}: {_md(_short_long(b['output']))}" for b in notes]
        lines.append("")
    for note in record.get("notes", []):
        lines.append(f"- Note: {_md(note)}")
    return "\n".join(lines).rstrip() + "\n"


def _short_long(text):
    text = _CONTROL.sub(" ", str(text))
    return text if len(text) <= 300 else text[:297] + "..."


def feedback_derivation(record, title=""):
    """The feedback as a Derivation (kind "check") for the reports' PDF."""
    from derive.derivation import Derivation, Section
    from derive.verify.check_document import plain

    who = plain(record["student"] or record["file"])
    d = Derivation(title=f"Feedback: {plain(title) + ', ' if title else ''}{who}",
                   kind="check", meta={"grade": {"score": record["score"]}})
    summary = f"Score: {num(record['score'])} of {num(record['max_score'])} points."
    if record.get("error"):
        summary += f" Not graded: {plain(record['error'])}."
    found = first_wrong(record)
    if found and not record.get("error"):
        p, b = found
        kind = f", {b['diagnosis'].replace('_', ' ')}" if b["diagnosis"] else ""
        summary += (f" First wrong step: problem {p['number']}, {plain(b['label'])} "
                    f"({b['verdict']}{kind}).")
    d.sections.append(Section("Score", text=summary))
    for p in record["problems"]:
        marked = [b for b in p["blanks"] if b["verdict"] != "correct" or b["carried_forward"]]
        text = " ".join(f"{plain(b['label'])}: {plain(_blank_line(b))}." for b in marked) \
            or "Every blank is correct."
        d.sections.append(Section(f"Problem {p['number']}: {plain(p['title'])} "
                                  f"({num(p['score'])} of {num(p['points'])})", text=text))
    d.result = [{"problem": p["number"], "blank": plain(b["label"]),
                 "answer": plain("" if b["answer"] is None else _short(b["answer"])),
                 "expected": plain(_short(b["expected"])),
                 "verdict": b["verdict"] + (" (carried forward)" if b["carried_forward"]
                                            else ""),
                 "points": f"{num(b['points'])}/{num(b['max_points'])}"}
                for p in record["problems"] for b in p["blanks"]]
    return d


def _pdf_or_tex(record, title):
    """``("feedback.pdf", bytes)``, or ``("feedback.tex", bytes)`` without pdflatex (as
    ``derivekit exam`` writes .tex then)."""
    from derive.derivation import renderer

    write = renderer("write")
    d = feedback_derivation(record, title)
    with tempfile.TemporaryDirectory(prefix="derivekit-feedback-") as tmp:
        for name in ("feedback.pdf", "feedback.tex"):
            path = os.path.join(tmp, name)
            try:
                write(d, path, name.rsplit(".", 1)[1])
            except DeriveError:
                if name.endswith(".tex"):
                    raise
                continue
            with open(path, "rb") as fh:
                return name, fh.read()
    raise DeriveError("feedback could not be written")  # not reached


def student_files(result, formats=("md", "pdf")):
    """``{relative name: bytes}`` for one student: results.json, feedback.md and
    feedback.pdf (each only when its format is asked; pdf falls back to feedback.tex), and
    record.json (which :func:`write_student` writes last). Made where the grading ran (a
    Dask worker), so the one process writing a class only writes bytes."""
    record = _record(result)
    title = record.get("exam", "")
    files = {"results.json": _json_bytes(gradescope(record)), RECORD: _json_bytes(record)}
    if "md" in formats:
        files["feedback.md"] = feedback_markdown(record, title).encode("utf-8")
    if "pdf" in formats:
        name, data = _pdf_or_tex(record, title)
        files[name] = data
    return files


def _json_bytes(data):
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# -- the output folder -----------------------------------------------------------------------
def student_folder(out_dir, student):
    """``out_dir/students/<student>``, the id checked before it becomes a folder name."""
    if not isinstance(student, str) or not SAFE_ID.fullmatch(student) or ".." in student:
        raise InputError(f"student id {str(student)!r:.40} cannot be a folder name",
                         where="student")
    return os.path.join(out_dir, STUDENTS, student)


def replace_atomically(path, data, folder_made=False, mask=None):
    """Write ``data`` to ``path`` through a temporary file renamed over it (``folder_made``:
    the caller made the folder; ``mask``: the umask, when the caller read it already)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not folder_made:
        os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if mask is None:
            mask = _umask()
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_student(out_dir, result_dict, files):
    """Write ``files`` to ``out_dir/students/<student>/``, then ``record.json`` last (the
    bytes in ``files`` under that name, else ``result_dict`` as JSON)."""
    folder = student_folder(out_dir, result_dict["student"])
    names = [n for n in files if n != RECORD]
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9_-]+\.[a-z]+", name):
            raise InputError(f"refusing the file name {name!r:.60}", where=folder)
    os.makedirs(folder, exist_ok=True)
    mask = _umask()
    for name in names:
        replace_atomically(os.path.join(folder, name), files[name], True, mask)
    record = files.get(RECORD) or _json_bytes(result_dict)
    replace_atomically(os.path.join(folder, RECORD), record, True, mask)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def graded_students(out_dir):
    """The ids whose ``record.json`` exists (graded; a rerun skips them)."""
    folder = os.path.join(out_dir, STUDENTS)
    if not os.path.isdir(folder):
        return set()
    return {s for s in os.listdir(folder) if SAFE_ID.fullmatch(s)
            and os.path.isfile(os.path.join(folder, s, RECORD))}


def read_records(out_dir):
    """Every stored record, by student id (sorted), one at a time (a class of thousands
    is never held in memory at once); an unreadable one is skipped."""
    for s in sorted(graded_students(out_dir)):
        try:
            with open(os.path.join(out_dir, STUDENTS, s, RECORD), encoding="utf-8") as fh:
                record = json.load(fh)
        except (OSError, ValueError):
            continue
        yield record


def _cell(text):
    """A CSV cell a spreadsheet will not run as a formula."""
    text = _CONTROL.sub(" ", str(text))
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def write_scores(out_dir, exam):
    """``scores.csv`` (and ``lms.csv``) rebuilt from every record.json; the scores path."""
    records = read_records(out_dir)  # streamed: rows are small, records are not
    numbers_ = [p.number for p in exam.problems]
    total = float(sum(p.points for p in exam.problems))
    header = ["student", "file", "score", "max_score"] + [f"p{n}" for n in numbers_] + \
        ["first_wrong", "diagnosis", "error"]
    main, lms = io.StringIO(), io.StringIO()
    w, wl = csv.writer(main, lineterminator="\n"), csv.writer(lms, lineterminator="\n")
    w.writerow(header)
    wl.writerow(["student", "score", "max_score", "percent"])
    for r in records:
        by = {p["number"]: p["score"] for p in r["problems"]}
        found = first_wrong(r)
        where = f"problem {found[0]['number']}: {found[1]['label']}" if found else ""
        w.writerow([r["student"], _cell(r["file"]), num(r["score"]), num(r["max_score"])]
                   + [num(by.get(n, 0)) for n in numbers_]
                   + [_cell(where), found[1]["diagnosis"] or found[1]["verdict"]
                      if found else "", _cell(r.get("error", ""))])
        wl.writerow([r["student"], num(r["score"]), num(total),
                     f"{100 * r['score'] / total:.2f}" if total else "0"])
    path = os.path.join(out_dir, "scores.csv")
    replace_atomically(os.path.join(out_dir, "lms.csv"), lms.getvalue().encode("utf-8"))
    replace_atomically(path, main.getvalue().encode("utf-8"))
    return path
