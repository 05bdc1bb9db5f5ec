"""Writing an exam's documents: papers, keys, the master key and variants.json.

Every variant is drawn and solved before the first file is written, so bad input (a
constraint nothing satisfies, a blank the problem does not have) leaves the output
folder as it was; each file is then written whole or not at all (the reports writer
and :func:`write_json` write a temporary file and rename it).
"""
from __future__ import annotations

import json
import os
import tempfile

from derive.errors import DeriveError, InputError
from derive.exam import papers


def make_variants(exam, student_ids):
    """Every student's Variant (``[""]``: the one paper without a roster); an error in
    one student's draw names the student."""
    variants = []
    for sid in student_ids:
        try:
            variants.append(exam.variant(sid))
        except DeriveError as exc:
            if not sid:
                raise
            raise type(exc)(f"{exc.message} (student {sid})", where=exc.where) from None
    return variants


def write_exam(exam, variants, out, fmt="pdf", on_file=None):
    """Write every variant's paper and key, the master key and variants.json to ``out``.

    ``fmt`` is "pdf" or "tex" (what is written when pdflatex is missing). With one variant
    and no student id: ``paper.<fmt>``, ``key.<fmt>`` and ``variants.json``; otherwise
    ``papers/<id>.<fmt>``, ``keys/<id>.<fmt>``, ``master_key.<fmt>``, ``variants.json``.
    Returns the paths written, in order.
    """
    from derive.derivation import renderer

    write = renderer("write")
    single = len(variants) == 1 and not variants[0].student_id
    written = []

    def put(docs, path):
        _folder(os.path.dirname(path) or ".")
        write(docs, path, fmt)
        written.append(path)
        if on_file:
            on_file(path)

    for v in variants:
        paper_path = os.path.join(out, f"paper.{fmt}") if single else \
            os.path.join(out, "papers", f"{v.student_id}.{fmt}")
        key_path = os.path.join(out, f"key.{fmt}") if single else \
            os.path.join(out, "keys", f"{v.student_id}.{fmt}")
        put(papers.paper(v), paper_path)
        put(papers.key(v), key_path)
    if not single:
        put(papers.master_key(variants, exam.title), os.path.join(out, f"master_key.{fmt}"))
    path = os.path.join(out, "variants.json")
    write_json(papers.variants_json(exam, variants), path)
    written.append(path)
    return written


def _folder(folder):
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make the output folder ({exc.strerror or exc})",
                         where=folder) from None


def write_json(data, path):
    """Write ``data`` as indented JSON, atomically (a temporary file renamed over ``path``)."""
    folder = os.path.dirname(os.path.abspath(path))
    _folder(folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".variants.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
