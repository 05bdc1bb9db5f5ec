"""Layer strings of a problem file (``"conv2d(2*C, 3, padding=1)"``), read, never run.

:func:`layer_call` is :func:`derive.scalar.parse.parse_call` (literal arguments only)
whose arguments may also be expressions in the symbols the file declares; a literal is
read by :func:`ast.literal_eval`, which evaluates nothing.
"""
from __future__ import annotations

import ast

from derive.errors import InputError
from derive.scalar.parse import Parser, check_identifier, parse_call
from derive.worked.common import value


def size_value(raw, where, names):
    """A size from the file: an integer, or an expression in the declared symbols."""
    if isinstance(raw, str):
        return value(raw, where, names)
    return raw


def layer_call(text, where, names):
    """``name(arg, ..., key=value)``: :func:`parse_call`, whose literal arguments may also be
    expressions in the declared symbols (``linear(h)``, ``conv2d(2*C, k)``)."""
    if not names or not isinstance(text, str) or len(text) > 500:
        return parse_call(text, where=where)
    parser = Parser(names=names, unknown="symbol", where=where)
    node = parser._ast(text).body
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return parse_call(text, where=where)
    if any(k.arg is None for k in node.keywords):
        raise parser.error("**keyword arguments are not allowed", node)
    args = [_argument(a, parser, where) for a in node.args]
    kwargs = {k.arg: _argument(k.value, parser, where) for k in node.keywords}
    return check_identifier(node.func.id, where), args, kwargs


def _argument(node, parser, where):
    """A layer argument: a literal (read by :func:`ast.literal_eval`, which evaluates
    nothing), a list of them, or an expression in the declared symbols."""
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_argument(e, parser, where) for e in node.elts]
    if not any(isinstance(n, ast.Name) for n in ast.walk(node)):
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise parser.error("only literal numbers, strings, lists and expressions in the "
                               "declared symbols are allowed here", node) from None
    expr = parser.visit(node, 0)
    if parser.mentioned:
        name = next(iter(parser.mentioned))
        raise InputError(f"symbol {name!r} is used but not declared (declared: "
                         f"{', '.join(parser.names.keys() - {'pi'})}; add it to 'symbols')",
                         where=where)
    return expr
