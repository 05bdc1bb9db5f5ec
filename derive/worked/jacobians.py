"""Gradient flow through depth or time: products of Jacobians and the bound they obey.

Both a recurrent net unrolled for T steps and a deep MLP compute ``h_t = phi(a_t)`` with
``a_t = W_t h_{t-1} + ...``, so::

    dh_T/dh_0 = prod_{t=T..1} diag(phi'(a_t)) W_t
    ||dh_T/dh_0|| <= prod_t gamma ||W_t||,   gamma = max |phi'|

(gamma = 1 for tanh, ReLU and linear units, 1/4 for the sigmoid). When
``gamma ||W|| < 1`` the gradient vanishes at least geometrically; it can only explode
when ``gamma ||W|| > 1`` (Pascanu, Mikolov and Bengio, 2013). ``||.||`` is the spectral
norm (largest singular value).
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from derive.derivation import Derivation, Section, Step
from derive.errors import InputError, ShapeError
from derive.functions import sigmoid
from derive.problem import check_keys, get, problem_kind
from derive.stepforms import Norm, plus, times
from derive.worked.common import array, key_choice, key_int, symbol, tidy, with_approx

_ACT = {  # name -> (phi, phi' at a number, gamma = sup |phi'|, phi' as an expression)
    "tanh": (sp.tanh, lambda a: 1 - sp.tanh(a) ** 2, sp.Integer(1),
             lambda a: 1 - sp.tanh(a) ** 2),
    "sigmoid": (sigmoid, lambda a: sigmoid(a) * (1 - sigmoid(a)), sp.Rational(1, 4),
                lambda a: times(sigmoid(a), 1 - sigmoid(a))),
    "relu": (lambda a: sp.Max(a, 0), lambda a: sp.Integer(1 if a > 0 else 0), sp.Integer(1),
             lambda a: sp.Heaviside(a, 0)),
    "linear": (lambda a: a, lambda a: sp.Integer(1), sp.Integer(1), lambda a: sp.Integer(1)),
}
PHI, PHI_PRIME, DIAG = sp.Function("phi"), sp.Function("phiprime"), sp.Function("diag")
GAMMA = sp.Symbol("gamma")


def _matrix_symbol(name, *subscripts):
    """A matrix or vector named in a product, kept in its place (noncommutative)."""
    return sp.Symbol("_".join([name] + [str(s) for s in subscripts]), commutative=False)


def _d(h, t, s):
    """The Jacobian d h_t / d h_s."""
    return sp.Derivative(symbol(h, t), symbol(h, s))


@problem_kind("rnn_jacobian")
def rnn_jacobian(spec, where):
    """dh_T/dh_0 through T steps of h_t = phi(W h_{t-1} + U x_t + b), with the bound."""
    check_keys(spec, {"kind", "title", "W", "U", "b", "x", "T", "h0", "activation"}, where)
    W = _square(spec, "W", where)
    n = W.shape[0]
    xs = get(spec, "x", where, types=list, default=None)
    T = len(xs) if xs is not None else key_int(spec, "T", where)
    if T is None:
        raise InputError("give the inputs 'x' (one per step) or the number of steps 'T'",
                         where=where)
    U = _matrix(spec, "U", where, default=None)
    inputs = [_col(v, f"{where}: x[{t}]") for t, v in enumerate(xs)] if xs else [None] * T
    if U is not None and xs is None:
        raise InputError("'U' needs the inputs 'x'", where=where)
    if U is None and xs is not None:
        U = sp.eye(n) if len(inputs[0]) == n else None
        if U is None:
            raise ShapeError(f"x has {len(inputs[0])} entries per step but h has {n}; give U",
                             where=f"{where}: x")
    d = Derivation(title=get(spec, "title", where,
                             default=f"Gradient through {T} RNN steps"), kind="rnn_jacobian")
    d.note("Hidden state: h_t = phi(W h_{t-1} + U x_t + b); the same W is used at every step.")
    return _chain(d, spec, where, [W] * T, U, inputs, n, "tanh", "h")


@problem_kind("mlp_jacobian")
def mlp_jacobian(spec, where):
    """da_L/da_0 through L layers a_l = phi(W_l a_{l-1} + b_l), with the bound."""
    check_keys(spec, {"kind", "title", "weights", "weight", "depth", "b", "x", "h0",
                      "activation"}, where)
    if ("weights" in spec) == ("weight" in spec):
        raise InputError("give 'weights' (one per layer) or one 'weight' with 'depth'",
                         where=where)
    if "weights" in spec:
        Ws = [_as_matrix(array(w, f"{where}: weights[{i}]", ndim=(0, 2), name="a weight"))
              for i, w in enumerate(get(spec, "weights", where, types=list))]
    else:
        depth = key_int(spec, "depth", where)
        if depth is None:
            raise InputError("'weight' needs 'depth' (the number of layers)", where=where)
        Ws = [_square(spec, "weight", where)] * depth
    for i in range(1, len(Ws)):
        if Ws[i].shape[1] != Ws[i - 1].shape[0]:
            raise ShapeError(f"layer {i + 1}'s weight is {Ws[i].shape} but layer {i} outputs "
                             f"{Ws[i - 1].shape[0]}", where=f"{where}: weights[{i}]")
    d = Derivation(title=get(spec, "title", where,
                             default=f"Gradient through a {len(Ws)}-layer MLP"),
                   kind="mlp_jacobian")
    d.note("Layers: a_l = phi(W_l a_{l-1} + b_l); a_0 is the input x.")
    if "x" in spec and "h0" in spec:
        raise InputError("give the input as 'x' (or 'h0'), not both", where=where)
    spec = dict(spec)
    if "x" in spec:
        spec["h0"] = spec.pop("x")
    return _chain(d, spec, where, Ws, None, [None] * len(Ws), Ws[0].shape[1], "sigmoid", "a")


# -- shared ------------------------------------------------------------------------------------
def _chain(d, spec, where, Ws, U, inputs, n0, default_act, h):
    act = key_choice(spec, "activation", where, tuple(_ACT), default_act)
    phi, dphi, gamma, dphi_form = _ACT[act]
    b = spec.get("b")
    h_prev = _col(spec["h0"], f"{where}: h0") if "h0" in spec else sp.zeros(n0, 1)
    if h_prev.shape[0] != n0:
        raise ShapeError(f"the initial state has {h_prev.shape[0]} entries, expected {n0}",
                         where=f"{where}: h0")
    exact = act == "linear"
    if not exact:
        d.note(f"{act} values are transcendental: they are evaluated to 15 digits.")
    a_ = sp.Symbol("a")
    d.note(f"phi = {act}, phi'(a) = {dphi_form(a_)}"
           + (", H(0) = 0" if act == "relu" else "") + f", gamma = max|phi'| = {gamma}.")
    P = sp.eye(n0)
    bound = sp.Integer(1)
    for t, (W, x) in enumerate(zip(Ws, inputs), 1):
        steps = []
        a = W * h_prev + _bias(b, W.shape[0], where)
        if x is not None:
            a += U * x
        a = a.applyfunc(lambda v: v if exact else sp.N(v, 15))
        h_prev = a.applyfunc(lambda v: phi(v) if exact else sp.N(phi(v), 15))
        deriv = a.applyfunc(lambda v: dphi(v) if exact else sp.N(dphi(v), 15))
        J = sp.diag(*deriv) * W
        P = (J * P).applyfunc(tidy)
        norm_w = _spectral(W)
        bound = bound * gamma * norm_w
        a_t = symbol("a", t)
        w_t = _matrix_symbol("W") if h == "h" else _matrix_symbol("W", t)
        steps += [Step(a_t, [_local(h, t, x is not None, b is not None), _show(a)]),
                  Step(symbol(h, t), [sp.tanh(a_t) if act == "tanh" else PHI(a_t),
                                      _show(h_prev)]),
                  Step(PHI_PRIME(a_t), [dphi_form(a_t), _show(deriv)]),
                  Step(symbol("J", t), [_d(h, t, t - 1), times(DIAG(PHI_PRIME(a_t)), w_t),
                                        _show(J)]),
                  Step(_d(h, t, 0), [times(symbol("J", t), _d(h, t - 1, 0)), _show(P)]),
                  Step(Norm(_d(h, t, 0)), [*with_approx(_spectral(P))]),
                  Step(times(GAMMA, Norm(w_t)) ** t, [*with_approx(tidy(bound))],
                       "the bound on that norm after this step")]
        d.sections.append(Section(f"{'Step' if h == 'h' else 'Layer'} {t}", steps))
    T = len(Ws)
    d.sections.append(_bound_section(h, T, gamma, Ws, bound, P))
    d.result = {"jacobian": _plain(P), "norm": tidy(_spectral(P)), "bound": tidy(bound)}
    return d


def _bound_section(h, T, gamma, Ws, bound, P):
    same = all(W == Ws[0] for W in Ws)
    factor = gamma * _spectral(Ws[0]) if same else None
    t = sp.Symbol("t", integer=True, positive=True)
    a_t, w_t = sp.Symbol("a_t"), _matrix_symbol("W_t")
    steps = [
        Step(_d(h, T, 0), [sp.Product(times(DIAG(PHI_PRIME(a_t)), w_t), (t, T, 1))]),
        Step(Norm(_d(h, T, 0)), [
            sp.Le(sp.Product(times(Norm(DIAG(PHI_PRIME(a_t))), Norm(w_t)), (t, 1, T)),
                  sp.Product(times(GAMMA, Norm(w_t)), (t, 1, T))),
            *with_approx(tidy(bound))], "the product of the per-step bounds"),
    ]
    if same:
        steps.append(Step(times(GAMMA, Norm(_matrix_symbol("W"))), [*with_approx(tidy(factor))]))
        if factor < 1:
            verdict = (f"gamma ||W|| = {sp.N(factor, 4)} < 1: the gradient vanishes at least "
                       f"like {sp.N(factor, 4)}^T (sufficient condition).")
        elif factor > 1:
            verdict = (f"gamma ||W|| = {sp.N(factor, 4)} > 1: the bound grows like "
                       f"{sp.N(factor, 4)}^T, so the gradient can explode (necessary "
                       "condition); saturated units (small phi') may still make it vanish.")
        else:
            verdict = "gamma ||W|| = 1: the bound neither grows nor shrinks."
    else:
        verdict = "The bound is the product of each layer's gamma ||W_l||."
    return Section("The vanishing / exploding bound", steps, text=verdict)


def _square(spec, key, where):
    W = _matrix(spec, key, where)
    if W.shape[0] != W.shape[1]:
        raise ShapeError(f"{key} must be square (it maps the state to itself), got "
                         f"{W.shape[0]}x{W.shape[1]}", where=f"{where}: {key}")
    return W


def _matrix(spec, key, where, default=...):
    if key not in spec and default is not ...:
        return default
    return _as_matrix(array(get(spec, key, where), f"{where}: {key}", ndim=(0, 2), name=key))


def _as_matrix(value):
    return sp.Matrix([[value]]) if not isinstance(value, list) else sp.Matrix(value)


def _col(value, where):
    v = array(value, where, ndim=(0, 1))
    return sp.Matrix(v if isinstance(v, list) else [v])


def _bias(b, n, where):
    if b is None:
        return sp.zeros(n, 1)
    col = _col(b, f"{where}: b")
    if col.shape[0] == 1:  # one number: the same bias on every unit
        return sp.ones(n, 1) * col[0]
    if col.shape[0] != n:
        raise ShapeError(f"b has {col.shape[0]} entries, expected {n}", where=f"{where}: b")
    return col


def _spectral(M):
    """The largest singular value: exact for 1x1, else from NumPy (floats)."""
    if M.shape == (1, 1):
        return sp.Abs(M[0, 0])
    return sp.Float(np.linalg.norm(np.array(M.evalf(), dtype=float), 2))


def _show(M):
    return M[0, 0] if M.shape == (1, 1) else M


def _plain(M):
    return M[0, 0] if M.shape == (1, 1) else M.tolist()


def _local(h, t, has_x, has_b):
    """``W h_{t-1} + U x_t + b`` (``W_t a_{t-1} + b`` in a layer) as written."""
    w = _matrix_symbol("W") if h == "h" else _matrix_symbol("W", t)
    terms = [w * _matrix_symbol(h, t - 1)]
    if has_x:
        terms.append(_matrix_symbol("U") * _matrix_symbol("x", t))
    if has_b:
        terms.append(_matrix_symbol("b"))
    return plus(*terms)
