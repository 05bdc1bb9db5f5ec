"""How derive's records show themselves in a terminal, a REPL and Jupyter.

Three forms, each made in one place:

* ``repr`` is one line (``<Derivation 'Backprop through a simple RNN': 10 nodes,
  gradients w.r.t. w>``), so a list of records or a traceback stays readable;
* ``str`` / ``print`` is the short text of the ``derivekit`` command: for a Derivation
  the CLI's own summary (:func:`derive.command_line.summary`: each gradient as expression
  and value, the notes), for a verdict its explanation; IPython's plain-text display
  (the terminal REPL, a notebook without a renderer) shows the same text;
* in Jupyter, ``_repr_markdown_`` is the worked document of the registered ``markdown``
  renderer (``reports``' Markdown emitter; see :data:`derive.derivation.RENDERERS`):
  Jupyter typesets its ``$...$`` math with its own bundled MathJax, offline. With no
  renderer registered it returns None and Jupyter falls back to the plain text.

derive renders nothing itself: the document comes from the renderer, the text from the
command line's summary (which prints expressions with ``reports.text_printer``, loaded
when a Derivation is first printed, as the renderers' entry point would be).
"""
from __future__ import annotations

MAX_TITLE = 60
MAX_NAMES = 6


class Shown:
    """A record that displays as a document: the mixin of Derivation, the list of them,
    Verdict and Report.

    A subclass gives ``_document()`` (the Derivation, or list of them, the renderers
    read), ``_line()`` (its one-line ``repr``) and ``__str__`` (its plain text).
    """

    def _document(self):
        raise NotImplementedError

    def _line(self):
        raise NotImplementedError

    def __repr__(self):
        return self._line()

    def _repr_markdown_(self):
        return markdown(self._document())

    def _repr_pretty_(self, p, cycle):
        """IPython's plain text (terminal REPL, notebook fallback): the ``str`` form, or
        the one line inside a container IPython is printing."""
        nested = len(getattr(p, "stack", ())) > 1
        p.text(self._line() if cycle or nested else str(self))


def markdown(document):
    """The Markdown page of a Derivation (or a list of them) from the registered
    ``markdown`` renderer, or None when no renderer is registered."""
    from derive.derivation import renderer

    show = renderer("markdown", required=False)
    return None if show is None else show(document)


def summary_text(derivations):
    """The ``derivekit`` command's short text of a Derivation or a list of them: the same
    function the command line prints (one place), with the one-line form as a last resort
    if the expression printer cannot be imported."""
    from derive.command_line import summary

    try:
        return summary(derivations)
    except ImportError:
        items = derivations if isinstance(derivations, list) else [derivations]
        return "\n".join(one_line(d) for d in items)


def one_line(d):
    """``<Derivation 'title' (kind): N nodes, gradients w.r.t. a, b>``: one line, bounded."""
    title = " ".join(str(d.title).split())
    if len(title) > MAX_TITLE:
        title = title[:MAX_TITLE - 3] + "..."
    kind = "" if d.kind in ("graph", None) else f" ({d.kind})"
    parts = []
    if d.nodes:
        parts.append(f"{len(d.nodes)} nodes")
    if d.gradients:
        parts.append("gradients w.r.t. " + names_text(list(d.gradients)))
    elif d.sections:
        parts.append(f"{len(d.sections)} sections")
    if d.result is not None and not d.gradients:
        parts.append("a result")
    return f"<Derivation {title!r}{kind}" + (": " + ", ".join(parts) if parts else "") + ">"


def names_text(names):
    """``a, b, c`` with at most :data:`MAX_NAMES` names (then ``, ... (N in all)``)."""
    if len(names) <= MAX_NAMES:
        return ", ".join(map(str, names))
    return ", ".join(map(str, names[:MAX_NAMES])) + f", ... ({len(names)} in all)"
