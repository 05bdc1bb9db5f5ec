"""Issue 2's published answers, asserted on the scalar engine (derive.scalar.scalar_graph/backprop)."""
import random

import pytest
import sympy as sp

import derive as dv
from derive.derivation import bar
from derive.functions import sigmoid

S = sp.Symbol


def same(a, b):
    a, b = (dv.parse(x) if isinstance(x, str) else x for x in (a, b))
    return sp.simplify(a - b) == 0


@pytest.fixture(scope="module")
def rnn():
    [d] = dv.solve("examples/rnn.yaml")
    return d


def test_rnn_gradient_and_value(rnn):
    w, u1, u2, u3 = sp.symbols("w u1 u2 u3")
    g = rnn.gradients["w"]
    assert same(g.expression, u3 + 2 * w * u2 + 3 * w**2 * u1)
    assert g.value == 3 + 2 * 2 * (-1) + 3 * 4 * 1 == 11


@pytest.mark.parametrize("node, expected", [("t", "w"), ("s", "w"), ("r", "w**2"),
                                            ("q", "w**2"), ("p", "w**3")])
def test_rnn_adjoints(rnn, node, expected):
    assert same(rnn.adjoint(node).in_nodes, expected)
    assert same(rnn.adjoint(node).in_inputs, expected)


def test_rnn_weight_sharing_shows_three_contributions(rnn):
    edges = rnn.edges_from("w")
    assert sorted(e.dst for e in edges) == ["q", "s", "y"]
    w, p, r, t = sp.symbols("w p r t")
    adj = {e.dst: rnn.adjoint(e.dst).in_nodes * e.partial for e in edges}
    assert same(adj["y"], t) and same(adj["s"], w * r) and same(adj["q"], w**2 * p)
    assert same(sum(adj.values()), rnn.adjoint("w").in_nodes)
    # the unevaluated sum lists one term per outgoing edge
    assert len(sp.Add.make_args(rnn.adjoint("w").as_sum)) == 3
    assert rnn.adjoint("w").as_sum.has(bar("q"), bar("s"), bar("y"))
    # and the three numeric contributions add up to the gradient's value
    assert sum(e.value for e in edges) == rnn.gradients["w"].value


def test_decomposition_into_primitive_nodes():
    d = dv.grad("(x1 + x2)**2 + x2*x3 - x3", at={"x1": 1, "x2": 2, "x3": 3})
    x1, x2, x3, v1, v2, v3, v4 = sp.symbols("x1 x2 x3 v1 v2 v3 v4")
    defs = {n.name: n.definition for n in d.nodes if n.definition is not None}
    assert defs == {"v1": x1 + x2, "v2": v1**2, "v3": x2 * x3, "v4": v2 + v3,
                    "v5": v4 - x3}
    assert same(d.gradients["x1"].expression, 2 * (x1 + x2))
    assert same(d.gradients["x2"].expression, 2 * (x1 + x2) + x3)
    assert same(d.gradients["x3"].expression, x2 - 1)
    assert [d.gradients[k].value for k in ("x1", "x2", "x3")] == [6, 9, 1]
    # x2 is used twice (in v1 and v3): two contributions
    assert sorted(e.dst for e in d.edges_from("x2")) == ["v1", "v3"]


def test_repeated_subexpression_is_one_node_used_twice():
    d = dv.grad("sigmoid(z)*(1 - sigmoid(z))", wrt="z")
    assert sum(1 for n in d.nodes if n.definition == sigmoid(S("z"))) == 1
    z = S("z")
    assert same(d.gradients["z"].expression, sp.diff(sigmoid(z) * (1 - sigmoid(z)), z))


def test_bce_after_sigmoid_collapses_to_yhat_minus_y():
    [d] = dv.solve("examples/bce_sigmoid.yaml")
    y, yhat, z = sp.symbols("y yhat z")
    assert same(d.adjoint("z").in_nodes, yhat - y)
    assert same(d.gradients["z"].expression, sigmoid(z) - y)
    assert same(d.gradients["z"].value, sigmoid(2) - 1)
    assert d.gradients["z"].value.free_symbols == set()  # exact, not a float


def test_two_two_one_network_w111():
    [d] = dv.solve("examples/mlp_2_2_1.yaml")
    yhat, y, w2_11, a1, x1 = sp.symbols("yhat y w2_11 a1 x1")
    assert same(d.adjoint("w1_11").in_nodes, (yhat - y) * w2_11 * a1 * (1 - a1) * x1)
    vals = {n.name: float(n.value) for n in d.nodes}
    expected = (vals["yhat"] - vals["y"]) * vals["w2_11"] * vals["a1"] * (1 - vals["a1"]) \
        * vals["x1"]
    assert float(d.gradients["w1_11"].value) == pytest.approx(expected, rel=1e-12)


def test_finite_differences_on_the_2_2_1_network():
    [d] = dv.solve("examples/mlp_2_2_1.yaml")
    out = next(n for n in d.nodes if n.name == d.output)
    full = _expanded(d, out.name)
    point = {S(n.name): float(n.value) for n in d.nodes if n.definition is None}
    for name, g in d.gradients.items():
        h = 1e-6
        up = dict(point); up[S(name)] += h
        dn = dict(point); dn[S(name)] -= h
        fd = (float(full.evalf(subs=up)) - float(full.evalf(subs=dn))) / (2 * h)
        assert float(g.value) == pytest.approx(fd, rel=1e-6, abs=1e-9)


def _expanded(d, name):
    node = d.node(name)
    if node.definition is None:
        return S(name)
    return node.definition.xreplace({S(i): _expanded(d, i) for i in node.inputs})


def test_symbolic_agreement_with_sympy_diff_on_random_graphs():
    rng = random.Random(7)
    for text in ["x*exp(y) + log(x + y**2)", "tanh(a*b) - a/b", "relu(x)*y + max(x, y)"]:
        d = dv.grad(text)
        f = dv.parse(text)
        for name, g in d.gradients.items():
            direct = sp.diff(f, S(name))
            pt = {s: sp.Rational(rng.randint(1, 9), rng.randint(1, 5)) for s in f.free_symbols}
            assert sp.N(g.expression.subs(pt) - direct.subs(pt)) == pytest.approx(0, abs=1e-12)


def test_exact_values_stay_exact():
    d = dv.grad("sqrt(x)*y", at={"x": 2, "y": "1/3"})
    assert d.gradients["x"].value == sp.sqrt(2) / 12
    assert d.gradients["y"].value == sp.sqrt(2)


def test_float_inputs_give_floats():
    d = dv.grad("x*y", at={"x": 0.5, "y": 2})
    assert isinstance(d.gradients["x"].value, sp.Float)


def test_relu_at_zero_states_its_convention():
    d = dv.grad({"a": "relu(x)", "y": "a*w"}, at={"x": 0, "w": 3})
    assert d.gradients["x"].value == 0
    assert any("ReLU'(0) = 0" in n for n in d.notes)


def test_max_routes_to_the_first_maximum_on_a_tie():
    d = dv.grad("max(a, b)", at={"a": 1, "b": 1})
    assert (d.gradients["a"].value, d.gradients["b"].value) == (1, 0)
    assert any("first maximum" in n for n in d.notes)


@pytest.mark.parametrize("spec, message", [
    ({"inputs": ["x"], "nodes": {"y": "x*z"}}, "unknown symbol 'z'"),
    ({"nodes": {"q": "w*q"}}, "cycle"),
    ({"nodes": {"q": "w*r", "r": "w"}}, "used before it is defined"),
    ({"nodes": {"y": "x**2"}, "wrt": ["z"]}, "'z' is not in the graph"),
    ({"nodes": {"y": "x**"}}, "malformed expression"),
    ({"nodes": {"y": "gamma(x)"}}, "unsupported function 'gamma'"),
    ({"nodes": {"y": "log(x)"}, "values": {"x": 0}}, "log(x) needs x > 0, and here x = 0"),
    ({"nodes": {"y": "x"}, "values": {}}, "no value given for 'x'"),
    ({"nodes": {"y": "x"}, "typo": 1}, "unknown key 'typo'"),
])
def test_bad_input_is_one_clear_line(spec, message):
    with pytest.raises(dv.DeriveError) as err:
        dv.solve(spec)
    text = str(err.value)
    assert message in text and "\n" not in text
