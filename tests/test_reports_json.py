"""JSON: the documented schema, exact values as strings, and a round trip through parse."""
import json
import math

import numpy as np
import pytest
import sympy as sp

import reports
from derive.scalar.parse import parse
from reports import json_out
from test_reports_samples import matrix, rnn, worked

TOP = {"title", "kind", "output", "wrt", "nodes", "edges", "adjoints", "gradients", "sections",
       "notes", "result"}


def test_schema_keys_and_json_dumps():
    for d in (rnn(), matrix(), worked()):
        out = d.to_dict()
        assert set(out) == TOP
        assert all(set(n) == {"name", "definition", "inputs", "value", "role", "shape"}
                   for n in out["nodes"])
        assert all(set(e) == {"from", "to", "partial", "contribution", "value"}
                   for e in out["edges"])
        assert all(set(a) == {"name", "as_sum", "in_nodes", "in_inputs", "value"}
                   for a in out["adjoints"])
        assert all(set(g) == {"expression", "value"} for g in out["gradients"].values())
        assert all(set(s) == {"title", "text", "steps"} for s in out["sections"])
        assert json.loads(json.dumps(out, allow_nan=False)) == out


def test_values_are_exact_strings():
    out = json_out.to_dict(rnn())
    y = next(n for n in out["nodes"] if n["name"] == "y")
    assert y == {"name": "y", "definition": "v4*w", "inputs": ["w", "v4"], "value": "17/8",
                 "role": "node", "shape": None}
    assert out["gradients"]["w"] == {"expression": "3*u1*w**2 + 2*u2*w + u3", "value": "23/4"}
    into_w = [e for e in out["edges"] if e["from"] == "w"]
    assert [e["value"] for e in into_w] == ["17/4", "5/4", "1/4"]


def test_expressions_read_back_to_the_same_sympy_objects():
    d = rnn()
    out = json_out.to_dict(d)
    for a, rec in zip(d.adjoints, out["adjoints"]):
        assert parse(rec["in_inputs"]) == a.in_inputs
        assert parse(rec["value"]) == a.value
        # the fan-out sum is kept one term per edge, and reads back to the same sum
        assert sp.expand(parse(rec["as_sum"]) - a.as_sum) == 0
    for e, rec in zip(d.edges, out["edges"]):
        assert parse(rec["partial"]) == e.partial
        assert parse(rec["contribution"]) == e.contribution


def test_grad_derivation_round_trip():
    import derive as dv

    d = dv.grad("(x1 + x2)**2 + x2*x3 - x3", wrt=["x1", "x2", "x3"],
                at={"x1": 1, "x2": 2, "x3": 3})
    out = json.loads(reports.render(d, "json"))
    assert {k: g["value"] for k, g in out["gradients"].items()} == \
        {"x1": "6", "x2": "9", "x3": "1"}
    assert parse(out["gradients"]["x2"]["expression"]) == parse("2*x1 + 2*x2 + x3")
    assert out["output"] == d.output and out["wrt"] == ["x1", "x2", "x3"]


def test_shapes_and_symbolic_dimensions():
    out = json_out.to_dict(matrix())
    assert [n["shape"] for n in out["nodes"]] == [["B", "d"], ["h", "d"], ["B", "h"], ["B", "h"]]
    assert out["gradients"]["W"]["expression"] == "Z_bar.T*X"
    assert out["adjoints"][0]["in_nodes"] == "HadamardProduct(A_bar, H)"
    assert out["adjoints"][0]["as_sum"] is None


def test_result_keeps_its_structure():
    out = json_out.to_dict(worked())
    assert out["result"] == [{"class": 1, "p": "1/2"}, {"class": 2, "p": 0.25}]
    steps = out["sections"][0]["steps"]
    assert steps[0]["rhs"] == [[["1", "2", "3"]]]  # a Matrix step side: nested values
    assert steps[1]["rhs"][0] == r"\sum_k e^{s_k}"  # a LaTeX side stays as written


@pytest.mark.parametrize("result, expected", [
    (sp.Integer(4), 4),
    (sp.Rational(3, 2), "3/2"),
    (sp.Float(0.5), 0.5),
    (np.array([[1, 2], [3, 4]]), [[1, 2], [3, 4]]),
    (np.array([0.5, 1.5]), [0.5, 1.5]),
    ([sp.sqrt(2), 2], ["sqrt(2)", 2]),
    ({"loss": sp.Rational(1, 3), "ok": True}, {"loss": "1/3", "ok": True}),
    (sp.Matrix([[1, sp.Rational(1, 2)]]), [[1, "1/2"]]),
    ("done", "done"),
])
def test_result_conversion(result, expected):
    assert json_out.result(result) == expected


def test_values_never_break_json():
    assert json_out.value(float("nan")) == "nan"
    assert json_out.value(np.array([np.inf, -np.inf, 1.0])) == ["inf", "-inf", 1.0]
    assert json_out.value(np.float32(0.25)) == 0.25 and json_out.value(np.int64(3)) == "3"
    assert json_out.value(sp.Float(2.5)) == 2.5 and json_out.value(7) == "7"
    assert json_out.value(sp.Symbol("x") / 2) == "x/2"
    assert json_out.result(sp.oo) == "oo"
    text = json.dumps(json_out.value(np.array([math.nan])), allow_nan=False)
    assert text == '["nan"]'


def test_a_list_is_problems():
    out = json_out.to_dict([rnn(), worked()])
    assert list(out) == ["problems"] and [p["title"] for p in out["problems"]] == \
        ["A three-step RNN", "Softmax by hand"]
    assert json.loads(reports.render([rnn(), worked()], "json")) == out
