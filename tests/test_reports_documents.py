"""Documents end to end: Markdown, HTML, LaTeX (compiled when pdflatex is here), write()."""
import glob
import os
import shutil

import pytest

import reports
from reports import markdown_out
from derive.errors import DeriveError, InputError, UnsupportedError
from test_reports_samples import matrix, rnn, worked

HAVE_PDFLATEX = shutil.which("pdflatex") is not None
needs_pdflatex = pytest.mark.skipif(not HAVE_PDFLATEX, reason="pdflatex is not installed")
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")

W_CHAIN = (r"\bar{w} &= \bar{y} \frac{\partial y}{\partial w} + \bar{v}_{3} \frac{\partial v_{3}}"
           r"{\partial w} + \bar{v}_{1} \frac{\partial v_{1}}{\partial w} \\")


def test_markdown_shows_the_worked_rnn():
    md = reports.render(rnn(), "md")
    assert md.startswith("# A three-step RNN\n")
    assert "| $v_{2}$ | $u_{2} + v_{1}$ | $u_{2}$, $v_{1}$ | $\\frac{5}{2} \\approx 2.5$ |" in md
    assert "$$\n\\begin{aligned}\n" + W_CHAIN in md
    assert "&= \\frac{23}{4} \\approx 5.75\n\\end{aligned}\n$$" in md
    assert "$w$ is used 3 times: one contribution per use." in md
    assert "\\partial y}{\\partial w} &= \\bar{w} = 3 u^{(1)} w^{2} + 2 u_{2} w + u_{3}" in md
    assert "\\begin{align" not in md.replace("\\begin{aligned}", "")  # GitHub: aligned only


def test_markdown_edge_list_and_prose_escapes():
    md = reports.render(rnn(), "md")
    assert "| $w \\to y$ | $\\frac{\\partial y}{\\partial w} = v_{4}$ | $\\bar{y} v_{4}$ |" in md
    d = worked()
    d.notes.append("count_include_pad=True, *not* a link [1]")
    md = reports.render(d, "md")
    assert "- count\\_include\\_pad=True, \\*not\\* a link [1]" in md
    assert "Exponentiate each score; $Z$ normalises." in md  # inline math untouched


def test_markdown_of_a_worked_example_without_nodes():
    md = reports.render(worked(), "md")
    assert "## Forward pass" not in md and "## Backward pass" not in md
    assert "s &= \\begin{bmatrix} 1 & 2 & 3 \\end{bmatrix}" in md
    assert "Z &= \\sum_k e^{s_k} = e + e^{2} + e^{3} \\approx 30.1929" in md  # own relation
    assert "| class | p |\n|---|---|\n| $1$ | $\\frac{1}{2} \\approx 0.5$ |" in md


def test_html_is_a_standalone_page_with_mathml():
    page = reports.render(rnn(), "html")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "<style>" in page  # offline: no MathJax, no CDN
    assert "<title>A three-step RNN</title>" in page
    assert W_CHAIN.replace("&", "&amp;") in page  # each formula keeps its TeX annotation
    assert "<td><math display=\"inline\"><semantics><mrow><mfrac>" in page
    assert r"\frac{17}{8} \approx 2.125</annotation></semantics></math></td>" in page


def test_html_escapes_text_and_math():
    d = worked()
    d.notes.append("a < b & <script>")
    page = reports.render(d, "html")
    assert "<li>a &lt; b &amp; &lt;script&gt;</li>" in page


def test_latex_source():
    tex = reports.render([rnn(), matrix(), worked()], "tex")
    assert tex.startswith(r"\documentclass") and tex.rstrip().endswith(r"\end{document}")
    assert r"\begin{tikzpicture}" in tex and r"\begin{longtable}" in tex
    assert r"\node[var] (n0)" in tex and r"node[partial] {$v_{4}$}" in tex  # labelled edges
    assert W_CHAIN.replace(" \\\\", "") in tex
    assert r"\bar{W} &= \bar{Z}^{\top} \, X \in \mathbb{R}^{h \times d}" in tex
    assert r"\intertext{$w$ is used 3 times: one contribution per use.}" in tex


def test_display_math_for_jupyter():
    d = rnn()
    tex = d._repr_latex_()
    assert tex.startswith("$$\n\\begin{aligned}\n") and tex.endswith("\\end{aligned}\n$$")
    assert "\\bar{y} &= 1 \\\\" in tex and "= \\frac{23}{4} \\approx 5.75" in tex
    assert d._repr_markdown_() == reports.render(d, "md")


@needs_pdflatex
def test_pdf_compiles(tmp_path):
    out = reports.write([rnn(), matrix(), worked()], tmp_path / "doc.pdf")
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 10_000
    assert os.listdir(tmp_path) == ["doc.pdf"]  # no temporary files left behind


@needs_pdflatex
def test_broken_latex_fails_cleanly_and_writes_nothing(tmp_path):
    d = rnn()
    d.meta["latex_names"] = {"w": r"w^{1}^{2}"}  # within the allowed subset, yet not TeX
    target = tmp_path / "doc.pdf"
    with pytest.raises(DeriveError, match=r"pdflatex failed: Double superscript"):
        reports.write(d, target)
    assert os.listdir(tmp_path) == []


def test_missing_pdflatex_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UnsupportedError) as err:
        reports.write(rnn(), tmp_path / "x.pdf")
    assert str(err.value) == ("pdflatex not found: install texlive-latex-base "
                              "texlive-latex-recommended texlive-latex-extra texlive-pictures "
                              "(or write .tex)")
    assert os.listdir(tmp_path) == []


def test_write_picks_the_format_from_the_suffix(tmp_path):
    d = rnn()
    for suffix, start in ((".tex", r"\documentclass"), (".md", "# A three-step"),
                          (".html", "<!DOCTYPE html>"), (".json", "{")):
        path = reports.write(d, str(tmp_path / ("out" + suffix)))
        with open(path, encoding="utf-8") as fh:
            assert fh.read().startswith(start)
    assert reports.write(d, tmp_path / "notes.txt", fmt="md").read_text().startswith("# A")
    with pytest.raises(InputError, match="suffix '.txt'"):
        reports.write(d, tmp_path / "out.txt")
    with pytest.raises(InputError, match="unknown format 'docx'"):
        reports.render(d, "docx")
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "out.html", "out.json", "out.md",
                                            "out.tex"]


def test_write_replaces_an_existing_file_whole(tmp_path):
    target = tmp_path / "doc.md"
    target.write_text("old")
    reports.write(worked(), target)
    assert target.read_text().startswith("# Softmax by hand")
    with pytest.raises(InputError, match="cannot write here"):
        reports.write(worked(), tmp_path / "missing" / "doc.md")


def test_grad_derivation_renders_in_every_format():
    import derive as dv

    d = dv.grad("(x1 + x2)**2 + x2*x3 - x3", wrt=["x1", "x2", "x3"],
                at={"x1": 1, "x2": 2, "x3": 3})
    md = reports.render(d, "md")
    assert "\\bar{x}_{2} &= \\bar{v}_{3} \\frac{\\partial v_{3}}{\\partial x_{2}} + " in md
    assert "= 2 x_{1} + 2 x_{2} + x_{3} = 3 + 6 = 9" in md
    assert "\\frac{\\partial v_{5}}{\\partial x_{3}} &= \\bar{x}_{3} = x_{2} - 1 = 1" in md
    assert ">x_{1} + x_{2}</annotation>" in reports.render(d, "html")


# problem files (examples/train/ holds training configs, not problems)
EXAMPLE_FILES = sorted(p for folder in ("", "worked", "tensor")
                       for p in glob.glob(os.path.join(EXAMPLES, folder, "*.yaml")))


def _solve(path):
    """Solve an example, or None when derive/ has not registered its kind yet (derive's
    own tests own that; rendering is what is tested here). Other errors fail."""
    import derive as dv

    try:
        return dv.solve(path)
    except UnsupportedError:
        return None


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: os.path.relpath(p, EXAMPLES))
def test_every_example_renders(path):
    derivations = _solve(path)
    if derivations is None:
        pytest.skip("its problem kind is not registered in derive/ yet")
    md = reports.render(derivations, "md")
    assert all(markdown_out.escape(d.title) in md for d in derivations)
    assert "\\begin{aligned}" in md or "| " in md  # there is mathematics to show
    assert reports.render(derivations, "html").count("<h1>") == 1
    assert reports.render(derivations, "tex").count(r"\begin{document}") == 1


@pytest.mark.slow
@needs_pdflatex
def test_all_examples_compile_as_one_pdf(tmp_path):
    derivations = [d for path in EXAMPLE_FILES for d in (_solve(path) or [])]
    assert len(derivations) >= 10  # the bundled examples, all in one document
    data = reports.write(derivations, tmp_path / "examples.pdf").read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 100_000
