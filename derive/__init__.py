"""derive: the mathematics of derivekit (graphs, backprop, tensors, verdicts)."""
from .derivation import Adjoint, Derivation, Edge, Gradient, Node, Section, Step, bar
from .errors import DeriveError, InputError, NotDifferentiableError, ShapeError, UnsupportedError
