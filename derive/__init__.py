"""derive: the mathematics of derivekit (graphs, backprop, tensors, verdicts).

The house in one page is docs/ARCHITECTURE.md: ``scalar/`` (the scalar engine),
``tensor/`` (the tensor engine), ``layers/`` (the layer library), ``functions/`` (the
function registry), ``verify/`` (verdicts), ``worked/`` (worked numeric examples).

>>> import derive as dv
>>> d = dv.grad("w*(u3 + w*(u2 + w*u1))", wrt="w")
>>> d.gradients["w"].expression
3*u1*w**2 + 2*u2*w + u3

Importing the package is cheap: every name below is imported on first use (PEP 562), so
``derivekit --help`` does not load SymPy. ``dv.grad``, ``from derive import Linear`` and
``from derive import *`` work as if everything had been imported up front.
"""
import importlib
import importlib.util

#: name -> the module it comes from (the names the tensor engine and the layer library
#: export, ``derive.tensor.__all__`` and ``derive.layers.__all__``, are found there).
#: ``Step`` is not here: as when this package star-imported the layers, ``dv.Step`` is
#: the Heaviside activation layer, not ``derive.derivation.Step``.
_HOME = {
    "grad": "derive.entry_points", "solve": "derive.entry_points",
    **dict.fromkeys(("Adjoint", "Derivation", "Edge", "Gradient", "Node", "Section", "bar"),
                    "derive.derivation"),
    **dict.fromkeys(("DeriveError", "InputError", "NotDifferentiableError", "ShapeError",
                     "UnsupportedError"), "derive.errors"),
    **dict.fromkeys(("maximum", "minimum", "relu", "sigmoid"), "derive.functions"),
    "parse": "derive.scalar.parse", "parse_call": "derive.scalar.parse",
    "check": "derive.verify", "gradcheck": "derive.verify",
    "from_torch": "derive.pytorch",
}
_STAR = ("derive.tensor", "derive.layers")  # their __all__ names are this package's too


def _all_names():
    names = list(_HOME)
    for module in _STAR:
        names += [n for n in importlib.import_module(module).__all__ if n not in names]
    return names


def __getattr__(name):
    """Import ``name`` on first use: an exported name, or a subpackage (``dv.tensor``)."""
    if name == "__all__":
        value = _all_names()
    elif name.startswith("_"):
        raise AttributeError(f"module 'derive' has no attribute {name!r}")
    elif name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
    elif importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    else:
        for module in _STAR:
            found = importlib.import_module(module)
            if name in found.__all__:
                value = getattr(found, name)
                break
        else:
            raise AttributeError(f"module 'derive' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_all_names()))
