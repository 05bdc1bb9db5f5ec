r"""Verdicts on hand derivations: formulas, adjoint tables and backward code, checked.

>>> import derive as dv
>>> d = dv.grad({"p": "u1", "q": "w*p", "r": "u2 + q", "s": "w*r", "t": "u3 + s",
...              "y": "w*t"}, inputs=["u1", "u2", "u3"], params=["w"], wrt="w")
>>> v = dv.check(d, "t + w*r", wrt="w")
>>> v.verdict, v.diagnosis
('wrong', 'missing_edge')
>>> bool(dv.check(against=d, answer="u3 + 2*w*u2 + 3*w**2*u1", wrt="w"))
True

Public API
----------
``check(problem, answer, wrt)``     one answer -> :class:`Verdict` (the order of
                                    ``derivekit check PROBLEM ANSWERS``)
``check_table(derivation, answers)`` ``{node: answer}`` -> :class:`Report` (score, first
                                    wrong step, errors carried forward counted once)
``gradcheck(forward, backward, inputs)`` hand-written backward code -> GradcheckReport
``cli_check(problem, answers, out=None, fmt=None)`` what ``derivekit check`` runs
``check_folder(problem, folder, out_dir)`` a class: CSV of scores + one report each

Answers are data: Python-like text, LaTeX or pasted Unicode, parsed by a whitelist
(never eval); a hostile or malformed answer is "unreadable" with a message.
"""
from __future__ import annotations

import weakref

from derive.derivation import Derivation
from derive.errors import InputError
from derive.verify.gradcheck import GradcheckReport, gradcheck
from derive.verify.scalar.judge import Checker
from derive.verify.scalar.scalar_table import Report
from derive.verify.scalar.scalar_table import check_table as _check_table
from derive.verify.verdict import DIAGNOSES, Verdict

__all__ = ["check", "check_table", "gradcheck", "cli_check", "check_folder", "checker_for",
           "Verdict", "Report", "GradcheckReport", "DIAGNOSES"]

_CHECKERS = {}  # id(derivation) -> (weakref, checker): a class reuses one set of points
_MAX_CACHED = 16


def checker_for(d, n_points=6, seed=0):
    """The prepared checker of a Derivation (sample points, names), built once and reused."""
    if not isinstance(d, Derivation):
        raise InputError(f"expected a Derivation to check against, got {type(d).__name__}")
    key = (id(d), n_points, seed)
    entry = _CHECKERS.get(key)
    if entry is not None and entry[0]() is d:
        return entry[1]
    if _is_tensor(d):
        from derive.verify.tensor.matrix_answers import TensorChecker

        checker = TensorChecker(d, n_points=n_points, seed=seed)
    else:
        checker = Checker(d, n_points=n_points, seed=seed)
    if len(_CHECKERS) >= _MAX_CACHED:
        _CHECKERS.clear()
    _CHECKERS[key] = (weakref.ref(d), checker)
    return checker


def _is_tensor(d):
    return d.program is not None or d.meta.get("kind") == "tensor_graph"


def _derivation(against):
    """A Derivation from a Derivation, a problem mapping or a problem file path."""
    if isinstance(against, Derivation):
        return against
    from derive.entry_points import solve

    if isinstance(against, (dict, str)) or hasattr(against, "__fspath__"):
        return solve(against)[0]
    raise InputError(f"cannot check against a {type(against).__name__}: give a Derivation, "
                     "a problem mapping or a problem file")


class _NotGiven:
    """The default of check()'s problem and answer: None is an answer to judge (unreadable)."""

    def __repr__(self):
        return "(not given)"


_NOT_GIVEN = _NotGiven()


def check(problem=_NOT_GIVEN, answer=_NOT_GIVEN, wrt=None, *, against=None, n_points=6,
          seed=0):
    """Judge one hand-derived gradient.

    The problem comes first and the answer second, as in ``derivekit check PROBLEM
    ANSWERS``: ``check(d, "(yhat - y)*x1")``; or by keyword, ``check(against=d,
    answer=...)``. ``check("(yhat - y)*x1", against=d)`` (the one positional argument is
    the answer, since the keyword names the problem) works too. A call in the order this
    function once had, ``check(answer, d)``, is refused with a TypeError, never judged.

    Parameters
    ----------
    problem : Derivation, dict or path
        What the answer is checked against (a problem mapping or file is solved first).
        ``against`` is another name for it.
    answer : str
        The answer: ``"(yhat - y)*x1"``, ``r"(\\hat{y}-y)x_1"``, ``"(ŷ − y)·x₁"``.
    wrt : str, optional
        The node whose adjoint (d output / d node) is answered; defaults to the
        derivation's only ``wrt`` name.

    Returns
    -------
    Verdict
        ``verdict`` correct / wrong / unreadable; ``proof`` symbolic or numeric;
        ``diagnosis``, ``expected`` and a ``counterexample`` when wrong.
    """
    problem, answer = _problem_and_answer(problem, answer, against)
    d = _derivation(problem)
    checker = checker_for(d, n_points, seed)
    if wrt is None:
        if len(d.wrt) != 1:
            raise InputError(f"say which gradient is answered: wrt= one of "
                             f"{', '.join(d.wrt) or 'the nodes'}")
        wrt = d.wrt[0]
    node = checker.node_of(wrt)
    return checker.judge(node, answer)


USAGE = "check(problem, answer) or check(against=problem, answer=answer)"


def _problem_and_answer(problem, answer, against):
    """(problem, answer) from the ways :func:`check` may be called; TypeError otherwise."""
    if against is not None:
        if problem is not _NOT_GIVEN and answer is not _NOT_GIVEN:
            raise TypeError(f"check() got the problem twice (positionally and as "
                            f"against=); use {USAGE}")
        if answer is _NOT_GIVEN:  # check("answer", against=d): the positional one is it
            problem, answer = against, problem
        else:
            problem = against
        if answer is _NOT_GIVEN:
            raise TypeError(f"check() needs an answer: {USAGE}")
        return problem, answer  # named: no order to get wrong (any answer is judged)
    if problem is _NOT_GIVEN or answer is _NOT_GIVEN:
        raise TypeError(f"check() needs a problem and an answer: {USAGE}")
    if _is_problem(answer) or (_is_file(answer) and not _is_file(problem)
                               and isinstance(problem, str)):
        raise TypeError(f"check() takes the problem first and the answer second (got the "
                        f"answer {_short(problem)} first); use {USAGE}")
    return problem, answer


def _is_problem(value):
    return isinstance(value, (Derivation, dict)) or hasattr(value, "__fspath__")


def _is_file(value):
    import os

    return isinstance(value, str) and len(value) < 4096 and os.path.isfile(value)


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_table(derivation, answers, *, student=None, n_points=6, seed=0):
    """Judge an adjoint table ``{node: answer}``; see :mod:`derive.verify.scalar.scalar_table`.

    Returns
    -------
    Report
        ``score`` (fraction correct), ``first_wrong``, ``verdicts``, ``to_dict()`` (the
        JSON of ``derivekit check --format json``) and ``derivation()`` for reports.
    """
    d = _derivation(derivation)
    return _check_table(checker_for(d, n_points, seed), answers, student=student)


def cli_check(problem, answers, out=None, fmt=None, on_error=None):
    """What ``derivekit check PROBLEM ANSWERS [-o OUT] [--format json]`` does; see batch."""
    from derive.verify.batch import cli_check as run

    return run(problem, answers, out=out, fmt=fmt, on_error=on_error)


def check_folder(problem, folder, out_dir=None, fmt="md", on_error=None):
    """Mark every answers file of a folder; see :func:`derive.verify.batch.check_folder`."""
    from derive.verify.batch import check_folder as run

    return run(problem, folder, out_dir=out_dir, fmt=fmt, on_error=on_error)
