r"""LaTeX -> MathML for the HTML pages: converted at render time, no script, no network.

The mathematics of a page is the LaTeX the one printer wrote (``reports.latex_printer``,
chains from ``reports.latex_out.chain``); ``latex2mathml`` converts it and a browser draws
the MathML natively. Four things are done here around the converter:

* :data:`REWRITES`, a short table applied before conversion, turns the few constructs the
  converter does not know (or gets wrong) into ones it does: ``aligned`` becomes ``split``
  (an aligned table), ``\arg`` an operator name, ``\textbar`` a bar, a single upright
  letter (``\mathrm{d}``) text, and the escaped characters inside ``\text{...}`` (``\_``)
  the characters.
* The converted tree is tidied to draw as TeX would (:func:`_tidy`): character references
  the converter stores as text are decoded; an operator name (``\operatorname{tanh}``,
  ``\max``) becomes an upright identifier with TeX's thin space after it, not spaced as
  a binary operator; ``\sum`` and ``\prod`` take their limits under them in display; and
  ``\left( \right)`` around a short formula keeps its brackets at their natural size.
* The tree is serialised here, not by the converter: its own ``convert()`` unescapes its
  output, so ``\text{<b>}`` would become markup. Here every text is escaped and only
  MathML elements and attributes (:data:`ELEMENTS`) are written.
* A formula that does not convert (an error, a TeX command left as text, a fraction with
  one part) is shown as its TeX source in ``<code>`` with a visible note naming the
  problem -- never silently as raw TeX. Each ``<math>`` keeps its TeX as an annotation
  (not drawn; copy-paste and search find it).
"""
from __future__ import annotations

import functools
import html
import re
from xml.etree.ElementTree import Element


#: (pattern, replacement, why): applied in order to every formula before conversion.
REWRITES = (
    (re.compile(r"\\(begin|end)\{aligned\}"), r"\\\1{split}",
     "aligned is not a table to latex2mathml; split is (right | left columns)"),
    (re.compile(r"\\arg(?![A-Za-z])"), r"\\operatorname{arg}", r"\arg is not in its table"),
    (re.compile(r"\\textbar(?![A-Za-z])(?:\{\})?"), "|", r"\textbar is a text command"),
    (re.compile(r"\\mathrm\{([A-Za-z])\}"), r"\\text{\1}",
     r"\mathrm of one letter loses its upright shape"),
)
# \_ \% \& \# \$ inside \text{...}: the converter keeps the backslash in text.
_TEXT = re.compile(r"\\text\{([^{}]*)\}")
_TEXT_ESCAPE = re.compile(r"\\([_%&#$])")

#: MathML element -> the attributes written; anything else is not written (fallback).
ELEMENTS = {
    "math": {"display"}, "semantics": set(), "annotation": {"encoding"},
    "mrow": set(), "mi": {"mathvariant"}, "mn": {"mathvariant"}, "mtext": {"mathvariant"},
    "mo": {"stretchy", "fence", "form", "accent", "minsize", "maxsize", "mathvariant",
           "separator", "movablelimits", "lspace", "rspace"},
    "mspace": {"width", "height", "depth"}, "mstyle": {"displaystyle", "scriptlevel"},
    "msub": set(), "msup": set(), "msubsup": set(), "mover": {"accent"},
    "munder": {"accentunder"}, "munderover": set(), "mfrac": {"linethickness"},
    "msqrt": set(), "mroot": set(),
    "mtable": {"displaystyle", "columnspacing", "rowspacing", "columnalign", "rowlines"},
    "mtr": set(), "mtd": {"columnalign"}, "mpadded": {"width", "lspace"}, "mphantom": set(),
    "menclose": {"notation"},
}
# elements that take an exact number of children
_ARITY = {"mfrac": 2, "msub": 2, "msup": 2, "msubsup": 3, "mover": 2, "munder": 2,
          "munderover": 3, "mroot": 2}
#: operators whose limits go under and over them in display, as in TeX (the large
#: operators derive.latexsubset lets a text use: \sum, \prod)
LARGE_OPERATORS = frozenset("∑∏")
_LIMITS = {"msub": "munder", "msubsup": "munderover", "msup": "mover"}
_TALL = frozenset({"mfrac", "mtable", "munder", "munderover", "msqrt", "mroot"})
_ROWS = frozenset({"mrow", "mtd", "mstyle", "msqrt", "mpadded", "mphantom"})
_SCRIPTS = frozenset({"msub", "msup", "msubsup"})
_SCRIPTED = _SCRIPTS | {"munder", "mover", "munderover"}
_SIGNS = frozenset("-\u2212+\u00b1\u2213")
_CLOSES = frozenset(")]}|\u2016\u27e9\u230b\u2309")
_REFERENCE = re.compile(r"&#x([0-9A-Fa-f]{1,6});")
_WORD = re.compile(r"[A-Za-z]{2,}")


class Unconverted(ValueError):
    """A formula the converter could not turn into MathML (the message says why)."""


def rewrite(tex):
    """``tex`` after :data:`REWRITES` and the ``\\text`` escapes (what is converted)."""
    for pattern, replacement, _ in REWRITES:
        tex = pattern.sub(replacement, tex)
    return _TEXT.sub(lambda m: r"\text{%s}" % _TEXT_ESCAPE.sub(r"\1", m.group(1)), tex)


def _decode(text):
    return _REFERENCE.sub(lambda m: chr(int(m.group(1), 16)), text) if text else text


def _tidy(element, display):
    """The converted tree made to draw as TeX would, or :class:`Unconverted`.

    Character references (stored as text) are decoded. An operator name (``\\max``,
    ``\\operatorname{tanh}``) becomes an upright identifier followed by a thin space
    unless a bracket follows (TeX's spacing of an operator; ``mo`` would space it as a
    binary operator). ``\\sum_{n}`` and ``\\prod`` put their limits under them in
    display (``munder``; inline they stay at the side through ``movablelimits``). A
    ``\\left( \\right)`` pair around nothing taller than a letter with one script keeps
    its natural size, as TeX's does (stretched, Chromium draws Latin Modern Math's
    brackets wide apart).
    """
    for node in element.iter():
        node.text, node.tail = _decode(node.text), _decode(node.tail)
    words = set()
    for node in element.iter():
        if node.tag == "mo" and node.text and _WORD.fullmatch(node.text):
            node.tag = "mi"  # mi of several letters is upright
            node.attrib.clear()
            words.add(node)
        if node.tag in _LIMITS and len(node) and node[0].tag == "mo" \
                and node[0].text in LARGE_OPERATORS:
            node.tag = _LIMITS[node.tag]
    _fit_fences(element, display)
    for node in list(element.iter()):
        _space_operators(node, words)
        _mark_signs(node)
        leftover = next((t for t in (node.text, node.tail) if t and "\\" in t), None)
        if leftover is not None:
            raise Unconverted(f"{leftover.strip()} is not known to the MathML converter")
        if node.tag not in ELEMENTS:
            raise Unconverted(f"the converter made <{node.tag}>")
        if node.tag in _ARITY and len(node) != _ARITY[node.tag]:
            raise Unconverted(f"<{node.tag}> needs {_ARITY[node.tag]} parts, has {len(node)}")


def _space_operators(parent, words):
    """A thin space after each operator name among ``parent``'s children (or after its
    scripted form, ``\\max_{j}``) that is followed by anything but a bracket."""
    if parent.tag not in _ROWS:
        return
    for k in range(len(parent) - 2, -1, -1):
        child, after = parent[k], parent[k + 1]
        name = child[0] if child.tag in _SCRIPTED and len(child) else child
        if name in words and not _opens(after):
            parent.insert(k + 1, Element("mspace", width="0.1667em"))


def _mark_signs(parent):
    """A sign after an operator or a relation (``= -x``, ``( -1``, ``\\sum_{j} -x``) is a
    sign, not a minus between two terms: spaced as TeX spaces it (MathML guesses so only
    for the first child of a row)."""
    if parent.tag not in _ROWS:
        return
    before = None
    for child in parent:
        if child.tag == "mo" and child.text in _SIGNS and "form" not in child.attrib \
                and (before is None or _operator(before)):
            child.set("form", "prefix")
        if not (child.tag == "mi" and not child.text and not len(child)):  # split's <mi/>
            before = child


def _operator(node):
    """An operator, relation or opening bracket, or a large operator with its limits."""
    if node.tag in _SCRIPTED and len(node):
        node = node[0]
    return node.tag == "mo" and node.text not in _CLOSES


def _opens(node):
    while node.tag == "mrow" and len(node):
        node = node[0]
    return node.tag == "mo" and (node.text or "") in "([{|\u2016\u27e8\u230a\u2308"


def _fit_fences(node, display):
    """Inner brackets first: a pair that need not stretch is set not to (see _tidy)."""
    for child in node:
        _fit_fences(child, display)
    fences = [c for c in node if c.tag == "mo" and c.get("fence") == "true"]
    if node.tag == "mrow" and len(fences) == 2 and fences == [node[0], node[-1]] \
            and not any(_tall(d, display) for d in node[1:-1]):
        for fence in fences:
            fence.set("stretchy", "false")


def _tall(node, display):
    """Whether ``node`` reaches above a letter with one script: a fraction, a table, a
    root, a large operator in display, brackets that stretch, or a script on a scripted
    base."""
    if node.tag in _TALL:
        operator = node.tag in ("munder", "munderover") and len(node) and node[0].tag == "mo"
        return display or not operator  # inline, a sum's limits are at its side
    if node.tag == "mo" and node.get("stretchy") == "true" and node.get("fence") == "true":
        return True
    if node.tag in _SCRIPTS and len(node) and any(d.tag in _SCRIPTS for d in node[0].iter()):
        return True
    return any(_tall(child, display) for child in node)


def _serialise(node, out):
    allowed = ELEMENTS[node.tag]
    attrs = "".join(f' {k}="{html.escape(v)}"' for k, v in node.attrib.items() if k in allowed)
    out.append(f"<{node.tag}{attrs}>")
    if node.text:
        out.append(html.escape(node.text, quote=False))
    for child in node:
        _serialise(child, out)
    out.append(f"</{node.tag}>")
    if node.tail:
        out.append(html.escape(node.tail, quote=False))


def convert(tex, display=False):
    """The MathML of ``tex`` as a string; :class:`Unconverted` when it does not convert."""
    from latex2mathml.converter import convert_to_element  # 50 ms to import: on first use

    try:
        root = convert_to_element(rewrite(tex))
    except Exception as err:  # the converter's own errors (bad TeX): shown, never hidden
        words = re.sub(r"(?<!^)(?=[A-Z])", " ", type(err).__name__).lower()
        raise Unconverted(f"the converter cannot read it ({words})") from None
    root.attrib.pop("xmlns", None)
    _tidy(root, display)
    out = [f'<math display="{"block" if display else "inline"}"><semantics>']
    for child in root:
        _serialise(child, out)
    out.append('<annotation encoding="application/x-tex">%s</annotation>'
               % html.escape(tex, quote=False))
    out.append("</semantics></math>")
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def mathml(tex, display=False):
    """HTML for ``tex``: its MathML, or its TeX source in ``<code>`` with a visible note.
    (Cached: a page repeats its names and partials, and the text is a pure function of
    ``tex``.)"""
    try:
        return convert(tex, display)
    except Unconverted as err:
        return fallback(tex, str(err))


def fallback(tex, why):
    """The TeX source shown as code, with a note saying it was not converted and why."""
    return ('<span class="tex-fallback"><code>%s</code> <small>(shown as TeX: %s)</small>'
            "</span>" % (html.escape(tex), html.escape(why)))
