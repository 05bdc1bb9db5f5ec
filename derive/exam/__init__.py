"""Exams: one file of problems -> a variant per student -> papers and answer keys.

>>> from derive.exam import load_exam
>>> exam = load_exam("examples/exam/midterm.yaml")        # doctest: +SKIP
>>> v = exam.variant("s001")                              # doctest: +SKIP
>>> v.problems[0].params, v.problems[0].blanks[0].answer  # doctest: +SKIP

A Variant is deterministic in (the exam's seed, the student id); each of its problems
holds the drawn parameters, the problem spec they were put into, its Derivation (the key)
and the Blanks the student fills in. A grader checks a submission against
``exam.variant(student_id)``.
"""
from derive.exam.blanks import Blank
from derive.exam.examfile import Exam, ExamProblem, ProblemVariant, Variant, load_exam
from derive.exam.output import make_variants, write_exam
from derive.exam.roster import read_roster

__all__ = ["Blank", "Exam", "ExamProblem", "ProblemVariant", "Variant", "load_exam",
           "make_variants", "read_roster", "write_exam"]
