"""Exact worked numeric examples: one module per family, each registering problem kinds.

Importing this package registers every kind with :mod:`derive.problem` (which imports it
lazily the first time a problem file is solved). Keys of every kind are documented in
``examples/worked/README.md``.

====================  =========================================================
module                kinds
====================  =========================================================
``norms_by_hand``     layernorm, batchnorm
``conv_by_hand``      conv2d, maxpool, avgpool
``losses_by_hand``    softmax_loss, svm_loss, bce, mse
``regularisation``    regularised_loss
``optimizers``        optimizer
``schedules``         schedule
``dropout``           dropout
``attention_by_hand`` attention
``architecture``      architecture, output_size
``analysis``          linear_collapse, init_variance (conv_collapse: its module
                      ``stacked_convolutions``, which analysis imports)
``jacobians``         rnn_jacobian, mlp_jacobian
``classic``           perceptron, knn, decoding
``claims``            claim (a statement proved, refuted or shown, with evidence)
``claims_proofs``     claims: layernorm_linear, shift_invariance, dropout_ridge,
                      stationary_point
``claims_gradients``  claims: constant_init_symmetry, zero_one_loss_gradient,
                      argmax_attention_gradient
``graph_by_hand``     gnn
``detection``         detection (YOLO v1: output, encode, iou, loss, nms)
====================  =========================================================
"""
from derive.worked import regularisation  # noqa: F401  (regularised_loss)
from derive.worked import (analysis, architecture, attention_by_hand, classic,  # noqa: F401
                           conv_by_hand, dropout, jacobians, losses_by_hand, norms_by_hand,
                           optimizers, schedules)  # (each module registers its problem kinds)
from derive.worked import graph_by_hand  # noqa: F401,E402  (gnn)
from derive.worked import claims  # noqa: F401,E402  (the claim kind and its registry)
from derive.worked import claims_gradients, claims_proofs  # noqa: F401,E402  (their claims)
from derive.worked import detection  # noqa: F401,E402  (detection)
from derive.worked import claims_plots  # noqa: F401,E402  (claims shown with plots)
