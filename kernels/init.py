"""Parameter initialisers, seeded and reproducible, in PyTorch's or needle's layout.

Every initialiser is ``scheme(shape, rng, ..., layout="out_in")``: ``shape`` is the shape
of the array returned, ``rng`` a NumPy ``Generator``, an int seed (``default_rng(seed)``)
or a legacy ``RandomState`` (``np.random.seed(s)`` + ``np.random.rand`` as needle draws:
given ``RandomState(s)`` the numbers are needle's, bit for bit). Entries are drawn in
row-major order of ``shape``, the order the course's own code draws them in.

The layout says which axes are which, and so the fans:

* ``"out_in"`` (PyTorch; also ``"torch"``, ``"[out, in]"``): ``[out, in, *kernel]``,
  ``fan_in = in * prod(kernel)``, ``fan_out = out * prod(kernel)``;
* ``"in_out"`` (needle; also ``"needle"``, ``"[in, out]"``): ``[*kernel, in, out]``,
  ``fan_in = in * prod(kernel)``, ``fan_out = out * prod(kernel)``: needle's
  ``init.kaiming_uniform(fan_in, fan_out)`` is ``kaiming_uniform((fan_in, fan_out), rng,
  layout="in_out")``.

A vector's fans are its length. Gains: 1 for Xavier/Glorot (linear/tanh-ish), sqrt(2) for
Kaiming/He (ReLU; PyTorch's ``kaiming_uniform_`` default, ``leaky_relu`` with ``a = 0``).

>>> import numpy as np
>>> W = xavier_uniform((3, 4), np.random.default_rng(0))
>>> bool(np.abs(W).max() <= np.sqrt(6 / 7))
True
>>> kaiming_uniform((4, 3), 7, layout="in_out").shape, fans((4, 3), "in_out")
((4, 3), (4, 3))
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from derive.errors import InputError

#: layout name -> canonical name
LAYOUTS = {"out_in": "out_in", "torch": "out_in", "pytorch": "out_in", "[out, in]": "out_in",
           "in_out": "in_out", "needle": "in_out", "[in, out]": "in_out"}


def layout_of(layout):
    """``"out_in"`` or ``"in_out"`` (InputError naming the option otherwise)."""
    key = layout.strip().lower() if isinstance(layout, str) else layout
    if key not in LAYOUTS:
        raise InputError(f"option 'layout' of an initialiser is 'out_in' ([out, in], PyTorch) "
                         f"or 'in_out' ([in, out], needle), got {layout!r}")
    return LAYOUTS[key]


def generator(rng):
    """A random generator from ``rng``: a Generator or RandomState as it is, an int as the
    seed of ``np.random.default_rng``, None an unseeded one (InputError otherwise)."""
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise InputError(f"an initialiser's rng is a numpy Generator or an int seed >= 0, "
                     f"got {rng!r}")


def fans(shape, layout="out_in"):
    """(fan_in, fan_out) of a parameter of this shape in this layout."""
    layout = layout_of(layout)
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if layout == "out_in":
        receptive = math.prod(shape[2:])
        return shape[1] * receptive, shape[0] * receptive
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _shape(shape):
    return tuple(int(s) for s in shape)


def zeros(shape, rng=None, layout="out_in", **_):
    """All zeros (biases; states)."""
    layout_of(layout)
    return np.zeros(_shape(shape))


def ones(shape, rng=None, layout="out_in", **_):
    """All ones (normalisation scales gamma)."""
    layout_of(layout)
    return np.ones(_shape(shape))


def uniform(shape, rng, low=0.0, high=1.0, layout="out_in"):
    """U(low, high) (needle's ``init.rand``: ``rand * (high - low) + low``)."""
    layout_of(layout)
    return generator(rng).uniform(low, high, _shape(shape))


def normal(shape, rng, std=0.01, mean=0.0, layout="out_in"):
    """N(mean, std^2) (needle's ``init.randn``: ``randn * std + mean``)."""
    layout_of(layout)
    return generator(rng).normal(mean, std, _shape(shape))


def xavier_uniform(shape, rng, gain=1.0, layout="out_in"):
    """U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = fans(shape, layout)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return generator(rng).uniform(-a, a, _shape(shape))


def xavier_normal(shape, rng, gain=1.0, layout="out_in"):
    """N(0, s^2), s = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape, layout)
    return generator(rng).normal(0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)),
                                 _shape(shape))


def kaiming_uniform(shape, rng, gain=math.sqrt(2.0), layout="out_in"):
    """U(-a, a), a = gain * sqrt(3 / fan_in) (He et al. 2015; PyTorch's
    ``kaiming_uniform_`` and needle's ``init.kaiming_uniform`` with their defaults)."""
    fan_in, _ = fans(shape, layout)
    a = gain * math.sqrt(3.0 / fan_in)
    return generator(rng).uniform(-a, a, _shape(shape))


def kaiming_normal(shape, rng, gain=math.sqrt(2.0), layout="out_in"):
    """N(0, s^2), s = gain / sqrt(fan_in)."""
    fan_in, _ = fans(shape, layout)
    return generator(rng).normal(0.0, gain / math.sqrt(fan_in), _shape(shape))


SCHEMES = {f.__name__: f for f in (zeros, ones, uniform, normal, xavier_uniform,
                                   xavier_normal, kaiming_uniform, kaiming_normal)}
SCHEMES.update(glorot_uniform=xavier_uniform, glorot_normal=xavier_normal,
               he_uniform=kaiming_uniform, he_normal=kaiming_normal)


def scheme(name):
    """The initialiser called ``name`` (InputError naming the known ones if none)."""
    try:
        return SCHEMES[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown initialiser {name!r}; known: {', '.join(SCHEMES)}") from None


def initialise(shapes, weights="xavier_uniform", *, seed=0, vectors="zeros", overrides=None,
               dtype=np.float64, layout="out_in", **options):
    """Initial values for parameters ``{name: shape}``, in order, from one seed.

    Parameters
    ----------
    shapes : dict
        Parameter names to shapes (ints), in a fixed order (the model's).
    weights : str
        Scheme for parameters with two or more axes.
    seed : int or numpy Generator
        One generator draws every parameter in turn.
    vectors : str
        Scheme for one-axis parameters (biases): zeros by default.
    overrides : dict, optional
        ``{name: scheme}`` for particular parameters (e.g. ``{"gamma": "ones"}``).
    layout : "out_in" or "in_out"
        How the shapes' axes read (the fans): PyTorch's ``[out, in]`` or needle's
        ``[in, out]``.
    options
        Passed to the weight scheme (``gain=``, ``std=``).
    """
    rng = generator(seed)
    layout = layout_of(layout)
    overrides = overrides or {}
    out = {}
    for name, shape in shapes.items():
        shape = _shape(shape)
        chosen = overrides.get(name, weights if len(shape) >= 2 else vectors)
        kw = options if chosen == weights and name not in overrides else {}
        out[name] = np.ascontiguousarray(scheme(chosen)(shape, rng, layout=layout, **kw),
                                         dtype=dtype)
    return out
