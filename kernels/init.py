"""Parameter initialisers, seeded and reproducible.

Fans follow PyTorch's convention for a weight of shape ``[out, in, *kernel]``:
``fan_in = in * prod(kernel)``, ``fan_out = out * prod(kernel)``; a vector's fans are
its length. Gains: 1 for Xavier/Glorot (linear/tanh-ish), sqrt(2) for Kaiming/He (ReLU).

>>> import numpy as np
>>> W = xavier_uniform((3, 4), np.random.default_rng(0))
>>> bool(np.abs(W).max() <= np.sqrt(6 / 7))
True
"""
from __future__ import annotations

import math

import numpy as np

from derive.errors import InputError


def fans(shape):
    """(fan_in, fan_out) of a parameter of this shape."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def zeros(shape, rng, **_):
    """All zeros (biases; states)."""
    return np.zeros(shape)


def ones(shape, rng, **_):
    """All ones (normalisation scales gamma)."""
    return np.ones(shape)


def normal(shape, rng, std=0.01):
    """N(0, std^2)."""
    return rng.normal(0.0, std, shape)


def xavier_uniform(shape, rng, gain=1.0):
    """U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = fans(shape)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, shape)


def xavier_normal(shape, rng, gain=1.0):
    """N(0, s^2), s = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    return rng.normal(0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), shape)


def kaiming_uniform(shape, rng, gain=math.sqrt(2.0)):
    """U(-a, a), a = gain * sqrt(3 / fan_in) (He et al. 2015)."""
    fan_in, _ = fans(shape)
    a = gain * math.sqrt(3.0 / fan_in)
    return rng.uniform(-a, a, shape)


def kaiming_normal(shape, rng, gain=math.sqrt(2.0)):
    """N(0, s^2), s = gain / sqrt(fan_in)."""
    fan_in, _ = fans(shape)
    return rng.normal(0.0, gain / math.sqrt(fan_in), shape)


SCHEMES = {f.__name__: f for f in (zeros, ones, normal, xavier_uniform, xavier_normal,
                                   kaiming_uniform, kaiming_normal)}
SCHEMES.update(glorot_uniform=xavier_uniform, glorot_normal=xavier_normal,
               he_uniform=kaiming_uniform, he_normal=kaiming_normal)


def scheme(name):
    """The initialiser called ``name`` (InputError naming the known ones if none)."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise InputError(f"unknown initialiser {name!r}; known: {', '.join(SCHEMES)}") from None


def initialise(shapes, weights="xavier_uniform", *, seed=0, vectors="zeros", overrides=None,
               dtype=np.float64, **options):
    """Initial values for parameters ``{name: shape}``, in order, from one seed.

    Parameters
    ----------
    shapes : dict
        Parameter names to shapes (ints), in a fixed order (the model's).
    weights : str
        Scheme for parameters with two or more axes.
    vectors : str
        Scheme for one-axis parameters (biases): zeros by default.
    overrides : dict, optional
        ``{name: scheme}`` for particular parameters (e.g. ``{"gamma": "ones"}``).
    options
        Passed to the weight scheme (``gain=``, ``std=``).
    """
    rng = np.random.default_rng(seed)
    overrides = overrides or {}
    out = {}
    for name, shape in shapes.items():
        shape = tuple(int(s) for s in shape)
        chosen = overrides.get(name, weights if len(shape) >= 2 else vectors)
        kw = options if chosen == weights and name not in overrides else {}
        out[name] = np.ascontiguousarray(scheme(chosen)(shape, rng, **kw), dtype=dtype)
    return out
