r"""User text never makes TeX read or write a file.

A sentinel file stands in for /etc/hostname: a display name, a title, a note or a label
that asks for it with ``\input`` is refused where it enters (naming file, key and the
command) or escaped, and pdflatex itself runs paranoid, so even a hand-made document
cannot read it.
"""
import os
import secrets
import shutil
import subprocess
import time

import pytest
import sympy as sp
import yaml

import derive as dv
import reports
from derive.derivation import Derivation
from derive.errors import DeriveError, InputError
from derive.latexsubset import check_display_name, refusal
from reports import files, latex_out

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNN = os.path.join(ROOT, "examples", "rnn.yaml")
needs_pdflatex = pytest.mark.skipif(shutil.which("pdflatex") is None,
                                    reason="pdflatex is not installed")


@pytest.fixture
def secret(tmp_path):
    """A file whose content must never appear in any output: (path, content)."""
    content = "SENTINEL" + secrets.token_hex(6).upper()
    path = tmp_path / "secret" / "hostname"
    path.parent.mkdir()
    path.write_text(content + "\n")
    return str(path), content


def pdf_text(data, tmp_path):
    """The text of a PDF without whitespace (math italic comes out as "SEN T IN EL"), by
    pdftotext, or the raw bytes decoded when pdftotext is absent."""
    pdf = tmp_path / "out.pdf"
    pdf.write_bytes(data)
    if shutil.which("pdftotext") is None:
        return data.decode("latin-1")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    return "".join(text.split())


def rnn_with(tmp_path, **changes):
    spec = yaml.safe_load(open(RNN, encoding="utf-8"))
    spec.update(changes)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


# -- where user text enters: refused with file, key and command ---------------------------
@pytest.mark.parametrize("name, command", [
    (r"\input{%s}", r"\input"), (r"\include{%s}", r"\include"),
    (r"w\openin5=%s", r"\openin"), (r"\immediate\write18{cat %s}", r"\immediate"),
    (r"\catcode`\^=7 %s", r"\catcode"), (r"\def\x{%s}", r"\def"),
    (r"\csname input\endcsname{%s}", r"\csname"), (r"^^5cinput{%s}", "^^"),
    (r"w %% %s", "'%'"), (r"\verb|%s|", r"\verb"),
])
def test_hostile_display_names_are_refused_naming_file_key_and_command(
        tmp_path, secret, name, command):
    path = rnn_with(tmp_path, latex={"w": name % secret[0]})
    start = time.perf_counter()
    with pytest.raises(InputError) as err:
        dv.solve(path)
    message = str(err.value)
    assert message.startswith("p.yaml: latex.w: " + command + " is not allowed in a display")
    assert "\n" not in message and time.perf_counter() - start < 10


def test_a_title_asking_for_a_file_is_refused_at_load(tmp_path, secret):
    path = rnn_with(tmp_path, title=r"RNN $\input{%s}$" % secret[0])
    with pytest.raises(InputError, match=r"^p\.yaml: title: \\input is not allowed in "
                                         r"problem text"):
        dv.solve(path)


def test_labels_of_worked_problems_are_checked_too(tmp_path, secret):
    spec = tmp_path / "knn.yaml"
    spec.write_text("kind: knn\nX: [[0, 0], [1, 1], [3, 0]]\nquery: [2, 1]\nk: 1\n"
                    "y: [a, '\\input{%s}', b]\n" % secret[0])
    with pytest.raises(InputError, match=r"^knn\.yaml: y\[1\]: \\input is not allowed"):
        dv.solve(str(spec))


def test_the_documented_display_names_still_work():
    for name in ["w^{(1)}_{11}", r"\hat{y}", r"\mathbf{W}_{ij}", r"\operatorname{LN}",
                 r"\bar{\alpha}'", r"\tilde{x}_{1,2}", r"\vec{v}", r"\mathrm{var}_2"]:
        assert check_display_name(name, "latex.w") == name
    assert refusal(r"\frac{\partial \ell}{\partial w}") is None


# -- where user text reaches TeX without a problem file: escaped, or refused ---------------
def derivation_from_python(secret_path):
    d = dv.grad("w*u", wrt=["w"], at={"w": 2, "u": 3})
    d.title = r"Title \input{%s} $\input{%s}$" % (secret_path, secret_path)
    d.notes.append(r"A note $\input{%s}$ and ^^5cinput{%s}" % (secret_path, secret_path))
    d.result = [{"label": r"\input{%s}" % secret_path, "value": 1}]
    return d


def test_title_notes_and_values_from_python_are_escaped(secret):
    tex = reports.render(derivation_from_python(secret[0]), "tex")
    body = tex.split(r"\begin{document}", 1)[1]
    assert latex_out.forbidden(body) is None
    assert r"\input" not in body and "^^" not in body
    assert r"\textbackslash{}input" in body  # shown as the characters the user typed


@needs_pdflatex
def test_the_pdf_of_hostile_python_text_does_not_hold_the_file(tmp_path, secret):
    out = tmp_path / "x.pdf"
    reports.write(derivation_from_python(secret[0]), out)
    text = pdf_text(out.read_bytes(), tmp_path)
    assert secret[1] not in text
    assert "input" in text  # the text was printed, not dropped


def test_display_names_given_in_python_are_checked_when_rendering(secret):
    d = dv.grad("w*u", wrt=["w"], at={"w": 2, "u": 3})
    d.meta["latex_names"] = {"w": r"\input{%s}" % secret[0]}
    with pytest.raises(InputError, match=r"^latex_names: w: \\input is not allowed"):
        reports.render(d, "tex")


def test_a_forbidden_command_that_slips_through_is_never_written(secret):
    d = Derivation(title="t", kind="check")
    d.result = sp.Symbol("x")
    d.sections = []
    d.meta["latex_names"] = {}
    doc = reports.document_of(d)
    doc.blocks[-1].rows[0].lhs.tex = r"\input{%s}" % secret[0]  # a renderer bug, simulated
    with pytest.raises(DeriveError, match=r"refusing to write LaTeX that contains \\input"):
        latex_out.emit(doc)


# -- pdflatex itself is paranoid about files -------------------------------------------------
HAND_MADE = r"""\documentclass{article}
\begin{document}
Before \input{%s} after.
\end{document}
"""


@needs_pdflatex
def test_our_pdflatex_runner_cannot_read_a_file_outside_its_folder(tmp_path, secret):
    try:
        data = files.pdf_bytes(HAND_MADE % secret[0])
    except DeriveError as exc:  # TeX refused the file (openin_any=p): a clean failure
        assert str(exc).startswith("pdflatex failed: LaTeX Error: File")
        assert secret[1] not in str(exc)
    else:
        assert secret[1] not in pdf_text(data, tmp_path)


@needs_pdflatex
def test_our_pdflatex_runner_cannot_write_outside_its_folder(tmp_path):
    target = tmp_path / "written.txt"
    source = (r"\documentclass{article}\begin{document}x\newwrite\f"
              r"\immediate\openout\f=%s \immediate\write\f{pwned}\immediate\closeout\f"
              r"\end{document}" % target)
    try:
        files.pdf_bytes(source)
    except DeriveError:
        pass
    assert not target.exists()


def test_the_runner_environment_is_paranoid(tmp_path, monkeypatch):
    monkeypatch.setenv("openin_any", "a")
    monkeypatch.setenv("TEXMFOUTPUT", "/")
    env = files.tex_environment(str(tmp_path))
    assert env["openin_any"] == "p" and env["openout_any"] == "p"
    assert env["TEXMFOUTPUT"] == str(tmp_path) and env["shell_escape"] == "f"


@needs_pdflatex
def test_normal_display_names_render_in_the_pdf(tmp_path):
    path = rnn_with(tmp_path, latex={"w": "w^{(1)}_{11}", "u1": r"\hat{u}_{1}"})
    out = tmp_path / "rnn.pdf"
    reports.write(dv.solve(path)[0], out)
    text = pdf_text(out.read_bytes(), tmp_path)
    assert "BackpropthroughasimpleRNN" in text
    assert "(1)" in text and "11" in text  # w^{(1)}_{11} typeset, not refused
