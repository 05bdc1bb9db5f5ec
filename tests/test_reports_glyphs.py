"""Every character a document holds prints in its PDF: Unicode notation becomes TeX (x̄ ->
\\bar{x}, ⊙ -> \\odot), ``|`` prints as a bar (not as a dash), nothing becomes ``?``."""
import ast
import glob
import os
import re
import shutil
import subprocess
import unicodedata
from concurrent.futures import ThreadPoolExecutor

import pytest

import reports
from derive.errors import UnsupportedError
from reports import latex_out
from reports.files import pdf_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
needs_pdf_tools = pytest.mark.skipif(
    shutil.which("pdflatex") is None or shutil.which("pdftotext") is None,
    reason="pdflatex or pdftotext is not installed")


def _combining(c):
    return c != "" and unicodedata.category(c) == "Mn"


def _strings_of_the_code_base():
    """Every string literal of derive/, reports/ and kernels/ (the table itself aside) and
    the text of every bundled example: what documents are written with."""
    table = os.path.join(ROOT, "reports", "latex_out.py")
    for folder in ("derive", "reports", "kernels"):
        for path in sorted(glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True)):
            if path == table:
                continue
            with open(path, encoding="utf-8") as fh:
                tree = ast.parse(fh.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    # a lone combining accent is a parser's table key, not text: no base
                    text = node.value[1:] if _combining(node.value[:1]) else node.value
                    yield os.path.relpath(path, ROOT), text
    for path in sorted(glob.glob(os.path.join(EXAMPLES, "**", "*.yaml"), recursive=True)):
        with open(path, encoding="utf-8") as fh:
            yield os.path.relpath(path, ROOT), fh.read()


def test_every_character_the_code_base_writes_has_tex():
    missing = {}
    for where, text in _strings_of_the_code_base():
        for c in latex_out.unmapped(text):
            missing.setdefault(f"{c} U+{ord(c):04X}", where)
    assert not missing, "no TeX for (character: first file): %s" % missing


@pytest.mark.parametrize("text, tex", [
    ("x̄ = (ȳ − mean(ȳ))", r"$\bar{x}$ = ($\bar{y}$ $-$ mean($\bar{y}$))"),
    ("x̂ ŷ ĝ ā σ̄", r"$\hat{x}$ $\hat{y}$ $\hat{g}$ $\bar{a}$ $\bar{\sigma}$"),
    ("Σ δ ⊙ ≈ x² a⁺ W₁ ᵀ",
     r"$\Sigma$ $\delta$ $\odot$ $\approx$ x$^{2}$ a$^{+}$ W$_{1}$ $^{\top}$"),
    ("max |difference|", r"max \textbar{}difference\textbar{}"),
    ("café — Müller", "café --- Müller"),
    ("a ⨁ b", r"a \fbox{\scriptsize U+2A01} b"),
])
def test_unicode_and_specials_become_tex(text, tex):
    assert latex_out.escape(text) == tex


def test_math_segments_take_the_same_table():
    assert latex_out.prose("$x̄ ⊙ ŷ$") == r"${\bar{x}} {\odot} {\hat{y}}$"


def test_unmapped_names_what_has_no_tex():
    assert latex_out.unmapped("x̄ ⊙ café ⨁ 中") == ["⨁", "中"]


# -- every layer and every bundled example, through pdflatex and pdftotext ----------------

def _layers():
    from derive.layers.catalog import LAYER_NAMES, layer_derivation

    return [layer_derivation(name) for name in LAYER_NAMES]


def _examples():
    import derive as dv

    out = []
    for folder in ("", "tensor", "worked"):
        for path in sorted(glob.glob(os.path.join(EXAMPLES, folder, "*.yaml"))):
            try:
                out += dv.solve(path)
            except UnsupportedError:  # a kind derive/ has not registered: not ours to test
                pass
    return out


_CHECKS = [("rnn.yaml", "check/rnn_answers.yaml"),
           ("check/bce_fanout.yaml", "check/bce_answers.yaml"),
           ("tensor/v_problem.yaml", "check/v_answers.yaml"),
           ("tensor/v_problem.yaml", "check/v_carried_answers.yaml")] + [
    ("rnn.yaml", f"check/class/{s}.yaml") for s in ("ada", "bo", "carol", "dan")]


def _verdicts(tmp_path):
    """The verdict reports of examples/check as (markdown, LaTeX) pairs."""
    from derive.verify import cli_check

    out = []
    for k, (problem, answers) in enumerate(_CHECKS):
        pair = []
        for suffix in ("md", "tex"):
            target = tmp_path / f"check{k}.{suffix}"
            cli_check(os.path.join(EXAMPLES, problem), os.path.join(EXAMPLES, answers),
                      out=str(target))
            pair.append(target.read_text(encoding="utf-8"))
        out.append(pair)
    return out


def _pdf_text(tex, tmp_path, name, files=None):
    pdf = tmp_path / f"{name}.pdf"
    pdf.write_bytes(pdf_bytes(tex, files))
    return subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout


def _artefacts(source, printed):
    """What the PDF shows that its source did not have: ``?`` for a lost glyph, an em dash
    for a ``|`` set in text, a box naming an unmapped code point."""
    found = []
    for mark in ("?", "—"):
        if printed.count(mark) > source.count(mark):
            lines = [line for line in printed.splitlines() if mark in line]
            found.append(f"{printed.count(mark)} x {mark!r} (source {source.count(mark)}): "
                         f"{lines[:5]}")
    boxes = sorted(set(re.findall(r"U\+[0-9A-F]{4}", printed)))
    if boxes:
        found.append(f"unmapped characters {boxes}")
    return found


@pytest.mark.slow
@needs_pdf_tools
def test_every_layer_and_example_prints_every_glyph(tmp_path):
    """Each group is one document; pdflatex runs two at a time while Python builds the
    next one. A group's PDF text may hold ``?`` and em dashes only as often as its
    Markdown (the same text, no TeX in between) does."""
    failures = {}
    with ThreadPoolExecutor(2) as pool:
        jobs = {}
        layers = _layers()
        half = len(layers) // 2
        groups = [("layers-1", layers[:half]), ("layers-2", layers[half:]),
                  ("examples", _examples())]
        for name, derivations in groups:
            source = reports.render(derivations, "md")
            tex, files = reports.render_with_files(derivations, "tex")  # with its plots
            jobs[name] = source, pool.submit(_pdf_text, tex, tmp_path, name, files)
        for k, (md, tex) in enumerate(_verdicts(tmp_path)):
            jobs[f"check{k}"] = md, pool.submit(_pdf_text, tex, tmp_path, f"check{k}")
        for name, (source, job) in jobs.items():
            missing = latex_out.unmapped(source)
            found = _artefacts(source, job.result()) + (
                [f"no TeX for {missing}"] if missing else [])
            if found:
                failures[name] = found
    assert not failures, failures
