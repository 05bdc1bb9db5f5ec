r"""The one LaTeX printer of derivekit: SymPy's, with adjoint notation.

Every output format (LaTeX, PDF, Markdown, HTML) prints mathematics through
:class:`DeriveLatexPrinter`. It differs from SymPy's ``LatexPrinter`` only where the
notation of a worked gradient differs:

* adjoint symbols ``<name>_bar`` print as :math:`\bar{v}_{1}` (the bar sits on the base
  letter, subscripts stay outside it);
* names are the user's: the head of a name reads as SymPy reads it (``alpha`` ->
  :math:`\alpha`, ``sigma2`` -> :math:`\sigma_{2}`, ``yhat`` -> :math:`\hat{y}`), its
  scripts never turn Greek (``W_xi`` -> :math:`W_{xi}`, not :math:`W_{\xi}`; a Greek
  script is written through ``names``); scripts that are words (four letters or more,
  or ``min``, ``max``, ...) are upright (``c_next`` -> :math:`c_{\mathrm{next}}`), and an
  indexed name with scripts of its own is bracketed,
  :math:`\left(c_{\mathrm{next}}\right)_{n,i}`;
* a per-derivation map ``names`` (``Derivation.meta["latex_names"]``) overrides how a
  symbol prints, e.g. ``{"w1_11": "w^{(1)}_{11}"}``; its adjoint follows;
* :math:`\sigma`, :math:`\operatorname{ReLU}`, :math:`\max`, :math:`H`: every function of
  the registry in ``derive.functions`` by the ``tex`` of its row (SymPy's ``Heaviside``
  included), the rest as SymPy typesets them;
* :math:`\odot` for the Hadamard product, :math:`^{\top}` for transposes, ``\,`` between
  the factors of a matrix product, and the tensor engine's display objects (index sums,
  element forms, vectors of ones): :class:`reports.tensor_notation.TensorNotation`;
* floats to a fixed number of significant digits (``digits``, default 6), by one
  rule (:func:`decimal_tex`) that every value and every expression of every format
  goes through;
* arithmetic as written (``sympy.UnevaluatedExpr``, built by ``derive.stepforms``):
  its sums keep their order and break between terms like any other sum;
* the step vocabulary of ``derive.stepforms``: words (``Word``) as escaped text,
  :math:`\approx x`, :math:`\arg\max`, :math:`\mathbb{E}`, :math:`\operatorname{Var}`,
  norms and gradients; a derivative of a named quantity as
  :math:`\frac{\partial y}{\partial x}`; word subscripts upright (:math:`y_{\mathrm{train}}`).

>>> import sympy as sp
>>> latex(sp.Symbol("v1_bar"))
'\\bar{v}_{1}'
"""
from __future__ import annotations

import contextlib
import math
import contextlib
import numbers
import re

import sympy as sp
from sympy.printing.conventions import split_super_sub
from sympy.printing.latex import LatexPrinter, greek_letters_set
from sympy.printing.precedence import PRECEDENCE, precedence_traditional

from derive.functions import row_of
from reports.tensor_notation import TensorNotation

BAR_SUFFIX = "_bar"  # same convention as derive.derivation.bar
DIGITS = 6  # significant digits of every decimal a report shows

# The "head" of a LaTeX name, the part a bar or hat sits on: one letter, or one command
# with an optional braced argument (\alpha, \hat{y}); what follows (sub/superscripts)
# stays outside the accent.
_HEAD = re.compile(r"^(\\[A-Za-z]+(?:\{[^{}]*\})?|[A-Za-z])(.*)$", re.S)


def accent(tex, command=r"\bar"):
    r"""Put ``command`` (default ``\bar``) on the head of a LaTeX name.

    >>> accent("w^{(1)}_{11}")
    '\\bar{w}^{(1)}_{11}'
    """
    match = _HEAD.match(tex)
    if match is None:
        return r"\overline{%s}" % tex
    return "%s{%s}%s" % (command, match.group(1), match.group(2))


def decimal(x, digits=DIGITS):
    """The decimal text of a real number, ``digits`` significant digits (``1.5``)."""
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def decimal_tex(x, digits=DIGITS):
    r"""A decimal in LaTeX: ``1.5``, ``1.2 \cdot 10^{-7}``, ``\infty``: the one rule for
    every float a report shows."""
    text = decimal(x, digits)
    if text in ("nan", "inf", "-inf"):
        return {"nan": r"\text{NaN}", "inf": r"\infty", "-inf": r"-\infty"}[text]
    if "e" in text:
        mantissa, exponent = text.split("e")
        return r"%s \cdot 10^{%d}" % (mantissa, int(exponent))
    return text


_TEXT_SPECIALS = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$",
                  "&": r"\&", "#": r"\#", "^": r"\^{}", "_": r"\_", "%": r"\%",
                  "~": r"\~{}", "<": r"\textless{}", ">": r"\textgreater{}"}


def text_math(text):
    r"""Words inside mathematics, escaped: user text can never become LaTeX commands.

    >>> text_math("a_b {x}")
    '\\text{a\\_b \\{x\\}}'
    """
    return r"\text{%s}" % "".join(_TEXT_SPECIALS.get(c, c) for c in str(text))


#: Sub- and superscripts that are words, typeset upright (y_train -> y_{\mathrm{train}}), with
#: every script of four letters or more (c_next); shorter letter groups are indices (W_hh,
#: W_xi) and stay italic.
_WORD_SCRIPTS = frozenset("min max end train eval test stack single total".split())


def _is_word(s):
    """A script that is a word (next, train, min), not a group of index letters (hh, xi)."""
    return s in _WORD_SCRIPTS or (len(s) > 3 and s.isalpha())


def _script(s):
    """A sub- or superscript as the user wrote it: digits, italic letters, upright words."""
    return r"\mathrm{%s}" % s if _is_word(s) else s


_NEEDS_DOT = re.compile(r"\{?(\d|-|\\left\(-)")


def _negated(term):
    """``(True, -term)`` when ``term`` is written with a leading minus, else ``(False,
    term)``; structural, so a product written out (``-0.1 * 3``) is not multiplied."""
    ue = isinstance(term, sp.UnevaluatedExpr)
    inner = term.args[0] if ue else term
    if inner.is_Number and inner.is_negative:
        return True, -inner
    if isinstance(inner, sp.Mul) and inner.args[0].is_Number and inner.args[0].is_negative:
        lead = () if inner.args[0] is sp.S.NegativeOne else (-inner.args[0],)
        factors = lead + inner.args[1:]
        body = factors[0] if len(factors) == 1 else sp.Mul(*factors, evaluate=False)
        return True, (sp.UnevaluatedExpr(body) if ue and len(factors) > 1 else body)
    return False, term


def _power(text, exp):
    """``text`` raised to ``exp`` when a power of a function is printed (E[y]^2)."""
    return text if exp is None else "{%s}^{%s}" % (text, exp)


class DeriveLatexPrinter(TensorNotation, LatexPrinter):
    """SymPy's LaTeX printer with derivekit's adjoint notation (see the module docstring).

    Extra settings: ``names`` (dict name -> LaTeX) and ``digits`` (significant digits of
    floats).
    """

    _default_settings = {**LatexPrinter._default_settings, "names": None, "digits": DIGITS}

    # -- symbols --------------------------------------------------------------------------
    def _print_Symbol(self, expr, style="plain"):
        names = self._settings["names"] or {}
        if expr.name in names:
            return names[expr.name]
        if expr.name.endswith(BAR_SUFFIX) and len(expr.name) > len(BAR_SUFFIX):
            base = expr.name[: -len(BAR_SUFFIX)]
            if base in names:
                return accent(names[base])
            if base.endswith(BAR_SUFFIX):  # the adjoint of an adjoint
                return accent(self._print_Symbol(sp.Symbol(base), style=style))
            return accent(self._deal_with_super_sub(base, style=style))
        return super()._print_Symbol(expr, style=style)

    _function_name = False

    def _hprint_Function(self, func):
        # the rules of _deal_with_super_sub below are for symbols, not function names
        self._function_name = True
        try:
            name = super()._hprint_Function(func)
        finally:
            self._function_name = False
        # a Greek name with a modifier (phiprime: {\phi}') is a symbol, not an operator name
        greek = re.fullmatch(r"\\operatorname\{(\{\\[A-Za-z]+\}.*)\}", name)
        return greek.group(1) if greek else name

    def _deal_with_super_sub(self, string, style="plain"):
        # The head of a name reads as SymPy reads it (alpha -> \alpha, yhat -> \hat{y});
        # a multi-letter head that is no Greek letter is one upright symbol (\mathrm{var}).
        # Scripts are the user's letters, never Greek: W_xi is W_{xi}, not W_{\xi} (a Greek
        # script is written through a display name); word scripts are upright (c_next ->
        # c_{\mathrm{next}}), letter groups stay italic indices (W_hh -> W_{hh}).
        if self._function_name:  # cos, diag: SymPy's \cos, \operatorname{diag}
            return super()._deal_with_super_sub(string, style=style)
        name, supers, subs = split_super_sub(string)
        if (len(name) > 1 and name.isalpha() and not supers and subs
                and name.lower() not in greek_letters_set
                and all(len(s) > 1 and s.isalpha() for s in subs)):
            # a name of words (running_mean): one upright name, not running_{mean}
            return r"\mathrm{%s}" % r"\_".join([name] + subs)
        tex = super()._deal_with_super_sub(name, style=style)
        if len(name) > 1 and name.isalpha() and tex == name:
            tex = r"\mathrm{%s}" % name
        if supers:
            tex += "^{%s}" % " ".join(map(_script, supers))
        if subs:
            # the second conv output y1_2: y_{1,2}, not y_{1 2}; S_1_j: S_{1,j}
            indices = len(subs) > 1 and all(s.isdigit() or len(s) == 1 for s in subs)
            tex += "_{%s}" % ("," if indices else " ").join(map(_script, subs))
        return tex

    # -- the function registry's functions (derive.functions) -------------------------------
    # A row's ``tex`` is the head (\sigma, \operatorname{LeakyReLU}_{k}); its inputs go in
    # brackets after it and a power sits on the head (\sigma^{2}\left(x\right)). Rows
    # without ``tex`` are SymPy's own functions, typeset by SymPy.
    def _print(self, expr, **kwargs):
        row = row_of(expr) if isinstance(expr, sp.Function) else None
        if row is not None and row.tex is not None:
            return self._print_registry_function(row, expr, **kwargs)
        return super()._print(expr, **kwargs)

    def _print_registry_function(self, row, expr, exp=None):
        n = len(row.inputs)
        head = row.tex  # <k> stands for the option k: \operatorname{LeakyReLU}_{<k>}
        for p, value in zip(row.params, expr.args[n:]):
            head = head.replace(f"<{p.name}>", self._print(value))
        if exp is not None:
            head = "%s^{%s}" % (head, exp)
        # max keeps its argument order (ties route to the first), so it prints as given
        return r"%s\left(%s\right)" % (head, ", ".join(self._print(a) for a in expr.args[:n]))

    # -- numbers ----------------------------------------------------------------------------
    def _print_Float(self, expr):
        # the one rule for decimals (values print through it too): 6 significant digits
        return decimal_tex(expr, self._settings["digits"])

    # -- arithmetic as written (derive.stepforms: plus, times, over, power) -------------------
    def _print_UnevaluatedExpr(self, expr):
        arg = expr.args[0]
        if isinstance(arg, (sp.Add, sp.MatAdd)):
            return " ".join(self.written_terms(arg))
        if isinstance(arg, sp.Mul):
            return self._written_product(arg)
        return self._print(arg)

    def _print_Mul(self, expr):
        elementwise = self._elementwise_mul(expr) if self._in_map else None
        if elementwise is not None:  # matrices inside an elementwise map: A \odot B
            return elementwise
        # minus a sum as written: - (a + b), not - a + b
        if (len(expr.args) == 2 and expr.args[0] is sp.S.NegativeOne
                and isinstance(expr.args[1], sp.UnevaluatedExpr) and expr.args[1].args[0].is_Add):
            return r"- \left(%s\right)" % self._print(expr.args[1])
        return super()._print_Mul(expr)

    def written_terms(self, add):
        """The terms of a written sum in their order, with their signs: ``a``, ``- b``,
        ``+ c`` (a bracketed sum after a minus)."""
        out = []
        for i, term in enumerate(add.args):
            negative, body = _negated(term)
            text = self._print(body)
            if body.is_Add or (negative and precedence_traditional(body) <= PRECEDENCE["Add"]):
                text = r"\left(%s\right)" % text
            out.append(("- " if negative else "+ " if i else "") + text)
        return out

    def _written_product(self, mul):
        top = [f for f in mul.args if not (f.is_Pow and f.exp == -1)]
        den = [f.base for f in mul.args if f.is_Pow and f.exp == -1]
        text = self._written_factors(top) if top else "1"
        if den:
            text = r"\frac{%s}{%s}" % (text, self._written_factors(den))
        return text

    def _written_factors(self, factors):
        r"""Factors in their order, brackets where needed, ``\cdot`` where juxtaposition
        would misread (``2 \cdot 3``, ``\frac{1}{10} \cdot \frac{3}{2}``,
        ``2 \cdot \left(-3\right)``)."""
        out = ""
        for i, f in enumerate(factors):
            text = self._print(f)
            if len(factors) > 1 and self._needs_mul_brackets(
                    f, first=i == 0, last=i == len(factors) - 1):
                text = r"\left(%s\right)" % text
            dot = _NEEDS_DOT.match(text) or (text.startswith("\\frac") and factors[i - 1].is_number)
            out += (r" \cdot " if dot else " ") + text if i else text
        return out

    # -- the step vocabulary of derive.stepforms ----------------------------------------------
    def _print_Word(self, expr, **kwargs):
        return text_math(expr.name)

    def _print_Blank(self, expr, **kwargs):
        return r"\underline{\hspace{5cm}}"

    def _print_Approx(self, expr, exp=None):
        return _power(r"\approx %s" % self._print(expr.args[0]), exp)

    def _print_ArgMax(self, expr, exp=None):
        body, index = map(self._print, expr.args)
        return _power(r"\arg\max_{%s} %s" % (index, body), exp)

    def _print_MaxOf(self, expr, exp=None):
        return _power(r"\max\left(%s\right)" % ", ".join(map(self._print, expr.args)), exp)

    def _print_Expectation(self, expr, exp=None):
        return _power(r"\mathbb{E}\left[%s\right]" % self._print(expr.args[0]), exp)

    def _print_Variance(self, expr, exp=None):
        return _power(r"\operatorname{Var}\left[%s\right]" % self._print(expr.args[0]), exp)

    def _print_Norm(self, expr, exp=None):
        return _power(r"\left\|%s\right\|" % self._print(expr.args[0]), exp)

    def _print_Grad(self, expr, exp=None):
        return _power(r"\nabla %s\left(%s\right)" % tuple(map(self._print, expr.args)), exp)

    def _print_Derivative(self, expr):
        # a first derivative of a named quantity reads d y / d x (partial: there may be more)
        (var, count), = expr.variable_count if len(expr.variable_count) == 1 else ((0, 0),)
        if count == 1 and isinstance(expr.expr, (sp.Symbol, sp.Indexed)):
            top, bottom = self._print(expr.expr), self._print(var)
            return r"\frac{\partial %s}{\partial %s}" % (top, bottom)
        return super()._print_Derivative(expr)


def latex(expr, names=None, **settings):
    r"""LaTeX of a SymPy expression (or a LaTeX string, returned as-is) in our notation.

    Parameters
    ----------
    expr : sympy.Basic, number or str
        What to print; a ``str`` is taken to be LaTeX already.
    names : dict, optional
        Symbol name -> LaTeX overrides (``Derivation.meta["latex_names"]``).
    **settings
        Further ``LatexPrinter`` settings (``digits`` for floats).

    Returns
    -------
    str

    Examples
    --------
    >>> import sympy as sp
    >>> latex(sp.Symbol("w11") * sp.Symbol("yhat_bar"))
    'w_{11} \\bar{\\hat{y}}'
    """
    if isinstance(expr, str):
        return expr
    memo, key = _remembered[-1] if _remembered else None, None
    if memo is not None:
        try:
            key = (expr, tuple(sorted(names.items())) if names else None,
                   tuple(sorted(settings.items())))
            hash(key)
        except TypeError:  # something unhashable: printed, not remembered
            key = None
    tex = memo.get(key) if key is not None else None
    if tex is None:
        tex = DeriveLatexPrinter({"names": names or None, **settings}).doprint(expr)
        if key is not None:
            memo[key] = tex
    return tex


_remembered = []


@contextlib.contextmanager
def remembered():
    """Within the block, :func:`latex` prints an object equal to one it printed before
    as it did then: a document prints each formula two or three times (its table, its
    worked section, the read-back of what it printed). SymPy objects compare
    structurally (``2.0*x != 2*x``); the memory lasts for the block (one document)."""
    _remembered.append({})
    try:
        yield
    finally:
        _remembered.pop()


def symbol_tex(name, names=None, adjoint=False):
    """LaTeX of the node called ``name`` (or of its adjoint ``name_bar``)."""
    return latex(sp.Symbol(name + (BAR_SUFFIX if adjoint else "")), names)


def shape_tex(shape, names=None):
    r"""``3 \times 4`` for a shape tuple (dims: ints, SymPy symbols or names)."""
    dims = [sp.Symbol(d) if isinstance(d, str) else
            sp.Integer(d) if isinstance(d, numbers.Integral) else d for d in shape]
    return r" \times ".join(latex(d, names) for d in dims)


# Commands that typeset as their own name (\log is three letters wide); other commands
# (\alpha, \partial, \odot) are about one character wide, and layout commands none.
_WORDS = re.compile(r"\\(log|ln|exp|sin|cos|tan|tanh|max|min|sum|prod|lim|det|sup|inf|"
                    r"arg|sign|sqrt)\b")
_LAYOUT = re.compile(r"\\(operatorname|mathrm|mathbf|mathcal|mathbb|text|frac|"
                     r"dfrac|tfrac|begin|end|bmatrix|quad|qquad|displaystyle|bar|hat|tilde|"
                     r"vec|dot|ddot|overline|underline)\b|\\[,;:!]")


_SIZED = re.compile(r"\\(left|right)\b")
_OPERATORS = re.compile(r"[=+<>-]|\\(cdot|approx|odot|times|to|le|ge|leq|geq|ne)\b")


def visible_len(tex):
    r"""Roughly how many characters wide ``tex`` typesets.

    Binary operators and relations count 2.5 (their spacing), ``\left(`` 1.5;
    subscripts count fully, which errs towards breaking early.
    """
    n_sized = len(_SIZED.findall(tex))  # \left( is wider than (
    text = _SIZED.sub("", tex)
    text = _WORDS.sub(lambda m: "x" * len(m.group(1)), text)
    text = _LAYOUT.sub("", text)
    n_ops = len(_OPERATORS.findall(text))
    text = _OPERATORS.sub("", text)
    text = re.sub(r"\\[A-Za-z]+", "x", text)
    return len(re.sub(r"[{}\s^_&$]", "", text)) + 2.5 * n_ops + 0.5 * n_sized


def latex_pieces(expr, names=None):
    """Where a wide ``expr`` may be broken: ``(pieces, glue)``.

    A sum gives its summands with their signs (``["a", "- b", "+ c"]``, glue ``""``); a
    product without a denominator gives its factors (glue ``"\\cdot "``, written at the
    start of a continued line); anything else is one piece. Joined with spaces the
    pieces read as :func:`latex` of the whole.
    """
    if isinstance(expr, str) or not isinstance(expr, sp.Basic):
        return [latex(expr, names)], ""
    printer = DeriveLatexPrinter({"names": names or None})
    if isinstance(expr, sp.UnevaluatedExpr) and isinstance(expr.args[0], (sp.Add, sp.MatAdd)):
        return printer.written_terms(expr.args[0]), ""  # arithmetic as written
    if isinstance(expr, (sp.Add, sp.MatAdd)):
        terms = expr.as_ordered_terms() if isinstance(expr, sp.Add) else list(expr.args)
        out = []
        for i, term in enumerate(terms):
            if term.could_extract_minus_sign():
                out.append("- " + printer._print(-term))
            else:
                text = printer._print(term)
                out.append(text if i == 0 else "+ " + text)
        return out, ""
    if isinstance(expr, sp.Mul) and expr.as_numer_denom()[1] == 1:
        sign = ""
        if expr.could_extract_minus_sign():
            sign, expr = "- ", -expr
        factors = expr.as_ordered_factors()
        if len(factors) > 1:
            out = [printer.parenthesize(f, PRECEDENCE["Mul"], strict=True) for f in factors]
            return [sign + out[0]] + out[1:], r"\cdot "
        return [sign + printer._print(expr)], ""
    return [printer._print(expr)], ""
