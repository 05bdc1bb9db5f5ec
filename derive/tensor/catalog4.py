"""The layers of :mod:`conv`, :mod:`pool`, :mod:`recurrent`, :mod:`attention` and
:mod:`graphnet` for the layer catalogue (``derivekit layer NAME``).

:func:`layers4` returns name -> layer class, the shape of ``catalog.LAYERS``; merge with
``LAYERS.update(layers4()); ALIASES.update(ALIASES4)``.

>>> sorted(layers4())[:3]
['argmax_attention', 'avgpool2d', 'conv2d']
"""
from __future__ import annotations

from .attention import ArgmaxAttention, PositionalEncoding, SelfAttention
from .conv import Conv2d
from .graphnet import MessagePassing
from .pool import AvgPool2d, Flatten, GlobalAvgPool, MaxPool2d
from .recurrent import (RNN, Embedding, GRUCell, LSTMCell, RNNCell, TemporalAffine,
                        TemporalSoftmaxLoss)

LAYERS4 = (Conv2d, MaxPool2d, AvgPool2d, GlobalAvgPool, Flatten, RNNCell, RNN, LSTMCell,
           GRUCell, Embedding, TemporalAffine, TemporalSoftmaxLoss, SelfAttention,
           ArgmaxAttention, PositionalEncoding, MessagePassing)

#: other names the CLI accepts
ALIASES4 = {"conv": "conv2d", "maxpool": "maxpool2d", "avgpool": "avgpool2d",
            "gap": "global_avgpool", "global_average_pool": "global_avgpool",
            "rnn_step": "rnn_cell", "lstm": "lstm_cell", "gru": "gru_cell",
            "word_embedding": "embedding", "attention": "self_attention",
            "multihead_attention": "self_attention", "hard_attention": "argmax_attention",
            "positional": "positional_encoding", "graph": "message_passing",
            "gnn": "message_passing"}


def layers4():
    """Layer name -> class for every layer of this issue, in catalogue order."""
    return {cls.key: cls for cls in LAYERS4}
