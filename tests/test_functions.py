"""The function registry: every row has its facets, and they agree with each other.

For each row of ``derive.functions.FUNCTIONS`` the SymPy form (30-digit ``evalf``), the
NumPy form, the printed kernel source and the answer checker's complex form are
evaluated on one grid that reaches |x| = 800 (where a naive sigmoid or softplus
overflows), and the SymPy derivative is checked against a central difference of the
NumPy form. Then every consumer is checked to read the registry: the parsers accept
every name and alias, the report printer's LaTeX reads back through the answer reader,
every activation row is a layer, and README lists what the registry holds.
"""
import math
import os
import re
import warnings

import numpy as np
import pytest
import sympy as sp

import derive as dt
from derive.functions import ACTIVATIONS, BY_NAME, CONVENTIONS, FUNCTIONS, lookup, row_of
from derive.scalar.parse import parse
from derive.verify.floats import fvalue
from derive.verify.latex_answers import latex_to_text
from kernels.printer import NumbaPrinter
from reports.latex_printer import latex

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRID = [-800.0, -50.0, -3.2, -1.0, -0.3, 0.25, 1.0, 2.5, 50.0, 800.0]
POSITIVE = {"log", "sqrt"}  # real only for x > 0
SMALL = {"exp", "sin", "cos"}  # |x| <= 50: exp(800) is inf, sin(800) loses digits to pi


def ids(rows):
    return [r.name for r in rows]


def grid(row):
    points = [abs(x) for x in GRID] if row.name in POSITIVE else GRID
    return [x for x in points if abs(x) <= 50] if row.name in SMALL else points


def symbols(row):
    return sp.symbols(",".join(row.inputs) + ",", real=True)


def expression(row):
    """The row applied to symbols, options at their defaults (Heaviside with H(0) = 0)."""
    xs = symbols(row)
    return (row.sympy(*xs, sp.S.Zero) if row.name == "Heaviside" else row.build(*xs)), xs


def points(row):
    """Argument tuples: the grid for the first input, a shifted grid for a second (no ties)."""
    g = grid(row)
    if len(row.inputs) == 1:
        return [(x,) for x in g]
    return [(x, y) for x in g for y in (x + 0.75, x - 1.5)]


def reference(expr, xs, point):
    value = expr.xreplace(dict(zip(xs, map(sp.Float, point)))).evalf(30)
    return float(value)


def close(a, b):
    if math.isinf(b):
        return a == b
    return abs(a - b) <= 1e-12 * max(1.0, abs(b))


# -- every row has its facets --------------------------------------------------------------
def test_names_are_unique_and_every_row_has_its_facets():
    names = [n for r in FUNCTIONS for n in r.names]
    assert len(names) == len(set(names))
    for row in FUNCTIONS:
        assert callable(row.sympy) and callable(row.numpy), row.name
        if row.cls is None:  # a composition: its other forms are those of its parts
            continue
        assert row.kernel is not None and row.complex is not None, row.name
        ours = row.cls.__module__.startswith("derive.functions")
        assert not ours or row.tex, f"{row.name} needs its LaTeX head"
        assert not hasattr(row.cls, "_latex"), f"{row.name}: LaTeX lives in the row"
        if row.kink:
            assert CONVENTIONS[row.cls.__name__] == row.kink
    for row in ACTIVATIONS:
        assert row.doc and row.parse, row.name


@pytest.mark.parametrize("row", FUNCTIONS, ids=ids(FUNCTIONS))
def test_numpy_kernel_complex_and_sympy_forms_agree(row):
    expr, xs = expression(row)
    printer = NumbaPrinter({x: x.name for x in xs})
    source = printer.doprint(expr)
    for point in points(row):
        want = reference(expr, xs, point)
        env = dict(zip((x.name for x in xs), point))
        args = point + (0.0,) if row.name == "Heaviside" else point
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # exp(800) -> inf on purpose
            numpy = float(row.numeric(*map(np.float64, args)))
            kernel = float(eval(source, {"np": np, "max": max, "min": min, "abs": abs}, env))
        assert close(numpy, want), (row.name, point, numpy, want)
        assert close(kernel, want), (row.name, point, source, kernel, want)
        if row.cls is not None:
            z = fvalue(expr, {x: complex(v) for x, v in zip(xs, point)})
            assert close(z.real, want) and z.imag == 0, (row.name, point, z, want)


@pytest.mark.parametrize("row", [r for r in FUNCTIONS if r.cls is not None],
                         ids=ids([r for r in FUNCTIONS if r.cls is not None]))
def test_derivative_matches_a_central_difference_of_the_numpy_form(row):
    expr, xs = expression(row)
    h = 1e-6
    for point in points(row):
        if max(abs(v) for v in point) > 50:
            continue
        for k, x in enumerate(xs):
            d = sp.diff(expr, x).xreplace(dict(zip(xs, map(sp.Float, point))))
            d = float(d.replace(sp.DiracDelta, lambda *a: sp.S.Zero).evalf(30))
            up, down = list(point), list(point)
            up[k] += h
            down[k] -= h
            if row.name == "Heaviside":
                up, down = up + [0.0], down + [0.0]
            numeric = (row.numeric(*up) - row.numeric(*down)) / (2 * h)
            assert d == pytest.approx(float(numeric), rel=1e-5, abs=1e-6), (row.name, point)


def test_defined_makes_one_symbol_that_evaluates_and_differentiates_as_its_definition():
    from derive.functions import sigmoid
    from derive.functions.classes import defined

    definition = lambda x: x * sigmoid(x)  # noqa: E731
    derivative = lambda x: sigmoid(x) * (1 + x * (1 - sigmoid(x)))  # noqa: E731
    f = defined("swish_test", definition, derivative)
    x, third = sp.Symbol("x"), sp.Rational(1, 3)
    assert f(sp.S.Zero) == 0 and f(x).diff(x) == derivative(x)
    assert f(x).rewrite(sp.exp) == definition(x).rewrite(sp.exp)
    assert abs(f(third).evalf(30) - definition(third).evalf(30)) < sp.Float("1e-29")
    assert f(x).evalf() == f(x) and f(sp.Symbol("r", real=True)).is_real


# -- every consumer reads it ----------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_the_parsers_accept_every_name_and_alias(name):
    row = lookup(name)
    args = ", ".join(["x", "y"][:len(row.inputs)])
    assert parse(f"{name}({args})") == row.build(*sp.symbols(args + ","))


# what reports print reads back through the LaTeX answer reader (H(x) is not read: H is
# a name in answers, and a subscripted option such as LeakyReLU_{k} is not either)
READABLE = [r for r in FUNCTIONS if r.parse and (r.tex or r.tex_commands) and not r.params
            and r.tex != "H"]


@pytest.mark.parametrize("row", READABLE, ids=ids(READABLE))
def test_printed_latex_reads_back_as_the_same_function(row):
    xs = sp.symbols(",".join(row.inputs) + ",")
    expr = row.build(*xs)
    text = latex_to_text(latex(expr))
    assert parse(text) == expr, (latex(expr), text)


def test_every_activation_row_is_a_layer_and_an_architecture_kind():
    from derive.problem import solve_spec

    for row in ACTIVATIONS:
        layer = getattr(dt, row.activation)()
        assert layer.key == row.name and row.name in dt.LAYER_NAMES
        d = solve_spec({"kind": "architecture", "input": [4], "layers": ["linear(3)", row.name]},
                       "net.yaml")
        assert d.result[-1]["parameters"] == 0 and d.result[-1]["shape"] == ["B", 3]


def test_row_of_finds_applications_and_classes():
    x = sp.Symbol("x")
    for row in FUNCTIONS:
        if row.cls is not None:
            assert row_of(row.cls) is row
    assert row_of(lookup("sigma").build(x)).name == "sigmoid" and row_of(x + 1) is None


def test_readme_lists_the_registry():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    m = re.search(r"Functions \(one registry, `derive/functions/`\): `([^`]*)`; aliases `([^`]*)`",
                  readme)
    assert m, "README's function list"
    names = {r.name for r in FUNCTIONS if r.parse}
    aliases = {a for r in FUNCTIONS if r.parse for a in r.aliases}
    assert set(m.group(1).split()) == names and set(m.group(2).split()) == aliases
