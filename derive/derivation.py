"""The Derivation: the single record every output reads.

A Derivation is data, not behaviour: forward nodes, the edges of the graph with their
local partials and contributions, the adjoints (as an unevaluated sum, in terms of the
nodes, in terms of the inputs, numerically), the final gradients, and free-form worked
``sections`` (used by layer derivations and exact worked examples), and for tensors the
``program`` (the typed record of the sweep). ``reports/`` renders it (registering itself
in :data:`RENDERERS`); ``kernels/`` compiles it; ``derive.verify`` checks answers against
it. None of them differentiates anything again.

Conventions
-----------
* Expressions are SymPy objects (scalars or matrix expressions); values are SymPy numbers
  (exact where the inputs were exact), Python floats, or NumPy / nested-list arrays.
* The adjoint of node ``v`` is written with the symbol returned by :func:`bar`, named
  ``v_bar``; printers typeset it as :math:`\\bar v`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from derive.notebook import Shown, one_line, summary_text

BAR_SUFFIX = "_bar"


def bar(name, shape=None):
    """The adjoint symbol of ``name``: a Symbol (scalar) or MatrixSymbol (``shape``)."""
    if shape is None:
        return sp.Symbol(name + BAR_SUFFIX)
    return sp.MatrixSymbol(name + BAR_SUFFIX, *shape)


def is_bar(symbol):
    """True if ``symbol`` is an adjoint symbol made by :func:`bar`."""
    return getattr(symbol, "name", "").endswith(BAR_SUFFIX)


@dataclass
class Node:
    """One forward step ``name = definition(inputs)``; leaves have ``definition=None``."""

    name: str
    definition: Any = None
    inputs: tuple = ()
    role: str = "node"  # "input" | "param" | "node"
    value: Any = None
    shape: Any = None  # None for scalars, else a tuple of ints / SymPy symbols
    note: str = ""


@dataclass
class Edge:
    """The edge ``src -> dst``: local partial d dst / d src and its adjoint contribution."""

    src: str
    dst: str
    partial: Any
    contribution: Any
    value: Any = None  # numeric value of the contribution, when values were given


@dataclass
class Adjoint:
    """The adjoint of one node, written four ways (see the module docstring)."""

    name: str
    as_sum: Any  # sum over outgoing edges of bar(dst) * partial, unevaluated
    in_nodes: Any  # in terms of node symbols (and their adjoints substituted)
    in_inputs: Any  # in terms of the graph's inputs, simplified
    value: Any = None
    shape: Any = None


@dataclass
class Gradient:
    """A final gradient d output / d name."""

    name: str
    expression: Any
    value: Any = None
    shape: Any = None


@dataclass
class Step:
    """A worked step ``lhs = rhs[0] = rhs[1] = ...`` with an optional remark.

    ``lhs`` and the items of ``rhs`` are SymPy objects: expressions, numbers, matrices,
    arithmetic as written and the few forms SymPy lacks (words, a decimal, argmax...), all
    from :mod:`derive.stepforms`; ``reports`` typesets them. Plain words go in ``note``.
    (A ``str`` is still taken as LaTeX as-is, for Derivations built by hand; derive
    writes none.)
    """

    lhs: Any
    rhs: list = field(default_factory=list)
    note: str = ""
    #: arrays the forms read that the program does not compute (ȳ⁺, ȳ dilated and
    #: padded), each a function of the program's arrays; the printed = computed check
    #: (derive.tensor.printed) evaluates the forms with them
    auxiliary: dict = field(default_factory=dict)


@dataclass
class Figure:
    """A plot of a worked section: the PNG shown and the data it was drawn from.

    ``png`` is the image every document shows (PDF, HTML, Markdown); ``data`` is what it
    plots (a mapping of names to numbers or lists of numbers; JSON gives it instead of the
    image). Draw one with :func:`plot_png`; ``width`` is its share of the text width in
    the PDF.
    """

    title: str
    png: bytes
    data: dict = field(default_factory=dict)
    caption: str = ""
    width: float = 0.9

    @property
    def size(self):
        """``(width, height)`` of the PNG in pixels, read from its header."""
        return png_size(self.png)


def png_size(png):
    """``(width, height)`` of PNG bytes (ValueError when they are not a PNG)."""
    if not isinstance(png, (bytes, bytearray)) or png[:8] != b"\x89PNG\r\n\x1a\n" \
            or png[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def plot_png(draw, size=(6.4, 3.6), dpi=150, ncols=1):
    """PNG bytes of a matplotlib drawing: ``draw(axes)`` fills ``ncols`` axes side by side.

    matplotlib is imported here, on first use (its object API on the Agg canvas: no
    pyplot, no display, no global figure state), so loading derive stays quick.
    """
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=size, dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=True)
    draw(axes)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


@dataclass
class Section:
    """A titled block of worked steps with optional prose before them, and figures after."""

    title: str
    steps: list = field(default_factory=list)
    text: str = ""
    figures: list = field(default_factory=list)  # Figure, shown after the steps


@dataclass(repr=False)
class Derivation(Shown):
    """Everything derived about one problem, in order, ready for every output.

    It shows itself (:mod:`derive.notebook`): ``repr`` is one line, ``print`` the short
    text of the ``derivekit`` command, and Jupyter the worked document (Markdown with
    typeset math) of the registered renderer.
    """

    title: str
    kind: str = "graph"
    output: str | None = None
    wrt: list = field(default_factory=list)
    nodes: list = field(default_factory=list)
    edges: list = field(default_factory=list)
    adjoints: list = field(default_factory=list)
    gradients: dict = field(default_factory=dict)  # name -> Gradient
    sections: list = field(default_factory=list)  # worked Sections after the graph parts
    notes: list = field(default_factory=list)  # conventions used, stated once each
    result: Any = None  # the final answer of a worked example
    #: the tensor engine's record of the sweep (derive.tensor.program.Program): the
    #: forward, backward and update assignments kernels print and ``evaluate`` runs
    program: Any = None
    meta: dict = field(default_factory=dict)  # source file, problem kind, options

    # -- lookup -------------------------------------------------------------------------
    def node(self, name):
        """The Node called ``name`` (KeyError if none)."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def adjoint(self, name):
        """The Adjoint of node ``name`` (KeyError if none)."""
        for a in self.adjoints:
            if a.name == name:
                return a
        raise KeyError(name)

    def edges_from(self, name):
        """Outgoing edges of ``name``, one per use (fan-out shows as several)."""
        return [e for e in self.edges if e.src == name]

    def note(self, text):
        """State a convention once."""
        if text not in self.notes:
            self.notes.append(text)

    # -- display: derive renders nothing itself (see RENDERERS, derive.notebook) ---------
    def to_dict(self):
        """The documented JSON structure (the ``json`` renderer; reports/JSON.md)."""
        return renderer("json")(self)

    def __str__(self):
        return summary_text(self)

    def _line(self):
        return one_line(self)

    def _document(self):
        return self

    def _repr_latex_(self):
        show = renderer("latex", required=False)
        return None if show is None else show(self)


class Derivations(Shown, list):
    """The Derivations of one problem file: a list, printed as the ``derivekit`` summary of
    each and shown in Jupyter as one document (see :class:`Derivation`)."""

    def __str__(self):
        return summary_text(self)

    def _line(self):
        return list.__repr__(self)

    def _document(self):
        return list(self)


# -- renderers ------------------------------------------------------------------------------
#: What turns a Derivation into text for people or files, by name: ``markdown`` and
#: ``latex`` (Jupyter's display), ``json`` (:meth:`Derivation.to_dict`) and ``write``
#: (``write(derivation, path, fmt)``). derive imports no renderer: ``reports`` fills this
#: table when it is imported (:func:`register_renderers`), and an installed package may
#: also offer itself through the ``derivekit.renderers`` entry-point group (setup.cfg
#: lists reports there), which is looked up the first time a renderer is missing, so
#: ``import derive`` alone still displays in Jupyter once derivekit is installed.
RENDERERS = {}
ENTRY_POINTS = "derivekit.renderers"
_plugins_loaded = []


def register_renderers(**renderers):
    """Add or replace renderers by name (called by an output package on import)."""
    RENDERERS.update(renderers)


def renderer(name, required=True):
    """The renderer called ``name``; when none is registered, the installed
    ``derivekit.renderers`` entry points are loaded once first. Missing: UnsupportedError
    (or None when not ``required``)."""
    if name not in RENDERERS and not _plugins_loaded:
        _plugins_loaded.append(True)
        _load_entry_points()
    if name in RENDERERS:
        return RENDERERS[name]
    if not required:
        return None
    from derive.errors import UnsupportedError

    raise UnsupportedError(f"no '{name}' renderer is registered: import reports (derivekit's "
                           "renderer) first")


def _load_entry_points():
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINTS):
        try:
            register = ep.load()
        except ImportError:  # an uninstalled or broken plugin: its renderers stay absent
            continue
        register()
