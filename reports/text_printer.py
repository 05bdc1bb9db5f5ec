"""Plain text of an expression for a terminal (the ``derivekit`` summary).

SymPy's str printer, in the notation of a worked gradient rather than of the engine:
``@`` for matrix products, ``*`` for the elementwise product, ``.T`` for transposes,
``Σ_{k}(...)`` for an index sum (``LSE_{k}(...)``, ``argmax_{k}(...)`` for the other
reductions), ``δ(i, j)`` for the Kronecker delta and ``H(x)`` for the Heaviside step:
never the engine's ``ISum(``, ``KroneckerDelta(``, ``Heaviside(``.

>>> import sympy as sp
>>> text(sp.KroneckerDelta(*sp.symbols("i j")) * sp.Heaviside(sp.Symbol("x"), 0))
'H(x)*δ(i, j)'
"""
from __future__ import annotations

from sympy import HadamardProduct, MatAdd, MatMul, Symbol
from sympy.printing.str import StrPrinter

from derive.tensor.display import MapDisplay
from derive.tensor.index import IndexOp

#: the head of each reduction of the index notation, by class name
INDEX_OPS = {"ISum": "Σ", "LogSumExp": "LSE", "Argmax": "argmax"}


class TextPrinter(StrPrinter):
    """SymPy's ``StrPrinter`` with the notation described in the module docstring."""

    def _print(self, expr, **kwargs):
        # an IndexOp has its own _sympystr (the engine's repr), which StrPrinter would prefer
        if isinstance(expr, IndexOp):
            return self._print_index_op(expr)
        if isinstance(expr, MapDisplay):  # (its own _sympystr prints x*W.T for x @ W.T)
            return self._print_MapDisplay(expr)
        return super()._print(expr, **kwargs)

    def _print_index_op(self, expr):
        head = INDEX_OPS.get(type(expr).__name__, type(expr).__name__)
        subs = ",".join(self._print(getattr(i, "label", i)) for i in expr.indices)
        return "%s_{%s}(%s)" % (head, subs, self._print(expr.body))

    def _print_KroneckerDelta(self, expr):
        return "δ(%s)" % ", ".join(self._print(a) for a in expr.args[:2])

    def _print_Abs(self, expr):
        return "abs(%s)" % self._print(expr.args[0])  # the registry's name, as parsers read

    def _print_Heaviside(self, expr):
        return "H(%s)" % self._print(expr.args[0])

    def _print_MatMul(self, expr):
        coeff, mats = expr.as_coeff_matrices()
        body = " @ ".join(self.parenthesize(a, 50) for a in mats)
        if coeff == 1:
            return body
        if coeff == -1:
            return "-" + body
        return f"{self.parenthesize(coeff, 50)}*{body}"

    def _print_HadamardProduct(self, expr):
        return " * ".join(self.parenthesize(a, 50) for a in expr.args)

    def _print_Transpose(self, expr):
        return self.parenthesize(expr.arg, 100) + ".T"

    def _print_MapDisplay(self, expr):
        # a function applied entry by entry; its operands in this notation (x @ W.T, never
        # SymPy's x*W.T, which would read as an elementwise product)
        fn, mats = expr.args[0], expr.args[1:]
        operands = {v: Symbol(self._operand(m)) for v, m in zip(fn.variables, mats)}
        return "(%s)" % self._print(fn.expr.xreplace(operands))

    def _operand(self, mat):
        text = self._print(mat)
        return f"({text})" if isinstance(mat, (MatAdd, MatMul, HadamardProduct)) else text


_PRINTER = TextPrinter()


def text(expr):
    """The plain text of ``expr`` (a SymPy object; anything else through ``str``)."""
    return _PRINTER.doprint(expr) if hasattr(expr, "free_symbols") else str(expr)
