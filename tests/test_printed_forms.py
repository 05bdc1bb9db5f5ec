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
