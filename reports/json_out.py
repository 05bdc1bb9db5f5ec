"""A Derivation as JSON: the stable contract for programs (also in reports/JSON.md).

Schema of one derivation (every key always present; empty lists / null when absent)::

    {
      "title": str, "kind": str, "output": str | null, "wrt": [str],
      "nodes": [{"name", "definition", "inputs": [str], "value", "role", "shape"}],
      "edges": [{"from", "to", "partial", "contribution", "value"}],
      "adjoints": [{"name", "as_sum", "in_nodes", "in_inputs", "value"}],
      "gradients": {name: {"expression", "value"}},
      "sections": [{"title", "text", "steps": [{"lhs", "rhs": [...], "note"}],
                    "figures": [{"title", "caption", "data", "size"}]}],
      "notes": [str],
      "result": ...
    }

``figures`` is present only in a section that has figures (plots): each is the data it
plots (``data``: names to numbers or lists of numbers, encoded as ``result`` is) and the
image's ``size`` ``[width, height]`` in pixels; the image itself is in the documents
(PDF, HTML, Markdown), not in the JSON.

A list of derivations is ``{"problems": [<one derivation>, ...]}``.

Encoding
--------
* **Expressions** (``definition``, ``partial``, ``contribution``, ``as_sum``,
  ``in_nodes``, ``in_inputs``, ``expression``, step ``lhs``/``rhs``) are SymPy-readable
  strings, ``str(expr)``: ``"2*x1 + 2*x2 + x3"``, adjoints named ``v1_bar``. A step side
  that was written as LaTeX is that LaTeX string. Absent: ``null``.
* **Values** are exact numbers as strings (``"3"``, ``"3/2"``, ``"sqrt(2)/2"``) or floats
  (``0.119...``); a non-finite float is the string ``"nan"``, ``"inf"`` or ``"-inf"``;
  arrays (NumPy, SymPy matrices, nested lists) are nested lists of those; a symbolic
  value is its expression string; absent: ``null``.
* **shape** is ``null`` for a scalar, else a list of ints (and strings for symbolic
  dimensions such as ``"B"``).
* **result** keeps its own structure (number, nested list, mapping, list of mappings);
  SymPy numbers in it become ints (integers), strings (exact non-integers, ``"3/2"``) or
  floats.

The output always passes ``json.dumps`` (and contains no NaN or Infinity literals).
"""
from __future__ import annotations

import json

import numpy as np
import sympy as sp

from reports.values import as_rows, classify


def _finite(x):
    x = float(x)
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return x


def value(v):
    """A value as JSON: exact -> str, float -> float, arrays -> nested lists."""
    kind = classify(v)
    if kind == "none":
        return None
    if kind == "array":
        return [value(x) for x in as_rows(v)] if as_rows(v).ndim else value(as_rows(v).item())
    if kind == "float":
        return _finite(v)
    if kind == "bool":
        return bool(v)
    return str(v)


def result(v):
    """The result as JSON: its structure kept, integers as ints (see the module docstring)."""
    if isinstance(v, dict):
        return {str(k): result(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray, sp.MatrixBase)):
        return [result(x) for x in (v.tolist() if hasattr(v, "tolist") else v)]
    kind = classify(v)
    if kind in ("int", "exact") and (not isinstance(v, sp.Basic) or v.is_Integer):
        return int(v)
    return value(v)


def expression(e):
    """An expression as a SymPy-readable string (a LaTeX string stays as it is)."""
    if e is None:
        return None
    return e if isinstance(e, str) else str(e)


def shape(s):
    if s is None:
        return None
    return [int(d) if isinstance(d, (int, np.integer, sp.Integer)) else str(d) for d in s]


def _node(n):
    return {"name": n.name, "definition": expression(n.definition),
            "inputs": list(n.inputs), "value": value(n.value), "role": n.role,
            "shape": shape(n.shape)}


def _edge(e):
    return {"from": e.src, "to": e.dst, "partial": expression(e.partial),
            "contribution": expression(e.contribution), "value": value(e.value)}


def _adjoint(a):
    return {"name": a.name, "as_sum": expression(a.as_sum), "in_nodes": expression(a.in_nodes),
            "in_inputs": expression(a.in_inputs), "value": value(a.value)}


def _section(s):
    steps = [{"lhs": expression(st.lhs), "rhs": [_side(r) for r in st.rhs], "note": st.note}
             for st in s.steps]
    out = {"title": s.title, "text": s.text, "steps": steps}
    if getattr(s, "figures", None):
        out["figures"] = [{"title": f.title, "caption": f.caption, "data": result(f.data),
                           "size": list(f.size)} for f in s.figures]
    return out




def _side(r):
    return value(r) if classify(r) == "array" else expression(r)


def to_dict(d):
    """The JSON structure of a Derivation, or ``{"problems": [...]}`` of a list.

    Returns
    -------
    dict
        Plain Python data (str, int, float, bool, None, list, dict) that always
        passes ``json.dumps``; the schema is in the module docstring.
    """
    if isinstance(d, (list, tuple)):
        return {"problems": [to_dict(x) for x in d]}
    return {
        "title": d.title, "kind": d.kind, "output": d.output, "wrt": list(d.wrt),
        "nodes": [_node(n) for n in d.nodes],
        "edges": [_edge(e) for e in d.edges],
        "adjoints": [_adjoint(a) for a in d.adjoints],
        "gradients": {str(k): {"expression": expression(g.expression), "value": value(g.value)}
                      for k, g in d.gradients.items()},
        "sections": [_section(s) for s in d.sections],
        "notes": list(d.notes),
        "result": result(d.result),
    }


def dumps(d):
    """``to_dict(d)`` as indented JSON text."""
    return json.dumps(to_dict(d), indent=2, ensure_ascii=False) + "\n"
