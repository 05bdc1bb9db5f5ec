"""derive: the mathematics of derivekit (graphs, backprop, tensors, verdicts).

>>> import derive as dv
>>> d = dv.grad("w*(u3 + w*(u2 + w*u1))", wrt="w")
>>> d.gradients["w"].expression
3*u1*w**2 + 2*u2*w + u3
"""
from derive.api import grad, solve
from derive.derivation import Adjoint, Derivation, Edge, Gradient, Node, Section, Step, bar
from derive.errors import DeriveError, InputError, NotDifferentiableError, ShapeError, UnsupportedError
from derive.functions import maximum, minimum, relu, sigmoid
from derive.parse import parse, parse_call

try:  # the tensor engine adds layers, Sequential, evaluate
    from derive.tensor import *  # noqa: F401,F403
except ModuleNotFoundError as _exc:  # pragma: no cover - only while it is absent
    if _exc.name != "derive.tensor":
        raise
try:  # verdicts on hand derivations
    from derive.verify import check, gradcheck  # noqa: F401
except ModuleNotFoundError as _exc:  # pragma: no cover
    if _exc.name != "derive.verify":
        raise
