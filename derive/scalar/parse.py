"""A whitelist parser: user text -> SymPy, without ever calling eval.

``sympify`` and ``parse_expr`` call ``eval`` on their input, so no user text (answers,
problem files, CLI arguments) may reach them. Instead the text is parsed by Python's
``ast`` module and only the node types in the tables below are mapped to SymPy; anything
else (attribute access, lambdas, comprehensions, subscripts, starred args, ...) is
rejected with the column where it appears.

>>> parse("(x1 + x2)**2 + x2*x3 - x3")
x2*x3 - x3 + (x1 + x2)**2
>>> parse_call("conv2d(10, 3, padding=1)")
('conv2d', [10, 3], {'padding': 1})
"""
from __future__ import annotations

import ast
import keyword
import math
import re

import sympy as sp

from derive.errors import InputError, UnsupportedError
from derive.functions import parser_table

MAX_CHARS = 5000
MAX_NODES = 3000
MAX_DEPTH = 80
MAX_DIGITS = 1000  # bound on the size of a constant power such as 9**9**9

IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


#: Function names allowed in expressions (the function registry's names and aliases),
#: mapped to SymPy builders.
FUNCTIONS = parser_table()
CONSTANTS = {"pi": sp.pi}

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div",
           ast.Pow: "pow", ast.MatMult: "matmul"}
_BUILD = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "neg": lambda a: -a,
}


def check_identifier(name, where=None):
    """Accept ``name`` only if it is a safe identifier (letters, digits, '_')."""
    if not isinstance(name, str) or not IDENTIFIER.match(name) or keyword.iskeyword(name):
        raise InputError(f"{name!r} is not a valid name (use letters, digits and '_', "
                         "starting with a letter)", where=where)
    return name


class Parser:
    """Walks a Python AST, allowing only whitelisted node types.

    ``combine(op, build, args)`` is called for every operation (``op`` is "add", "sub",
    "mul", "div", "pow", "neg", "matmul", "T" or "call:<name>"); the default builds the
    SymPy expression. The graph decomposer passes its own to create one node per op.
    """

    def __init__(self, names=None, functions=None, unknown="symbol", where=None,
                 matmul=None, transpose=None, combine=None):
        self.names = dict(CONSTANTS, **(names or {}))
        self.functions = dict(FUNCTIONS, **(functions or {}))
        self.unknown = unknown
        self.where = where
        self.matmul = matmul
        self.transpose = transpose
        self.combine = combine or (lambda op, build, args: build(*args))
        self.mentioned = {}  # names read as symbols, in order (an ordered set)

    # -- entry ---------------------------------------------------------------------------
    def parse(self, text):
        if not isinstance(text, str):
            if isinstance(text, (int, float)) and not isinstance(text, bool):
                return number(text, where=self.where)
            raise self.error(f"expected an expression as text, got {type(text).__name__}")
        if len(text) > MAX_CHARS:
            raise self.error(f"expression is too long ({len(text)} characters; "
                             f"at most {MAX_CHARS})")
        if not text.strip():
            raise self.error("empty expression")
        tree = self._ast(text)
        count = sum(1 for _ in ast.walk(tree))
        if count > MAX_NODES:
            raise self.error(f"expression is too large ({count} parts; at most {MAX_NODES})")
        return self.visit(tree.body, 0)

    def _ast(self, text):
        try:
            return ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            offset = exc.offset if exc.offset else len(text.strip())
            col = f" at column {offset}" if exc.offset is not None else ""
            raise self.error(f"malformed expression{col}: {exc.msg}") from None
        except (MemoryError, RecursionError, ValueError):
            raise self.error("malformed expression: nested too deeply") from None

    def error(self, message, node=None, cls=InputError):
        if node is not None and hasattr(node, "col_offset"):
            message = f"{message} (column {node.col_offset + 1})"
        return cls(message, where=self.where)

    # -- nodes ---------------------------------------------------------------------------
    def visit(self, node, depth):
        if depth > MAX_DEPTH:
            raise self.error(f"expression is nested too deeply (more than {MAX_DEPTH} levels)",
                             node)
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise self.error(f"{_describe(node)} is not allowed in an expression", node)
        return method(node, depth + 1)

    def visit_Constant(self, node, depth):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(f"constant {value!r:.30} is not a number", node)
        return number(value, where=self.where)

    def visit_Name(self, node, depth):
        name = node.id
        if name in self.names:
            return self.names[name]
        if name.startswith("_") or not IDENTIFIER.match(name):
            raise self.error(f"name {name!r} is not allowed", node)
        if name in self.functions:
            raise self.error(f"{name!r} is a function; call it as {name}(...)", node)
        if self.unknown == "error":
            known = ", ".join(sorted(k for k in self.names if k not in CONSTANTS)) or "none"
            raise self.error(f"unknown symbol {name!r} (known: {known})", node)
        self.mentioned[name] = None
        return sp.Symbol(name)

    def visit_UnaryOp(self, node, depth):
        operand = self.visit(node.operand, depth)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.USub):
            if isinstance(operand, sp.Number):
                return -operand
            return self.combine("neg", _BUILD["neg"], [operand])
        raise self.error(f"operator {type(node.op).__name__} is not allowed", node)

    def visit_BinOp(self, node, depth):
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.error(f"operator {type(node.op).__name__} is not allowed", node)
        left, right = self.visit(node.left, depth), self.visit(node.right, depth)
        if op == "matmul":
            if self.matmul is None:
                raise self.error("'@' (matrix product) needs tensors; this expression "
                                 "is scalar", node)
            return self.combine(op, self.matmul, [left, right])
        if op == "pow":
            _check_power(left, right, self, node)
        if isinstance(left, sp.Number) and isinstance(right, sp.Number):
            return _BUILD[op](left, right)
        return self.combine(op, _BUILD[op], [left, right])

    def visit_Call(self, node, depth):
        if not isinstance(node.func, ast.Name):
            raise self.error("only plain function calls such as exp(x) are allowed", node)
        name = node.func.id
        if name not in self.functions:
            known = ", ".join(sorted(self.functions))
            raise self.error(f"unsupported function {name!r} (supported: {known})", node,
                             cls=UnsupportedError)
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.error("starred arguments are not allowed", node)
        args = [self.visit(a, depth) for a in node.args]
        kwargs = {k.arg: _literal(k.value, self) for k in node.keywords}
        if None in kwargs:
            raise self.error("**keyword arguments are not allowed", node)
        fn = self.functions[name]
        try:
            build = (lambda *a: fn(*a, **kwargs)) if kwargs else fn
            return self.combine("call:" + name, build, args)
        except (TypeError, ValueError) as exc:
            raise self.error(f"bad arguments to {name}(): {exc}", node) from None
        except InputError as exc:  # an option that is not a number (leaky_relu's slope)
            if exc.where:
                raise
            raise self.error(f"bad arguments to {name}(): {exc.message}", node) from None

    def visit_Attribute(self, node, depth):
        if node.attr == "T" and self.transpose is not None:
            return self.combine("T", self.transpose, [self.visit(node.value, depth)])
        raise self.error(f"attribute access '.{node.attr}' is not allowed", node)


def _describe(node):
    names = {"Lambda": "a lambda", "Attribute": "attribute access", "Subscript": "indexing",
             "Compare": "a comparison", "BoolOp": "and/or", "IfExp": "if/else",
             "ListComp": "a comprehension", "GeneratorExp": "a generator"}
    return names.get(type(node).__name__, f"'{type(node).__name__}'")


def _check_power(base, exp, parser, node):
    """Refuse constant powers whose exact value would be enormous (9**9**9)."""
    if isinstance(exp, sp.Number) and abs(exp) > 10 ** 4:
        raise parser.error(f"exponent {exp} is too large", node)
    if isinstance(base, sp.Number) and isinstance(exp, sp.Number) and base != 0:
        digits = abs(float(exp)) * abs(math.log10(abs(float(base)) or 1.0))
        if digits > MAX_DIGITS:
            raise parser.error("constant power is too large to compute exactly", node)


def _literal(node, parser):
    """A literal keyword/argument value: number, string, True/False, or a list of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) \
            and isinstance(node.operand, ast.Constant) \
            and isinstance(node.operand.value, (int, float)):
        return -node.operand.value
    if isinstance(node, (ast.Tuple, ast.List)):
        return [_literal(e, parser) for e in node.elts]
    raise parser.error("only literal numbers, strings, True/False and lists are allowed "
                       "here", node)


def number(value, where=None):
    """A Python int/float as a SymPy number (ints exact, floats stay floats).

    ``where`` names the flag, file or key the value came from, for the error message.
    """
    if isinstance(value, bool):
        raise InputError(f"expected a number, got {value!r}", where=where)
    if isinstance(value, int):
        return sp.Integer(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"expected a finite number, got {value!r}", where=where)
        return sp.Float(value)
    if isinstance(value, sp.Number):
        if not value.is_finite:
            raise InputError(f"expected a finite number, got {value}", where=where)
        return value
    raise InputError(f"expected a number, got {type(value).__name__} {value!r:.40}",
                     where=where)


def parse(text, *, names=None, functions=None, unknown="symbol", where=None,
          matmul=None, transpose=None, combine=None):
    """Parse ``text`` into a SymPy expression using the whitelist.

    Parameters
    ----------
    text : str
        Python-like syntax: numbers, names, + - * / ** (and @, .T for tensors when
        ``matmul``/``transpose`` are given), calls of whitelisted functions.
    names : dict, optional
        Known names mapped to SymPy objects (symbols, matrix symbols, constants).
    functions : dict, optional
        Extra callable names (e.g. ``{"mse": ...}``) on top of :data:`FUNCTIONS`.
    unknown : {"symbol", "error"}
        What an unknown name becomes: a new Symbol, or an InputError naming it.
    where : str, optional
        Location for error messages ("rnn.yaml: nodes.q").
    """
    return Parser(names, functions, unknown, where, matmul, transpose, combine).parse(text)


def parse_number(value, where=None):
    """A value from a problem file: int/float, or text such as "1/2" or "sqrt(2)"."""
    if isinstance(value, (int, float, sp.Number)) and not isinstance(value, bool):
        return number(value, where=where)
    expr = parse(value, unknown="error", where=where)
    if not expr.is_number:
        raise InputError(f"expected a number, got {value!r:.40}", where=where)
    return expr


def parse_call(text, where=None):
    """Parse ``name(arg, ..., key=value)`` with literal arguments only.

    >>> parse_call("maxpool(2)")
    ('maxpool', [2], {})
    >>> parse_call("flatten")
    ('flatten', [], {})
    """
    parser = Parser(where=where)
    if not isinstance(text, str) or len(text) > 500:
        raise parser.error(f"expected a short layer description, got {text!r:.40}")
    node = parser._ast(text).body
    if isinstance(node, ast.Name):
        return check_identifier(node.id, where), [], {}
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise parser.error(f"expected name(arguments), got {text!r:.40}")
    args = [_literal(a, parser) for a in node.args]
    kwargs = {}
    for k in node.keywords:
        if k.arg is None:
            raise parser.error("**keyword arguments are not allowed", node)
        kwargs[k.arg] = _literal(k.value, parser)
    return check_identifier(node.func.id, where), args, kwargs
