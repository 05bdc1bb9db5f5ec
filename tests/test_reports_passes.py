"""The renderer's pieces one by one: values, graph layers, and each pass over a Document."""
import numpy as np
import pytest
import sympy as sp

from reports import document_of, passes
from reports.document_model import Document, Equations, Math, Row
from reports.graph_layers import layers
from reports.parts import build
from reports.latex_printer import visible_len
from reports.values import classify, value_tex
from test_reports_samples import matrix, rnn, worked


# -- values ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value, tex", [
    (sp.Rational(3, 2), r"\frac{3}{2} \approx 1.5"),
    (sp.Integer(7), "7"),
    (sp.sqrt(2) / 2, r"\frac{\sqrt{2}}{2} \approx 0.707107"),
    (0.119202922, "0.119203"),
    (1e-9, r"1 \cdot 10^{-9}"),
    (np.float32(0.5), "0.5"),
    (3, "3"),
    (float("inf"), r"\infty"),
    (sp.Symbol("x") + 1, "x + 1"),
    (None, ""),
])
def test_value_tex(value, tex):
    assert value_tex(value) == tex


def test_arrays_are_matrices_with_their_decimals():
    m = sp.Matrix([[sp.Rational(1, 2), 1], [2, 3]])
    assert value_tex(m) == (r"\begin{bmatrix} \frac{1}{2} & 1 \\ 2 & 3 \end{bmatrix} \approx "
                            r"\begin{bmatrix} 0.5 & 1 \\ 2 & 3 \end{bmatrix}")
    assert value_tex([1, 2, 3]) == r"\begin{bmatrix} 1 & 2 & 3 \end{bmatrix}"
    big = value_tex(np.arange(64).reshape(8, 8))
    assert r"\cdots" in big and r"\vdots" in big and r"\ddots" in big and "63" in big
    assert "27" not in big.split(r"\vdots")[1]  # rows 5..7 elided, the last one shown
    assert value_tex(np.zeros((2, 2, 2))) == r"\text{array of shape } (2, 2, 2)"


def test_classify():
    assert [classify(v) for v in (None, "a", True, 3, 2.5, sp.Rational(1, 3), sp.Float(1.5),
                                  sp.Symbol("x"), np.eye(2))] == \
        ["none", "text", "bool", "int", "float", "exact", "float", "expr", "array"]


# -- graph layers ---------------------------------------------------------------------------
def test_layers_point_every_edge_rightwards():
    d = rnn()
    grouped = layers(d.nodes, d.edges)
    depth = {name: i for i, layer in enumerate(grouped) for name in layer}
    assert sorted(depth) == sorted(n.name for n in d.nodes)
    assert all(depth[e.src] < depth[e.dst] for e in d.edges)
    # leaves sit just left of their first use: u3 feeds v4, so it is not with u1
    assert depth["u1"] == 0 and depth["u3"] == depth["v4"] - 1
    assert grouped[-1] == ["y"]


# -- passes ---------------------------------------------------------------------------------
def _doc(*rows):
    return Document("t", [Equations(list(rows))])


def test_drop_repeats_keeps_each_form_once():
    row = Row(Math("a"), [Math("a"), Math("b"), Math("b"), Math("c"), Math("b")])
    passes.drop_repeats(_doc(row))
    assert [m.tex for m in row.rhs] == ["b", "c", "b"]


def test_mark_relations():
    row = Row(Math("L"), [Math("2"), Math(r"\approx 0.69"), Math(r"\left(x\right)"),
                          Math(r"\le 1")])
    passes.mark_relations(_doc(row))
    assert [m.rel for m in row.rhs] == ["=", "", "=", ""]


def test_capitalise_notes():
    rows = [Row(Math("a"), [], note="the logits"), Row(Math("b"), [], note="$x$ stays"),
            Row(Math("c"), [], note="")]
    passes.capitalise_notes(_doc(*rows))
    assert [r.note for r in rows] == ["The logits", "$x$ stays", ""]


def test_break_lines_between_terms_and_factors():
    terms = ["a_{%d}" % i if i == 0 else "+ a_{%d}" % i for i in range(40)]
    long_sum = Math(" ".join(terms), pieces=terms)
    factors = [r"\left(b_{%d} + 1\right)" % i for i in range(20)]
    long_product = Math(" ".join(factors), pieces=factors, glue=r"\cdot ")
    row = Row(Math("y"), [long_sum, long_product])
    passes.break_lines(_doc(row))
    for item in (long_sum, long_product):
        assert len(item.lines) > 1
        assert all(visible_len(line) <= passes.LINE_WIDTH for line in item.lines)
    assert " ".join(long_sum.lines) == long_sum.tex  # nothing lost, nothing added
    assert all(line.startswith(r"\cdot ") for line in long_product.lines[1:])


def test_drop_overlong_drops_only_optional_forms():
    wide = r" ".join([r"\sigma\left(x_{%d}" % i for i in range(30)] + [r"\right)"] * 30)
    row = Row(Math("y"), [Math(wide), Math(wide, optional=True), Math("3")])
    passes.drop_overlong(_doc(row))
    assert [m.optional for m in row.rhs] == [False, False]
    assert row.rhs[-1].tex == "3"


def test_join_short_writes_short_chains_on_one_line():
    short = Row(Math("a"), [Math("b"), Math("c")])
    long_ = Row(Math("a"), [Math("x " * 80), Math("c")])
    passes.join_short(_doc(short, long_))
    assert short.oneline and not long_.oneline


# -- the built document ---------------------------------------------------------------------
def test_backward_chain_of_a_shared_weight():
    """w is used three times: one term per use, then node terms, input terms, value."""
    doc = document_of(rnn())
    row = next(r for r in _rows(doc) if r.lhs.tex == r"\bar{w}")
    assert [m.tex for m in row.rhs] == [
        r"\bar{y} \frac{\partial y}{\partial w} + \bar{v}_{3} \frac{\partial v_{3}}{\partial w}"
        r" + \bar{v}_{1} \frac{\partial v_{1}}{\partial w}",
        r"\bar{y} v_{4} + \bar{v}_{3} v_{2} + \bar{v}_{1} u^{(1)}",
        r"u^{(1)} w^{2} + v_{2} w + v_{4}",
        r"3 u^{(1)} w^{2} + 2 u_{2} w + u_{3}",
        r"\frac{17}{4} + \frac{5}{4} + \frac{1}{4}",
        r"\frac{23}{4} \approx 5.75",
    ]
    assert "3 times" in row.note


def test_repeated_forms_are_dropped_from_a_chain():
    doc = document_of(rnn())
    row = next(r for r in _rows(doc) if r.lhs.tex == r"\bar{v}_{3}")
    # in_nodes and in_inputs are both w: shown once
    assert [m.tex for m in row.rhs] == [
        r"\bar{v}_{4} \frac{\partial v_{4}}{\partial v_{3}}", r"\bar{v}_{4}", "w",
        r"\frac{1}{2} \approx 0.5"]


def test_shapes_are_stated_for_tensors():
    doc = document_of(matrix())
    row = next(r for r in _rows(doc) if r.lhs.tex == r"\bar{W}")
    assert [m.tex for m in row.rhs] == [r"\bar{Z}^{\top} \, X", r"\in \mathbb{R}^{h \times d}"]
    assert row.rhs[-1].rel == ""


def test_a_list_of_derivations_is_one_document_with_a_part_each():
    doc = build([rnn(), worked()])
    titles = [b.text for b in doc.blocks if getattr(b, "level", None) == 2]
    assert doc.title == "Worked solutions" and titles == ["A three-step RNN", "Softmax by hand"]


def _rows(doc):
    return [r for b in doc.blocks if isinstance(b, Equations) for r in b.rows]
