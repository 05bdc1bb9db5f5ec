"""Shape and parameter-count rules: the one place they are written down.

Everything that needs an output size or a parameter count (the worked architecture
tables, the tensor layers, the kernels) calls these small pure functions, so a
convention is stated once.

Conventions
-----------
* **Output size** of a convolution or pooling window along one axis::

      n_out = floor((n + P - d (k - 1) - 1) / s) + 1

  where ``P`` is the *total* padding on that axis. Most courses and PyTorch give the
  padding *per side* ``p`` (so ``P = 2p``); some exam problems give the total. Both are
  accepted: pass ``padding=`` (per side) or ``total_padding=``, never both.
* **Parameter counts** count trainable weights and biases. Recurrent layers default to one
  bias vector per gate (the textbook and Keras count); PyTorch and cuDNN keep two
  (``b_ih`` and ``b_hh``): pass ``bias_vectors=2`` to match them.
* Sizes may be SymPy symbols; then the result is a SymPy expression (``floor`` for output
  sizes). Non-positive integer sizes raise :class:`~derive.errors.ShapeError`.
"""
from __future__ import annotations

import math
from numbers import Integral

import sympy as sp

from derive.errors import InputError, ShapeError

#: Gates per recurrent cell: each gate has its own input and recurrent weights and bias.
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def _is_int(value):
    return isinstance(value, Integral) and not isinstance(value, bool) or (
        isinstance(value, sp.Integer))


def check_size(value, what, *, minimum=1, where=None):
    """``value`` as an int (or a SymPy expression); ShapeError if an int below ``minimum``.

    ``what`` names the size in the message; ``where`` locates it (file and key).

    >>> check_size(3, "kernel size")
    3
    >>> check_size(0, "stride", where="net.yaml: layers[0]")
    Traceback (most recent call last):
    ...
    derive.errors.ShapeError: net.yaml: layers[0]: stride must be positive, got 0
    """
    if isinstance(value, bool):
        raise InputError(f"{what} must be an integer, got {value!r}", where=where)
    if _is_int(value):
        value = int(value)
        if value < minimum:
            bound = "positive" if minimum == 1 else f"at least {minimum}"
            raise ShapeError(f"{what} must be {bound}, got {value}", where=where)
        return value
    if isinstance(value, sp.Expr) and not value.is_number:
        return value
    raise InputError(f"{what} must be an integer, got {value!r}", where=where)


def output_size(n, kernel, stride=1, padding=0, *, total_padding=None, dilation=1,
                ceil_mode=False, where=None):
    """Output length of a convolution or pooling window along one axis.

    Parameters
    ----------
    n, kernel, stride, dilation : int or sympy.Expr
        Input length, window size, step between windows, spacing of window taps.
    padding : int
        Zero padding added on *each* side (PyTorch's ``padding``).
    total_padding : int, optional
        Padding added on both sides *together*; use instead of ``padding``.
    ceil_mode : bool
        Round up instead of down (PyTorch pooling's ``ceil_mode``).

    Returns
    -------
    int or sympy.Expr
        ``floor((n + P - dilation*(kernel - 1) - 1) / stride) + 1`` with ``P`` the total
        padding.

    Examples
    --------
    >>> output_size(32, 3, stride=2, padding=1)
    16
    >>> output_size(9, 3, stride=2, total_padding=2), output_size(13, 3, 2, total_padding=2)
    (5, 7)
    >>> output_size(28, 2, stride=2)
    14
    """
    total = total_padding_of(padding, total_padding, where=where)
    n = check_size(n, "input size", where=where)
    kernel = check_size(kernel, "kernel size", where=where)
    stride = check_size(stride, "stride", where=where)
    dilation = check_size(dilation, "dilation", where=where)
    span = dilation * (kernel - 1) + 1
    numerator = n + total - span
    if all(_is_int(v) for v in (n, kernel, stride, dilation, total)):
        if numerator < 0:
            raise ShapeError(f"the window ({span}) is larger than the padded input "
                             f"({n} + {total} = {n + total})", where=where)
        steps = -(-numerator // stride) if ceil_mode else numerator // stride
        return steps + 1
    rounding = sp.ceiling if ceil_mode else sp.floor
    return rounding(sp.Rational(1, 1) * numerator / stride) + 1


def total_padding_of(padding=0, total_padding=None, *, where=None):
    """Total padding on one axis from a per-side or total value (not both).

    >>> total_padding_of(1), total_padding_of(total_padding=3)
    (2, 3)
    """
    if total_padding is not None:
        if padding not in (0, None):
            raise InputError("give either padding (per side) or total_padding, not both",
                             where=where)
        return check_size(total_padding, "total padding", minimum=0, where=where)
    return 2 * check_size(padding or 0, "padding", minimum=0, where=where)


def linear_params(n_in, n_out, bias=True):
    """Parameters of a fully connected layer: ``n_in * n_out`` weights plus ``n_out`` biases.

    >>> linear_params(2, 1024) + linear_params(1024, 512) + linear_params(512, 3)
    529411
    """
    n_in = check_size(n_in, "input features")
    n_out = check_size(n_out, "output features")
    return n_in * n_out + (n_out if bias else 0)


def conv_params(c_in, c_out, kernel, bias=True, groups=1):
    """Parameters of a convolution: ``c_out * (c_in/groups) * prod(kernel)`` + ``c_out``.

    ``kernel`` is an int (square, 2-D), or a tuple giving the size per spatial axis
    (one entry for Conv1d, three for Conv3d).

    >>> conv_params(3, 96, 11)      # AlexNet's first layer: 11x11x3, 96 filters
    34944
    >>> conv_params(1, 10, 3), conv_params(10, 10, (3, 3))
    (100, 910)
    """
    c_in = check_size(c_in, "input channels")
    c_out = check_size(c_out, "output channels")
    groups = check_size(groups, "groups")
    kernel = (kernel, kernel) if not isinstance(kernel, (tuple, list)) else tuple(kernel)
    taps = 1
    for k in kernel:
        taps *= check_size(k, "kernel size")
    if _is_int(c_in) and _is_int(c_out) and (c_in % groups or c_out % groups):
        raise ShapeError(f"groups={groups} must divide both channel counts ({c_in}, {c_out})")
    return c_out * (c_in // groups if _is_int(c_in) else c_in / groups) * taps + (
        c_out if bias else 0)


def recurrent_params(cell, input_size, hidden_size, bias=True, bias_vectors=1):
    """Parameters of one recurrent layer: ``gates * (h*(i + h) + bias_vectors*h)``.

    ``cell`` is ``"rnn"`` (1 gate), ``"gru"`` (3) or ``"lstm"`` (4). Each gate has an
    input matrix ``h x i``, a recurrent matrix ``h x h`` and ``bias_vectors`` biases of
    length ``h`` (1 in textbooks and Keras, 2 in PyTorch and cuDNN).

    >>> recurrent_params("lstm", 10, 20), recurrent_params("lstm", 10, 20, bias_vectors=2)
    (2480, 2560)
    >>> recurrent_params("gru", 10, 20, bias_vectors=2), recurrent_params("rnn", 3, 5)
    (1920, 45)
    """
    if cell not in GATES:
        raise InputError(f"unknown recurrent cell {cell!r} (known: {', '.join(GATES)})")
    i = check_size(input_size, "input size")
    h = check_size(hidden_size, "hidden size")
    if bias_vectors not in (1, 2):
        raise InputError(f"bias_vectors must be 1 or 2, got {bias_vectors!r}")
    return GATES[cell] * (h * (i + h) + (bias_vectors * h if bias else 0))


def embedding_params(num_embeddings, dim):
    """Parameters of an embedding table: one ``dim``-vector per token.

    >>> embedding_params(10000, 300)
    3000000
    """
    return check_size(num_embeddings, "vocabulary size") * check_size(dim, "embedding size")


def norm_params(features, affine=True):
    """Trainable parameters of BatchNorm / LayerNorm: a scale and a shift per feature.

    BatchNorm also keeps running mean and variance buffers (``2 * features`` numbers) that
    are *not* trained and are not counted here.

    >>> norm_params(64), norm_params(64, affine=False)
    (128, 0)
    """
    return 2 * check_size(features, "features") if affine else 0


def numel(shape):
    """Number of entries of a tensor of ``shape`` (what ``flatten`` produces).

    >>> numel((10, 7, 7))
    490
    """
    sizes = [check_size(s, "dimension") for s in shape]
    return math.prod(sizes) if all(_is_int(s) for s in sizes) else sp.Mul(*sizes)
