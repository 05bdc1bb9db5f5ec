"""Every layer and every bundled example reads in notation, in every format.

No output shows the engine's objects (``ISum(``, ``KroneckerDelta(``, ``Heaviside(``):
the CLI summary prints Σ, δ, H(x) (reports.text_printer), the documents typeset them.
Names are the user's: the LSTM's ``W_xi`` is W with the letters x i (not ξ), ``c_next``
keeps its subscript apart from the indices, and no heading stands without content.
"""
import functools
import glob
import os
import re

import pytest

import reports
from derive import solve
from derive.command_line import main
from derive.layers.catalog import LAYER_NAMES, layer_derivation

from conftest import EXAMPLES

ENGINE_OBJECTS = ("ISum(", "KroneckerDelta(", "Heaviside(")
EXAMPLE_FILES = sorted(os.path.relpath(p, EXAMPLES) for pattern in
                       ("*.yaml", "tensor/*.yaml", "worked/*.yaml")
                       for p in glob.glob(os.path.join(EXAMPLES, pattern)))


@functools.lru_cache(maxsize=None)
def _layer(name):
    return layer_derivation(name)


@functools.lru_cache(maxsize=None)
def _rendered(name, fmt):
    return reports.render(_layer(name), fmt)


def _cli(capsys, *argv):
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def _no_engine_objects(text, where):
    shown = [o for o in ENGINE_OBJECTS if o in text]
    assert not shown, f"{where} shows {shown}"


def test_the_example_folders_are_found():
    assert {"tensor", "worked"} <= {os.path.dirname(f) for f in EXAMPLE_FILES}


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_a_layer_reads_in_notation(name, capsys):
    for fmt in ("md", "html"):
        _no_engine_objects(_rendered(name, fmt), f"{name} ({fmt})")
    _no_engine_objects(_cli(capsys, "layer", name), f"derivekit layer {name}")


@pytest.mark.parametrize("path", EXAMPLE_FILES)
def test_an_example_reads_in_notation(path, capsys):
    derivations = solve(os.path.join(EXAMPLES, path))
    for fmt in ("md", "html"):
        _no_engine_objects(reports.render(derivations, fmt), f"{path} ({fmt})")
    _no_engine_objects(_cli(capsys, "solve", os.path.join(EXAMPLES, path)), f"solve {path}")


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_no_heading_stands_without_content(name):
    lines = [line for line in _rendered(name, "md").splitlines() if line.strip()]
    for line, after in zip(lines, lines[1:] + [None]):
        if line.startswith("#"):
            assert after is not None and not after.startswith("#"), \
                f"{name}: heading {line!r} has no content"


def test_lstm_names_are_the_users():
    d = _layer("lstm_cell")
    tex = reports.render(d, "tex")
    for text in (tex, _rendered("lstm_cell", "md"), _rendered("lstm_cell", "html")):
        assert "W_{xi}" in text and r"\xi" not in text and "ξ" not in text
        # c_next is one name (upright word subscript), its indices apart from it
        assert r"c_{\mathrm{next}}" in text
        assert r"\left(c_{\mathrm{next}}\right)_{n," in text
        assert not re.search(r"c_\{next", text)
    assert "Computational graph" not in tex or r"\begin{tikzpicture}" in tex


def test_the_cli_text_printer():
    import sympy as sp

    from derive.tensor.index import ISum
    from reports.text_printer import text

    i, j, k, x = sp.symbols("i j k x")
    W = sp.IndexedBase("W")
    assert text(sp.KroneckerDelta(i, j)) == "δ(i, j)"
    assert text(sp.Heaviside(x, 0)) == "H(x)"
    assert text(ISum(W[i, k] * sp.IndexedBase("x")[k], k)).startswith("Σ_{k}(")
