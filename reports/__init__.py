"""reports: derivations rendered for people (LaTeX, PDF, Markdown, HTML) and programs (JSON).

The renderer is a pipeline, as latexify-py's is: a Derivation (or a list of them) is
built into a Document of blocks (``parts``), tidied by small passes (``passes``), then
laid out by one emitter per format (``latex_out``, ``markdown_out``, ``html_out``).
JSON is the Derivation's own data (``json_out``), not a layout. Importing reports
registers it as derive's renderer (:func:`register`): derive itself imports no renderer.

>>> import reports
>>> reports.render(d, "md")            # doctest: +SKIP
>>> reports.write(d, "rnn.pdf")        # doctest: +SKIP
"""
from __future__ import annotations

import os
import re

from derive.errors import InputError
from derive.tensor.printed import check_printed
from derive.step_values import check_step_values

from reports import html_out, json_out, latex_out, markdown_out, passes
from reports.files import pdf_bytes, replace_atomically
from reports.latex_printer import remembered
from reports.parts import build, plots

FORMATS = ("tex", "md", "html", "json")
SUFFIXES = {".tex": "tex", ".pdf": "pdf", ".md": "md", ".markdown": "md", ".html": "html",
            ".htm": "html", ".json": "json"}
_EMITTERS = {"tex": latex_out.emit, "md": markdown_out.emit, "html": html_out.emit}


def document_of(d):
    """The Document of a Derivation or a list of them, after every pass."""
    return passes.run(build(d))


def render(d, fmt):
    """Render a Derivation (or a list of them, one document) as text.

    Parameters
    ----------
    d : derive.Derivation or list of Derivation
    fmt : {"tex", "md", "html", "json"}

    Returns
    -------
    str
        A standalone LaTeX file, a Markdown page, an HTML page, or indented JSON.
    """
    return render_with_files(d, fmt)[0]


def render_with_files(d, fmt, prefix=None):
    """The text of :func:`render` and the image files it refers to, ``{name: bytes}``.

    Figures (plots of worked sections) are embedded in HTML, and in Markdown when no
    ``prefix`` is given (a data URI); LaTeX, and Markdown with a ``prefix``, refer to image
    files named ``prefix + "figure-N.png"``, to be written beside the document.
    """
    if fmt not in _EMITTERS and fmt != "json":
        hint = "; a PDF is made by write()" if fmt == "pdf" else ""
        raise InputError(f"unknown format {fmt!r} (use {', '.join(FORMATS)}{hint})")
    with remembered():
        document = None if fmt == "json" else document_of(d)
        check_printed_once(d, document)
        if fmt == "json":
            return json_out.dumps(d), {}
        for plot in plots(document):
            plot.file = (prefix or "") + plot.file
        if fmt == "md":
            text = markdown_out.emit(document, embed=prefix is None)
        else:
            text = _EMITTERS[fmt](document)
        files = {} if fmt == "html" or (fmt == "md" and prefix is None) else \
            {p.file: p.png for p in plots(document)}
        return text, files


def check_printed_once(d, document=None):
    """Every formula the document of ``d`` prints, evaluated against the derivation's own
    numbers before anything is written: derive.tensor.printed evaluates a tensor
    derivation's index and matrix forms; reports.readback reads the LaTeX of every formula
    the document shows (``document``, the one being written, else d's own) back with the
    answer reader, and the CLI summary's text of every gradient, and compares them with
    the derivation's numbers. PrintedFormError names the formula; once per Derivation."""
    from reports.readback import latex_readback, printed_tex, text_readback

    shown = None if document is None else printed_tex(document)
    for one in d if isinstance(d, (list, tuple)) else [d]:
        meta = getattr(one, "meta", None)
        if not isinstance(meta, dict) or meta.get("printed_checked"):
            continue
        counts = {}
        if one.program is not None:
            counts = check_printed(one)
        if one.adjoints or one.gradients:
            counts["latex"] = latex_readback(one, shown=shown)
            counts["text"] = text_readback(one)
        counts["steps"] = check_step_values(one)  # worked steps: the numbers add up
        meta["printed_checked"] = counts


def format_of(path, fmt=None):
    """The output format named by ``fmt`` or by the suffix of ``path``."""
    if fmt is not None:
        fmt = fmt.lower().lstrip(".")
        if fmt not in FORMATS + ("pdf",):
            raise InputError(f"unknown format {fmt!r} (use {', '.join(FORMATS)} or pdf)")
        return fmt
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in SUFFIXES:
        raise InputError(f"cannot tell the format from the suffix {suffix or '(none)'!r} "
                         "(use .tex, .pdf, .md, .html or .json)", where=os.fspath(path))
    return SUFFIXES[suffix]


def write(d, path, fmt=None):
    """Write a Derivation (or a list) to ``path``; the format comes from the suffix.

    ``.pdf`` runs pdflatex in a temporary directory (UnsupportedError when it is not
    installed). The file appears complete or not at all: it is written next to its
    destination under a temporary name and then renamed. A ``.tex`` or ``.md`` with
    figures gets its images beside it, ``<name>-figure-N.png`` (written first), so the
    ``.tex`` compiles where it stands; HTML embeds them, a PDF holds them.

    Returns
    -------
    path, as given
    """
    fmt = format_of(path, fmt)
    if fmt == "pdf":
        data = pdf_bytes(*render_with_files(d, "tex"))
    else:
        stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
        text, files = render_with_files(d, fmt, re.sub(r"[^A-Za-z0-9_-]", "-", stem) + "-")
        folder = os.path.dirname(os.fspath(path))
        for name, png in files.items():
            replace_atomically(os.path.join(folder, name), png)
        data = text.encode("utf-8")
    replace_atomically(path, data)
    return path


def register():
    """Register reports as derive's renderer: a Derivation then displays itself in Jupyter
    (Markdown and LaTeX), ``Derivation.to_dict()`` gives the documented JSON, and derive's
    batch checking writes its reports through :func:`write`. Runs on import (and through
    the ``derivekit.renderers`` entry point when only ``derive`` was imported)."""
    from derive.derivation import register_renderers

    register_renderers(markdown=lambda d: render(d, "md"), latex=latex_out.display_math,
                       json=json_out.to_dict, write=write)


register()
