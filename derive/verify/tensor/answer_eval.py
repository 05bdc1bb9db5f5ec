"""NumPy evaluation of tensor answers (a small tree) and of the derivation's matrix display.

``Tree`` is what the whitelist parser builds for a tensor answer (through its ``combine``
hook): ``@`` stays a matrix product and ``*`` an elementwise one, and an answer whose
shapes do not fit is still an object that can be mutated into the right one (that is how
a missing transpose is diagnosed). :func:`display_value` evaluates the derivation's own
matrix display (MatMul, HadamardProduct, Transpose, MapDisplay, ...) for the edges'
contributions.
"""
from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.matrices.expressions.hadamard import HadamardPower, HadamardProduct

from derive.errors import UnsupportedError
from derive.functions import BY_NAME, row_of

_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
           "pow": np.power}
_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "matmul": "@"}


class ShapeMismatch(Exception):
    """Shapes that do not fit in a tensor answer (a wrong answer, not a malformed one)."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class Tree:
    """One operation of a tensor answer: ``op`` and its operands (Trees)."""

    def __init__(self, op, args, kwargs=None):
        self.op, self.args, self.kwargs = op, list(args), dict(kwargs or {})

    @classmethod
    def leaf(cls, expr):
        return expr if isinstance(expr, Tree) else cls("leaf", [expr])

    def symbols(self):
        """The SymPy symbols of the leaves."""
        if self.op == "leaf":
            return getattr(self.args[0], "free_symbols", set())
        if self.op == "num":
            return set()
        return set().union(*(a.symbols() for a in self.args))

    def __mul__(self, other):
        return Tree("mul", [self, Tree.leaf(other)])

    def __rmul__(self, other):
        return Tree("mul", [Tree.leaf(other), self])

    # -- value -----------------------------------------------------------------------------
    def value(self, env):
        op, args = self.op, self.args
        if op == "leaf":
            return _scalar_expr(args[0], env)
        if op == "num":
            return np.asarray(args[0], dtype=float)
        vals = [a.value(env) for a in args]
        if op in _BINARY:
            return _elementwise(op, *vals)
        if op == "neg":
            return -vals[0]
        if op == "matmul":
            return _matmul(*vals)
        if op in ("T", "transpose"):
            return np.asarray(vals[0]).T
        if op in ("sum", "mean"):
            return _reduce(op, vals[0], self.kwargs.get("axis"))
        if op == "outer":
            return np.outer(np.ravel(vals[0]), np.ravel(vals[1]))
        if op in MATRIX_FUNCTIONS:
            return MATRIX_FUNCTIONS[op](*vals)
        return BY_NAME[op].numeric(*vals)

    # -- text -------------------------------------------------------------------------------
    def text(self):
        if self.op == "leaf":
            return sp.sstr(self.args[0])
        if self.op == "num":
            return f"{self.args[0]:g}"
        parts = [a.text() for a in self.args]
        if self.op in _SYMBOLS:
            return f"({parts[0]} {_SYMBOLS[self.op]} {parts[1]})"
        if self.op == "neg":
            return f"-{parts[0]}"
        if self.op == "T":
            return f"{parts[0]}.T"
        return f"{self.op}({', '.join(parts)})"

    def __str__(self):
        return self.text()

    # -- mutations (hypothetical mistakes undone) ---------------------------------------------
    def mutations(self):
        """(kind, sentence, tree): this answer with one mistake of a known kind undone."""
        for path, node in self._walk(()):
            for kind, text, replacement in node._local_mutations():
                yield kind, text, self._replace(path, replacement)

    def _walk(self, path):
        yield path, self
        if self.op not in ("leaf", "num"):
            for i, a in enumerate(self.args):
                yield from a._walk(path + (i,))

    def _replace(self, path, new):
        if not path:
            return new
        args = list(self.args)
        args[path[0]] = args[path[0]]._replace(path[1:], new)
        return Tree(self.op, args, self.kwargs)

    def _local_mutations(self):
        a = self.args
        if self.op == "matmul":
            yield ("swapped_operands", f"the operands of {self.text()} are swapped",
                   Tree("matmul", [a[1], a[0]]))
            yield ("elementwise_vs_matrix", f"'@' in {self.text()} should be an elementwise "
                   "product (*)", Tree("mul", a))
        if self.op == "mul" and not any(x.op == "num" or _is_number_leaf(x) for x in a):
            yield ("elementwise_vs_matrix", f"'*' in {self.text()} should be a matrix "
                   "product (@)", Tree("matmul", a))
        if self.op == "T":
            yield ("transpose", f"{self.text()} should not be transposed", a[0])
        elif self.op not in ("num",) and not _is_number_leaf(self):
            yield ("transpose", f"{self.text()} needs a transpose", Tree("T", [self]))


def _softmax_rows(z):
    z = np.atleast_2d(np.asarray(z, dtype=float))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


#: functions of matrices a tensor answer may call besides the registry's: ``ones(B, 1)``
#: (a column of ones, as the matrix display writes a broadcast or a batch sum), ``sign``
#: and row-wise ``softmax``
MATRIX_FUNCTIONS = {"ones": lambda rows, cols: np.ones((int(rows), int(cols))),
                    "sign": np.sign, "softmax": _softmax_rows}


def _is_number_leaf(t):
    return t.op == "leaf" and isinstance(t.args[0], sp.Basic) and t.args[0].is_number


def _elementwise(op, a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ShapeMismatch(f"shapes {a.shape} and {b.shape} cannot be combined entry by "
                            f"entry ({_SYMBOLS[op]})") from None
    return _BINARY[op](a, b)


def _matmul(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if a.shape[-1] != b.shape[0]:
        raise ShapeMismatch(f"a {a.shape} @ {b.shape} matrix product does not fit")
    return a @ b


def _reduce(op, a, axis):
    fn = np.sum if op == "sum" else np.mean
    a = np.asarray(a, dtype=float)
    if axis is None:
        return fn(a)
    if not isinstance(axis, int) or not -a.ndim <= axis < max(a.ndim, 1):
        raise ShapeMismatch(f"axis {axis!r} does not exist for shape {a.shape}")
    return fn(a, axis=axis, keepdims=True)


def _scalar_expr(expr, env):
    """A SymPy scalar expression over array names, entry by entry (leaves, display bodies)."""
    if isinstance(expr, (int, float)):
        return np.asarray(expr, dtype=float)
    if isinstance(expr, (sp.Symbol, sp.MatrixSymbol)):
        return np.asarray(env[expr.name], dtype=float)
    if expr.is_number:
        return np.asarray(complex(expr).real if expr.is_real is not False else np.nan)
    if isinstance(expr, sp.Piecewise):  # (value, condition) pairs: the first that holds
        return _piecewise(expr, env)
    args = [_scalar_expr(a, env) for a in expr.args]
    if isinstance(expr, sp.Add):
        return _fold(np.add, args)
    if isinstance(expr, sp.Mul):
        return _fold(np.multiply, args)
    if isinstance(expr, sp.Pow):
        return np.power(*args)
    row = row_of(expr)
    if row is not None:
        return np.asarray(row.numeric(*args), dtype=float)
    if type(expr) in _RELATIONS:
        return _RELATIONS[type(expr)](*args).astype(float)
    raise UnsupportedError(f"cannot evaluate {type(expr).__name__} in a tensor answer")


_RELATIONS = {sp.StrictGreaterThan: np.greater, sp.GreaterThan: np.greater_equal,
              sp.StrictLessThan: np.less, sp.LessThan: np.less_equal,
              sp.Equality: np.equal, sp.Unequality: np.not_equal}


def _piecewise(expr, env):
    pieces = [(_scalar_expr(v, env),
               np.asarray(True) if c == sp.true else _scalar_expr(c, env).astype(bool))
              for v, c in expr.args]
    shape = np.broadcast_shapes(*[np.shape(v) for v, _ in pieces],
                                *[np.shape(c) for _, c in pieces])
    out = np.full(shape, np.nan)
    done = np.zeros(shape, dtype=bool)
    for value, cond in pieces:
        take = np.broadcast_to(cond, shape) & ~done
        out = np.where(take, np.broadcast_to(value, shape), out)
        done |= take
    return out


def _fold(fn, args):
    out = args[0]
    for a in args[1:]:
        out = fn(out, a)
    return out


def tree_builders():
    """The parser hooks that build a Tree instead of SymPy matrices."""

    def combine(op, build, args):
        if op.startswith("call:"):
            return build(*args)
        return Tree(op, [Tree.leaf(a) for a in args])

    def call(name):
        def make(*args, **kwargs):
            unknown = set(kwargs) - {"axis"}
            if unknown:
                raise TypeError(f"unexpected keyword {sorted(unknown)[0]!r}")
            return Tree(name, [Tree.leaf(a) for a in args], kwargs)
        return make

    names = list(BY_NAME) + ["sum", "mean", "outer", "transpose"] + list(MATRIX_FUNCTIONS)
    return {"combine": combine, "matmul": lambda a, b: Tree("matmul", [a, b]),
            "T": lambda a: Tree("T", [a]), "functions": {n: call(n) for n in names}}


# -- the derivation's matrix display -----------------------------------------------------------
def display_value(expr, env):
    """A matrix-display expression (MatMul, HadamardProduct, MapDisplay, ...) with NumPy."""
    if isinstance(expr, sp.MatrixSymbol):
        return np.asarray(env[expr.name], dtype=float)
    if not getattr(expr, "is_Matrix", False):
        return _scalar_expr(expr, env)
    name = type(expr).__name__
    args = expr.args
    if isinstance(expr, sp.Transpose):
        return display_value(args[0], env).T
    if isinstance(expr, sp.MatMul):
        return _fold(_matmul, [display_value(a, env) for a in args])
    if isinstance(expr, sp.MatAdd):
        return _fold(np.add, [display_value(a, env) for a in args])
    if isinstance(expr, HadamardProduct):
        return _fold(np.multiply, [display_value(a, env) for a in args])
    if isinstance(expr, HadamardPower):
        return np.power(display_value(args[0], env), display_value(args[1], env))
    if name == "MapDisplay":
        fn, mats = args[0], args[1:]
        local = dict(env)
        for var, mat in zip(fn.variables, mats):
            local[var.name] = display_value(mat, env)
        return _scalar_expr(fn.expr, local)
    if name == "NamedMatrixFn":
        return _named_matrix_fn(expr, env)
    if isinstance(expr, sp.OneMatrix):
        return np.ones(_shape(expr, env))
    if isinstance(expr, sp.ZeroMatrix):
        return np.zeros(_shape(expr, env))
    raise UnsupportedError(f"cannot evaluate {name} of the matrix display")


def _named_matrix_fn(expr, env):
    """softmax(Z) by rows, lse(Z) (one row of row-wise log-sum-exps), onehot(y) (the
    labels ``y`` as rows of a B x C indicator matrix)."""
    fn, arg = str(expr.args[0]), expr.args[1]
    if fn == "onehot":
        labels = np.asarray(env[str(arg)]).astype(int).reshape(-1)
        rows, cols = _shape(expr, env)
        if labels.size != rows:
            raise UnsupportedError(f"onehot({arg}) has {labels.size} labels for {rows} rows")
        hot = np.zeros((rows, cols))
        hot[np.arange(rows), labels] = 1.0
        return hot
    z = np.atleast_2d(display_value(arg, env))
    if fn == "softmax":
        return _softmax_rows(z)
    if fn == "lse":
        top = z.max(axis=1, keepdims=True)
        return (top + np.log(np.exp(z - top).sum(axis=1, keepdims=True))).T
    raise UnsupportedError(f"cannot evaluate the matrix function {fn}")


def _shape(expr, env):
    return tuple(int(_scalar_expr(s, env)) for s in expr.shape)


def display_text(expr):
    """A matrix display as text with ``@``, ``*`` and ``.T`` (for verdicts and JSON)."""
    if isinstance(expr, sp.Transpose):
        return f"{_atom(expr.args[0])}.T"
    if isinstance(expr, sp.MatMul) and expr.args[0] == -1:
        rest = expr.args[1:]
        return "-" + _atom(rest[0] if len(rest) == 1 else sp.MatMul(*rest))
    if isinstance(expr, sp.MatMul):
        return " @ ".join(_atom(a) for a in expr.args) if all(
            getattr(a, "is_Matrix", False) for a in expr.args) else \
            "*".join(_atom(a) for a in expr.args)
    if isinstance(expr, HadamardProduct):
        return " * ".join(_atom(a) for a in expr.args)
    if isinstance(expr, sp.MatAdd):
        return " + ".join(display_text(a) for a in expr.args).replace("+ -", "- ")
    return sp.sstr(expr)


def _atom(expr):
    text = display_text(expr)
    simple = isinstance(expr, (sp.MatrixSymbol, sp.Symbol, sp.Transpose)) or expr.is_number
    return text if simple or (text.startswith("(") and text.endswith(")")) else f"({text})"
