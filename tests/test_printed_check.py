"""Printed = computed at run time: derive.tensor.printed.check_printed over every catalogue
layer and bundled tensor example, and reports refusing a derivation whose printed formula
is wrong (PrintedFormError naming the formula)."""
from __future__ import annotations

import glob
import os

import pytest
import sympy as sp

import reports
from derive.problem import solve
from derive.tensor.display import ElementForm
from derive.tensor.printed import PrintedFormError, check_printed

import test_tensor_table as table

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = sorted(glob.glob(os.path.join(HERE, "..", "examples", "tensor", "*.yaml")))


@pytest.mark.parametrize("row", table.ROWS, ids=lambda r: r.name)
def test_every_catalogue_layer_prints_what_it_computes(row):
    d = row.make().derive()
    counts = check_printed(d)
    assert "unrunnable" not in counts, counts
    assert counts["checked"] or not any(
        isinstance(a.in_nodes, ElementForm) for a in d.adjoints), counts


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_every_bundled_tensor_example_prints_what_it_computes(path):
    got = solve(path)
    ds = [x for x in (got if isinstance(got, list) else [got]) if x.program is not None]
    for d in ds:
        counts = check_printed(d)
        assert "unrunnable" not in counts, (d.title, counts)


def test_bundled_tensor_examples_are_found():
    assert len(EXAMPLES) >= 5


def test_a_wrong_printed_gradient_stops_the_report():
    d = table.ROWS[0].make().derive()  # Linear: dL/dW printed as a matrix form
    g = d.gradients["W"]
    g.expression = sp.Transpose(g.expression).T * 2
    with pytest.raises(PrintedFormError) as err:
        reports.render(d, "md")
    message = str(err.value)
    assert "printed d/dW (gradient, matrix form) disagrees with the computed W_bar" in message
    assert d.title in message and "\n" not in message


def test_a_wrong_printed_index_form_gradient_stops_the_report():
    d = next(r for r in table.ROWS if r.name == "multihead_attention").make().derive()
    w, g = next((w, g) for w, g in d.gradients.items()
                if isinstance(g.expression, ElementForm))
    form = g.expression
    g.expression = ElementForm(form.rhs * 2 + sp.Rational(1, 3), *form.labels)
    with pytest.raises(PrintedFormError, match=rf"printed d/d{w} \(gradient, index form\)"):
        reports.render(d, "tex")


def test_a_wrong_printed_adjoint_is_named():
    d = next(r for r in table.ROWS if r.name == "multihead_attention").make().derive()
    a = next(a for a in d.adjoints if a.name == "k")
    a.in_nodes = ElementForm(a.in_nodes.rhs.subs(a.in_nodes.labels[-1], 0),
                             *a.in_nodes.labels)
    with pytest.raises(PrintedFormError, match=r"printed k_bar \(adjoint, index form\)"):
        check_printed(d)


def test_reports_check_each_derivation_once(monkeypatch):
    import reports as r

    calls = []
    monkeypatch.setattr(r, "check_printed", lambda d: calls.append(d) or {"checked": 1})
    d = table.ROWS[0].make().derive()
    for fmt in ("md", "tex", "html", "json"):
        r.render(d, fmt)
    assert len(calls) == 1


def test_the_compact_batchnorm_form_is_checked():
    d = next(r for r in table.ROWS if r.name == "batchnorm_train").make().derive()
    section = next(s for s in d.sections if "compact" in s.title)
    step = section.steps[0]
    step.rhs = [f * 2 for f in step.rhs]
    with pytest.raises(PrintedFormError, match=r"printed x_bar \(.*compact form, form 1\)"):
        check_printed(d)
