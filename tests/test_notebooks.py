"""The course notebooks in examples/notebooks/ execute and show what their handout text says.

Each notebook runs in a fresh IPython kernel (nbclient, a time limit per cell) from its own
folder, as a student would open it; no cell may raise, and each notebook's key rich
outputs are read back: the worked document's math, the adjoint table, the verdict naming
the first wrong step and its kind, the loss table and the plot.
"""
from __future__ import annotations

import glob
import os

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDER = os.path.join(ROOT, "examples", "notebooks")
NOTEBOOKS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(FOLDER, "*.ipynb")))
CELL_TIMEOUT = 120  # seconds; a notebook runs in well under a minute on two cores

pytestmark = pytest.mark.slow  # kernels start, and the digits notebook compiles and trains


def run(name):
    """Execute the notebook ``name`` from its folder; its outputs, flattened."""
    nb = nbformat.read(os.path.join(FOLDER, name), as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": FOLDER}})
    client.execute()  # raises CellExecutionError naming the cell on the first error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    return outputs


def rich(outputs, mime):
    return [o.data[mime] for o in outputs if mime in o.get("data", {})]


def streams(outputs):
    return "".join(o.text for o in outputs if o.output_type == "stream")


def test_the_folder_holds_the_course_notebooks_small_and_unexecuted():
    assert len(NOTEBOOKS) >= 5
    for name in NOTEBOOKS:
        path = os.path.join(FOLDER, name)
        assert os.path.getsize(path) < 300_000, name
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
        assert sum(c.cell_type == "markdown" for c in nb.cells) >= 3, f"{name}: a handout"


def test_rnn_backprop_shows_values_adjoints_gradient_and_the_worked_document():
    out = run("01_rnn_backprop.ipynb")
    md = rich(out, "text/markdown")
    assert any("| node | definition | value |" in m and "| $q$ | p*w | 2 |" in m for m in md)
    assert any("| adjoint |" in m and "`p*q_bar + r*s_bar + t*y_bar`" in m for m in md)
    text = streams(out)
    assert "dy/dw = 3*u1*w**2 + 2*u2*w + u3 = 11" in text
    assert "central difference: 10.99999" in text or "central difference: 11.0000" in text
    assert any(m.startswith("# Backprop through a simple RNN") and "## Backward pass" in m
               for m in md)


def test_linear_layer_shows_index_form_then_matrix_form():
    out = run("02_linear_index_to_matrix.ipynb")
    text = streams(out)
    assert "W_bar = z_bar.T @ x" in text and "- Adjoint of W" in text
    assert "z_bar = 1/B*(-onehot(y) + softmax(z))" in text
    md = rich(out, "text/markdown")
    linear = next(m for m in md if m.startswith("# Linear("))
    index = linear.index("## Adjoint of W")
    # the index form with its delta, the delta eliminated, then the matrix product
    section = linear[index:]
    assert r"\delta_{i k} {x}_{n,j}" in section
    assert r"\sum_{n} {x}_{n,j} {\bar{z}}_{n,i} = \bar{z}^{\top} \, x" in section
    assert any(m.startswith("# CrossEntropyLoss()") and r"\operatorname{softmax}" in m
               for m in md)


def test_checking_a_table_names_the_first_wrong_step_and_the_mistake():
    out = run("03_check_adjoint_table.ipynb")
    md = rich(out, "text/markdown")
    assert any("## w: wrong (missing edge)" in m for m in md)  # the single answer
    report = next(m for m in md if m.startswith("# Check: Backprop through a simple RNN"))
    assert "The first wrong step is q." in report
    assert "## q: wrong (chain not applied)" in report and "## p: correct" in report
    assert "5/6 correct, score 0.83; first wrong step: q" in streams(out)


def test_digits_mlp_trains_like_pytorch_and_plots_both_curves():
    out = run("04_train_digits_vs_pytorch.ipynb")
    table = next(m for m in rich(out, "text/markdown") if m.startswith("| epoch |"))
    rows = [line.split("|")[1:4] for line in table.splitlines()[2:]]
    assert len(rows) == 5
    for epoch, ours, theirs in rows:
        assert abs(float(ours) - float(theirs)) < 1e-5, epoch  # same weights, same batches
    assert float(rows[-1][1]) < 0.5 * float(rows[0][1])  # and it learns
    assert rich(out, "image/png"), "the loss plot"


def test_a_pytorch_cnn_is_imported_and_its_backward_pass_matches_autograd():
    pytest.importorskip("torch")
    out = run("05_import_pytorch_cnn.ipynb")
    assert any("Conv2d(in_channels=1, out_channels=2" in h for h in rich(out, "text/html"))
    text = streams(out)
    assert "K1_bar = [Σ_{n,p,q}(x[n, j, k + p, l + q]*y1_bar[n, i, p, q])]" in text
    assert "W2_bar = z2_bar.T @ y1_3" in text and "FIRST maximum" in text
    document = next(m for m in rich(out, "text/markdown") if m.startswith("# Sequential("))
    assert "## Adjoint of K1" in document and "## MaxPool2d: output shape" in document
    losses = [line for line in text.splitlines() if line.startswith("loss:")]
    assert losses and losses[0].split()[2].rstrip(",") == losses[0].split()[4]
    differences = [float(line.split()[-1]) for line in text.splitlines()
                   if "largest difference" in line]
    assert len(differences) == 4 and max(differences) < 1e-12
