"""Printed forms that once read wrong, and the reasons the printed = computed check gives
for the forms it cannot evaluate (each reason named, their number capped)."""
from __future__ import annotations

import sympy as sp

import reports
from derive.layers.catalog import make_layer
from derive.tensor.display import ElementForm
from derive.tensor.printed import check_printed


def test_a_spatial_mean_keeps_its_sums_when_printed():
    d = make_layer("global_avgpool").derive()
    y = next(n for n in d.nodes if n.name == "y")
    assert isinstance(y.definition, ElementForm)  # was the matrix form x/(H W): sums lost
    assert y.definition.rhs.atoms(sp.Indexed)
    md = reports.render(d, "md")
    assert r"\frac{x}{H W}" not in md and r"\sum_{j} \sum_{k} {x}_{n,i,j,k}" in md
    assert check_printed(d)["checked"] >= 8


def test_a_tensor_of_three_axes_has_no_matrix_form():
    d = make_layer("positional_encoding").derive()
    y = next(n for n in d.nodes if n.name == "y")
    assert isinstance(y.definition, ElementForm)  # was x*ones(T, d) + pe
    assert "ones" not in reports.render(d, "md").split("## Computational graph")[0]


def test_a_note_that_starts_with_a_name_keeps_its_case():
    md = reports.render(make_layer("global_avgpool").derive(), "md")
    assert "\ny: [B, C]" in md and "\nY: [B, C]" not in md


# -- every printed form is evaluated: no skips ----------------------------------------------

import glob  # noqa: E402
import os  # noqa: E402

import pytest  # noqa: E402

from derive.problem import solve  # noqa: E402
from derive.tensor.printed import PrintedFormError  # noqa: E402

import test_tensor_table as table  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = sorted(glob.glob(os.path.join(HERE, "..", "examples", "tensor", "*.yaml")))


def _tensor_derivations(path):
    got = solve(path)
    return [x for x in (got if isinstance(got, list) else [got]) if x.program is not None]


@pytest.mark.parametrize("row", table.ROWS, ids=lambda r: r.name)
def test_no_printed_form_of_a_catalogue_layer_goes_unchecked(row):
    """Scatter-accumulate forms, alias adjoints (v̄5 = v̄6), softmax/onehot matrix forms,
    piecewise slopes, ȳ⁺ of the transposed convolution: all are evaluated now."""
    counts = check_printed(row.make().derive())
    assert counts["skipped"] == 0, counts.get("skips")
    assert counts["checked"] >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_no_printed_form_of_a_bundled_example_goes_unchecked(path):
    for d in _tensor_derivations(path):
        counts = check_printed(d)
        assert counts["skipped"] == 0, (d.title, counts.get("skips"))


def _layer(name):
    return next(r for r in table.ROWS if r.name == name).make().derive()


def _step(d, title_part, base):
    return next(st for sec in d.sections if title_part in sec.title for st in sec.steps
                if isinstance(st.lhs, sp.Indexed) and str(st.lhs.base) == base)


def test_a_wrong_scatter_route_is_caught():
    d = _layer("maxpool2d")
    step = _step(d, "Scatter", "x_bar")
    ra, rb = (sp.IndexedBase(n) for n in ("ra", "rb"))
    old = step.lhs
    swapped = old.xreplace({ra: rb, rb: ra})  # rows routed by the column offset
    step.lhs = swapped
    step.rhs = [f.xreplace({old: swapped}) for f in step.rhs]
    with pytest.raises(PrintedFormError, match="x_bar .*accumulated from zero"):
        check_printed(d)


def test_a_kernel_not_rotated_in_the_transposed_convolution_is_caught():
    d = _layer("conv2d_s2_p1")
    step = _step(d, "as convolutions", "xp_bar")
    K = sp.IndexedBase("K")
    step.rhs = [f.replace(lambda e: isinstance(e, sp.Indexed) and e.base == K,
                          lambda e: K[e.indices[0], e.indices[1], 2 - e.indices[2],
                                      e.indices[3]]) for f in step.rhs]  # only one flip
    with pytest.raises(PrintedFormError, match="gradients as convolutions"):
        check_printed(d)


def test_a_wrong_alias_adjoint_is_caught():
    [d] = _tensor_derivations(os.path.join(HERE, "..", "examples", "tensor", "v_problem.yaml"))
    a = next(a for a in d.adjoints if a.name == "v5")  # printed v̄5 = v̄6
    a.in_nodes = 2 * a.in_nodes
    with pytest.raises(PrintedFormError, match="v5_bar"):
        check_printed(d)


@pytest.mark.parametrize("name, slope", [("leaky_relu", "0.1"), ("elu", None)])
def test_a_wrong_piecewise_slope_is_caught(name, slope):
    d = _layer(name)
    g = d.gradients["x"]
    g.expression = g.expression.replace(
        lambda e: isinstance(e, sp.Piecewise),
        lambda e: sp.Piecewise((e.args[0].expr, e.args[0].cond),
                               (e.args[-1].expr + 1, True)))
    with pytest.raises(PrintedFormError, match="d/dx"):
        check_printed(d)


def test_a_wrong_softmax_matrix_form_is_caught():
    d = _layer("softmax")
    g = d.gradients["x"]
    g.expression = -g.expression  # the sign of the whole Jacobian-vector product
    with pytest.raises(PrintedFormError, match="d/dx .*matrix form"):
        check_printed(d)


def test_a_sum_raised_to_a_power_or_followed_by_a_factor_is_bracketed():
    from derive.tensor.index import ISum
    from reports.latex_printer import latex

    p = sp.Idx("p", 3)
    A, x = sp.IndexedBase("A"), sp.IndexedBase("x")
    s = ISum(A[p] * x[p], p)
    assert latex(s ** 2).startswith(r"\left(\sum_{p}")  # was \sum_{p} A x^{2}
    assert latex(s * x[1]).startswith(r"\left(\sum_{p}")  # was \sum_{p} A x x_{1}
    assert latex(2 * s).startswith(r"2 \sum_{p}")  # a sum last in its term needs none
