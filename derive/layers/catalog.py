"""The layer catalogue: every layer once, with its names, its options and how to build it
from text.

``derivekit layer NAME``, ``derivekit train --model "linear(64, 128), relu, ..."``, the
``layer`` problem kind and the ``architecture`` worked kind all read it. An
:class:`Entry` is a layer class with its key (the class's ``key``), its group and the
other names it answers to (:data:`ALIASES`; an activation also answers to every name of
its function in :mod:`derive.functions`, ``swish`` for ``silu``); its options are the
keyword parameters of its constructor. Names are read in any case.

:func:`layer_derivation` builds the layer with the options given (symbolic sizes by
default: batch ``B``, features ``d``, outputs ``h``, classes ``C``) and returns its
Derivation: index-form definition, element derivatives, delta elimination, matrix form.

>>> "linear" in LAYER_NAMES and "batchnorm" in LAYER_NAMES
True
>>> layer_from_text("maxpool(2)").describe()
'MaxPool2d(kernel_size=2, stride=2, padding=0)'
>>> entry("lrelu").key, entry("lrelu").options()
('leaky_relu', {'k': 0.01})
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

from derive.errors import InputError, UnsupportedError
from derive.functions import ACTIVATIONS as FUNCTION_ACTIVATIONS
from derive.scalar.parse import parse_call
from derive.layers.attention import ArgmaxAttention, PositionalEncoding, SelfAttention
from derive.layers.conv import Conv2d
from derive.layers.graphnet import MessagePassing
from derive.layers.dense import ACTIVATIONS, AddLayer, Linear, MatMul, MulLayer
from derive.layers.losses import LOSSES, PENALTIES
from derive.layers.norms import NORMS
from derive.layers.pool import AvgPool2d, Flatten, GlobalAvgPool, MaxPool2d
from derive.layers.recurrent import (RNN, Embedding, GRUCell, LSTMCell, RNNCell, TemporalAffine,
                        TemporalSoftmaxLoss)
from derive.layers.sequences import GRU, LSTM

#: group -> layer classes, in catalogue order
GROUPS = (
    ("dense", (Linear, MatMul, AddLayer, MulLayer)),
    ("activation", ACTIVATIONS),
    ("loss", LOSSES),
    ("penalty", PENALTIES),
    ("norm", NORMS),
    ("conv", (Conv2d,)),
    ("pool", (MaxPool2d, AvgPool2d, GlobalAvgPool, Flatten)),
    ("recurrent", (RNNCell, RNN, LSTMCell, GRUCell, LSTM, GRU, Embedding, TemporalAffine,
                   TemporalSoftmaxLoss)),
    ("attention", (SelfAttention, ArgmaxAttention, PositionalEncoding)),
    ("graph", (MessagePassing,)),
)

#: other name -> key (the other names of the activations' functions are added below)
ALIASES = {
    "fc": "linear", "dense": "linear", "logsoftmax": "log_softmax",
    "softmax_cross_entropy": "cross_entropy", "ce": "cross_entropy",
    "svm": "hinge", "multiclass_hinge": "hinge", "0-1": "zero_one",
    "bce_with_logits": "bce_logits",
    "bn": "batchnorm", "batchnorm1d": "batchnorm", "ln": "layernorm",
    "bn2d": "batchnorm2d", "spatial_batchnorm": "batchnorm2d",
    "conv": "conv2d", "maxpool": "maxpool2d", "pool": "maxpool2d", "avgpool": "avgpool2d",
    "gap": "global_avgpool", "global_average_pool": "global_avgpool",
    "globalavgpool": "global_avgpool", "adaptiveavgpool": "global_avgpool",
    "rnn_step": "rnn_cell", "lstm": "lstm_cell", "gru": "gru_cell",
    "lstm_sequence": "lstm_seq", "gru_sequence": "gru_seq",
    "word_embedding": "embedding",
    "attention": "self_attention", "multihead_attention": "self_attention",
    "hard_attention": "argmax_attention", "positional": "positional_encoding",
    "graph": "message_passing", "gnn": "message_passing",
}


class UnknownLayer(UnsupportedError, InputError):
    """A layer name the catalogue does not have (a name given wrong: also an InputError)."""


@dataclass(frozen=True)
class Entry:
    """One layer of the catalogue."""

    key: str
    cls: type
    group: str

    @property
    def title(self):
        return self.cls.title

    @property
    def aliases(self):
        """The other names of this layer."""
        return tuple(a for a, k in ALIASES.items() if k == self.key)

    def options(self):
        """Option name -> default: the constructor's keyword parameters (for a class that
        takes ``**options``, the options of a default instance)."""
        return layer_options(self.cls)

    def make(self, *args, where=None, **options):
        """An instance; a constructor's TypeError (an unknown or missing option) becomes
        one InputError line naming the layer. An option whose default is True or False
        takes a boolean (:func:`boolean_option`), from text too."""
        defaults = self.options() if options else {}
        options = {k: boolean_option(v, k, self.key, where)
                   if isinstance(defaults.get(k), bool) else v for k, v in options.items()}
        try:
            return self.cls(*args, **options)
        except TypeError as exc:
            raise InputError(f"bad options for layer {self.key!r}: {exc}",
                             where=where) from None


def layer_options(cls):
    """Option name -> default of a layer class (see :meth:`Entry.options`)."""
    params = list(inspect.signature(cls).parameters.values())
    out = {p.name: (None if p.default is p.empty else p.default) for p in params
           if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if any(p.kind is p.VAR_KEYWORD for p in params):
        out.update(cls().options())
    return out


#: key -> Entry, in catalogue order
CATALOGUE = {cls.key: Entry(cls.key, cls, group) for group, classes in GROUPS
             for cls in classes}
for _row in FUNCTION_ACTIVATIONS:  # lrelu and leakyrelu for leaky_relu, swish for silu
    for _alias in _row.aliases:
        if _row.name in CATALOGUE:
            ALIASES.setdefault(_alias.lower(), _row.name)
#: key -> layer class
LAYERS = {key: e.cls for key, e in CATALOGUE.items()}
#: the names ``derivekit layer`` accepts (aliases not repeated)
LAYER_NAMES = tuple(CATALOGUE)


def layer_names():
    """The names ``derivekit layer`` accepts, in catalogue order."""
    return list(LAYER_NAMES)


def lookup(name):
    """The :class:`Entry` called ``name`` (a key or an alias, any case), or None."""
    key = str(name).strip().lower()
    return CATALOGUE.get(ALIASES.get(key, key))


def entry(name, where=None):
    """The :class:`Entry` called ``name`` (:class:`UnknownLayer` naming the known ones)."""
    found = lookup(name)
    if found is None:
        raise UnknownLayer(f"unknown layer {name!r} (known: {', '.join(LAYER_NAMES)})",
                           where=where)
    return found


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


TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")


def boolean_option(value, key, layer, where=None):
    """The value of the boolean option ``key``: a bool, 1 or 0, or the text true/false,
    yes/no, 1/0 (any case); anything else is refused naming the option (``bias=maybe``
    was once taken as true)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise InputError(f"option '{key}' of layer '{layer}' is true or false (also yes/no, "
                     f"1/0), got {value!r}", where=where)


def make_layer(name, **options):
    """The layer called ``name`` with ``options``; option values given as text (the
    command line's ``-p stride=2``, a layer file) are read by :func:`coerce_option`."""
    options = {k: coerce_option(v) for k, v in options.items()}
    return entry(name).make(**options)


def layer_from_text(text, where=None):
    """The layer ``"name(arg, ..., key=value)"`` describes (literal arguments only, read
    by :func:`derive.scalar.parse.parse_call`, never evaluated): ``"linear(64, 128)"``,
    ``"relu"``, ``"conv2d(1, 8, 3, padding=1)"``."""
    name, args, kwargs = parse_call(str(text), where=where)
    return entry(name, where).make(*args, where=where, **kwargs)


def split_layers(text):
    """``"linear(64,128), relu"`` -> ``["linear(64,128)", "relu"]`` (commas at the top
    level separate layers)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [p for p in parts + [cur.strip()] if p]


def layer_derivation(name, values=None, upstream=None, wrt=None, all_steps=False, **options):
    """The Derivation of layer ``name`` (see the module docstring).

    A layer without a useful gradient (0/1 loss, hard attention) gives its forward
    definition and says why in a note instead of raising. ``all_steps``: a long sequence's
    document prints every step (derive.tensor.record).
    """
    layer = make_layer(name, **options)
    d = layer.derive(wrt=wrt, values=values, upstream=upstream, all_steps=all_steps)
    d.meta["layer"] = layer.key
    return d
