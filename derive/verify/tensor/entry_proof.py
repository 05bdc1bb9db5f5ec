"""Symbolic proofs for tensor answers: both sides brought to one entry-wise normal form.

A tensor answer (a :class:`~derive.verify.tensor.answer_eval.Tree`) and the derivation's matrix
display (MatMul, HadamardProduct, MapDisplay, Transpose, ...) are both rewritten as one
*scalar* SymPy expression for a generic entry: elementwise operations (``*``, ``+``,
``exp``, a MapDisplay's body) act on the entries directly, so ``v6_bar * (1 + exp(v4))``
and ``HadamardProduct(exp(v4) + 1, v6_bar)`` become the same product of commuting
symbols. A matrix product is an opaque, ordered atom ``MM(a, b)`` and a transpose ``T(a)``;
:func:`canonical` makes them comparable: transposes are pushed down to the arrays
(``(A @ B).T = B.T @ A.T``), products are expanded over sums and their scalar factors
(``2/d``) pulled out.

Adjoint symbols (``v6_bar``) are replaced by what they stand for (the derivation's
adjoints, or in a table the student's earlier answers), so an answer written with them
and one written out in the nodes compare alike. A proof is only attempted after the
numeric check has agreed, within a time budget; a construct without a normal form here
(``sum``, ``mean``, a named matrix function) simply leaves the proof numeric.
"""
from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.hadamard import HadamardPower, HadamardProduct

from derive.errors import DeriveError
from derive.functions import lookup
from derive.verify.guard import attempt

PROOF_SECONDS = 1.0
MAX_OPS = 400  # simplify() is not tried on larger differences

MM = sp.Function("MM")  # an ordered (non-commuting) matrix product of its arguments
T = sp.Function("T")    # the transpose of its argument

_BINARY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b,
           "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
           "pow": lambda a, b: a ** b}


class NoNormalForm(Exception):
    """A construct the entry-wise normal form does not cover (the proof stays numeric)."""


# -- entry forms ------------------------------------------------------------------------------
def tree_entry(tree):
    """The entry form of a tensor answer (a Tree); raises NoNormalForm."""
    op, args = tree.op, tree.args
    if op == "leaf":
        if isinstance(args[0], sp.Basic):
            return args[0]
        if isinstance(args[0], (int, float)) and not isinstance(args[0], bool):
            return sp.nsimplify(args[0], rational=True)
        raise NoNormalForm(type(args[0]).__name__)
    if op == "num":
        return sp.nsimplify(args[0], rational=True)
    vals = [tree_entry(a) for a in args]
    if op in _BINARY:
        return _BINARY[op](*vals)
    if op == "neg":
        return -vals[0]
    if op == "matmul":
        return MM(*vals)
    if op in ("T", "transpose") and len(vals) == 1:
        return T(vals[0])
    if op == "outer":  # vectors are rows: outer(a, b) = a.T @ b
        return MM(T(vals[0]), vals[1])
    row = lookup(op)
    if row is not None and len(vals) == len(row.inputs) and not tree.kwargs:
        return row.build(*vals)
    raise NoNormalForm(op)


def display_entry(expr):
    """The entry form of the derivation's matrix display; raises NoNormalForm."""
    if isinstance(expr, sp.MatrixSymbol):
        return sp.Symbol(expr.name)
    if not getattr(expr, "is_Matrix", False):
        if any(getattr(a, "is_Matrix", False) for a in sp.preorder_traversal(expr)):
            raise NoNormalForm(type(expr).__name__)
        return expr
    args = expr.args
    if isinstance(expr, sp.Transpose):
        return T(display_entry(args[0]))
    if isinstance(expr, sp.MatMul):
        scalars = [a for a in args if not getattr(a, "is_Matrix", False)]
        mats = [display_entry(a) for a in args if getattr(a, "is_Matrix", False)]
        return sp.Mul(*scalars) * (mats[0] if len(mats) == 1 else MM(*mats))
    if isinstance(expr, sp.MatAdd):
        return sp.Add(*[display_entry(a) for a in args])
    if isinstance(expr, HadamardProduct):
        return sp.Mul(*[display_entry(a) for a in args])
    if isinstance(expr, HadamardPower):
        return display_entry(args[0]) ** display_entry(args[1])
    if type(expr).__name__ == "MapDisplay":
        fn, mats = args[0], args[1:]
        return fn.expr.xreplace({v: display_entry(m) for v, m in zip(fn.variables, mats)})
    if isinstance(expr, sp.ZeroMatrix):
        return sp.S.Zero
    if isinstance(expr, sp.OneMatrix):  # a matrix of ones keeps its shape (ones @ Z sums)
        return sp.Symbol(f"ones({expr.shape[0]}, {expr.shape[1]})")
    raise NoNormalForm(type(expr).__name__)


# -- the normal form ----------------------------------------------------------------------------
def canonical(expr, arrays):
    """``expr`` with transposes pushed to the arrays and products expanded (see module doc).

    ``arrays`` is the set of array symbols (everything else is a scalar: a size, a number).
    """
    if expr.func == T:
        return _transposed(canonical(expr.args[0], arrays), arrays)
    if expr.func == MM:
        return _product([canonical(a, arrays) for a in expr.args], arrays)
    if not expr.args:
        return expr
    return expr.func(*[canonical(a, arrays) for a in expr.args])


def _transposed(expr, arrays):
    """The transpose of a canonical expression, itself canonical."""
    if expr in arrays:
        return T(expr)
    if expr.func == T:
        return expr.args[0]
    if expr.func == MM:
        return _product([_transposed(a, arrays) for a in reversed(expr.args)], arrays)
    if not expr.args:
        return expr  # a scalar
    return expr.func(*[_transposed(a, arrays) for a in expr.args])


def _product(factors, arrays):
    """``MM(*factors)`` expanded over sums, scalars pulled out, nested products flattened."""
    terms = [(sp.S.One, [])]
    for f in factors:
        new = []
        for part in sp.Add.make_args(sp.expand(f)):
            coeff, rest = _split(part, arrays)
            inner = list(rest.args) if rest.func == MM else [rest]
            new.extend((c * coeff, mats + (inner if rest != 1 else []))
                       for c, mats in terms)
        terms = new
    return sp.Add(*[c * (MM(*m) if len(m) > 1 else (m[0] if m else 1)) for c, m in terms])


def _split(term, arrays):
    """A product term as (scalar coefficient, the rest)."""
    coeff, rest = sp.S.One, sp.S.One
    for f in sp.Mul.make_args(term):
        if f.free_symbols & arrays or f.has(MM, T):
            rest *= f
        else:
            coeff *= f
    return coeff, rest


# -- proofs ------------------------------------------------------------------------------------
def substitute_bars(expr, bars):
    """``expr`` with adjoint symbols replaced (``bars``: Symbol -> entry form), to a fixpoint."""
    for _ in range(len(bars) + 1):
        new = expr.xreplace(bars)
        if new == expr:
            return expr
        expr = new
    return expr


def equal(answer, target, arrays):
    """True when two entry forms (bars already substituted) are shown equal."""
    diff = _plain(canonical(answer, arrays)) - _plain(canonical(target, arrays))
    if diff == 0 or sp.expand(diff) == 0:
        return True
    if sp.count_ops(diff) > MAX_OPS or diff.has(MM, T):
        return False
    return sp.simplify(diff.rewrite(sp.exp)) == 0


def _plain(expr):
    """Symbols by name only: a size ``d`` of the derivation is positive, the answer's is not."""
    return expr.xreplace({s: sp.Symbol(s.name) for s in expr.free_symbols})


def prove(tree, target, bars, arrays, transposed=False):
    """True when the answer ``tree`` equals ``target`` (an entry form) symbolically.

    ``transposed``: the answer is the target vector written as a column (compare its
    transpose). Never raises; gives up (False) past :data:`PROOF_SECONDS`.
    """
    def run():
        try:
            answer = tree_entry(tree)
        except (NoNormalForm, DeriveError, TypeError, ValueError):
            return False
        answer = substitute_bars(answer, bars)
        if transposed:
            answer = T(answer)
        return equal(answer, substitute_bars(target, bars), arrays)

    return attempt(run, PROOF_SECONDS, default=False)


def entry_or_none(expr):
    """:func:`display_entry` of ``expr``, or None when it has no normal form here."""
    try:
        return display_entry(expr)
    except (NoNormalForm, DeriveError, TypeError, ValueError):
        return None
