"""Printed = computed for the CLI summary (reports.readback.text_readback): the text of every
gradient the ``derivekit`` summary prints (``lhs = text(expression) = value``, text from
reports.text_printer) is read back with the plain-text answer reader students' answers go
through (the whitelist parser; the tensor answer parser for ``z_bar.T @ X`` and ``ones(1, B)
@ z_bar``) and agrees with the gradient: a scalar one at a random point and at the
derivation's values, a tensor one with the program's arrays. A text printer that drops a
factor or a transpose is caught, naming the gradient.

Skips that remain, each listed with its reason in ``counts["skips"]``:

* gradients printed in index notation (``[Σ_{k}(...)]_(n,i)``): the answer parsers read
  no sums (convolution, pooling, attention, embedding, ...);
* Piecewise gradients (LeakyReLU with either slope, ELU: ``Piecewise((1, x > 0), ...)``):
  the whitelist admits no comparisons.

Any other reason fails the tests.
"""
from __future__ import annotations

import glob
import os

import pytest

from derive.tensor.printed import PrintedFormError
from reports.readback import text_readback
from reports.readback_tensor import INDEX_FORM
from reports.text_printer import TextPrinter, text

import test_tensor_table as table
from test_printed_latex import _derivations, _layer  # one cache of derived layers

HERE = os.path.dirname(os.path.abspath(__file__))
SCALAR = sorted(glob.glob(os.path.join(HERE, "..", "examples", "*.yaml")))
TENSOR = sorted(glob.glob(os.path.join(HERE, "..", "examples", "tensor", "*.yaml")))
KNOWN_GAPS = ("unsupported function 'Piecewise'",)


def _unknown(counts):
    return [(w, why) for w, why in counts["skips"]
            if why != INDEX_FORM and not any(g in why for g in KNOWN_GAPS)]


@pytest.mark.parametrize("path", SCALAR, ids=os.path.basename)
def test_every_scalar_example_summary_reads_back(path):
    for d in _derivations(path):
        counts = text_readback(d)
        assert counts["read"] == len(d.gradients) and counts["skipped"] == 0, counts


@pytest.mark.parametrize("path", TENSOR, ids=os.path.basename)
def test_every_tensor_example_summary_reads_back(path):
    for d in _derivations(path):
        counts = text_readback(d)
        assert not _unknown(counts), counts["skips"]
        assert counts["read"] + counts["skipped"] == len(d.gradients), counts


@pytest.mark.parametrize("row", table.ROWS, ids=lambda r: r.name)
def test_every_catalogue_layer_summary_reads_back(row):
    d = _layer(row.name)
    counts = text_readback(d)
    assert not _unknown(counts), counts["skips"]
    assert counts["read"] + counts["skipped"] == len(d.gradients), counts


def test_the_matrix_forms_of_the_summary_are_read():
    read = sum(text_readback(_layer(r.name))["read"] for r in table.ROWS)
    assert read >= 80, read
    assert text_readback(_layer("lstm_cell"))["read"] == 15
    assert text_readback(_layer("gru_cell"))["read"] == 11


def test_an_elementwise_map_prints_its_matrix_products_with_at():
    line = text(_layer("gru_cell").gradients["x"].expression)
    assert "sigmoid((h @ W_hr.T) + (ones(B, 1) @ b_r) + (x @ W_xr.T))" in line
    assert "*W_" not in line  # x*W_xr.T would read as an elementwise product


# -- a wrong summary is caught --------------------------------------------------------------


def test_a_text_printer_that_drops_a_factor_is_caught(monkeypatch):
    print_mul = TextPrinter._print_Mul

    def dropped(self, expr, *args, **kwargs):
        return print_mul(self, expr.func(*expr.args[1:]) if len(expr.args) > 2 else expr,
                         *args, **kwargs)

    monkeypatch.setattr(TextPrinter, "_print_Mul", dropped)
    d = _derivations(os.path.join(HERE, "..", "examples", "mlp_2_2_1.yaml"))[0]
    match = (r"the summary text of d/d\w+ \(gradient, "
             r"summary text\), .* reads back as")
    with pytest.raises(PrintedFormError, match=match):
        text_readback(d)


def test_a_text_printer_that_drops_a_transpose_is_caught(monkeypatch):
    monkeypatch.setattr(TextPrinter, "_print_Transpose", lambda self, expr: self._print(expr.arg))
    d = table.ROWS[0].make().derive()  # Linear: W_bar = z_bar.T @ x
    with pytest.raises(PrintedFormError, match=r"summary text of d/dW .*, z_bar @ x, reads back"):
        text_readback(d)


def test_a_text_printer_that_swaps_a_product_is_caught(monkeypatch):
    print_matmul = TextPrinter._print_MatMul

    def swapped(self, expr):
        return print_matmul(self, expr.func(*reversed(expr.args)))

    monkeypatch.setattr(TextPrinter, "_print_MatMul", swapped)
    d = next(r for r in table.ROWS if r.name == "matmul").make().derive()  # square: it fits
    match = (r"summary text of d/d[AB] .*where the program "
             r"computes")
    with pytest.raises(PrintedFormError, match=match):
        text_readback(d)


def test_a_recorded_gradient_value_the_text_does_not_give_is_caught():
    d = _derivations(os.path.join(HERE, "..", "examples", "rnn.yaml"))[0]
    g = d.gradients["w"]
    g.value = g.value + 1
    match = (r"summary text of d/dw .* at the derivation's "
             r"values, where it records")
    with pytest.raises(PrintedFormError, match=match):
        text_readback(d)


def test_the_command_line_reads_its_summary_back_before_printing_it(monkeypatch, capsys):
    from derive.command_line import main

    print_mul = TextPrinter._print_Mul

    def dropped(self, expr, *args, **kwargs):
        return print_mul(self, expr.func(*expr.args[1:]) if len(expr.args) > 2 else expr,
                         *args, **kwargs)

    monkeypatch.setattr(TextPrinter, "_print_Mul", dropped)
    code = main(["solve", os.path.join(HERE, "..", "examples", "mlp_2_2_1.yaml")])
    out, err = capsys.readouterr()
    assert code != 0 and out == ""  # nothing printed that is not what was computed
    assert "summary text" in err and len(err.strip().splitlines()) == 1
