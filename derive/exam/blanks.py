"""What a student fills in: ``fill:`` entries read against a problem's Derivation.

Each entry of a problem's ``fill:`` list names one answer of the derivation:

``gradient w``            the gradient of the output with respect to ``w``
``adjoint s``             the adjoint s̄ (a node's accumulated adjoint)
``value t``               the forward value of node ``t``
``step m_1``              the final value of the worked step whose left side is ``m_1``
``result``                a worked kind's whole result
``result[5].parameters``  one item of it (list positions in brackets, keys after dots)

An entry may also be ``{answer: "result[5].parameters", label: "parameters of layer 6"}``:
the paper then shows the label (as words) instead of the derivation's symbol.

A :class:`Blank` holds the entry, its label (a SymPy object the reports typeset, the
same symbol the worked solution uses) and the answer (the derivation's own value). The
grader reads the same Blanks, so what is asked, what the key prints and what is marked
are one object.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from derive.errors import InputError

FILL_KINDS = ("gradient", "adjoint", "value", "step", "result")
_RESULT_PATH = re.compile(r"result((?:\[\d+\]|\.[A-Za-z_][A-Za-z0-9_]*)*)")


@dataclass
class Blank:
    """One answer a student fills in: ``entry`` as written, its ``label`` and ``answer``."""

    entry: str
    label: Any
    answer: Any


def check_fill(fill, where):
    """``fill:`` validated as text (each entry's name is looked up per variant)."""
    if not isinstance(fill, list) or not fill:
        raise InputError("expected a non-empty list such as [gradient w, adjoint s]",
                         where=where)
    for i, entry in enumerate(fill):
        at = f"{where}[{i}]"
        if isinstance(entry, dict):
            if set(entry) != {"answer", "label"} or not all(isinstance(v, str)
                                                            for v in entry.values()):
                raise InputError("expected {answer: 'gradient w', label: 'text'}", where=at)
            entry = entry["answer"]
        if not isinstance(entry, str):
            raise InputError(f"expected text such as 'gradient w', got {entry!r:.40}", where=at)
        head = entry.split(None, 1)[0] if entry.split() else ""
        if _RESULT_PATH.fullmatch(entry.strip()):
            continue
        if head not in FILL_KINDS or len(entry.split()) != 2:
            raise InputError(f"expected '<kind> <name>' with kind one of {', '.join(FILL_KINDS)}"
                             f" (or result[...]), got {entry!r:.60}", where=at)
    return fill


def blanks(derivation, fill, where):
    """The Blanks of ``fill`` read from ``derivation`` (InputError naming a missing one)."""
    return [blank(derivation, entry, f"{where}[{i}]") for i, entry in enumerate(fill)]


def blank(d, entry, where):
    """One Blank: the label and the derivation's answer for one ``fill:`` entry."""
    from derive.stepforms import Word

    if isinstance(entry, dict):
        found = blank(d, entry["answer"], where)
        return Blank(found.entry, Word(entry["label"]), found.answer)
    return _blank(d, entry.strip(), where)


def _blank(d, entry, where):
    import sympy as sp

    from derive.stepforms import Word

    if entry.startswith("result"):
        return Blank(entry, Word(entry), _result_item(d, entry, where))
    kind, name = entry.split()
    if kind == "gradient":
        g = _lookup(d.gradients.get(name), name, "gradient", list(d.gradients), where)
        label = _bar(name, g.shape) if g.shape else \
            sp.Derivative(sp.Symbol(d.output or "y"), sp.Symbol(name), evaluate=False)
        return Blank(entry, label, g.value if g.value is not None else g.expression)
    if kind == "adjoint":
        a = _lookup(_find(d.adjoints, name), name, "adjoint", [a.name for a in d.adjoints],
                    where)
        return Blank(entry, _bar(name, a.shape), a.value if a.value is not None else a.in_inputs)
    if kind == "value":
        n = _lookup(_find(d.nodes, name), name, "node", [n.name for n in d.nodes], where)
        return Blank(entry, sp.Symbol(name), n.value)
    step = _lookup(_step(d, name), name, "worked step", [str(s.lhs) for s in _steps(d)], where)
    return Blank(entry, step.lhs, _final(step))


def _bar(name, shape):
    """x̄ as the worked solution writes it: a matrix symbol for a matrix, else a symbol."""
    from derive.derivation import bar

    return bar(name, shape) if shape is not None and len(shape) == 2 else bar(name)


def _find(items, name):
    return next((x for x in items if x.name == name), None)


def _steps(d):
    return [s for sec in d.sections for s in sec.steps if s.rhs]


def _step(d, name):
    """The LAST step called ``name``: a worked kind restates a value it finishes with."""
    found = [s for s in _steps(d) if str(s.lhs) == name]
    return found[-1] if found else None


def _final(step):
    """The value a step ends with (before its decimal ``≈ ...``, when it shows one)."""
    from derive.stepforms import Approx

    sides = [s for s in step.rhs if not isinstance(s, Approx)]
    return sides[-1] if sides else step.rhs[-1]


def _lookup(found, name, what, known, where):
    if found is None:
        shown = ", ".join(known[:12]) + (" ..." if len(known) > 12 else "")
        raise InputError(f"this problem has no {what} '{name}' (its {what}s: "
                         f"{shown or 'none'})", where=where)
    return found


def _result_item(d, entry, where):
    if d.result is None:
        raise InputError("this problem has no result: (use gradient, adjoint, value or step)",
                         where=where)
    value = d.result
    for part in re.findall(r"\[(\d+)\]|\.([A-Za-z_][A-Za-z0-9_]*)", entry[len("result"):]):
        index, key = part
        try:
            value = value[int(index)] if index else value[key]
        except (IndexError, KeyError, TypeError):
            raise InputError(f"{entry} is not in this problem's result", where=where) from None
    return value
