"""Printed = computed for LaTeX: every scalar form a bundled example prints, written by the
one LaTeX printer and read back by derivekit's own LaTeX answer reader, agrees with the
SymPy object printed at a random point (reports.readback)."""
from __future__ import annotations

import glob
import os

import pytest
import sympy as sp

from derive.problem import solve
from derive.tensor.printed import PrintedFormError
from derive.verify.latex_answers import latex_to_text
from reports.readback import latex_readback

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = sorted(glob.glob(os.path.join(HERE, "..", "examples", "*.yaml")))


def _derivations(path):
    got = solve(path)
    return [d for d in (got if isinstance(got, list) else [got]) if d.program is None]


def test_every_bundled_scalar_example_reads_back():
    assert len(EXAMPLES) >= 4
    read = skipped = 0
    for path in EXAMPLES:
        for d in _derivations(path):
            counts = latex_readback(d)
            read += counts["read"]
            skipped += counts["skipped"]
    assert read >= 120, (read, skipped)
    assert skipped <= read // 10, (read, skipped)


def test_a_power_after_juxtaposed_names_is_the_last_names():
    assert latex_to_text("p w^{2}", known=["p", "w"]) == "p * w**2"
    assert latex_to_text("ab^2", known=["ab"]) == "ab**2"


def test_a_wrong_readback_is_named(monkeypatch):
    import reports.readback as rb

    d = _derivations(os.path.join(HERE, "..", "examples", "bce_sigmoid.yaml"))[0]
    monkeypatch.setattr(rb, "latex", lambda e: sp.latex(2 * e) if e.free_symbols else "1")
    with pytest.raises(PrintedFormError, match=r"the LaTeX of printed .* reads back as"):
        latex_readback(d)
