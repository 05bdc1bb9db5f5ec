"""The layer catalogue: names for ``derivekit layer NAME`` and their derivations.

:func:`layer_derivation` builds the layer with the options given (symbolic sizes by
default: batch ``B``, features ``d``, outputs ``h``, classes ``C``) and returns its
Derivation: index-form definition, element derivatives, delta elimination, matrix form.

>>> "linear" in LAYER_NAMES and "batchnorm" in LAYER_NAMES
True
"""
from __future__ import annotations

from ..errors import InputError, UnsupportedError
from .layers import (ACTIVATIONS, AddLayer, Linear, MatMul, MulLayer)
from .losses import LOSSES, PENALTIES
from .norms import NORMS

#: name -> layer class (aliases included)
LAYERS = {cls.key: cls for cls in (Linear, MatMul, AddLayer, MulLayer) + ACTIVATIONS
          + LOSSES + PENALTIES + NORMS}
ALIASES = {"softmax_cross_entropy": "cross_entropy", "ce": "cross_entropy",
           "svm": "hinge", "multiclass_hinge": "hinge", "0-1": "zero_one",
           "bn": "batchnorm", "batchnorm1d": "batchnorm", "ln": "layernorm",
           "bce_with_logits": "bce_logits", "lrelu": "leaky_relu", "logsoftmax": "log_softmax"}
from .catalog4 import ALIASES4, layers4  # noqa: E402  (spatial, recurrent and attention layers)

LAYERS.update(layers4())
ALIASES.update(ALIASES4)
#: the names ``derivekit layer`` accepts (aliases not repeated)
LAYER_NAMES = tuple(LAYERS)


def layer_names():
    """The names ``derivekit layer`` accepts, in catalogue order."""
    return list(LAYER_NAMES)


def coerce_option(value):
    """A CLI option value: ``"false"`` -> False, ``"4"`` -> 4, ``"0.1"`` -> 0.1, names kept."""
    if not isinstance(value, str):
        return value
    low = value.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(low)
        except ValueError:
            pass
    if not value.strip().isidentifier():
        raise InputError(f"option value {value!r} is not a number, true/false or a name")
    return value.strip()


def make_layer(name, **options):
    """The layer called ``name`` with ``options`` (UnsupportedError if unknown)."""
    options = {k: coerce_option(v) for k, v in options.items()}
    key = str(name).lower()
    key = ALIASES.get(key, key)
    if key not in LAYERS:
        raise UnsupportedError(f"unknown layer {name!r} (known: {', '.join(LAYER_NAMES)})")
    try:
        return LAYERS[key](**options)
    except TypeError as exc:
        raise InputError(f"bad options for layer {key!r}: {exc}") from None


def layer_derivation(name, values=None, upstream=None, wrt=None, **options):
    """The Derivation of layer ``name`` (see the module docstring).

    A layer without a useful gradient (0/1 loss) gives its forward definition and says
    so in a note instead of raising.
    """
    layer = make_layer(name, **options)
    if not layer.has_gradient:
        return forward_only(layer, values)
    d = layer.derive(wrt=wrt, values=values, upstream=upstream)
    d.meta["layer"] = layer.key
    return d


def forward_only(layer, values=None):
    """A Derivation of the definition alone, with the reason there is no gradient."""
    from ..derivation import Derivation, Node, Section, Step
    from .display import element_form, indexed_lhs, pretty
    from .backward import build_program

    g = layer.graph()
    d = Derivation(title=layer.describe(), kind="layer", output=g.output,
                   meta={"layer": layer.key})
    steps = []
    arrays = build_program(g, [])[0].run(values, backward=False) if values is not None \
        else None
    for n in g.nodes.values():
        value = arrays.get(n.name) if arrays else None
        d.nodes.append(Node(n.name, None if n.rhs is None else element_form(n.rhs, n.indices),
                            tuple(n.inputs), n.role if n.role in ("param", "node") else "input",
                            value, n.shape or None))
        if n.rhs is not None:
            steps.append(Step(indexed_lhs(n.name, n.indices), [pretty(n.rhs, n.indices)[0]]))
    d.sections.append(Section("Definition", steps))
    d.note(f"{layer.title} is piecewise constant in the scores: its gradient is zero almost "
           "everywhere and undefined at ties, so it gives no useful gradient; train with a "
           "surrogate (hinge or cross-entropy) and report it as a metric.")
    return d
