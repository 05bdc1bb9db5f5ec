"""Hand-built Derivations the reports tests render, and checks that they are right.

``rnn()`` is the unrolled RNN y = w (u3 + w (u2 + w u1)) written node by node, with the
shared weight w used three times (fan-out), at u = (1, 2, 3), w = 1/2:
dy/dw = u3 + 2 w u2 + 3 w^2 u1 = 3 + 2 + 3/4 = 23/4.
``matrix()`` is a linear layer with a ReLU, in matrix form with symbolic shapes.
``worked()`` is a worked example made of sections, notes and a result, without nodes.
"""
import sympy as sp

from derive.derivation import Adjoint, Derivation, Edge, Gradient, Node, Section, Step, bar

U1, U2, U3, W = sp.symbols("u1 u2 u3 w")
V1, V2, V3, V4, Y = sp.symbols("v1 v2 v3 v4 y")
AT = {U1: 1, U2: 2, U3: 3, W: sp.Rational(1, 2)}


def rnn():
    """y = w (u3 + w (u2 + w u1)) by hand, values exact."""
    defs = [("v1", W * U1, ("w", "u1")), ("v2", U2 + V1, ("u2", "v1")),
            ("v3", W * V2, ("w", "v2")), ("v4", U3 + V3, ("u3", "v3")),
            ("y", W * V4, ("w", "v4"))]
    values = dict(AT)
    d = Derivation("A three-step RNN", output="y", wrt=["w", "u1"],
                   meta={"latex_names": {"u1": "u^{(1)}"}})
    for name, role in (("u1", "input"), ("u2", "input"), ("u3", "input"), ("w", "param")):
        d.nodes.append(Node(name, role=role, value=values[sp.Symbol(name)]))
    for name, definition, inputs in defs:
        values[sp.Symbol(name)] = definition.subs(values)
        d.nodes.append(Node(name, definition, inputs, value=values[sp.Symbol(name)]))
    adj_value = {"y": sp.S.One}
    for name, definition, inputs in reversed(defs):
        for src in inputs:
            partial = sp.diff(definition, sp.Symbol(src))
            d.edges.append(Edge(src, name, partial, bar(name) * partial,
                                adj_value[name] * partial.subs(values)))
        for src in inputs:
            adj_value.setdefault(src, 0)
            adj_value[src] += adj_value[name] * sp.diff(definition, sp.Symbol(src)).subs(values)
    w_expr = U3 + 2 * W * U2 + 3 * W**2 * U1
    d.adjoints = [
        Adjoint("y", sp.S.One, sp.S.One, sp.S.One, sp.S.One),
        Adjoint("v4", bar("y") * W, W, W, W.subs(AT)),
        Adjoint("v3", bar("v4"), W, W, W.subs(AT)),
        Adjoint("v2", bar("v3") * W, W**2, W**2, (W**2).subs(AT)),
        Adjoint("v1", bar("v2"), W**2, W**2, (W**2).subs(AT)),
        Adjoint("w", sp.Add(bar("y") * V4, bar("v3") * V2, bar("v1") * U1, evaluate=False),
                V4 + W * V2 + W**2 * U1, w_expr, w_expr.subs(AT)),
        Adjoint("u1", bar("v1") * W, W**3, W**3, (W**3).subs(AT)),
    ]
    d.gradients = {"w": Gradient("w", w_expr, w_expr.subs(AT)),
                   "u1": Gradient("u1", W**3, (W**3).subs(AT))}
    d.note("Inputs are exact, so every value is kept exact.")
    return d


def matrix():
    """Z = X W^T, A = ReLU(Z), with shapes (B, d) and (h, d)."""
    B, dim, h = sp.symbols("B d h")
    X, Wm = sp.MatrixSymbol("X", B, dim), sp.MatrixSymbol("W", h, dim)
    Zb, Ab = bar("Z", (B, h)), bar("A", (B, h))
    H = sp.MatrixSymbol("H", B, h)  # the mask H(Z), elementwise
    d = Derivation("Linear layer with ReLU", kind="layer", output="A", wrt=["W", "X"])
    d.nodes = [Node("X", role="input", shape=(B, dim)), Node("W", role="param", shape=(h, dim)),
               Node("Z", X * Wm.T, ("X", "W"), shape=(B, h)),
               Node("A", r"\operatorname{ReLU}(Z)", ("Z",), shape=(B, h))]
    d.adjoints = [Adjoint("Z", None, sp.HadamardProduct(Ab, H), None, shape=(B, h)),
                  Adjoint("W", None, Zb.T * X, None, shape=(h, dim)),
                  Adjoint("X", None, Zb * Wm, None, shape=(B, dim))]
    d.gradients = {"W": Gradient("W", Zb.T * X, shape=(h, dim)),
                   "X": Gradient("X", Zb * Wm, shape=(B, dim))}
    d.note("ReLU'(0) = 0 by convention.")
    return d


def worked():
    """A worked example: sections of steps, LaTeX strings and numbers, and a result."""
    d = Derivation("Softmax by hand", kind="softmax_loss")
    d.sections.append(Section("Scores", [
        Step("s", [sp.Matrix([[1, 2, 3]])], "the logits"),
        Step(r"Z", [r"\sum_k e^{s_k}", sp.E + sp.E**2 + sp.E**3,
                    r"\approx 30.1929"]),
    ], text="Exponentiate each score; $Z$ normalises."))
    d.sections.append(Section("Probabilities", [
        Step(r"p_3", [sp.E**3 / (sp.E + sp.E**2 + sp.E**3)], "the largest score"),
    ]))
    d.result = [{"class": 1, "p": sp.Rational(1, 2)}, {"class": 2, "p": 0.25}]
    d.note("Probabilities sum to 1.")
    return d


def test_rnn_sample_agrees_with_closed_form():
    d = rnn()
    assert d.node("y").value == sp.Rational(17, 8)  # 1/2 (3 + 1/2 (2 + 1/2))
    assert d.gradients["w"].value == sp.Rational(23, 4)
    # the per-edge contributions into w add up to its adjoint (fan-out: three uses)
    into_w = [e.value for e in d.edges if e.src == "w"]
    assert len(into_w) == 3 and sum(into_w) == sp.Rational(23, 4)
    assert sp.diff(W * (U3 + W * (U2 + W * U1)), W).subs(AT) == sp.Rational(23, 4)
