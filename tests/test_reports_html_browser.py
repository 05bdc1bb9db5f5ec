"""HTML pages work offline: MathML made at render time, the graph as inline SVG, checked
in a real headless browser (skipped when ``chromium`` is not installed).

Without a browser: every catalogue layer and bundled example converts with no formula
left as TeX, no page holds a script or loads anything, and hostile text stays text. With
one: the RNN example and the BatchNorm layer are screenshotted, and a test-only copy of
each page (a measuring script appended; product pages have none) is laid out with
``--dump-dom`` to show that every ``<math>`` is MathML with a size, the visible text
holds no TeX, and the RNN's graph is drawn.
"""
import functools
import glob
import html
import json
import os
import re
import shutil
import subprocess

import pytest

import reports
from derive import solve
from derive.layers.catalog import LAYER_NAMES, layer_derivation
from reports import html_out
from reports.mathml import convert, mathml, Unconverted

from conftest import EXAMPLES

CHROMIUM = shutil.which("chromium")


def needs_chromium(test):
    """Marked ``browser`` and skipped without chromium, as the PDF tests are without
    pdflatex."""
    return pytest.mark.browser(
        pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")(test))


EXAMPLE_FILES = sorted(os.path.relpath(p, EXAMPLES) for pattern in
                       ("*.yaml", "tensor/*.yaml", "worked/*.yaml")
                       for p in glob.glob(os.path.join(EXAMPLES, pattern)))
TEX_COMMAND = re.compile(r"\\[A-Za-z]{2,}")
# what a page shows: its markup without the TeX annotations of its formulas
_ANNOTATION = re.compile(r"<annotation\b.*?</annotation>", re.S)


def visible(page):
    return html.unescape(re.sub(r"<[^>]+>", " ", _ANNOTATION.sub("", page)))


def assert_offline_and_converted(page, where):
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""), f"{where}: loads or runs something"
    assert "https://" not in page, where
    assert 'class="tex-fallback"' not in page, \
        f"{where}: {re.findall(r'<span class=.tex-fallback.>.*?</span>', page)[:3]}"
    assert page.count("<math ") == page.count("</annotation>") > 0, where
    shown = TEX_COMMAND.findall(visible(page))
    assert not shown, f"{where} shows TeX: {sorted(set(shown))}"


@functools.lru_cache(maxsize=None)
def _page(kind, name):
    """The HTML page of a layer or an example (its printed forms are checked elsewhere:
    test_printed_check.py; here only the page is made)."""
    d = layer_derivation(name) if kind == "layer" else solve(os.path.join(EXAMPLES, name))
    return html_out.emit(reports.document_of(d))


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_every_layer_page_is_mathml(name):
    assert_offline_and_converted(_page("layer", name), name)


@pytest.mark.parametrize("path", EXAMPLE_FILES)
def test_every_example_page_is_mathml(path):
    assert_offline_and_converted(_page("example", path), path)


def test_the_vocabulary_converts():
    for tex in (r"\bar{w} \hat{y} \tilde{x} \sqrt{x}", r"\sum_{k} e^{s_k} \odot x \cdot y",
                r"\mathrm{next} \operatorname{tanh}\left(x\right) \mathbf{1}_{B}^{\top}",
                r"\frac{\partial y}{\partial w} \delta_{i j} \in \mathbb{R}^{B \times d}",
                r"\begin{bmatrix} 1 & 2 \\ 3 & 4 \end{bmatrix} \begin{pmatrix} a \end{pmatrix}",
                r"\begin{aligned} a &= b \\ &\quad + c \end{aligned}", r"\text{for}\: x > 0",
                r"\arg\max_{j} \lfloor x \rfloor \bmod 2", r"\text{a\_b} \textbar \mathrm{d}"):
        out = convert(tex)
        assert "\\" not in visible(out), (tex, out)
    aligned = convert(r"\begin{aligned} a &= b \\ &= c \end{aligned}", display=True)
    assert aligned.count("<mtr>") == 2 and 'columnalign="right"' in aligned
    assert "<munder><mo>∑</mo>" in convert(r"\sum_{n} x", display=True)
    assert "<mtext>a_b</mtext>" in convert(r"\text{a\_b}")


def test_what_does_not_convert_is_shown_as_tex_with_a_note():
    for tex, why in ((r"w^{1}^{2}", "double superscripts"), (r"\frac{1}", "mfrac"),
                     (r"\unknowncommand x", r"\unknowncommand")):
        with pytest.raises(Unconverted, match=re.escape(why)):
            convert(tex)
        out = mathml(tex)
        assert out.startswith('<span class="tex-fallback"><code>') and "shown as TeX" in out
        assert html.escape(tex) in out


def test_hostile_names_and_notes_stay_text():
    d = solve(os.path.join(EXAMPLES, "rnn.yaml"))[0]
    d.meta["latex_names"] = {"w": r"\text{<script>alert(1)</script>}"}
    d.notes.append("<script>alert(2)</script> and $\\text{<img src=x onerror=alert(3)>}$")
    page = reports.render(d, "html").replace("\xa0", " ")  # \text keeps spaces as U+00A0
    assert "<script" not in page and "<img" not in page
    assert "<mtext>&lt;script&gt;alert(1)&lt;/script&gt;</mtext>" in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "<mtext>&lt;img src=x onerror=alert(3)&gt;</mtext>" in page
    assert "<mtext>a&amp;b&lt;c</mtext>" in mathml(r"\text{a&b<c}")


def test_the_graph_is_svg_where_the_pdf_draws_it():
    rnn = _page("example", "rnn.yaml")
    svg = re.search(r"<svg class=\"graph\".*?</svg>", rnn, re.S).group(0)
    d = solve(os.path.join(EXAMPLES, "rnn.yaml"))[0]
    assert svg.count('class="gnode-box"') == len(d.nodes)
    assert svg.count("<path ") == svg.count("<polygon ") == len(d.edges)
    assert svg.count('class="glabel"') == len(d.edges)  # the local partials are labels
    lstm = _page("layer", "lstm_cell")
    assert "<svg" not in lstm and "Edges of the computational graph" in lstm


# -- in the browser ---------------------------------------------------------------------------

MEASURE = """<script>
(function () {
  const box = e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
  const maths = Array.from(document.querySelectorAll("math"));
  const graph = document.querySelector("svg.graph");
  const out = {
    text: document.body.innerText,
    math: maths.map(m => [m.namespaceURI, ...box(m)]),
    graph: graph ? box(graph) : null,
    nodes: graph ? Array.from(graph.querySelectorAll(".gnode math")).map(box) : [],
  };
  const pre = document.createElement("pre");
  pre.id = "measured";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""
MATHML = "http://www.w3.org/1998/Math/MathML"


def _chromium(*args):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", *args],
                          capture_output=True, text=True, timeout=60, check=True).stdout


def _in_browser(page, tmp_path, stem):
    """Screenshot of the page, and what the measuring copy found laid out."""
    path = tmp_path / f"{stem}.html"
    path.write_text(page, encoding="utf-8")
    shot = tmp_path / f"{stem}.png"
    _chromium(f"--screenshot={shot}", "--window-size=1000,1400", path.as_uri())
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
    probe = tmp_path / f"{stem}-measured.html"
    probe.write_text(page.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = _chromium("--dump-dom", "--window-size=1000,1400", probe.as_uri())
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found, dom[-500:]
    return json.loads(html.unescape(found.group(1)))


def _assert_math_drawn(seen, page, where):
    assert len(seen["math"]) == page.count("<math ") > 10, where
    assert all(ns == MATHML for ns, _, _ in seen["math"]), f"{where}: not parsed as MathML"
    empty = [k for k, (_, w, h) in enumerate(seen["math"]) if not (w > 0 and h > 0)]
    assert not empty, f"{where}: {len(empty)} formulas laid out with no size"
    for tex in (r"\bar", r"\frac", r"\sum", r"\left", "\\"):
        assert tex not in seen["text"], f"{where}: the page shows {tex}"


@needs_chromium
def test_rnn_page_in_the_browser(tmp_path):
    page = _page("example", "rnn.yaml")
    seen = _in_browser(page, tmp_path, "rnn")
    _assert_math_drawn(seen, page, "rnn.yaml")
    width, height = seen["graph"]
    assert width > 300 and height > 100
    assert len(seen["nodes"]) == 10 and all(w > 0 and h > 0 for w, h in seen["nodes"])
    assert "Backprop through a simple RNN" in seen["text"]


@needs_chromium
def test_batchnorm_page_in_the_browser(tmp_path):
    page = _page("layer", "batchnorm")
    seen = _in_browser(page, tmp_path, "batchnorm")
    _assert_math_drawn(seen, page, "batchnorm")
    assert seen["graph"] is not None and "Forward pass, element by element" in seen["text"]
