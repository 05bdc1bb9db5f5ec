"""A Variant as documents: the question paper, the answer key, the master key, JSON.

Papers and keys are Derivations (lists of them, one per problem), so the reports
writer typesets them as it typesets any worked solution, and every name and text in
them passes the same checks. derive builds them; it renders nothing itself.

* the **paper** of a problem: its prompt, the given values (the drawn parameters, and a
  graph's definitions), and one blank per ``fill:`` entry;
* the **key**: the problem's full Derivation, its title saying problem and points,
  ending with a section of the answers to the blanks;
* the **master key**: every student's answers, one section per student;
* **variants.json**: every variant's parameters and answers, as data.
"""
from __future__ import annotations

import copy

ANSWERS = "Answers"
ANSWER_KEY = "Answers to the blanks"


def paper(variant):
    """The question paper of ``variant``: a list of Derivations, one per problem."""
    from derive.derivation import Derivation, Section, Step
    from derive.stepforms import Blank

    pages = []
    for p in variant.problems:
        sections = [Section("Question", text=p.prompt)] if p.prompt else []
        given = _given_steps(p)
        if given:
            sections.append(Section("Given", steps=given))
        lines = [Step(b.label, [Blank(str(i))]) for i, b in enumerate(p.blanks, 1)]
        sections.append(Section(ANSWERS, text="Write each answer on its line (exact values "
                                "where you can).", steps=lines))
        pages.append(Derivation(title=_heading(p), kind="exam_paper", sections=sections,
                                meta={"document_title": _document_title(variant, "")}))
    return pages


def key(variant):
    """The answer key of ``variant``: each problem's worked solution, then its answers."""
    from derive.derivation import Section

    pages = []
    for p in variant.problems:
        d = copy.copy(p.derivation)
        d.title = f"{_heading(p)}: {p.derivation.title}" if p.title != d.title else _heading(p)
        # last: a graph kind's worked sections are typeset after its graph parts anyway
        d.sections = list(d.sections) + [Section(ANSWER_KEY, steps=_answer_steps(p))]
        d.meta = dict(d.meta, document_title=_document_title(variant, "answer key"))
        pages.append(d)
    return pages


def master_key_pages(variant):
    """A variant's part of the master key (the answers of its problems, as sections)."""
    from derive.derivation import Section

    return (variant.student_id, [Section(f"Problem {p.number}: {p.title}",
                                         steps=_answer_steps(p)) for p in variant.problems])


def master_key_of(parts, exam_title):
    """The master key: every student's answers, a section per student and problem (from
    :func:`master_key_pages` of every variant, in order)."""
    from derive.derivation import Derivation

    return [Derivation(title=f"Student {sid}" if sid else "The exam", kind="exam_key",
                       sections=sections,
                       meta={"document_title": f"{exam_title}: master key"})
            for sid, sections in parts]


def variants_document(exam, entries):
    """variants.json from :func:`variant_entry` of every variant, in order."""
    return {"title": exam.title, "seed": exam.seed, "variants": list(entries)}


def variant_entry(v):
    """One variant's parameters and answers (its entry of variants.json)."""
    return {"student_id": v.student_id, "points": v.points,
            "problems": [_problem_data(p) for p in v.problems]}


def _problem_data(p):
    return {"number": p.number, "title": p.title, "points": p.points,
            "params": jsonable(p.params),
            "answers": [{"fill": b.entry, "answer": jsonable(b.answer),
                         "exact": _exact_text(b.answer)} for b in p.blanks]}


def _heading(p):
    points = f"{p.points:g} point" + ("" if p.points == 1 else "s")
    return f"Problem {p.number} ({points}): {p.title}"


def _document_title(variant, what):
    who = f"student {variant.student_id}" if variant.student_id else ""
    parts = [x for x in (what, who) if x]
    return variant.exam_title + (f" ({', '.join(parts)})" if parts else "")


def _given_steps(p):
    """The drawn parameters, and a graph's node definitions (what the question gives)."""
    import sympy as sp

    from derive.derivation import Step

    steps = [Step(sp.Symbol(name), [_sympy_value(value)]) for name, value in p.params.items()]
    if p.derivation.kind in ("graph", "tensor_graph"):
        steps += [Step(sp.Symbol(n.name), [n.definition]) for n in p.derivation.nodes
                  if n.definition is not None and isinstance(n.definition, sp.Basic)]
    return steps


def _answer_steps(p):
    from derive.derivation import Step

    return [Step(b.label, [_sympy_value(b.answer)]) for b in p.blanks]


def _sympy_value(value):
    """A drawn value or an answer as SymPy (a nested list or array becomes a matrix)."""
    import numpy as np
    import sympy as sp

    from derive.stepforms import Word

    if isinstance(value, sp.MatrixBase):
        return sp.ImmutableMatrix(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        array = np.asarray(value, dtype=object)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim == 2 and all(_is_scalar(x) for x in array.flat):
            return sp.ImmutableMatrix(array.shape[0], array.shape[1],
                                      [_scalar(x) for x in array.flat])
        return Word(str(jsonable(value)))
    if isinstance(value, dict):
        return Word(", ".join(f"{k}: {jsonable(v)}" for k, v in value.items()))
    return _scalar(value) if _is_scalar(value) else Word(str(value))


def _is_scalar(x):
    import numbers

    import sympy as sp

    return isinstance(x, (numbers.Number, sp.Basic)) or \
        isinstance(x, str) and x.strip().lstrip("-").replace("/", "").replace(".", "").isdigit()


def _scalar(x):
    import numpy as np
    import sympy as sp

    if isinstance(x, sp.Basic):
        return x
    if isinstance(x, str):
        return sp.Rational(x.strip())  # "1/2", "0.25": checked number text, exact
    if isinstance(x, (bool, np.bool_)):
        return sp.Integer(int(x))
    if isinstance(x, (int, np.integer)):
        return sp.Integer(int(x))
    return sp.Float(float(x), 15)


def jsonable(value):
    """``value`` as JSON data: exact numbers as ints or floats, arrays as nested lists."""
    import numbers

    import numpy as np
    import sympy as sp

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, sp.MatrixBase):
        return jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (numbers.Integral, sp.Integer)):
        return int(value)
    if isinstance(value, sp.Basic):
        return float(value) if value.is_number else str(value)
    if isinstance(value, numbers.Number):
        return float(value)
    return value


def _exact_text(value):
    """The exact form of an answer as text ("11", "-3/2", "2*sqrt(2)"), or None."""
    import sympy as sp

    if isinstance(value, sp.Basic) and not isinstance(value, sp.MatrixBase):
        return str(value)
    return None
