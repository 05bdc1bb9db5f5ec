r"""LaTeX answers -> the whitelist's Python-like syntax (text in, text out, nothing run).

Why not SymPy's own LaTeX parser: its ANTLR backend needs antlr4-python3-runtime 4.11
exactly (4.13 is what installs beside our other dependencies, and it refuses to run),
and its Lark backend reads neither ``\hat{y}`` nor ``3w^2u_1`` and *evaluates*
``9^{9^{9}}`` (it never returns). So LaTeX is translated here, by a small recursive
descent over tokens, into the text that :func:`derive.scalar.parse.parse` accepts; that parser
then applies the same whitelist and size bounds as for every other answer. A LaTeX answer
therefore cannot do anything a Python-like answer cannot.

Conventions (those of exam answers):

* juxtaposition multiplies (``3w^2u_1``); ``\cdot`` and ``\times`` multiply, ``\odot``
  and ``\circ`` are the elementwise product;
* a letter with decorations is one name: ``x_1`` -> ``x_1``, ``w^{(1)}_{11}`` -> ``w1_11``
  (a parenthesised superscript is a layer index, not a power), ``\hat{y}`` -> ``yhat``,
  ``\bar{v}_4`` -> ``v_4_bar`` (an adjoint); runs of letters stay one name and are split
  into known names later, when the problem's names are known;
* ``e^{x}`` is ``exp(x)``; ``\sigma(z)`` is the logistic sigmoid (``\sigma`` alone is a
  name); ``\frac``, ``\sqrt``, ``\exp``, ``\log``, ``\ln``, ``\tanh``, ``\max``,
  ``\operatorname{ReLU}`` and the like are functions;
* in matrix answers (``matrix=True``) products of non-numbers are matrix products
  (``@``), ``^\top`` / ``^T`` / ``^{\mathsf{T}}`` is a transpose, ``\mathbf{1}_{B}`` is a
  column of B ones (``\mathbf{1}_{B}^{\top}`` a row, ``\mathbf{1}_{B \times C}`` a matrix);
* ``\,`` ends a name (``A \, B`` is A times B); a function may carry a power or its
  option (``\tanh^{2}(x)``, ``\operatorname{LeakyReLU}_{0.1}(x)``); ``H(x)`` is the step
  when the problem has no name H; ``|x|`` is abs(x); ``\_`` in an upright name is ``_``.
"""
from __future__ import annotations

import re

from derive.errors import InputError, UnsupportedError
from derive.functions import BY_NAME
from derive.scalar.parse import MAX_CHARS, MAX_DEPTH

_TOKEN = re.compile(r"""
    (?P<space>\s+|\\[,;:!\ ]|~)
  | (?P<cmd>\\[A-Za-z]+|\\[{}|_\\])
  | (?P<num>\d+\.\d*|\.\d+|\d+)
  | (?P<letter>[A-Za-z])
  | (?P<sym>[-+*/^_()\[\]{},'|=&<>])
""", re.VERBOSE)

IGNORED = {r"\left", r"\right", r"\big", r"\Big", r"\bigg", r"\Bigg", r"\bigl", r"\bigr",
           r"\Bigl", r"\Bigr", r"\biggl", r"\biggr", r"\displaystyle", r"\quad", r"\qquad",
           r"\limits", r"\nolimits"}
TIMES = {r"\cdot", r"\times", r"\ast"}
ELEMENTWISE = {r"\odot", r"\circ", r"\otimes"}
#: LaTeX commands that name a function (the function registry's ``tex_commands``); one
#: that is also a Greek letter (\sigma) is a function only before a bracket
FUNCTIONS = {c: row.name for row in BY_NAME.values() for c in row.tex_commands}
#: words that name a function when written as \operatorname{..}, \mathrm{..} or plain:
#: the registry's names and aliases (lower case), the tensor reductions and the matrix
#: functions the matrix display writes
WORD_FUNCTIONS = {n.lower(): row.name for n, row in BY_NAME.items()}
WORD_FUNCTIONS.update({w: w for w in "mse sum mean sign softmax onehot lse".split()})
#: registry functions whose LaTeX head is a plain letter (H, the Heaviside step): read as
#: the function only before a bracket, and only when the problem has no name so spelt
LETTER_FUNCTIONS = {row.tex: row.name for row in BY_NAME.values()
                    if row.tex and row.tex.isalpha()}
#: explicit spacing: it ends a run of letters (``A \, B`` is two names)
SPACING = {r"\,", r"\;", r"\:", r"\ ", "~"}
BRACKETS = ("(", "[", "{")
GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta",
         "kappa", "mu", "nu", "xi", "rho", "tau", "phi", "varphi", "chi", "psi", "omega",
         "Gamma", "Delta", "Theta", "Lambda", "Xi", "Phi", "Psi", "Omega", "Sigma", "ell"}
NAME_WRAPPERS = {r"\mathbf", r"\boldsymbol", r"\bm", r"\mathit", r"\mathrm", r"\text",
                 r"\textrm", r"\textit", r"\operatorname", r"\mathsf", r"\mathcal"}
ACCENTS = {r"\hat": "hat", r"\widehat": "hat", r"\tilde": "tilde", r"\widetilde": "tilde",
           r"\bar": "_bar", r"\overline": "_bar", r"\dot": "dot", r"\vec": ""}
TRANSPOSE_MARKS = {"T", r"\top", r"\intercal", r"\mathsf{T}", r"\mathrm{T}", r"\mathbf{T}"}
UNSUPPORTED = {r"\sum": "sums", r"\prod": "products", r"\partial": "partial derivatives",
               r"\int": "integrals", r"\nabla": "nabla",
               r"\begin": "environments (cases, matrices)"}

# precedences of emitted text: sum < product < unary minus < power < atom
SUM, PROD, NEG, POW, ATOM = range(5)


class Token(tuple):
    """A ``(kind, text)`` token; ``spaced`` when an explicit space (``\\,``) precedes it."""

    spaced = False


def tokens(text):
    """Split LaTeX into (kind, text) tokens; unknown characters are an InputError."""
    out, pos, spaced = [], 0, False
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise InputError(f"unexpected character {text[pos]!r} at column {pos + 1}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "space" or (kind == "cmd" and m.group() in IGNORED):
            spaced = spaced or m.group() in SPACING
            continue
        tok = Token((kind, m.group()))
        tok.spaced, spaced = spaced, False
        out.append(tok)
    return out


class LatexTranslator:
    """Recursive descent over LaTeX tokens, emitting whitelist syntax with precedences."""

    def __init__(self, text, matrix=False, known=()):
        if len(text) > MAX_CHARS:
            raise InputError(f"expression is too long ({len(text)} characters; "
                             f"at most {MAX_CHARS})")
        self.toks = tokens(text)
        self.pos = 0
        self.depth = 0
        self.matrix = matrix
        self.known = set(known)
        self.bars = 0  # inside |...|: a bar closes, it does not open

    # -- token helpers ---------------------------------------------------------------------
    def peek(self, k=0):
        i = self.pos + k
        return self.toks[i] if i < len(self.toks) else (None, None)

    def take(self):
        tok = self.peek()
        self.pos += 1
        return tok

    def expect(self, text):
        kind, got = self.take()
        if got != text:
            raise InputError(f"expected {text!r} but found {got or 'the end'!r} in LaTeX")

    def enter(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise InputError(f"expression is nested too deeply (more than {MAX_DEPTH} levels)")

    # -- grammar ---------------------------------------------------------------------------
    def translate(self):
        if not self.toks:
            raise InputError("empty expression")
        text, _ = self.expr()
        if self.pos < len(self.toks):
            raise InputError(f"unexpected {self.peek()[1]!r} in LaTeX")
        return text

    def expr(self):
        self.enter()
        parts = [self.signed()]
        while self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            parts.append((op, self.signed()))
        self.depth -= 1
        if len(parts) == 1:
            return parts[0]
        text = wrap(parts[0], SUM)
        for op, operand in parts[1:]:
            text += f" {op} " + wrap(operand, SUM + (op == "-"))
        return text, SUM

    def signed(self):
        if self.peek()[1] == "-":
            self.take()
            return "-" + wrap(self.signed(), NEG), NEG
        if self.peek()[1] == "+":
            self.take()
            return self.signed()
        return self.term()

    def term(self):
        first = self.power()
        items = [first]
        while True:
            kind, tok = self.peek()
            if tok in ("*", "/") or tok in TIMES or tok in ELEMENTWISE:
                self.take()
                op = "/" if tok == "/" else ("*" if tok in ELEMENTWISE or tok == "*" else "·")
                items.append((op, self.power()))
            elif self.starts_atom():
                items.append(("·", self.power()))
            else:
                break
        if len(items) == 1:
            return first
        text, prev = wrap(first, PROD), first[0]
        for op, operand in items[1:]:
            op = self.product_op(op, prev, operand[0])
            text += f" {op} " + wrap(operand, PROD + (op == "/"))
            prev = operand[0]
        return text, PROD

    def product_op(self, op, left, right):
        """'·' (juxtaposition, \\cdot) is '@' between non-numbers in matrix answers."""
        if op != "·":
            return op
        if self.matrix and not _is_number(left) and not _is_number(right):
            return "@"
        return "*"

    def starts_atom(self):
        kind, tok = self.peek()
        if kind in ("num", "letter"):
            return True
        if kind == "cmd":
            return tok not in TIMES and tok not in ELEMENTWISE
        return tok in ("(", "[", "{") or (tok == "|" and not self.bars)

    def power(self):
        base = self.atom()
        while self.peek()[1] in ("^", "'"):
            if self.take()[1] == "'":
                if not self.matrix:
                    raise UnsupportedError("a prime (') is not supported; write the "
                                           "derivative out, e.g. sigma(z)*(1 - sigma(z))")
                base = (wrap(base, ATOM) + ".T", ATOM)
                continue
            if self.is_transpose_mark():
                base = (wrap(base, ATOM) + ".T", ATOM)
                continue
            exponent = self.script()
            if base[0] == "e" and "e" not in self.known:
                base = (f"exp({exponent[0]})", ATOM)
            else:
                base = (wrap(base, ATOM) + "**" + wrap(exponent, POW), POW)
        return base

    def is_transpose_mark(self):
        if not self.matrix:
            return False
        kind, tok = self.peek()
        if tok in TRANSPOSE_MARKS:
            self.take()
            return True
        if tok == "{":
            inner = "".join(t for _, t in self.toks[self.pos + 1:self.pos + 6])
            for mark in TRANSPOSE_MARKS:
                if inner.startswith(mark + "}"):
                    self.pos += 1 + len(tokens(mark)) + 1
                    return True
        return False

    def script(self):
        """The argument of ^ or _: a braced group or one token (LaTeX takes one char)."""
        kind, tok = self.peek()
        if tok == "{":
            return self.group("{", "}")
        if kind == "num":
            self.take()
            digits = tok.replace(".", "")
            if len(tok) > 1 and tok.isdigit():  # x^23 is x^2 3 in LaTeX
                self.toks.insert(self.pos, ("num", tok[1:]))
                return tok[0], ATOM
            return digits, ATOM
        return self.atom()

    def group(self, open_, close):
        self.expect(open_)
        self.enter()
        inner = self.expr()
        self.depth -= 1
        self.expect(close)
        return inner

    def atom(self):
        self.enter()
        try:
            return self._atom()
        finally:
            self.depth -= 1

    def _atom(self):
        kind, tok = self.take()
        if tok is None:
            raise InputError("the LaTeX expression ends too early")
        if kind == "num":
            return tok, ATOM
        if kind == "letter":
            return self.name(self.letters(tok))
        if tok in ("(", "["):
            inner = self.group_rest(")" if tok == "(" else "]")
            return wrap(inner, ATOM), ATOM
        if tok == "|":  # \left|x\right|
            self.bars += 1
            inner, self.bars = self.group_rest("|"), self.bars - 1
            return f"abs({inner[0]})", ATOM
        if tok == "{":
            inner = self.group_rest("}")
            return wrap(inner, ATOM), ATOM
        if kind == "cmd":
            return self.command(tok)
        raise InputError(f"unexpected {tok!r} in LaTeX")

    def group_rest(self, close):
        inner = self.expr()
        self.expect(close)
        return inner

    def letters(self, first):
        run = first
        while self.peek()[0] == "letter" and not getattr(self.peek(), "spaced", False):
            run += self.take()[1]
        after = self.peek()[1]
        if after in ("^", "(") and run not in self.known:
            # p w^{2} (the run pw, then a power): the power is the last name's, p·w²; so
            # is y e^{x}'s (y exp(x)); y H(x) is y times the step
            for cut in range(1, len(run)):
                tail = run[cut:]
                if (tail in self.known and after == "^") or (tail not in self.known and (
                        tail == "e" and after == "^" or tail in LETTER_FUNCTIONS)):
                    self.pos -= len(run) - cut
                    return run[:cut]
        return run

    def name(self, base, suffix=""):
        """A name with its subscripts and layer superscripts: w^{(1)}_{11} -> w1_11."""
        sup, sub = "", ""
        while True:
            tok = self.peek()[1]
            if tok == "_" and not sub:
                self.take()
                sub = self.index_text()
            elif tok == "^" and self.peek(1)[1] == "{" and self.peek(2)[1] == "(" \
                    and not sup and self.peek(3)[0] in ("num", "letter") \
                    and self.peek(4)[1] == ")" and self.peek(5)[1] == "}":
                sup = self.toks[self.pos + 3][1]
                self.pos += 6
            else:
                break
        fn = WORD_FUNCTIONS.get(base) or LETTER_FUNCTIONS.get(base)
        if fn and base not in self.known and not sub and self.peek()[1] in ("(", "{"):
            return self.call(fn)
        text = base + sup + (f"_{sub}" if sub else "")
        if suffix == "_bar":
            return text + "_bar", ATOM
        return text + suffix, ATOM

    def index_text(self):
        """A subscript as name text: letters, digits and commas only (x_{i,j} -> i_j)."""
        kind, tok = self.take()
        if kind in ("num", "letter"):
            return tok
        if tok != "{":
            raise InputError(f"unexpected {tok!r} after '_' (subscripts are letters and digits)")
        parts = []
        while self.peek()[1] not in ("}", None):
            kind, t = self.take()
            if kind == "cmd" and t[1:] in GREEK:
                t = t[1:]
            elif t in NAME_WRAPPERS:  # c_{\mathrm{next}}
                t = self.plain_name()
            elif t == r"\_":
                t = "_"
            elif kind not in ("num", "letter") and t != ",":
                raise InputError(f"subscript may hold letters and digits only, not {t!r}")
            parts.append("_" if t == "," else t)
        self.expect("}")
        return "".join(parts).replace(".", "")

    def command(self, tok):
        if tok in UNSUPPORTED:
            raise UnsupportedError(f"{UNSUPPORTED[tok]} ({tok}) are not supported in answers; "
                                   "write the expression out")
        if tok in (r"\frac", r"\dfrac", r"\tfrac"):
            num, den = self.script(), self.script()
            return f"{wrap(num, PROD)}/{wrap(den, PROD + 1)}", PROD
        if tok == r"\sqrt":
            return self.sqrt()
        if tok in FUNCTIONS and (tok[1:] not in GREEK | {"sigma"}
                                 or self.opens_call(FUNCTIONS[tok])):
            return self.call(FUNCTIONS[tok])
        if tok in ACCENTS:
            inner = self.plain_name()
            return self.name(inner + ACCENTS[tok] if ACCENTS[tok] != "_bar" else inner,
                             "_bar" if ACCENTS[tok] == "_bar" else "")
        if tok in NAME_WRAPPERS:
            if self.matrix and [t for _, t in self.toks[self.pos:self.pos + 3]] == \
                    ["{", "1", "}"]:
                return self.ones()
            word = self.plain_name()
            if word.lower() in WORD_FUNCTIONS and self.opens_call(WORD_FUNCTIONS[word.lower()]):
                return self.call(WORD_FUNCTIONS[word.lower()])
            return self.name(word)
        if tok == r"\pi":
            return "pi", ATOM
        if tok[1:] in GREEK or tok == r"\sigma":
            return self.name("lam" if tok == r"\lambda" else tok[1:])
        if tok == r"\lambda":
            return self.name("lam")
        raise UnsupportedError(f"LaTeX command {tok} is not supported in answers")

    def plain_name(self):
        """The name inside \\hat{..}, \\mathbf{..}: letters, digits, greek; braces optional."""
        kind, tok = self.take()
        if kind == "letter":
            return tok
        if kind == "cmd" and tok[1:] in GREEK | {"sigma", "lambda"}:
            return tok[1:]
        if tok != "{":
            raise InputError(f"expected a name after an accent, found {tok!r}")
        word = ""
        while self.peek()[1] not in ("}", None):
            kind, t = self.take()
            if kind == "cmd" and t[1:] in GREEK | {"sigma"}:
                t = t[1:]
            elif kind == "cmd" and t in NAME_WRAPPERS:
                t = self.plain_name()
            elif t in ACCENTS and ACCENTS[t] != "_bar":  # \bar{\hat{y}}: yhat's adjoint
                t = self.plain_name() + ACCENTS[t]
            elif t == r"\_":
                t = "_"
            elif kind not in ("letter", "num") and t != "_":
                raise InputError(f"expected a name inside braces, found {t!r}")
            word += t
        self.expect("}")
        if not word or not word[0].isalpha():
            raise InputError("expected a name inside braces")
        return word

    def sqrt(self):
        if self.peek()[1] == "[":
            self.take()
            index = self.group_rest("]")
            body = self.script()
            return f"{wrap(body, ATOM)}**(1/{wrap(index, ATOM)})", POW
        return f"sqrt({self.script()[0]})", ATOM

    def opens_call(self, fn):
        """Whether a bracket follows, after any ``^{power}`` (or ``_{option}``, when
        ``fn`` has options) scripts."""
        k, scripts = 0, ("^", "_") if getattr(BY_NAME.get(fn), "params", ()) else ("^",)
        while self.peek(k)[1] in scripts:
            k, depth = k + 1, 0
            while self.peek(k)[1] is not None:  # one token, or a braced group
                depth += {"{": 1, "}": -1}.get(self.peek(k)[1], 0)
                k += 1
                if depth <= 0:
                    break
        return self.peek(k)[1] in BRACKETS

    def call(self, fn):
        """``fn(args)``; a power (\\tanh^{2}) or an option (LeakyReLU_{0.1}) may come first."""
        power, options = None, []
        while self.peek()[1] in ("^", "_") and self.opens_call(fn):
            if self.take()[1] == "^":
                power = self.script()
            else:
                options.append(self.script()[0])
        kind, tok = self.peek()
        if tok in BRACKETS:
            self.take()
            close = {"(": ")", "[": "]", "{": "}"}[tok]
            args = [self.expr()[0]]
            while self.peek()[1] == ",":
                self.take()
                args.append(self.expr()[0])
            self.expect(close)
        else:
            args = [self.power()[0]]  # \log x, \exp x^2
        text = f"{fn}({', '.join(args + options)})"
        if power is not None:
            return f"{text}**{wrap(power, POW)}", POW
        return text, ATOM

    def ones(self):
        r"""``\mathbf{1}_{B}`` -> ``ones(B, 1)`` (a column), ``\mathbf{1}_{B \times C}`` ->
        ``ones(B, C)``; a row is its transpose (``\mathbf{1}_{B}^{\top}``)."""
        self.pos += 3
        self.expect("_")
        if self.peek()[1] != "{":
            return f"ones({self.script()[0]}, 1)", ATOM
        self.take()
        sizes = [self.power()[0]]  # a size is a name or a number: no products inside
        if self.peek()[1] == r"\times":
            self.take()
            sizes.append(self.power()[0])
        self.expect("}")
        return f"ones({sizes[0]}, {sizes[1] if len(sizes) == 2 else 1})", ATOM


def wrap(item, min_prec):
    text, prec = item
    return text if prec >= min_prec else f"({text})"


def _is_number(text):
    return bool(re.fullmatch(r"\(?-?[\d.]+(/[\d.]+)?\)?", text.strip()))


def latex_to_text(text, matrix=False, known=()):
    r"""Translate a LaTeX answer into whitelist syntax (see the module docstring).

    >>> latex_to_text(r"(\hat{y}-y)x_1")
    '(yhat - y) * x_1'
    >>> latex_to_text(r"u_3 + 2wu_2 + 3w^2u_1")
    'u_3 + 2 * wu_2 + 3 * w**2 * u_1'
    """
    return LatexTranslator(text, matrix=matrix, known=known).translate()
