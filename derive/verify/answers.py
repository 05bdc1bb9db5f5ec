r"""Answers as data: text (Python-like, LaTeX or Unicode) -> SymPy, in the problem's names.

Nothing is evaluated: Python-like text goes through the whitelist parser
(:func:`derive.scalar.parse.parse`), LaTeX is first translated to that syntax by
:mod:`derive.verify.latex_answers`. Any failure is an :class:`~derive.errors.InputError` (or
UnsupportedError) whose one-line message the verdict shows as "unreadable".

Names are matched to the problem's own symbols leniently, the way people write them:
``yhat``, ``y_hat``, ``ŷ`` and ``\hat{y}`` are all the node ``yhat``; ``x_1`` is ``x1``;
``w^{(1)}_{11}`` is ``w1_11``; a name given in the problem's ``latex:`` table is
recognised too (``\ell`` for ``l``). ``<node>_bar`` (or ``\bar{<node>}``) is the adjoint
of a node, so table answers may be written in terms of earlier adjoints. An unknown
name makes the answer unreadable, with the known names listed.
"""
from __future__ import annotations

import ast
import re
import unicodedata

import sympy as sp

from derive.derivation import BAR_SUFFIX, bar
from derive.errors import DeriveError, InputError
from derive.scalar.parse import FUNCTIONS, MAX_CHARS, Parser, parse
from derive.verify.latex_answers import latex_to_text

#: Unicode a student may paste, as whitelist text. Greek letters become their names.
UNICODE = {
    "·": "*", "×": "*", "⋅": "*", "∗": "*", "⊙": "*", "∘": "*", "−": "-", "–": "-",
    "÷": "/", "²": "**2", "³": "**3", "ᵀ": ".T", "√": "sqrt", "σ": "sigma", "ℓ": "ell",
    "π": "pi", "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon",
    "η": "eta", "θ": "theta", "λ": "lam", "μ": "mu", "ρ": "rho", "τ": "tau", "φ": "phi",
    "ω": "omega", "ŷ": "yhat", "ȳ": "ybar", "x̂": "xhat",
}
_SUBSCRIPTS = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
_COMBINING = {"\u0302": "hat", "\u0304": "bar", "\u0305": "bar"}
LATEX_HINT = re.compile(r"\\|\^|[{}]")
_IMPLICIT = re.compile(r"\d\s*[A-Za-z(]|\)\s*[A-Za-z(\d]")


def normalise_unicode(text):
    """Replace pasted Unicode (ŷ, ·, −, ², subscript digits, Greek) by plain text."""
    text = unicodedata.normalize("NFC", text)
    for char, plain in UNICODE.items():
        text = text.replace(char, plain)
    text = text.translate(_SUBSCRIPTS)
    for mark, word in _COMBINING.items():  # y + combining circumflex = yhat
        text = re.sub(rf"([A-Za-z]){mark}", rf"\g<1>{word}", text)
    return text


def is_latex(text):
    """A backslash, a caret or a brace marks LaTeX (none of them is valid Python here)."""
    return bool(LATEX_HINT.search(text))


def right_hand_side(text):
    r"""``z_bar = yhat - y`` -> ``yhat - y`` (a written-out equation: keep its last side).

    Only an ``=`` outside brackets counts (``sum(a, axis=0)`` is not an equation).
    """
    depth, cut = 0, None
    for i, char in enumerate(text):
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "=" and depth == 0 and text[i - 1:i] not in ("=", "!", "<", ">") \
                and text[i + 1:i + 2] != "=":
            cut = i
    if cut is not None and text[cut + 1:].strip():
        return text[cut + 1:]
    return text


def key(name):
    """The lenient form names are matched on: no underscores, braces or parentheses."""
    return re.sub(r"[_{}()\s]", "", name)


class Vocabulary:
    """The names one problem knows, and every lenient spelling of them.

    Parameters
    ----------
    names : iterable of str
        Node, input and parameter names of the problem.
    latex_names : dict, optional
        ``name -> LaTeX`` from the problem file; each LaTeX spelling becomes an alias.
    functions : dict, optional
        Extra functions an answer may call (tensor answers add ``sum``, ``mean``...).
    """

    def __init__(self, names, latex_names=None, functions=None, symbols=None):
        self.names = list(names)
        self.symbols = dict(symbols or {n: sp.Symbol(n) for n in self.names})
        self.functions = dict(functions or {})
        self.aliases = {}
        for name in self.names:
            self._alias(key(name), name)
            if name.endswith("hat"):
                self._alias("hat" + key(name)[:-3], name)
        for name, tex in (latex_names or {}).items():
            if name in self.symbols and isinstance(tex, str):
                try:
                    self._alias(key(latex_to_text(tex)), name)
                except DeriveError:
                    pass

    def _alias(self, k, name):
        self.aliases.setdefault(k, name)

    def lookup(self, word):
        """The problem name for ``word`` (exact, then lenient), or None."""
        if word in self.symbols:
            return word
        return self.aliases.get(key(word))

    def resolve(self, word):
        """``word`` as a SymPy expression of the problem's symbols (InputError if unknown)."""
        name = self.lookup(word)
        if name is not None:
            return self.symbols[name]
        for suffix in (BAR_SUFFIX, "bar"):
            if word.endswith(suffix) and len(word) > len(suffix):
                base = self.lookup(word[:-len(suffix)].rstrip("_"))
                if base is not None:
                    return bar(base, getattr(self.symbols[base], "shape", None)) \
                        if isinstance(self.symbols[base], sp.MatrixSymbol) else bar(base)
        product = self.split(word)
        if product is not None:
            return sp.Mul(*[self.symbols[n] for n in product])
        known = ", ".join(self.names)
        raise InputError(f"unknown name {word!r} (this problem's names: {known})")

    def split(self, word, limit=6):
        """``wu_2`` -> [w, u2] when the word is a run of known names (LaTeX juxtaposition)."""
        if len(word) > 40:
            return None
        for cut in range(len(word) - 1, 0, -1):
            head = self.lookup(word[:cut])
            if head is None or key(word[:cut]) == "":
                continue
            rest = word[cut:]
            tail = [self.lookup(rest)] if self.lookup(rest) else (
                self.split(rest, limit - 1) if limit > 1 else None)
            if tail and None not in tail:
                return [head] + tail
        return None


def parse_answer(answer, vocab, *, matrix=None, transpose=None, functions=None,
                 combine=None, latex=None):
    """Parse one answer into a SymPy expression over ``vocab``'s symbols.

    Parameters
    ----------
    answer : str or number
        The answer as given (YAML may hand over an int or float).
    vocab : Vocabulary
    matrix, transpose, combine : callable, optional
        Builders for ``@``, ``.T`` and every operation (tensor answers build a tree, see
        :mod:`derive.verify.tensor.answer_eval`); scalar answers leave them out.
    latex : bool, optional
        Whether the text is LaTeX; by default a backslash, caret or brace says so (a
        caller that knows, such as reports.readback reading a printed ``0.3 w``, says).

    Raises
    ------
    InputError, UnsupportedError
        With a one-line message: the answer is unreadable.
    """
    if isinstance(answer, bool) or answer is None or not isinstance(answer, (str, int, float)):
        raise InputError(f"expected a formula as text, got {type(answer).__name__}")
    if not isinstance(answer, str):
        return parse(answer)
    if len(answer) > MAX_CHARS:
        raise InputError(f"answer is too long ({len(answer)} characters; at most {MAX_CHARS})")
    text = right_hand_side(normalise_unicode(answer))
    if is_latex(text) if latex is None else latex:
        text = latex_to_text(text, matrix=matrix is not None, known=vocab.names)
    functions = dict(vocab.functions, **(functions or {}))
    if vocab.lookup("H") is None:  # H(x), the Heaviside step as derivekit prints it
        functions.setdefault("H", functions.get("step", FUNCTIONS["step"]))
    functions.setdefault("sign", sp.sign)  # d|x|/dx as derivekit prints it
    parser = _AnswerParser(vocab, functions=functions, matmul=matrix, transpose=transpose,
                           combine=combine)
    return parser.parse(text)


class _AnswerParser(Parser):
    """The whitelist parser, with names looked up in a Vocabulary (leniently)."""

    def __init__(self, vocab, **kwargs):
        super().__init__(**kwargs)
        self.vocab = vocab

    def visit_Name(self, node, depth):
        name = node.id
        if name in self.names or name.startswith("_") or (
                name in self.functions and name not in self.vocab.symbols):
            return super().visit_Name(node, depth)  # (a problem's sigma is a name)
        try:
            return self.vocab.resolve(name)
        except InputError as exc:
            raise self.error(exc.message, node) from None

    def visit_Call(self, node, depth):
        """``a1(1 - a1)`` with ``a1`` a name, not a function: a product, as people write it."""
        func = node.func
        if isinstance(func, ast.Name) and func.id not in self.functions \
                and self.vocab.lookup(func.id) and len(node.args) == 1 and not node.keywords:
            return self.visit(func, depth) * self.visit(node.args[0], depth)
        return super().visit_Call(node, depth)

    def parse(self, text):
        try:
            return super().parse(text)
        except InputError as exc:
            if "malformed expression" in exc.message and _IMPLICIT.search(text):
                raise InputError(exc.message + " (write products with *, e.g. 2*w)",
                                 where=exc.where) from None
            raise
