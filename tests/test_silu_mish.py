"""SiLU and Mish, added as two rows of the function registry, flow through everything:
parse -> derive (scalar and tensor) -> LaTeX -> the answer checker -> evaluate ->
kernels -> train --model -> the architecture table.

(The layer table, tests/test_tensor_table.py, checks both layers three ways: finite
differences, torch and sympy.diff; tests/test_functions.py checks the rows' NumPy,
kernel, complex and SymPy forms against each other out to |x| = 800.)
"""
import numpy as np
import pytest
import sympy as sp

import derive as dv
import derive as dt
from derive.functions import lookup
from derive.scalar.parse import parse
from derive.problem import solve_spec
from derive.verify.latex_answers import latex_to_text
from reports.latex_printer import latex

NAMES = {"silu": ("SiLU", r"\operatorname{SiLU}"), "mish": ("Mish", r"\operatorname{Mish}")}
pytestmark = pytest.mark.usefixtures("kernel_cache")


def f(name, x):
    """The function in float64, by the formulas (not by derivekit)."""
    softplus = np.logaddexp(0.0, x)
    return x / (1 + np.exp(-x)) if name == "silu" else x * np.tanh(softplus)


def df(name, x, h=1e-6):
    return (f(name, x + h) - f(name, x - h)) / (2 * h)


@pytest.mark.parametrize("name", NAMES)
def test_parse_and_scalar_derivation(name):
    row = lookup(name)
    x = sp.Symbol("x")
    assert parse(f"{name}(x)") == row.sympy(x)
    if name == "silu":
        assert parse("swish(x)") == parse("silu(x)")
    d = dv.grad(f"{name}(w*x) + w", wrt=["w", "x"], at={"w": sp.Rational(1, 2), "x": 3})
    w_grad = float(d.gradients["w"].value)
    assert w_grad == pytest.approx(3 * df(name, 1.5) + 1, rel=1e-8)
    assert float(d.gradients["x"].value) == pytest.approx(0.5 * df(name, 1.5), rel=1e-8)
    assert d.gradients["w"].expression.has(row.sympy) or d.gradients["w"].expression.has(
        dv.sigmoid)  # the derivative is written with the function's own symbols


@pytest.mark.parametrize("name", NAMES)
def test_latex_prints_and_reads_back(name):
    z = sp.Symbol("z")
    head = NAMES[name][1]
    assert latex(lookup(name).sympy(z)) == head + r"\left(z\right)"
    assert latex(lookup(name).sympy(z) ** 2) == head + r"^{2}\left(z\right)"
    assert latex_to_text(head + r"(z)") == f"{name}(z)"
    assert parse(latex_to_text(latex(lookup(name).sympy(2 * z)))) == lookup(name).sympy(2 * z)


ANSWERS = {
    "silu": ("x*sigmoid(w*x)*(1 + w*x*(1 - sigmoid(w*x)))",
             r"x \sigma(wx) \left(1 + wx(1 - \sigma(wx))\right)"),
    "mish": ("x*(tanh(softplus(w*x)) + w*x*sigmoid(w*x)*(1 - tanh(softplus(w*x))**2))",
             r"x\left(\tanh(\operatorname{softplus}(wx)) + wx\,\sigma(wx)"
             r"\left(1 - \tanh(\operatorname{softplus}(wx))^2\right)\right)"),
}


@pytest.mark.parametrize("name", NAMES)
def test_the_checker_reads_answers_with_the_function(name):
    d = dv.grad(f"{name}(w*x)", wrt=["w"], at={"w": 2, "x": sp.Rational(-1, 3)})
    text, tex = ANSWERS[name]
    assert dv.check(text, against=d, wrt="w").verdict == "correct"
    assert dv.check(tex, against=d, wrt="w").verdict == "correct"
    assert dv.check(f"x*{name}(w*x)", against=d, wrt="w").verdict == "wrong"


@pytest.mark.parametrize("name", NAMES)
def test_v_notation_graph(name):
    spec = {"kind": "tensor_graph", "tensors": {"x": [3], "W": [3, 3], "y": [3]},
            "nodes": {"v4": "x @ W", "v5": f"{name}(v4)", "v6": "mse(v5, y)"},
            "output": "v6", "wrt": ["W"],
            "values": {"x": [1.0, -2.0, 0.5], "W": [[0.1, 0.2, -0.3], [-0.3, 0.4, 0.2],
                                                    [0.5, -0.1, 0.3]], "y": [0.0, 1.0, -1.0]}}
    d = solve_spec(spec, "p.yaml")
    x, W, y = (np.asarray(spec["values"][k]) for k in ("x", "W", "y"))
    v4 = x @ W
    want = np.outer(x, 2 / 3 * (f(name, v4) - y) * df(name, v4))
    assert np.allclose(np.asarray(d.gradients["W"].value, float), want, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_layer_evaluates_like_torch(name):
    torch = pytest.importorskip("torch")
    layer = getattr(dt, NAMES[name][0])()
    assert layer.key == name and name in dt.LAYER_NAMES
    rng = np.random.default_rng(1)
    x, up = rng.normal(scale=3, size=(4, 5)), rng.normal(size=(4, 5))
    out, grads = dv.evaluate(layer, {"x": x}, wrt=["x"], upstream=up)
    t = torch.tensor(x, requires_grad=True)
    ref = getattr(torch.nn.functional, name)(t)
    (ref * torch.tensor(up)).sum().backward()
    assert np.allclose(out, ref.detach().numpy(), atol=1e-12)
    assert np.allclose(grads["x"], t.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_kernel_train_step_equals_evaluate(name, train_step_equals_evaluate):
    import kernels
    from kernels.cli import build_net

    net = build_net({"layers": ["linear(6, 5)", name, "linear(5, 4)"],
                     "loss": "cross_entropy"})
    assert type(net.layers[1]).__name__ == NAMES[name][0]
    model = kernels.compile(net, dtype="float64")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 6)), rng.integers(0, 4, 7)
    train_step_equals_evaluate(net, model, x, y)


def test_train_model_string_accepts_the_alias():
    from kernels.cli import build_net

    net = build_net({"layers": ["linear(4, 3)", "swish", "linear(3, 2)", "mish"],
                     "loss": "mse"})
    assert [type(a).__name__ for a in net.layers] == ["Linear", "SiLU", "Linear", "Mish"]


def test_architecture_table():
    d = solve_spec({"kind": "architecture", "input": [8],
                    "layers": ["linear(6)", "silu", "linear(4)", "swish", "mish"]}, "n.yaml")
    assert [r["parameters"] for r in d.result] == [54, 0, 28, 0, 0]
    assert d.result[-1]["shape"] == ["B", 4]
