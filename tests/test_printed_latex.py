r"""Printed = computed for LaTeX (reports.readback): every formula a document prints, written by
the one LaTeX printer and read back by derivekit's own LaTeX answer reader, agrees with the
numbers it came from, for every bundled example (examples/*.yaml, examples/tensor/*.yaml)
and every catalogue layer (test_tensor_table.ROWS); and a printer that prints a wrong
formula (a wrong power, sign or transpose, another node's name) is caught, naming it.

Scalar documents: node definitions, local partials, contributions, adjoints (contributions
added, in node and in input terms) and gradients, at a random point and at the
derivation's own values. Tensor documents: every matrix form, in matrix mode, against the
program's arrays at derive.tensor.printed's random instance.

Skips that remain, each listed with its reason in ``counts["skips"]``:

* tensor index forms (``\left[\sum_{j} ...\right]_{n,i}``): the answer reader reads
  matrix forms only (derive.tensor.printed evaluates their SymPy objects); counted, and
  kept apart from the cap below;
* Piecewise adjoints (LeakyReLU with either slope, ELU), printed ``\begin{cases}``: the
  reader reads no cases environment (12 forms over the catalogue).

Any other reason fails the tests, and outside index forms at most read // 10 forms are
skipped per bundled example and over the whole catalogue.
"""
from __future__ import annotations

import glob
import os
from functools import lru_cache

import pytest
import sympy as sp

import reports
from derive.problem import solve
from derive.tensor.printed import PrintedFormError
from derive.verify.answers import Vocabulary, parse_answer
from derive.verify.latex_answers import latex_to_text
from reports.latex_printer import DeriveLatexPrinter
from reports.readback import latex_readback
from reports.readback_tensor import INDEX_FORM
from reports.tensor_notation import TensorNotation

import test_tensor_table as table

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = sorted(glob.glob(os.path.join(HERE, "..", "examples", "*.yaml")) +
                  glob.glob(os.path.join(HERE, "..", "examples", "tensor", "*.yaml")))
#: forms each bundled scalar example reads back at least (every one it prints)
SCALAR_READS = {"bce_sigmoid.yaml": 21, "decompose.yaml": 50, "mlp_2_2_1.yaml": 86,
                "rnn.yaml": 59}
#: the reasons a form may still be skipped, besides INDEX_FORM (see the module docstring)
KNOWN_GAPS = (r"environments (cases, matrices) (\begin)",)


def _derivations(path):
    got = solve(path)
    return got if isinstance(got, list) else [got]


@lru_cache(maxsize=None)
def _layer(name):
    return next(r for r in table.ROWS if r.name == name).make().derive()


@lru_cache(maxsize=None)
def _layer_counts(name):
    return latex_readback(_layer(name))


def _unexpected(counts):
    """The skips outside index forms, and those whose reason is not a known gap."""
    other = [(w, why) for w, why in counts["skips"] if why != INDEX_FORM]
    return other, [(w, why) for w, why in other if not any(g in why for g in KNOWN_GAPS)]


def _example(path):
    return os.path.basename(path) if "tensor" not in path else "tensor/" + \
        os.path.basename(path)


@pytest.mark.parametrize("path", EXAMPLES, ids=_example)
def test_every_bundled_example_reads_back(path):
    for d in _derivations(path):
        counts = latex_readback(d)
        other, unknown = _unexpected(counts)
        assert not unknown, unknown
        assert len(other) <= counts["read"] // 10, (d.title, counts)
        assert counts["skipped"] == len(counts["skips"])
        if d.program is None:
            assert counts["read"] >= SCALAR_READS[os.path.basename(path)], counts
            assert counts["skipped"] == 0, counts["skips"]


def test_bundled_examples_are_found():
    assert {os.path.basename(p) for p in EXAMPLES} >= set(SCALAR_READS) | {
        "mlp_mse.yaml", "rnn_lstm_cell.yaml", "softmax_regression.yaml"}


@pytest.mark.parametrize("row", table.ROWS, ids=lambda r: r.name)
def test_every_catalogue_layer_reads_back(row):
    counts = _layer_counts(row.name)
    other, unknown = _unexpected(counts)
    assert not unknown, unknown
    assert counts["read"] or counts["skips"], counts


def test_skips_are_few_over_the_catalogue():
    read = other = index = 0
    for row in table.ROWS:
        counts = _layer_counts(row.name)
        read += counts["read"]
        other += len(_unexpected(counts)[0])
        index += sum(why == INDEX_FORM for _, why in counts["skips"])
    assert read >= 600 and index >= 1000, (read, other, index)
    assert other <= read // 10, (read, other)


def test_layers_with_matrix_forms_read_them():
    for name, at_least in [("linear", 14), ("lstm_cell", 100), ("gru_cell", 60),
                           ("layernorm", 38), ("softmax", 6), ("cross_entropy", 4),
                           ("sigmoid", 6), ("gelu", 6)]:
        counts = _layer_counts(name)
        assert counts["read"] >= at_least, (name, counts["read"], counts["skips"])


# -- a wrong page is caught --------------------------------------------------------------------


def _rnn():
    return _derivations(os.path.join(HERE, "..", "examples", "rnn.yaml"))[0]


def test_a_printer_that_writes_a_wrong_power_is_caught(monkeypatch):
    print_pow = DeriveLatexPrinter._print_Pow

    def wrong(self, expr, *args, **kwargs):
        return print_pow(self, expr.base ** 3 if expr.exp == 2 else expr, *args, **kwargs)

    monkeypatch.setattr(DeriveLatexPrinter, "_print_Pow", wrong)
    match = (r"the LaTeX of printed .*w\^\{3\}.* reads "
             r"back as .*where the formula gives")
    with pytest.raises(PrintedFormError, match=match):
        latex_readback(_rnn())


def test_a_display_name_that_says_another_node_is_caught():
    d = _rnn()
    d.meta["latex_names"] = {"u1": "u_{2}"}
    with pytest.raises(PrintedFormError, match=r"printed .*reads back as"):
        latex_readback(d)


def test_a_recorded_value_the_formula_does_not_give_is_caught():
    d = _rnn()
    node = next(n for n in d.nodes if n.name == "r")
    node.value += 1
    match = (r"printed r \(forward definition\).* at the "
             r"derivation's values, where it records")
    with pytest.raises(PrintedFormError, match=match):
        latex_readback(d)


def test_an_edge_value_is_checked_as_partial_times_adjoint():
    d = _rnn()
    edge = next(e for e in d.edges if e.src == "w")
    edge.value = edge.value * 2
    with pytest.raises(PrintedFormError, match=r"∂\w+/∂w \(local partial\).* times \w+_bar"):
        latex_readback(d)


def test_a_dropped_transpose_is_caught(monkeypatch):
    monkeypatch.setattr(TensorNotation, "_print_Transpose",
                        lambda self, expr: self._print(expr.arg))
    match = (r"printed .* reads back as .*shapes do not "
             r"fit")
    with pytest.raises(PrintedFormError, match=match):
        latex_readback(_layer("linear"))


def test_a_dropped_minus_sign_is_caught(monkeypatch):
    print_matmul = TensorNotation._print_MatMul

    def unsigned(self, expr):
        return print_matmul(self, expr).removeprefix("- ")

    monkeypatch.setattr(TensorNotation, "_print_MatMul", unsigned)
    d = table.ROWS[[r.name for r in table.ROWS].index("sigmoid")].make().derive()
    with pytest.raises(PrintedFormError, match=r"printed x_bar .*where the program computes"):
        latex_readback(d)


def test_rendering_a_wrong_page_stops_and_names_the_formula(monkeypatch):
    d = table.ROWS[0].make().derive()  # Linear
    monkeypatch.setattr(TensorNotation, "_print_Transpose",
                        lambda self, expr: self._print(expr.arg))
    with pytest.raises(PrintedFormError) as err:
        reports.render(d, "md")
    assert "the LaTeX of printed" in str(err.value) and d.title in str(err.value)


def test_rendering_records_what_was_read():
    d = table.ROWS[0].make().derive()
    reports.render(d, "md")
    counts = d.meta["printed_checked"]
    assert counts["latex"]["read"] >= 14 and counts["text"]["read"] == 3, counts
    s = _rnn()
    reports.render(s, "tex")
    assert s.meta["printed_checked"]["latex"]["read"] >= SCALAR_READS["rnn.yaml"]


# -- what the readback needed: the reader and the printer -------------------------------------


@pytest.mark.parametrize("tex, matrix, names, text", [
    (r"A \, B", True, "A B", "A @ B"),  # a thin space ends a name
    (r"\mathbf{1}_{B}^{\top} \, \bar{z}", True, "z B", "ones(B, 1).T @ z_bar"),
    (r"\mathbf{1}_{B \times d}", True, "B d", "ones(B, d)"),
    (r"\tanh^{2}{\left(x \right)}", False, "x", "tanh(x)**2"),
    (r"\sigma^{2}\left(x\right)", False, "x", "sigmoid(x)**2"),
    (r"\sigma_{1}(x)", False, "x", "sigma_1 * x"),  # no option: a name
    (r"\operatorname{LeakyReLU}_{-0.5}\left(x\right)", True, "x", "leaky_relu(x, -0.5)"),
    (r"H\left(x\right) \odot \bar{a}", True, "x a", "step(x) * a_bar"),
    (r"\bar{h}_{\mathrm{tilde}}^{\top}", True, "h_tilde", "h_tilde_bar.T"),
    (r"\mathrm{running\_var}", True, "running_var", "running_var"),
    (r"\bar{\hat{y}} \hat{y}", False, "yhat", "yhat_bar * yhat"),
    (r"\operatorname{softmax}\left(z_{2}\right)", True, "z2", "softmax(z_2)"),
    (r"y e^{x}", False, "y x", "y * exp(x)"),  # e is exp's base, not the name ye
    (r"y H\left(x\right)", False, "y x", "y * step(x)"),
    (r"2 \left|{y}\right|", False, "y", "2 * abs(y)"),
])
def test_reader_reads_what_derivekit_prints(tex, matrix, names, text):
    assert latex_to_text(tex, matrix=matrix, known=names.split()) == text


def test_decimals_and_the_step_read_back_as_printed():
    import derive as dv

    # 1.33642945 prints as 1.33643: compared as printed, not as a wrong formula
    d = dv.grad("1.33642945*exp(x) + abs(y)*x*exp(y) + y*step(x)", at={"x": 0.5, "y": -1.5})
    counts = latex_readback(d)
    assert counts["read"] >= 70 and counts["skipped"] == 0, counts


def test_the_reader_is_told_printed_text_is_latex():
    vocab = Vocabulary(["w", "sigma", "x"])
    assert parse_answer("0.3 w", vocab, latex=True) == sp.Float(0.3) * sp.Symbol("w")
    assert parse_answer("sigma * x", vocab) == sp.Symbol("sigma") * sp.Symbol("x")
    assert parse_answer("H(x)", Vocabulary(["x", "H"])) == sp.Symbol("H") * sp.Symbol("x")


def test_products_inside_an_elementwise_map_print_as_hadamard_products():
    from reports.latex_printer import latex

    tex = latex(_layer("sigmoid").gradients["x"].expression)
    # side by side, (σ(x) - 1) σ(x) would read as a matrix product
    assert r"\left(\sigma\left(x\right) - 1\right) \odot \sigma\left(x\right)" in tex
    assert r"\frac{1}{2} \left(" in latex(_layer("gelu").nodes[-1].definition)
