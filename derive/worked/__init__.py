"""Exact worked numeric examples: one module per family, each registering problem kinds.

Importing this package registers every kind with :mod:`derive.problem` (which imports it
lazily the first time a problem file is solved). Keys of every kind are documented in
``examples/worked/README.md``.

==================  ===========================================================
module              kinds
==================  ===========================================================
``norms``           layernorm, batchnorm
``conv``            conv2d, maxpool, avgpool
``losses``          softmax_loss, svm_loss, bce, mse
``optimizers``      optimizer
``schedules``       schedule
``dropout``         dropout
``attention``       attention
``architecture``    architecture, output_size
``analysis``        linear_collapse, conv_collapse, init_variance
``jacobians``       rnn_jacobian, mlp_jacobian
``classic``         perceptron, knn, decoding
==================  ===========================================================
"""
from derive.worked import (analysis, architecture, attention, classic, conv, dropout,  # noqa: F401
               jacobians, losses, norms, optimizers, schedules)
