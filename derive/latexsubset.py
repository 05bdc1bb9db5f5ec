r"""The LaTeX a user may write: display names, and mathematics inside problem text.

Text from a problem file reaches TeX when a document is compiled, and TeX can read and
write files (``\input``, ``\openin``, ``\write``), redefine itself (``\catcode``,
``\def``) and spell any of that indirectly (``\csname``, ``^^5c``). So user LaTeX is
checked against a whitelist, not a blacklist:

* a display name (``latex: {w1_11: "w^{(1)}_{11}"}``) may hold ASCII letters, digits,
  ``_ ^ { } , ' ( ) [ ] + - * / . | : ; = < > !``, spaces, balanced braces and the
  commands of :data:`NAME_COMMANDS` (Greek letters, accents such as ``\hat`` ``\bar``,
  fonts such as ``\mathbf`` ``\mathrm`` ``\operatorname``);
* any other text of a problem (titles, notes, labels) may hold the commands of
  :data:`MATH_COMMANDS` (the above and common operators: ``\frac``, ``\sum``, ``\cdot``,
  ``\partial``, ...) and the escaped characters ``\% \& \# \$ \_ \{ \}``.

Everything else, and ``^^`` anywhere (TeX's character-code escape), is refused.
"""
from __future__ import annotations

import re
import string

from derive.errors import InputError

GREEK = frozenset("""alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota
    kappa varkappa lambda mu nu xi pi varpi rho varrho sigma varsigma tau upsilon phi varphi
    chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega""".split())

NAME_COMMANDS = GREEK | frozenset("""hat bar tilde vec dot ddot check breve acute grave
    widehat widetilde overline underline mathbf mathrm mathit mathsf mathtt mathcal mathbb
    mathfrak boldsymbol operatorname text ell partial nabla prime star ast infty top dagger
    hbar imath jmath cdot circ odot times , ; ! : { } |""".split())

MATH_COMMANDS = NAME_COMMANDS | frozenset("""frac dfrac tfrac sqrt sum prod int log ln exp
    sin cos tan tanh sinh cosh max min arg lim det sup inf sign approx sim simeq equiv le ge
    leq geq ne neq ll gg to mapsto rightarrow leftarrow Rightarrow Leftarrow leftrightarrow
    in notin subset subseteq cup cap setminus forall exists mid pm mp div oplus otimes
    cdots ldots dots vdots ddots left right big Big bigl bigr Bigl Bigr quad qquad
    langle rangle lfloor rfloor lceil rceil emptyset neg land lor propto angle
    textbf textit emph % & # $ _""".split())

NAME_CHARS = frozenset(string.ascii_letters + string.digits + " _^{},'()[]+-*/.|:;=<>!\\")
MAX_NAME = 100

# a control word (\input), a control symbol (\%, \\), or a backslash ending the text
_COMMAND = re.compile(r"\\([A-Za-z]+|[^A-Za-z]?)")


def refusal(tex, commands=MATH_COMMANDS, chars=None, braces=False):
    r"""What in ``tex`` falls outside the subset, as it would be quoted; None if nothing.

    >>> refusal(r"\hat{y}_{1}") is None
    True
    >>> refusal(r"x \input{/etc/hostname}")
    '\\input'
    """
    if "^^" in tex:
        return "^^"
    for match in _COMMAND.finditer(tex):
        if match.group(1) not in commands:
            return "\\" + match.group(1) if match.group(1) else "a trailing \\"
    if chars is not None:
        bad = next((c for c in tex if c not in chars), None)
        if bad is not None:
            return repr(bad)
    if braces and not _balanced(tex):
        return "unbalanced braces"
    return None


def _balanced(tex):
    depth = 0
    for match in re.finditer(r"\\.|[{}]", tex, re.S):
        token = match.group()
        depth += (token == "{") - (token == "}")
        if depth < 0:
            return False
    return depth == 0


def check_display_name(tex, where):
    """``tex`` if it is a display name in the subset, else InputError naming ``where``."""
    if not isinstance(tex, str):
        raise InputError(f"a display name is a string of LaTeX, got {type(tex).__name__}",
                         where=where)
    bad = refusal(tex, NAME_COMMANDS, NAME_CHARS, braces=True)
    if bad is not None:
        raise InputError(f"{bad} is not allowed in a display name (allowed: letters, digits, "
                         r"_ ^ { } , ' and commands such as \hat \mathrm \alpha)", where=where)
    if len(tex) > MAX_NAME:
        raise InputError(f"a display name is at most {MAX_NAME} characters", where=where)
    return tex


def check_display_names(names, where):
    """A mapping ``symbol -> display name``, every name checked (see above)."""
    if not isinstance(names, dict):
        raise InputError("expected a mapping of names to LaTeX", where=where)
    return {str(k): check_display_name(v, f"{where}: {k}") for k, v in names.items()}


def check_text(text, where):
    """``text`` if the LaTeX in it is within :data:`MATH_COMMANDS`, else InputError."""
    bad = refusal(text)
    if bad is not None:
        raise InputError(f"{bad} is not allowed in problem text (LaTeX here may use "
                         r"letters, ^ _ { } and commands such as \frac \sum \alpha)",
                         where=where)
    return text
