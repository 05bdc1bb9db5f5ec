"""The layer library: every layer defined once, element by element, on the tensor engine.

Modules
-------
``dense``       the layer base (``Layer``), Linear, MatMul, Add/Mul, Softmax and the
                activation layers made from the function registry's activation rows
``losses``      MSE, BCE, cross-entropy, hinge, 0/1 and the penalties
``norms``       BatchNorm, BatchNorm2d, LayerNorm (over k axes), Dropout
``conv`` / ``pool`` / ``windows``  convolution and pooling (and the windows they read)
``recurrent``   RNN/LSTM/GRU cells, unrolled RNNs, embeddings, temporal layers
``sequences``   LSTM and GRU unrolled over a sequence (backprop through time)
``attention``   self-attention, argmax attention, positional encoding
``graphnet``    message passing on a graph
``sequential``  ``Sequential`` and ``Network``: layers composed into one graph
``catalog``     the layer registry: every layer's names, aliases, options and text form
                (``derivekit layer``, ``train --model``, layer files, architecture tables)
``layerfile``   the ``layer`` problem kind

Naming in Sequential: blocks numbered from 1, up at each layer with parameters: ``W1, b1,
z1, a1, gamma2, beta2, running_mean2, m3`` ...; input ``x: [B, in]``, labels ``y``, loss
``L``.
"""
from derive.layers import layerfile  # noqa: F401  (registers the 'layer' problem kind)
from derive.layers.attention import ArgmaxAttention, PositionalEncoding, SelfAttention
from derive.layers.catalog import LAYER_NAMES, layer_derivation, layer_names, make_layer
from derive.layers.conv import Conv2d
from derive.layers.dense import (ELEMENTWISE, AddLayer, Layer, Linear, LogSoftmax, MatMul,
                                 MulLayer, Softmax)
from derive.layers.graphnet import MessagePassing
from derive.layers.losses import (BCE, L1, L2, MSE, BCEWithLogits, CrossEntropy, ElasticNet,
                                  Hinge, ZeroOne)
from derive.layers.norms import BatchNorm, BatchNorm2d, Dropout, LayerNorm
from derive.layers.pool import AvgPool2d, Flatten, GlobalAvgPool, MaxPool2d
from derive.layers.recurrent import (RNN, Embedding, GRUCell, LSTMCell, RNNCell,
                                     TemporalAffine, TemporalSoftmaxLoss)
from derive.layers.sequences import GRU, LSTM
from derive.layers.sequential import Network, Sequential

SoftmaxCrossEntropy = CrossEntropy
# Sigmoid, Tanh, ReLU, ...: one activation layer per activation row of derive.functions
globals().update(ELEMENTWISE)

__all__ = [
    "layer_derivation", "layer_names", "LAYER_NAMES", "make_layer",
    "Sequential", "Network", "Layer",
    "Linear", "MatMul", "AddLayer", "MulLayer",
    *ELEMENTWISE, "Softmax", "LogSoftmax",
    "MSE", "BCE", "BCEWithLogits", "CrossEntropy", "SoftmaxCrossEntropy", "Hinge", "ZeroOne",
    "L1", "L2", "ElasticNet",
    "LayerNorm", "BatchNorm", "BatchNorm2d", "Dropout",
    "Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool", "Flatten",
    "RNNCell", "RNN", "LSTMCell", "GRUCell", "LSTM", "GRU", "Embedding", "TemporalAffine",
    "TemporalSoftmaxLoss", "SelfAttention", "ArgmaxAttention", "PositionalEncoding",
    "MessagePassing",
]
