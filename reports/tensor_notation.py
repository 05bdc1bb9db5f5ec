"""Tensor notation for the LaTeX printer: index forms, reductions and matrix algebra.

:class:`TensorNotation` is mixed into :class:`reports.latex_printer.DeriveLatexPrinter`;
it typesets the display objects of the tensor engine (``derive.tensor.display``,
``derive.tensor.index``, ``derive.layers.windows``) and SymPy's matrix expressions as a
worked gradient writes them: :math:`\\sum_{j} W_{i,j} x_{n,j}`,
:math:`\\left[\\cdot\\right]_{n,i}`, :math:`\\mathbf{1}_{B}^{\\top}`, :math:`A \\odot B`,
:math:`X^{\\top} \\, \\bar{Z}`.
"""
from __future__ import annotations

import re

import sympy as sp
from sympy.printing.precedence import PRECEDENCE


def _display_units():
    """Matrix-display classes of derive.tensor that typeset as one unit (1_B, f(Z))."""
    from derive.tensor import display

    # (MapDisplay is not one: its body may be a sum, e.g. 1 + exp(v4))
    return display.Ones, display.NamedMatrixFn


class TensorNotation:
    """The ``_print_*`` methods of tensor notation (a mixin of a SymPy LatexPrinter)."""

    # -- the tensor engine's display objects (derive.tensor.display, index, layers.windows) --
    def _print_ElementForm(self, expr):
        body = self._print(expr.rhs)
        if not expr.labels:
            return body
        return r"\left[%s\right]_{%s}" % (body, ",".join(self._print(x) for x in expr.labels))

    def _print__Tex(self, expr):
        return expr.name  # an operand this printer already typeset (MapDisplay.body)

    def _print_Ones(self, expr):
        rows, cols = expr.shape
        if cols == 1:
            return r"\mathbf{1}_{%s}" % self._print(rows)
        if rows == 1:
            return r"\mathbf{1}_{%s}^{\top}" % self._print(cols)
        return r"\mathbf{1}_{%s \times %s}" % (self._print(rows), self._print(cols))

    _in_map = False  # printing the body of an elementwise map (MapDisplay)

    def _print_MapDisplay(self, expr):
        body = expr.body(self)
        outer, self._in_map = self._in_map, True
        try:
            return self._print(body)
        finally:
            self._in_map = outer

    def _elementwise_mul(self, expr):
        r"""A product of matrices inside an elementwise map, written with :math:`\odot`
        (``\left(\sigma\left(Z\right) - 1\right) \odot \sigma\left(Z\right)``): written
        side by side they would read as a matrix product. Scalar factors come first, as
        SymPy writes them. None when at most one factor is a matrix (``2 x`` stays)."""
        from derive.tensor.display import _Tex

        factors = sp.Mul.make_args(expr)
        mats = [f for f in factors if f.has(_Tex)]
        if len(mats) < 2:
            return None
        down = [f for f in mats if f.is_Pow and f.exp.is_number and f.exp.is_negative]
        up = [f for f in mats if f not in down]

        def joined(fs):
            return r" \odot ".join(self.parenthesize(f, PRECEDENCE["Mul"]) for f in fs)

        tex = joined(up) if up else "1"
        if down:
            tex = r"\frac{%s}{%s}" % (tex, joined([1 / f for f in down]))
        scalar = sp.Mul(*[f for f in factors if not f.has(_Tex)])
        sign = "- " if scalar.could_extract_minus_sign() else ""
        scalar = -scalar if sign else scalar
        if scalar != 1:
            head = self._print(scalar)
            tex = (r"\left(%s\right) %s" if scalar.is_Add else "%s %s") % (head, tex)
        return sign + tex

    def _print_NamedMatrixFn(self, expr):
        return r"\operatorname{%s}\left(%s\right)" % (expr.args[0], self._print(expr.args[1]))

    #: the head of each reduction of the index notation, by class name
    INDEX_OPS = {"ISum": r"\sum", "LogSumExp": r"\operatorname{LSE}",
                 "Argmax": r"\operatorname{argmax}"}

    def parenthesize(self, item, level, is_neg=False, strict=False):
        # a reduction reaches to the right end of its term: raised to a power it is
        # bracketed, (Σ_p A x)², never Σ_p A x² (which reads as a sum of squares)
        from derive.tensor.index import IndexOp

        if isinstance(item, IndexOp) and level >= PRECEDENCE["Pow"]:
            return r"\left(%s\right)" % self._print(item)
        return super().parenthesize(item, level, is_neg, strict)

    def _needs_mul_brackets(self, expr, first=False, last=False):
        # ... and a factor after it would read as inside it: (Σ_p A x) x_1, not Σ_p A x x_1
        from derive.tensor.index import IndexOp

        if isinstance(expr, IndexOp) and not last:
            return True
        return super()._needs_mul_brackets(expr, first=first, last=last)

    def _print_IndexOp(self, expr):
        head = self.INDEX_OPS.get(type(expr).__name__, r"\operatorname{%s}" % type(expr).__name__)
        subs = ",".join(self._print(getattr(i, "label", i)) for i in expr.indices)
        body = self._print(expr.body)
        if isinstance(expr.body, sp.Add):
            body = r"\left(%s\right)" % body
        return r"%s_{%s} %s" % (head, subs, body)

    def _print_OutSize(self, expr):
        return self._print(expr.formula())

    def _print_clamp(self, expr):
        e, n = (self._print(a) for a in expr.args)
        return r"\operatorname{clamp}_{[0, %s)}\left(%s\right)" % (n, e)

    # -- tensors ------------------------------------------------------------------------------
    def _print_Indexed(self, expr):
        # A base with scripts of its own is bracketed, so its subscripts stay apart from
        # the indices: (c_{\mathrm{next}})_{n,i}, (\bar{v}_{6})_{i}, never c_{next n,i}
        # (and never a "double subscript" to TeX).
        base = self._print(expr.base)
        indices = ",".join(map(self._print, expr.indices))
        if "_" in base or "^" in base:
            return r"\left(%s\right)_{%s}" % (base, indices)
        return "{%s}_{%s}" % (base, indices)

    # -- matrix algebra ---------------------------------------------------------------------
    def _factor(self, arg):
        """A factor of a product: bracketed unless it prints as one unit (no spaces)."""
        text = self._print(arg)
        simple = (sp.Symbol, sp.MatrixSymbol, sp.Transpose, sp.Function, sp.Indexed,
                  sp.OneMatrix) + _display_units()
        if arg.is_Atom or isinstance(arg, simple) or re.fullmatch(r"[^\s+-]+", text):
            return text
        return r"\left(%s\right)" % text

    def _print_HadamardProduct(self, expr):
        return r" \odot ".join(self._factor(a) for a in expr.args)

    def _print_Transpose(self, expr):
        mat = expr.arg
        if not isinstance(mat, sp.MatrixSymbol) and mat.is_MatrixExpr:
            return r"\left(%s\right)^{\top}" % self._print(mat)
        s = self.parenthesize(mat, PRECEDENCE["Pow"], True)
        if "^" in s:
            return r"\left(%s\right)^{\top}" % s
        return r"%s^{\top}" % s

    def _print_MatMul(self, expr):
        args = list(expr.args)
        sign = ""
        if expr.could_extract_minus_sign():
            sign = "- "
            args = args[1:] if args[0] == -1 else [-args[0]] + args[1:]
        scalars = [a for a in args if not getattr(a, "is_Matrix", False)]
        factors = [a for a in args if getattr(a, "is_Matrix", False)]
        head = ""
        if scalars:
            head = self.parenthesize(sp.Mul(*scalars), PRECEDENCE["Mul"], strict=True)
        body = r" \, ".join(self._factor(a) for a in factors)
        return sign + " ".join(s for s in (head, body) if s)
