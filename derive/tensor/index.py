"""Index expressions: tensor elements, sums over index ranges, and their derivatives.

A tensor element is ``Indexed(IndexedBase(name), *indices)``; a 0-d tensor is a plain
``Symbol``. Indices are :class:`sympy.Idx` objects carrying their range ``0..extent-1``,
so every expression knows where its indices run. Sums are our own :class:`ISum` (not
SymPy's ``Sum``, whose derivative leaves ``Piecewise`` bounds and undone sums), with
:class:`LogSumExp` (a reduction that is evaluated stably, so softmax is stable by
construction) and :class:`Argmax` (forward only).

Differentiation is done here, element by element: :func:`d_element` gives
``∂expr/∂t[K]`` with one Kronecker delta per index of each occurrence of ``t``, and
:func:`eliminate` removes the deltas against summation indices whose range contains the
other side (Σ_j a_j δ(j, k) = a_k when k runs inside j's range).
"""
from __future__ import annotations

import itertools
import keyword
from functools import reduce

import sympy as sp

from derive.errors import InputError, NotDifferentiableError
from derive.functions import CONVENTIONS

# -- dimensions and indices ---------------------------------------------------------------


def dim(value):
    """A dimension: a positive int, or a name like ``"B"`` as a positive-integer Symbol."""
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, str):
        # the name is printed into generated kernel source (``d = x.shape[1]``)
        if not value.isidentifier() or keyword.iskeyword(value):
            raise InputError(f"dimension name {value!r:.40} is not a valid name (letters, "
                             "digits and _)")
        return sp.Symbol(value, integer=True, positive=True)
    return sp.Integer(int(value))


def extent(idx):
    """Number of values an Idx runs over (``upper + 1``)."""
    return sp.simplify(idx.upper + 1) if not isinstance(idx.upper, sp.Integer) \
        else idx.upper + 1


class Fresh:
    """A source of index names that never repeat (renamed canonically for display)."""

    counter = itertools.count()

    @classmethod
    def idx(cls, size, hint="j"):
        """A new Idx running over ``range(size)``."""
        return sp.Idx(f"{hint}{next(cls.counter)}", dim(size))


def rename_free(expr, old, new):
    """Replace the free Idx ``old`` (tuple) by ``new`` (tuple) in ``expr``."""
    return subs_index(expr, dict(zip(old, new)))


def subs_index(e, mapping):
    """Substitute indices in ``e`` without touching indices bound by a reduction.

    ``xreplace`` would also rename an index bound inside a nested sum that happens to
    share the name (capture); reductions shield their own indices here.
    """
    if not mapping:
        return e
    if e in mapping:
        return mapping[e]
    if isinstance(e, IndexOp):
        inner = {k: v for k, v in mapping.items() if k not in e.indices}
        if not inner:
            return e
        body, bound = _avoid_capture(e, inner)
        return type(e)(subs_index(body, inner), *bound)
    if not e.args or isinstance(e, sp.Idx):
        return e
    args = [subs_index(a, mapping) for a in e.args]
    return e.func(*args) if any(a is not b for a, b in zip(args, e.args)) else e


def _avoid_capture(op, mapping):
    """``op``'s body and bound indices, those named by a substituted value renamed fresh
    (else renaming a free index to ``j`` inside ``Σ_j`` makes it the summed ``j``)."""
    label = lambda i: str(getattr(i, "label", i))  # noqa: E731
    names = {label(a) for k, v in mapping.items() if isinstance(v, sp.Basic)
             and op.body.has(k) for a in v.atoms(sp.Idx, sp.Symbol)}
    clash = {i: Fresh.idx(extent(i), "c") for i in op.indices
             if isinstance(i, sp.Idx) and label(i) in names}
    return subs_index(op.body, clash), tuple(clash.get(i, i) for i in op.indices)


# -- reductions ---------------------------------------------------------------------------


class IndexOp(sp.Expr):
    """Base of reductions ``op(body, *indices)`` binding ``indices`` inside ``body``."""

    is_commutative = True

    @property
    def body(self):
        return self.args[0]

    @property
    def indices(self):
        return self.args[1:]

    @property
    def free_symbols(self):
        bound = set()
        for i in self.indices:
            bound |= {i, getattr(i, "label", i)}
        return self.body.free_symbols - bound

    def _sympystr(self, printer):
        subs = ", ".join(printer._print(i) for i in self.indices)
        return f"{type(self).__name__}({printer._print(self.body)}, {subs})"


class ISum(IndexOp):
    """Σ over the full ranges of ``indices`` of ``body``.

    Indices that ``body`` does not use are summed out at construction (a factor
    ``extent``); a zero body gives zero.

    >>> n = sp.Idx("n", 3); x = sp.IndexedBase("x")
    >>> ISum(x[n], n)
    ISum(x[n], n)
    >>> ISum(2, n)
    6
    """


    def __new__(cls, body, *indices):
        body = sp.sympify(body)
        if body == 0:  # structural: asking SymPy's assumptions here is slow
            return sp.S.Zero
        used = tuple(i for i in indices if body.has(i))
        factor = sp.Mul(*[extent(i) for i in indices if i not in used
                          and isinstance(i, sp.Idx)])
        if not used:
            return factor * body
        return factor * sp.Expr.__new__(cls, body, *used)


class LogSumExp(IndexOp):
    """``log Σ exp(body)`` over ``indices``, evaluated with the max subtracted.

    Its derivative is softmax: ∂/∂u LSE = Σ_k exp(body - LSE)·∂body/∂u.
    """


    def __new__(cls, body, *indices):
        return sp.Expr.__new__(cls, sp.sympify(body), *indices)


class Argmax(IndexOp):
    """Index of the first maximum of ``body`` over one index (forward only)."""

    is_integer = True

    def __new__(cls, body, index):
        return sp.Expr.__new__(cls, sp.sympify(body), index)


# -- differentiation with respect to one element ------------------------------------------


class Conventions:
    """Conventions met while differentiating (stated once in the derivation)."""

    TEXT = CONVENTIONS  # the function registry's kink sentences, by class name

    def __init__(self):
        self.used = []

    def add(self, key):
        if key in self.TEXT and self.TEXT[key] not in self.used:
            self.used.append(self.TEXT[key])


def d_element(expr, target, K, conventions=None):
    """∂expr / ∂target[K] with Kronecker deltas (not yet eliminated).

    Parameters
    ----------
    expr : sympy.Expr
        An index expression.
    target : sympy.IndexedBase or sympy.Symbol
        The tensor (0-d tensors are Symbols).
    K : tuple of sympy.Idx
        Fresh indices naming the element (empty for a 0-d tensor).
    """
    conv = conventions if conventions is not None else Conventions()
    return _d(sp.sympify(expr), target, tuple(K), conv)


def _d(e, t, K, conv):
    if not e.has(t):
        return sp.S.Zero
    if isinstance(e, sp.Indexed):
        if e.base == t:
            return sp.Mul(*[sp.KroneckerDelta(a, k) for a, k in zip(e.indices, K)])
        return sp.S.Zero  # t inside an index (a label): piecewise constant
    if e == t:
        return sp.S.One
    handler = _RULES.get(type(e))
    if handler is not None:
        return handler(e, t, K, conv)
    if isinstance(e, sp.Add):
        return sp.Add(*[_d(a, t, K, conv) for a in e.args])
    if isinstance(e, sp.Mul):
        return _d_mul(e, t, K, conv)
    if isinstance(e, sp.Pow):
        return _d_pow(e, t, K, conv)
    if isinstance(e, sp.Piecewise):
        conv.add("Piecewise")
        return sp.Piecewise(*[(_d(x, t, K, conv), c) for x, c in e.args])
    if isinstance(e, sp.Function):
        return _d_function(e, t, K, conv)
    if isinstance(e, (sp.KroneckerDelta, sp.Rel)):
        return sp.S.Zero
    raise NotDifferentiableError(f"cannot differentiate {type(e).__name__} ({e})")


def _d_mul(e, t, K, conv):
    terms = []
    for k, a in enumerate(e.args):
        da = _d(a, t, K, conv)
        if da != 0:
            terms.append(sp.Mul(*(e.args[:k] + (da,) + e.args[k + 1:])))
    return sp.Add(*terms)


def _d_pow(e, t, K, conv):
    b, x = e.args
    if not x.has(t):
        return x * b ** (x - 1) * _d(b, t, K, conv)
    return e * (_d(x, t, K, conv) * sp.log(b) + x * _d(b, t, K, conv) / b)


def _d_function(e, t, K, conv):
    name = type(e).__name__
    if name in ("Heaviside", "sign", "step"):
        conv.add(name)
        return sp.S.Zero
    terms = []
    for k, a in enumerate(e.args):
        da = _d(a, t, K, conv)
        if da == 0:
            continue
        if isinstance(e, sp.Abs):
            conv.add("Abs")
            local = sp.sign(a)
        else:
            conv.add(name)
            local = e.fdiff(k + 1)
        terms.append(local * da)
    return sp.Add(*terms)


def _d_isum(e, t, K, conv):
    return ISum(_d(e.body, t, K, conv), *e.indices)


def _d_lse(e, t, K, conv):
    soft = sp.exp(e.body - e)
    return ISum(soft * _d(e.body, t, K, conv), *e.indices)


def _d_argmax(e, t, K, conv):
    raise NotDifferentiableError(
        "argmax is piecewise constant: its gradient is zero almost everywhere and "
        "undefined at ties (no useful gradient)")


_RULES = {ISum: _d_isum, LogSumExp: _d_lse, Argmax: _d_argmax}


# -- delta elimination ---------------------------------------------------------------------


def terms_of(e):
    """``e`` as a list of (factors, bound indices): Σ_terms Σ_bound Π factors.

    Only sums and products that contain a Kronecker delta are opened; everything else is
    an atomic factor. Bound indices pulled out are renamed fresh, so substituting one
    never captures an index bound inside an atomic factor.
    """
    if not e.has(sp.KroneckerDelta):
        return [([e], ())]
    if isinstance(e, sp.Add):
        return [t for a in e.args for t in terms_of(a)]
    if isinstance(e, sp.Mul):
        parts = [terms_of(a) for a in e.args]
        out = []
        for combo in itertools.product(*parts):
            out.append(([f for fs, _ in combo for f in fs],
                        tuple(i for _, b in combo for i in b)))
        return out
    if isinstance(e, ISum):
        fresh = tuple(Fresh.idx(extent(i), "s") for i in e.indices)
        body = rename_free(e.body, e.indices, fresh)
        return [(fs, b + fresh) for fs, b in terms_of(body)]
    return [([e], ())]


def range_contains(outer, value):
    """True when every value of ``value`` lies in ``outer``'s range (an Idx)."""
    if isinstance(value, sp.Idx):
        return sp.simplify(extent(value) - extent(outer)) == 0 or (
            (extent(outer) - extent(value)).is_nonnegative is True)
    if isinstance(value, sp.Indexed):
        return True  # a label element: labels are checked against their class count
    return False


def _eliminate_one(factors, bound):
    """Remove one delta by substitution; None when none can go."""
    for k, f in enumerate(factors):
        if not isinstance(f, sp.KroneckerDelta):
            continue
        a, b = f.args
        for s, v in ((a, b), (b, a)):
            if s in bound and not v.has(s) and range_contains(s, v):
                rest = factors[:k] + factors[k + 1:]
                new = [subs_index(x, {s: v}) for x in rest]
                return new, tuple(i for i in bound if i != s)
    return None


def eliminate_term(factors, bound):
    """Eliminate every removable delta of one term; returns the rebuilt expression."""
    factors, bound = list(factors), tuple(bound)
    while True:
        step = _eliminate_one(factors, bound)
        if step is None:
            break
        factors, bound = step
    return pull_sum(sp.Mul(*factors), bound)


def pull_sum(body, bound):
    """``ISum(body, *bound)`` with factors that do not use ``bound`` taken outside."""
    if not bound:
        return body
    inside, outside = [], []
    for f in sp.Mul.make_args(body):
        (inside if any(f.has(i) for i in bound) else outside).append(f)
    return sp.Mul(*outside) * ISum(sp.Mul(*inside), *bound)


def eliminate(expr):
    """``expr`` with Kronecker deltas removed wherever an index range allows it."""
    return sp.Add(*[eliminate_term(fs, b) for fs, b in terms_of(sp.expand_mul(expr))]) \
        if expr.has(sp.KroneckerDelta) else expr


def vjp(rhs, out_indices, out_bar, target, K, conventions=None):
    """Σ_I out_bar[I]·∂rhs(I)/∂target[K], deltas eliminated (index form).

    ``rhs`` is the definition of an output element with free ``out_indices`` (I);
    ``out_bar`` is the output's adjoint element ``out_bar[I]`` (or Symbol for 0-d).
    """
    partial = d_element(rhs, target, K, conventions)
    if partial == 0:
        return sp.S.Zero, partial
    total = ISum(out_bar * partial, *out_indices) if out_indices else out_bar * partial
    return simplify_index(eliminate(total)), partial


# -- canonical form ---------------------------------------------------------------------------


def bound_indices(expr):
    """Every index bound by a reduction inside ``expr``."""
    return {i for op in expr.atoms(IndexOp) for i in op.indices}


def canonical(expr, keep=()):
    """Rename bound indices canonically so equal sums compare equal (and read well).

    Each reduction gets the first names from ``_NAMES`` not used by ``keep`` (the free
    indices) or by an enclosing reduction; sibling reductions may reuse names.
    """
    taken = {str(getattr(k, "label", k)) for k in keep}
    return _canon(expr, taken)


def _canon(e, taken):
    if isinstance(e, IndexOp):
        new, used = [], set(taken)
        for i in e.indices:
            name = bound_name(extent(i), used)
            used.add(name)
            new.append(sp.Idx(name, extent(i)))
        new = tuple(new)
        body = subs_index(e.body, dict(zip(e.indices, new)))
        inner = taken | {str(n.label) for n in new}
        return type(e)(_canon(body, inner), *new)
    if not e.args or isinstance(e, (sp.Idx, sp.Indexed)) and not e.has(IndexOp):
        return e
    args = [_canon(a, taken) for a in e.args]
    return e.func(*args) if any(a is not b for a, b in zip(args, e.args)) else e


_BATCH_NAMES = ("n", "m")
_NAMES = [c for c in "jklpqrstuvwabcdefgh"] + [f"j{k}" for k in range(2, 200)]


def bound_name(size, used):
    """The name an index a reduction sums over gets when shown: ``n`` (then ``m``) for a
    batch of ``size`` B or N, else ``j, k, l, p, q, ...``; the first not in ``used``.
    The kernels name their reduction loops by the same rule."""
    pool = (_BATCH_NAMES if str(size) in ("B", "N") else ()) + tuple(_NAMES)
    return next(n for n in pool if n not in used)


def simplify_index(expr, expand=True):
    """Combine equal sums and pull common factors out (never changes the value).

    ``expand=False`` keeps products of sums as written (a substituted adjoint such as
    ``(2/d)(v6 - y) ⊙ (1 + exp(v4))`` then stays factored).
    """
    if expand:
        expr = sp.expand_mul(expr) if expr.has(IndexOp) else expr
        expr = _distribute_sums(expr)
    expr = _canonical_terms(expr)
    try:
        out = sp.factor_terms(expr)
    except (TypeError, ValueError, NotImplementedError, sp.PolynomialError):
        out = expr
    return out


def _distribute_sums(expr):
    """ISum(a + b) -> ISum(a) + ISum(b), with constant factors taken out."""
    def split(op):
        if not isinstance(op, ISum):
            return op
        body = sp.expand_mul(op.body)
        return sp.Add(*[pull_sum(t, op.indices) for t in sp.Add.make_args(body)])
    return expr.replace(lambda e: isinstance(e, ISum), split)


def _canonical_terms(expr):
    """Canonically rename the bound indices of each additive term separately."""
    free = tuple(free_indices(expr))
    return sp.Add(*[canonical(t, free) for t in sp.Add.make_args(expr)])


def free_indices(expr):
    """The Idx objects of ``expr`` not bound by a reduction inside it."""
    if isinstance(expr, sp.Idx):
        return {expr}
    if isinstance(expr, IndexOp):
        return free_indices(expr.body) - set(expr.indices)
    out = set()
    for a in expr.args:
        out |= free_indices(a)
    return out


def product(values):
    """Product of an iterable of SymPy values (1 for none)."""
    return reduce(lambda a, b: a * b, values, sp.S.One)


def freshen(expr):
    """``expr`` with every bound index renamed fresh (safe to paste inside other sums)."""
    if isinstance(expr, IndexOp):
        new = tuple(Fresh.idx(extent(i), "f") for i in expr.indices)
        body = subs_index(expr.body, dict(zip(expr.indices, new)))
        return type(expr)(freshen(body), *new)
    if not expr.args or isinstance(expr, (sp.Idx, sp.Indexed)) and not expr.has(IndexOp):
        return expr
    return expr.func(*[freshen(a) for a in expr.args])


def inline(expr, defs):
    """Replace tensor elements by their definitions (``defs``: name -> (indices, rhs))."""
    def one(e):
        if isinstance(e, sp.Indexed) and str(e.base) in defs:
            idx, rhs = defs[str(e.base)]
            return inline(freshen(subs_index(rhs, dict(zip(idx, e.indices)))), defs)
        if isinstance(e, sp.Symbol) and str(e) in defs:
            return inline(freshen(defs[str(e)][1]), defs)
        if not e.args or isinstance(e, sp.Idx):
            return e
        args = [one(a) for a in e.args]
        if isinstance(e, IndexOp):
            return type(e)(args[0], *e.indices)
        return e.func(*args)
    return one(expr)
