"""Exam files: several problems, their points, prompts, blanks and parameter ranges.

::

    title: Midterm, deep learning
    seed: 2026
    problems:
      - points: 10
        prompt: "Backpropagate through the unrolled RNN with $w = ${w}$."
        params: {w: {randint: [1, 3]}, u1: {choice: [1, 2, 3]}}
        constraints: {nonzero: [w]}
        fill: [gradient w, adjoint t]
        problem:                  # any problem `derivekit solve` reads, with ${...}
          nodes: {p: u1, q: w*p, y: w*q}
          ...
          values: {w: "${w}", u1: "${u1}"}

:func:`load_exam` checks all of it (and that each problem's kind exists) before any
variant is drawn; :meth:`Exam.variant` gives one student's :class:`Variant`, the same
on every run for the same seed and id.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from derive import yamlio
from derive.errors import InputError
from derive.exam import blanks as blanks_mod
from derive.exam import sampling
from derive.latexsubset import check_text
from derive.problem import check_keys

EXAM_KEYS = {"title", "seed", "problems"}
PROBLEM_KEYS = {"problem", "points", "prompt", "fill", "params", "constraints", "title"}
MAX_TRIES = 200  # draws of a problem's parameters before its constraints are given up
MAX_SOLVES = 25  # of those, draws solved to test constraints on the derivation's values


@dataclass
class ExamProblem:
    """One problem of an exam as written (before any parameters are drawn)."""

    number: int
    spec: dict
    points: float
    prompt: str
    fill: list
    params: dict
    constraints: dict
    where: str
    title: str = ""


@dataclass
class ProblemVariant:
    """One problem as one student gets it: drawn parameters, spec, key and blanks."""

    number: int
    title: str
    points: float
    prompt: str
    params: dict
    spec: dict
    derivation: Any
    blanks: list


@dataclass
class Variant:
    """One student's exam: ``problems`` in order (each holds its own answer key)."""

    student_id: str
    exam_title: str
    problems: list = field(default_factory=list)

    @property
    def points(self):
        return sum(p.points for p in self.problems)


@dataclass
class Exam:
    """An exam file, checked; :meth:`variant` draws one student's paper."""

    title: str
    seed: Any
    problems: list
    path: str
    folder: str

    def variant(self, student_id=""):
        """The Variant of ``student_id`` ("" for the one paper without a roster)."""
        return Variant(str(student_id), self.title,
                       [self._problem_variant(p, str(student_id)) for p in self.problems])

    def _problem_variant(self, problem, student_id):
        from derive.problem import solve_spec

        rng = sampling.generator(self.seed, student_id, problem.number)
        solved, broken = 0, None
        for _ in range(MAX_TRIES):
            values = sampling.draw(problem.params, rng)
            broken = sampling.parameters_fail(problem.constraints, values)
            if broken:
                continue
            spec = sampling.substitute(problem.spec, values, f"{problem.where}.problem")
            d = solve_spec(spec, f"{problem.where}.problem", self.folder)
            solved += 1
            broken = sampling.derivation_fails(problem.constraints, d,
                                               f"{problem.where}.constraints")
            if not broken:
                return self._made(problem, values, spec, d)
            if solved >= MAX_SOLVES:
                break
        tries = solved if solved >= MAX_SOLVES else MAX_TRIES
        raise InputError(f"no parameter values satisfy the constraint {broken} "
                         f"after {tries} tries", where=f"{problem.where}.constraints")

    def _made(self, problem, values, spec, d):
        title = problem.title or d.title
        prompt = sampling.substitute(problem.prompt, values, f"{problem.where}.prompt")
        check_text(prompt, f"{problem.where}.prompt")
        found = blanks_mod.blanks(d, problem.fill, f"{problem.where}.fill")
        return ProblemVariant(problem.number, title, problem.points, prompt, values, spec, d,
                              found)


def load_exam(path):
    """Read and check an exam file; an :class:`Exam` (InputError naming file and key)."""
    name = os.path.basename(str(path))
    exam = yamlio.load(path, "exam file")
    if not isinstance(exam, dict):
        raise InputError("an exam must be a mapping with title, seed and problems", where=name)
    check_keys(exam, EXAM_KEYS, name)
    title = exam.get("title", "Exam")
    if not isinstance(title, str):
        raise InputError("expected text", where=f"{name}: title")
    check_text(title, f"{name}: title")
    seed = exam.get("seed", 0)
    if not isinstance(seed, (int, str)) or isinstance(seed, bool):
        raise InputError("expected an integer or text", where=f"{name}: seed")
    problems = exam.get("problems")
    if not isinstance(problems, list) or not problems:
        raise InputError("expected a non-empty list of problems", where=f"{name}: problems")
    checked = [_problem(p, i + 1, f"{name}: problems[{i}]") for i, p in enumerate(problems)]
    return Exam(title, seed, checked, str(path), os.path.dirname(os.path.abspath(path)))


def _problem(entry, number, where):
    if not isinstance(entry, dict):
        raise InputError("expected a mapping with problem, points, prompt and fill", where=where)
    check_keys(entry, PROBLEM_KEYS, where)
    spec = entry.get("problem")
    if not isinstance(spec, dict):
        raise InputError("missing 'problem:', a problem as `derivekit solve` reads it",
                         where=where)
    _check_kind(spec, f"{where}.problem")
    points = entry.get("points", 1)
    if isinstance(points, bool) or not isinstance(points, (int, float)) or not points >= 0:
        raise InputError("expected a number >= 0", where=f"{where}.points")
    prompt = entry.get("prompt", "")
    if not isinstance(prompt, str):
        raise InputError("expected text", where=f"{where}.prompt")
    title = entry.get("title", "")
    if not isinstance(title, str):
        raise InputError("expected text", where=f"{where}.title")
    check_text(title, f"{where}.title")
    params = sampling.check_ranges(entry.get("params", {}), f"{where}.params")
    constraints = sampling.check_constraints(entry.get("constraints", {}), params,
                                             f"{where}.constraints")
    fill = blanks_mod.check_fill(entry.get("fill"), f"{where}.fill")
    used = sampling.placeholders(spec) | sampling.placeholders(prompt)
    missing = sorted(used - set(params))
    if missing:
        raise InputError(f"'${{{missing[0]}}}' names no parameter (params: "
                         f"{', '.join(params) or 'none'})", where=where)
    return ExamProblem(number, spec, points, prompt, fill, params, constraints, where, title)


def _check_kind(spec, where):
    """The problem's kind exists (checked before any variant is drawn)."""
    from derive.problem import kind_of

    if "module" in spec:
        raise InputError("'module:' problems import and run Python code; an exam may not "
                         "hold them", where=f"{where}.module")
    kind_of(spec, where, sep=".")
