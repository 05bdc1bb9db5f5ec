"""derive: the mathematics of derivekit (graphs, backprop, tensors, verdicts).

The house in one page is docs/ARCHITECTURE.md: ``scalar/`` (the scalar engine),
``tensor/`` (the tensor engine), ``layers/`` (the layer library), ``functions/`` (the
function registry), ``verify/`` (verdicts), ``worked/`` (worked numeric examples).

>>> import derive as dv
>>> d = dv.grad("w*(u3 + w*(u2 + w*u1))", wrt="w")
>>> d.gradients["w"].expression
3*u1*w**2 + 2*u2*w + u3
"""
from derive.entry_points import grad, solve
from derive.derivation import Adjoint, Derivation, Edge, Gradient, Node, Section, Step, bar
from derive.errors import DeriveError, InputError, NotDifferentiableError, ShapeError, UnsupportedError
from derive.functions import maximum, minimum, relu, sigmoid
from derive.scalar.parse import parse, parse_call

from derive.tensor import *  # noqa: F401,F403  (the tensor engine: evaluate, program, ...)
from derive.layers import *  # noqa: F401,F403  (the layer library: Linear, Sequential, ...)
from derive.verify import check, gradcheck  # noqa: F401
