"""Small passes over a Document, run in order between building and emitting.

Each pass takes a Document and returns it (changed in place); each does one thing and
has its own test. They are format-independent: what differs per format is the emitter.
"""
from __future__ import annotations

import re

from reports.document_model import rows_of
from reports.latex_printer import visible_len

#: Characters of mathematics that fit on one display line of an A4 page (11pt, 2.2 cm
#: margins) next to a short left-hand side; wider sums are broken between terms.
LINE_WIDTH = 78
#: An optional form (see ``drop_overlong``) longer than this many lines is left out.
MAX_LINES = 3

# A right-hand side that starts with its own relation (\approx 1.5, < 0) is not "= ...".
_RELATION = re.compile(r"^\s*(\\(approx|simeq|sim|leq?|geq?|neq?|equiv|Rightarrow|implies|to)"
                       r"(?![A-Za-z])|<|>|=)")


def drop_repeats(doc):
    """Drop each right-hand side that repeats the one before it (or the left side)."""
    for row in rows_of(doc):
        kept, previous = [], row.lhs.tex
        for item in row.rhs:
            if item.tex.strip() != previous.strip():
                kept.append(item)
            previous = item.tex
        row.rhs = kept
    return doc


def capitalise_notes(doc):
    """Step notes are shown as sentences before their equation: start them upper-case,
    unless the note starts with a tensor's name (``y: [B, C]`` stays ``y``, not ``Y``)."""
    for row in rows_of(doc):
        if row.note and row.note[0].islower() and not _NAMED.match(row.note):
            row.note = row.note[0].upper() + row.note[1:]
    return doc


#: a note that begins with a name: a word followed by ``:`` ``[`` ``_`` or ``(``
_NAMED = re.compile(r"\w+(?=[:\[_(])")


def mark_relations(doc):
    """Right-hand sides that begin with a relation (``\\approx``) keep it instead of ``=``."""
    for row in rows_of(doc):
        for item in row.rhs:
            if _RELATION.match(item.tex):
                item.rel = ""
    return doc


def _room(row, width):
    return max(width - visible_len(row.lhs.tex), width // 2)


def break_lines(doc, width=LINE_WIDTH):
    """Break each right-hand side wider than ``width`` between its pieces, greedily."""
    for row in rows_of(doc):
        room = _room(row, width)
        for item in row.rhs:
            if len(item.pieces) > 1 and visible_len(item.tex) > room:
                item.lines = _pack(item.pieces, item.glue, room)
    return doc


def _pack(pieces, glue, room):
    lines, current = [], []
    for piece in pieces:
        if current and visible_len(" ".join(current + [piece])) > room:
            lines.append(" ".join(current))
            current = [glue + piece]
        else:
            current.append(piece)
    return lines + [" ".join(current)]


def drop_overlong(doc, width=LINE_WIDTH, max_lines=MAX_LINES):
    """Drop optional forms that would not fit: a line still too wide, or too many lines.

    The form in terms of the inputs of a deep node nests every layer inside the next;
    written out it is pages of brackets. The node-terms form above it says the same.
    """
    for row in rows_of(doc):
        room = _room(row, width) * 1.1
        row.rhs = [item for item in row.rhs if not item.optional or (
            len(item.lines) <= max_lines and max(map(visible_len, item.lines)) <= room)]
    return doc


def join_short(doc, width=LINE_WIDTH):
    """Write a chain on one line when all of it fits (``a = b = c`` rather than a column)."""
    for row in rows_of(doc):
        parts = [row.lhs.tex] + [line for item in row.rhs for line in item.lines]
        unbroken = all(len(item.lines) == 1 for item in row.rhs)
        row.oneline = unbroken and visible_len(" = ".join(parts)) <= width
    return doc


PASSES = (capitalise_notes, mark_relations, break_lines, drop_overlong, drop_repeats,
          join_short)


def run(doc, passes=PASSES):
    """Apply ``passes`` in order."""
    for p in passes:
        doc = p(doc)
    return doc
