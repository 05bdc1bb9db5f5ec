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
    return write_rendered(exam, [rendered(v, fmt) for v in variants], out, fmt, on_file)


def rendered(variant, fmt):
    """One variant's documents, rendered: ``(student id, paper bytes, key bytes, its
    variants.json entry, its master-key pages)`` -- what a Dask worker sends back (a
    class's papers are made on many machines, written by one)."""
    return (variant.student_id, render_bytes(papers.paper(variant), fmt),
            render_bytes(papers.key(variant), fmt), papers.variant_entry(variant),
            papers.master_key_pages(variant))


def render_bytes(docs, fmt):
    """``docs`` written as ``fmt`` by the reports writer, as bytes."""
    from derive.derivation import renderer

    with tempfile.TemporaryDirectory(prefix="derivekit-exam-") as tmp:
        path = os.path.join(tmp, f"doc.{fmt}")
        renderer("write")(docs, path, fmt)
        with open(path, "rb") as fh:
            return fh.read()


def write_rendered(exam, results, out, fmt, on_file=None):
    """Write :func:`rendered` results (in roster order) as :func:`write_exam` does."""
    from derive.derivation import renderer

    single = len(results) == 1 and not results[0][0]
    written = []

    def done(path):
        written.append(path)
        if on_file:
            on_file(path)

    for sid, paper_bytes, key_bytes, _, _ in results:
        for kind, data in (("paper", paper_bytes), ("key", key_bytes)):
            path = os.path.join(out, f"{kind}.{fmt}") if single else \
                os.path.join(out, f"{kind}s", f"{sid}.{fmt}")
            write_bytes(data, path)
            done(path)
    if not single:
        path = os.path.join(out, f"master_key.{fmt}")
        _folder(out)
        renderer("write")(papers.master_key_of([r[4] for r in results], exam.title), path,
                          fmt)
        done(path)
    path = os.path.join(out, "variants.json")
    write_json(papers.variants_document(exam, [r[3] for r in results]), path)
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
    return write_bytes((json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
                       path)


def write_bytes(data, path):
    """Write ``data`` to ``path`` atomically (a temporary file renamed over it); a folder
    that cannot be made is one line."""
    from derive.exam.marks import replace_atomically

    _folder(os.path.dirname(os.path.abspath(path)))
    return replace_atomically(path, data, folder_made=True)
