"""How records show themselves: a short ``print``, a one-line ``repr``, and in Jupyter the
worked document (Markdown with math), an HTML summary table and verdicts.

The notebook ``examples/jupyter.ipynb`` is executed for real: nbclient starts an IPython
kernel, runs every cell and stops the kernel; the test reads the rich outputs a notebook
front end would show.
"""
from __future__ import annotations

import os
import time

import pytest
import sympy as sp

import derive as dv
from derive.command_line import summary
from derive.derivation import Derivation, Derivations
from derive.verify import check_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "examples", "jupyter.ipynb")


def example(*parts):
    return os.path.join(ROOT, "examples", *parts)


@pytest.fixture(scope="module")
def rnn():
    return dv.solve(example("rnn.yaml"))[0]


# -- text: print and repr ---------------------------------------------------------------------
def test_print_is_the_command_line_summary_and_short(rnn):
    text = str(rnn)
    assert text == summary(rnn)  # one place: the text `derivekit solve` prints
    assert len(text) < 1000 and "\n" in text
    assert "dy/dw = 3*u1*w**2 + 2*u2*w + u3 = 11" in text
    assert "Node(" not in text and "Edge(" not in text


def test_repr_is_one_short_line(rnn):
    line = repr(rnn)
    assert line == "<Derivation 'Backprop through a simple RNN': 10 nodes, gradients w.r.t. w>"
    d = dv.grad("(x1 + x2)**2 + x2*x3 - x3", wrt=["x1", "x2", "x3"],
                at={"x1": 1, "x2": 2, "x3": 3})
    assert repr(d).endswith("gradients w.r.t. x1, x2, x3>") and "\n" not in repr(d)
    wide = dv.grad(" + ".join(f"x{k}*x{k + 1}" for k in range(30)))
    assert len(repr(wide)) < 200 and "(31 in all)" in repr(wide)
    assert repr(Derivation(title="t\n" * 100)).count("\n") == 0


def test_solve_returns_a_list_that_prints_every_derivation():
    ds = dv.solve(example("worked", "batchnorm.yaml"))
    assert isinstance(ds, list) and isinstance(ds, Derivations) and len(ds) == 3
    assert str(ds) == summary(ds) and all(d.title in str(ds) for d in ds)
    assert repr(ds).startswith("[<Derivation ") and repr(ds).count("\n") == 0
    assert ds[0] is list(ds)[0] and ds == list(ds)
    assert isinstance(dv.solve({"expression": "x*y", "wrt": ["x"]}), Derivations)


def test_a_verdict_and_a_report_print_their_explanation_and_repr_in_one_line(rnn):
    v = dv.check("t + w*r", against=rnn, wrt="w")
    assert repr(v) == "<Verdict w: wrong [missing_edge]>"
    assert str(v).startswith("w: wrong [missing_edge]\n  given:    t + w*r")
    report = check_table(rnn, {"t": "w", "w": "t + w*r"})
    assert repr(report).startswith("<Report Backprop through a simple RNN: 1/2 correct")
    assert str(report).splitlines()[0] == repr(report)[len("<Report "):-1]


def test_ipython_plain_text_is_the_print_form_and_one_line_inside_containers(rnn):
    pretty = pytest.importorskip("IPython.lib.pretty").pretty
    assert pretty(rnn) == str(rnn)
    assert pretty([rnn, 1]) == f"[{repr(rnn)}, 1]"
    net = dv.Sequential(dv.Linear(4, 3), dv.ReLU())
    assert pretty(net.summary()) == str(net.summary())


def test_without_a_renderer_the_rich_forms_step_aside(rnn, monkeypatch):
    from derive import derivation

    monkeypatch.setattr(derivation, "RENDERERS", {})
    monkeypatch.setattr(derivation, "_plugins_loaded", [True])
    assert rnn._repr_markdown_() is None and rnn._repr_latex_() is None
    assert Derivations([rnn])._repr_markdown_() is None
    assert str(rnn) == summary(rnn)  # Jupyter falls back to this plain text


# -- summary(): a list of rows, a text table, an HTML table ----------------------------------
def test_summary_is_a_list_of_rows_a_text_table_and_an_html_table():
    net = dv.Sequential(dv.Linear(64, 128), dv.ReLU(), dv.Linear(128, 10),
                        loss=dv.SoftmaxCrossEntropy())
    s = net.summary()
    assert isinstance(s, list) and s.rows is s and len(s) == 4
    assert [r["output"] for r in s] == ["z1", "a1", "z2", "L"] and s.total == 9610
    assert s[1]["shape"] == (sp.Symbol("B", integer=True, positive=True), 128)
    lines = str(s).splitlines()
    assert repr(s) == str(s) and lines[-1] == "total parameters: 9610"
    assert lines[1].endswith("W1 [128, 64], b1 [128] = 8320")
    assert len({line.index("  z") for line in lines[1:4:2]}) == 1  # columns line up
    html = s._repr_html_()
    assert html.startswith("<table>") and html.count("<tr>") == 6
    assert "<td>W1 [128, 64], b1 [128]</td>" in html and ">8320</td>" in html
    assert ">9610</th>" in html
    assert "| 8320 |" in s._repr_markdown_()  # kernels' run report embeds this


# -- the notebook, executed --------------------------------------------------------------------
def run_notebook():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": ROOT}}).execute()
    return nb, time.perf_counter() - start


@pytest.fixture(scope="module")
def notebook():
    nb, seconds = run_notebook()
    print(f"notebook executed in {seconds:.1f} s")
    cells = {}
    for cell in nb.cells:
        for tag in cell.metadata.get("tags", []):
            cells[tag] = cell.outputs
    return cells


def rich(outputs, mime):
    """The ``mime`` data of the cell's displayed result (execute_result)."""
    found = [o["data"][mime] for o in outputs
             if o["output_type"] in ("execute_result", "display_data") and mime in o["data"]]
    assert len(found) == 1, (mime, outputs)
    return found[0]


def test_no_cell_of_the_notebook_fails(notebook):
    errors = [o for outputs in notebook.values() for o in outputs
              if o["output_type"] == "error"]
    assert not errors, errors


def test_the_notebook_typesets_the_rnn_gradient(notebook):
    md = rich(notebook["derivation"], "text/markdown")
    assert md.startswith("# Backprop through a simple RNN")
    assert r"\bar{w} &= \bar{y} \frac{\partial y}{\partial w}" in md
    assert r"&= 3 u_{1} w^{2} + 2 u_{2} w + u_{3}" in md and "$$" in md
    assert r"\begin{aligned}" in rich(notebook["derivation"], "text/latex")
    assert "dy/dw = 3*u1*w**2 + 2*u2*w + u3 = 11" in rich(notebook["derivation"], "text/plain")


def test_print_in_the_notebook_is_short(notebook):
    text = "".join(o["text"] for o in notebook["print"] if o["output_type"] == "stream")
    assert text.splitlines() == ["Backprop through a simple RNN",
                                 "  dy/dw = 3*u1*w**2 + 2*u2*w + u3 = 11",
                                 "<Derivation 'Backprop through a simple RNN': 10 nodes, "
                                 "gradients w.r.t. w>"]


def test_a_list_of_worked_examples_shows_as_one_document(notebook):
    md = rich(notebook["worked"], "text/markdown")
    assert md.startswith("# Worked solutions")
    assert "\n## BatchNorm (train mode) by hand\n" in md
    assert "\n## BatchNorm (eval mode) by hand\n" in md
    assert r"\hat{x}_{1,1} &= \frac{x_{1,1} - \mu_{1}}{\sqrt{\sigma_{1}^{2} + \epsilon}}" in md


def test_a_layer_derivation_shows_its_matrix_gradients(notebook):
    md = rich(notebook["layer"], "text/markdown")
    assert r"\bar{W} &= \bar{z} \frac{\partial z}{\partial W} = \bar{z}^{\top} \, x" in md


def test_the_summary_shows_as_an_html_table_with_the_parameter_counts(notebook):
    html = rich(notebook["summary"], "text/html")
    assert "<table>" in html and html.count("<tr>") == 6
    for count in (">8320<", ">1290<", ">9610<"):
        assert count in html
    assert "total parameters: 9610" in rich(notebook["summary"], "text/plain")


def test_a_wrong_answer_shows_as_wrong_with_the_expected_adjoint(notebook):
    md = rich(notebook["verdict"], "text/markdown")
    assert "## w: wrong (missing edge)" in md
    assert r"\bar{w} &= 3 u_{1} w^{2} + 2 u_{2} w + u_{3}" in md
    assert rich(notebook["verdict"], "text/plain").startswith("w: wrong [missing_edge]")


def test_a_tensor_report_shows_its_score_and_the_wrong_step(notebook):
    md = rich(notebook["report"], "text/markdown")
    assert "1 of 2 answers correct" in md and "## x: wrong (transpose)" in md
    assert r"\bar{x} &= \bar{v}_{4} \, W^{\top}" in md
