"""Rosters: a CSV file with a header naming an ``id`` (or ``student_id``) column.

Other columns (names, e-mail) are ignored: only the id reaches a paper and a file name,
so it may hold letters, digits, ``.``, ``_`` and ``-`` (and must not start with ``.``).
An empty or repeated id is refused naming the line, before anything is written.
"""
from __future__ import annotations

import csv
import os
import re

from derive.errors import InputError

ID_COLUMNS = ("id", "student_id")
SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
MAX_BYTES = 5_000_000


def read_roster(path):
    """The student ids of a roster CSV, in file order (InputError naming file and line)."""
    name = os.path.basename(str(path))
    try:
        if os.path.getsize(path) > MAX_BYTES:
            raise InputError(f"larger than the limit of {MAX_BYTES:,} bytes", where=name)
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise InputError(f"cannot read the roster ({exc.strerror})", where=name) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"not a CSV file ({str(exc).splitlines()[0][:80]})",
                         where=name) from None
    if not rows:
        raise InputError("the roster is empty", where=name)
    header = [h.strip().lower() for h in rows[0]]
    column = next((header.index(c) for c in ID_COLUMNS if c in header), None)
    if column is None:
        raise InputError(f"line 1: the header names no '{ID_COLUMNS[0]}' column "
                         f"(got: {', '.join(rows[0])[:80]})", where=name)
    return _ids(rows[1:], column, name)


def _ids(rows, column, name):
    seen = {}
    for line, row in enumerate(rows, 2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        sid = row[column].strip() if column < len(row) else ""
        if not sid:
            raise InputError(f"line {line}: empty student id", where=name)
        if not SAFE_ID.fullmatch(sid):
            raise InputError(f"line {line}: student id {sid!r:.40} may hold only letters, "
                             "digits, '.', '_' and '-'", where=name)
        if sid in seen:
            raise InputError(f"line {line}: duplicate student id {sid!r} (first on line "
                             f"{seen[sid]})", where=name)
        seen[sid] = line
    if not seen:
        raise InputError("the roster lists no students", where=name)
    return list(seen)
