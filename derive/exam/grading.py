"""Grading exam submissions: each student's answers marked against their own variant.

A submission is one file per student, in the format ``derivekit check`` reads (YAML,
loaded by :mod:`derive.yamlio`: safe and bounded), with the answers grouped by problem
number (or title); inside a problem, a key is a ``fill:`` entry or its label::

    student: s001
    answers:
      1: {adjoint t: -2, adjoint r: 4, value y: -12, gradient w: 22}
      2: {adjoint v4: "[4/3, 2/3, 0]", gradient W: "x.T @ v4_bar"}
      3: {parameters of layer 1: 40, parameters of layer 3: 296}
      4: {step theta_1: "[19/10, 19/10]", step theta_2: [1.8723, 1.7853]}

or a CSV file with the header ``student,problem,entry,answer`` (one row per blank).
``student`` defaults to the file's stem. An answer is a number, a list of numbers (a
vector or matrix: a YAML list, or text such as ``"[[1, 2], [3, 4]]"``), or, for an
adjoint or gradient of a graph, a formula as ``derivekit check`` takes it (``w**2``,
``x.T @ v4_bar``, LaTeX). Everything goes through the whitelist parser
(:func:`derive.verify.answers.parse_answer`); nothing from a submission is executed.

Marking (:func:`grade_text`): a problem's points are split equally over its blanks; a
blank earns its share when it equals this student's variant's answer (formulas proved or
compared at sample points by :mod:`derive.verify`; numbers exactly, or to about 4
significant digits when written as decimals). *Error carried forward*: the adjoints and
gradients of a graph are judged as one adjoint table (:func:`derive.verify.check_table`'s
sweep), so a later step that is right given the student's own earlier wrong answer earns
its share and is marked "carried forward"; numbers are carried at the problem's values. An
optimizer's ``step theta_k`` is recomputed by the optimizer kind itself from the
student's ``theta_{k-1}``. A wrong answer's diagnosis is one of
:data:`derive.verify.verdict.DIAGNOSES`. A file that cannot be read, an unknown student
or an unreadable answer scores 0 for what it affects, with the reason; it never raises.

Files for one student (:func:`student_files`, :func:`write_student`) and the class's
``scores.csv`` (:func:`write_scores`) are in :mod:`derive.exam.marks`.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass, field

import sympy as sp

from derive import yamlio
from derive.errors import DeriveError, InputError
from derive.exam import numbers
from derive.exam.roster import SAFE_ID

MAX_BYTES = 1_000_000
SUBMISSION_KEYS = {"student", "answers"}
CSV_HEADER = ["student", "problem", "entry", "answer"]


@dataclass
class BlankResult:
    """One blank as marked: what was given and expected, the verdict and the points."""

    entry: str
    label: str
    answer: str | None
    expected: str
    verdict: str            # correct | wrong | unreadable | unanswered
    diagnosis: str | None
    points: float
    max_points: float
    carried_forward: bool = False
    carried_from: list = field(default_factory=list)
    output: str = ""


@dataclass
class ProblemResult:
    number: int
    title: str
    points: float
    score: float
    blanks: list = field(default_factory=list)


@dataclass
class StudentResult:
    """One submission graded (picklable; :meth:`to_dict` is the record a run stores)."""

    student: str
    file: str
    score: float
    max_score: float
    problems: list = field(default_factory=list)
    error: str = ""
    notes: list = field(default_factory=list)
    exam: str = ""

    @property
    def first_wrong(self):
        """``(problem, BlankResult)`` of the first blank not earning its points, or None."""
        for p in self.problems:
            for b in p.blanks:
                if b.points < b.max_points:
                    return p, b
        return None

    def to_dict(self):
        """JSON-safe: the fields, each problem and blank as a mapping."""
        return asdict(self)

    def gradescope(self):
        """The Gradescope autograder ``results.json`` content (one test per blank)."""
        from derive.exam.marks import gradescope

        return gradescope(self.to_dict())


def grade_text(exam, name, text, roster=None):
    """Grade one submission file's content against its student's variant of ``exam``.

    Parameters
    ----------
    exam : derive.exam.Exam
    name : str
        The file name (messages; ``.csv`` selects the CSV form; its stem is the default
        student id).
    text : str or bytes
        The file's content.
    roster : collection of str, optional
        The known student ids; a submission for another id scores 0 with the reason.

    Returns
    -------
    StudentResult
        Never raises for anything in the submission; deterministic; writes nothing.
    """
    name = os.path.basename(str(name))
    stem = os.path.splitext(name)[0]
    total = float(sum(p.points for p in exam.problems))
    student = stem if SAFE_ID.fullmatch(stem) else ""
    try:
        student, answers = read_submission(name, text)
        if roster is not None and student not in set(roster):
            raise InputError(f"unknown student {student!r} (not on the roster)", where=name)
        variant = exam.variant(student)
    except DeriveError as exc:
        return _unreadable(exam, name, student, total, _one_line(exc, name), roster)
    try:
        return _grade(variant, name, answers)
    except Exception as exc:  # noqa: BLE001 -- one submission never stops a class
        return StudentResult(student, name, 0.0, total,
                             error=f"{name}: could not be graded ({type(exc).__name__}: "
                                   f"{str(exc)[:200]})", exam=exam.title)


def _unreadable(exam, name, student, total, error, roster):
    """A file that could not be read: 0, the reason, and (for a student on the roster,
    named by the file) each blank of their variant listed as unreadable."""
    result = StudentResult(student, name, 0.0, total, error=error, exam=exam.title)
    if not student or roster is not None and student not in set(roster) \
            or "unknown student" in error:
        return result
    try:
        variant = exam.variant(student)
    except DeriveError:
        return result
    result.problems = [unreadable_problem(pv, error) for pv in variant.problems]
    return result


def unreadable_problem(pv, why):
    """A problem none of whose answers could be read: each blank 0, with ``why``."""
    blanks = [BlankResult(b.entry, label_text(b), None, numbers.text(b.answer), "unreadable",
                          None, 0.0, share, output=why)
              for b, share in zip(pv.blanks, shares(pv.points, len(pv.blanks)))]
    return ProblemResult(pv.number, pv.title, float(pv.points), 0.0, blanks)


def _one_line(exc, name):
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if name in text else f"{name}: {text}"


# -- reading a submission -------------------------------------------------------------------
def read_submission(name, text):
    """``(student, {problem key: {blank key: answer}})``; InputError naming the file."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise InputError(f"submission is larger than {MAX_BYTES:,} bytes", where=name)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text (byte {exc.start})", where=name) from None
    if text is None:
        raise InputError("the file could not be read", where=name)
    if not isinstance(text, str):
        raise InputError("expected the file's text", where=name)
    if len(text) > MAX_BYTES:
        raise InputError(f"submission is larger than {MAX_BYTES:,} characters", where=name)
    stem = os.path.splitext(name)[0]
    if name.lower().endswith(".csv"):
        student, answers = _read_csv(name, text)
    else:
        student, answers = _read_yaml(name, text)
    student = stem if student is None else student
    if not SAFE_ID.fullmatch(student):
        raise InputError(f"student id {student!r:.40} may hold only letters, digits, '.', "
                         "'_' and '-' (at most 64)", where=f"{name}: student")
    return student, answers


def _read_yaml(name, text):
    docs = yamlio.loads_all(text, where=name)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise InputError("expected one mapping {student: ID, answers: {problem: {blank: "
                         "answer}}}", where=name)
    data = docs[0]
    extra = sorted(str(k) for k in data if k not in SUBMISSION_KEYS)
    if extra:
        raise InputError(f"unknown key {extra[0]!r:.40} (use student and answers)",
                         where=name)
    answers = data.get("answers")
    if not isinstance(answers, dict):
        raise InputError("'answers' must map each problem (1, 2, ...) to {blank: answer}",
                         where=f"{name}: answers")
    student = data.get("student")
    if student is not None and (isinstance(student, bool) or
                                not isinstance(student, (str, int))):
        raise InputError("expected an id", where=f"{name}: student")
    return (None if student is None else str(student)), answers


def _read_csv(name, text):
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise InputError(f"not a CSV file ({str(exc)[:80]})", where=name) from None
    if not rows or [h.strip().lower() for h in rows[0]] != CSV_HEADER:
        raise InputError(f"line 1: expected the header {','.join(CSV_HEADER)}", where=name)
    students, answers = set(), {}
    for line, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 4:
            raise InputError(f"line {line}: expected 4 cells, got {len(row)}", where=name)
        sid, problem, entry, answer = (c.strip() for c in row)
        if sid:
            students.add(sid)
        answers.setdefault(problem, {})[entry] = answer
    if len(students) > 1:
        raise InputError(f"the rows name {len(students)} students; one file is one student",
                         where=name)
    return (students.pop() if students else None), answers


# -- grading ---------------------------------------------------------------------------------
def _grade(variant, name, answers):
    notes = []
    stem = os.path.splitext(name)[0]
    if SAFE_ID.fullmatch(stem) and stem != variant.student_id:
        notes.append(f"the file is named {stem} but names the student "
                     f"{variant.student_id}; graded as {variant.student_id}")
    by_problem = _match_problems(variant, answers, notes)
    problems = []
    for pv in variant.problems:
        found = by_problem.get(pv.number, {})
        if not isinstance(found, dict):
            why = (f"the answers to problem {pv.number} must be a mapping {{blank: answer}}, "
                   f"got {type(found).__name__}")
            problems.append(unreadable_problem(pv, why))
            continue
        given, unknown = _match_blanks(pv, found)
        notes += [f"problem {pv.number}: {k!r:.40} is not a blank of this problem (ignored)"
                  for k in unknown]
        problems.append(_grade_problem(pv, given))
    score = round(sum(b.points for p in problems for b in p.blanks), 4)
    return StudentResult(variant.student_id, name, score, float(variant.points), problems,
                         notes=notes, exam=variant.exam_title)


def _match_problems(variant, answers, notes):
    out = {}
    titles = {p.title.strip().lower(): p.number for p in variant.problems}
    numbers_ = {p.number for p in variant.problems}
    for key, value in answers.items():
        text = str(key).strip()
        number = int(text) if text.isdigit() else titles.get(text.lower())
        if number not in numbers_:
            notes.append(f"answers for {text!r:.40}: no such problem (ignored)")
            continue
        if number in out or not isinstance(value, dict):
            out[number] = value if number not in out else "twice"
        else:
            out[number] = dict(value)
    return out


def _norm(text):
    return " ".join(str(text).split()).lower()


def _match_blanks(pv, answers):
    """``{blank index: raw answer}`` by entry or label; the keys that match no blank."""
    index = {}
    for i, b in enumerate(pv.blanks):
        index[_norm(b.entry)] = i
        index[_norm(label_text(b))] = i
    given, unknown = {}, []
    for key, value in answers.items():
        i = index.get(_norm(key))
        if i is None:
            unknown.append(str(key))
        elif i not in given:
            given[i] = value
    return given, unknown


def label_text(blank):
    """A blank's label as plain text (``parameters of layer 1``, ``t_bar``, ``dy/dw``)."""
    label = blank.label
    if isinstance(label, sp.Derivative):
        return f"d{label.expr}/d{label.variables[0]}"
    return str(label)


def _grade_problem(pv, given):
    n = len(pv.blanks)
    split = shares(pv.points, n)
    verdicts = [None] * n
    table = [i for i, b in enumerate(pv.blanks)
             if b.entry.split()[0] in ("adjoint", "gradient") and i in given
             and pv.derivation.adjoints]
    if table:
        from derive.exam.tables import judge_table

        judged = judge_table(pv.derivation, {pv.blanks[i].entry.split()[1]: given[i]
                                             for i in table})
        for i in table:
            verdicts[i] = judged[pv.blanks[i].entry.split()[1]]
    for i, b in enumerate(pv.blanks):
        if verdicts[i] is None and i in given:
            verdicts[i] = _judge_value(pv, b, given[i], verdicts, given)
    blanks = [_blank_result(pv, b, verdicts[i], given.get(i), split[i])
              for i, b in enumerate(pv.blanks)]
    return ProblemResult(pv.number, pv.title, float(pv.points),
                         round(sum(b.points for b in blanks), 4), blanks)


def _judge_value(pv, blank, raw, verdicts, given):
    """A value, worked step or result item compared as numbers (carried forward for an
    optimizer's steps)."""
    carried = None
    if pv.derivation.kind == "optimizer" and blank.entry.startswith("step theta_"):
        carried = _optimizer_carry(pv, blank, verdicts)
    return numbers.judge(label_text(blank), raw, blank.answer, carried)


def _optimizer_carry(pv, blank, verdicts):
    """``(expected, label)`` for ``step theta_k`` from the student's own ``theta_{k-1}``,
    when that one was answered wrong (None otherwise)."""
    try:
        k = int(blank.entry.split("_", 1)[1])
    except ValueError:
        return None
    prev = f"step theta_{k - 1}"
    i = next((j for j, b in enumerate(pv.blanks) if b.entry == prev), None)
    v = verdicts[i] if i is not None else None
    if v is None or v.verdict != "wrong" or v.parsed is None:
        return None
    from derive.exam.tables import optimizer_step_from

    expected = optimizer_step_from(pv.spec, k, v.parsed)
    return None if expected is None else (expected, label_text(pv.blanks[i]))


def shares(points, n):
    """``points`` split over ``n`` blanks, to 4 decimals, summing to ``points`` exactly
    (10 over 3: 3.3333, 3.3334, 3.3333)."""
    cuts = [round(points * k / n, 4) for k in range(n + 1)] if n else [0.0]
    return [round(b - a, 4) for a, b in zip(cuts, cuts[1:])]


def _blank_result(pv, blank, v, raw, share):
    expected = numbers.text(blank.answer)
    label = label_text(blank)
    if v is None:
        return BlankResult(blank.entry, label, None, expected, "unanswered", None, 0.0,
                           share, output="not answered")
    carried = bool(v.correct and v.carried_from)
    return BlankResult(blank.entry, label, _raw_text(raw), expected, v.verdict, v.diagnosis,
                       share if v.correct else 0.0, share, carried,
                       [str(c) for c in v.carried_from], v.message or "")


def _raw_text(raw):
    text = raw if isinstance(raw, str) else repr(raw) if not isinstance(raw, (int, float)) \
        else str(raw)
    return text if len(text) <= 400 else text[:400] + " ..."


from derive.exam.marks import (graded_students, student_files, write_scores,  # noqa: E402
                               write_student)

__all__ = ["BlankResult", "ProblemResult", "StudentResult", "grade_text", "read_submission",
           "student_files", "write_student", "graded_students", "write_scores"]
