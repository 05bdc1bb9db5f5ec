"""Affine and gathered indices: exact gathers, scatter-accumulates, and their ranges.

When a tensor is read through an index expression (``x[n, c, i*S + a, j*S + b]`` in a
convolution, ``E[w[n, t], j]`` in an embedding, ``x[Mod(u - p, H)]`` in circular
padding), the element derivative leaves a Kronecker delta the plain elimination cannot
remove: ``Σ_{i,a} ȳ[i] W[a] δ(i*S + a, k)``. Two exact readings exist (this is how
Halide's and Tapenade's reverse modes treat such reads):

* a **gather**, ``δ(s, v)`` with ``s`` a summation index whose range provably holds every
  value of ``v`` (``x̄[k] = x̄p[k + p]`` when cropping a padding): substitute ``s = v``;
* a **scatter-accumulate**, ``δ(e, k)`` with ``k`` a free index of the adjoint and ``e``
  built from summation indices whose values provably stay in ``k``'s range: loop over
  those indices and add into position ``e``: ``for i, a: x̄[i*S + a] += ȳ[i] W[a]``.

Everything else stays a (correct) sum with a delta. :func:`scatterise` rewrites a
:class:`~derive.tensor.program.Program` this way, assignment by assignment; a scatter
becomes ``Assignment(mode="+=", lhs=...)`` whose loop ``indices`` are the free indices it
does not replace plus the summation indices of ``lhs``. A target written by several
scatters (or by a scatter and a gather) gets one temporary ``<target>_part<k>`` per
scatter, summed by a final ``=`` assignment, so every ``+=`` target has exactly one
writer (kernels zero a ``+=`` target before its loop).

Ranges (:func:`index_range`) are proved symbolically when sizes are symbols
(``floor(z) <= z`` is used for output sizes like ``floor((H + 2p - k)/S) + 1``); when
SymPy cannot decide, the inequality is checked for every size from 1 to
``SAMPLE_MAX`` of each dimension (the definitions here are built so it holds for all).
"""
from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import sympy as sp

from derive.derivation import Section, Step
from derive.errors import ShapeError
from derive.tensor.display import plain, pretty, pretty_names
from derive.tensor.index import Fresh, extent, pull_sum, simplify_index, subs_index, terms_of
from derive.tensor.matrix import recognise
from derive.tensor.program import Assignment, TensorInfo

SAMPLE_MAX = 9  # sizes 1..SAMPLE_MAX tried per dimension when SymPy cannot decide


# -- ranges of index expressions --------------------------------------------------------------


def index_range(e, ranges=None):
    """``(lo, hi)`` with ``lo <= e <= hi`` for every value of the indices in ``e``, or None.

    ``e`` is an integer index expression: Idx, integers and dimension symbols, sums,
    constant multiples, ``Mod(., m)``, and elements of integer tensors whose range is in
    ``ranges`` (name -> (lo, hi)).

    >>> i, a = sp.Idx("i", 4), sp.Idx("a", 3)
    >>> index_range(2*i + a)
    (0, 8)
    """
    e = sp.sympify(e)
    if isinstance(e, sp.Idx):
        return sp.S.Zero, e.upper
    if not e.has(sp.Idx, sp.Indexed):
        return (e, e) if e.is_integer else None
    if isinstance(e, sp.Indexed):
        return (ranges or {}).get(str(e.base))
    if isinstance(e, sp.Mod):
        m = e.args[1]
        return (sp.S.Zero, m - 1) if m.is_positive and not m.has(sp.Idx) else None
    if isinstance(e, sp.Add):
        parts = [index_range(a, ranges) for a in e.args]
        if any(p is None for p in parts):
            return None
        return sp.Add(*[p[0] for p in parts]), sp.Add(*[p[1] for p in parts])
    if isinstance(e, sp.Mul):
        return _mul_range(e, ranges)
    if hasattr(e, "index_range"):
        return e.index_range()  # an index function that states its own range (clamp)
    return None


def _mul_range(e, ranges):
    const = [f for f in e.args if not f.has(sp.Idx, sp.Indexed)]
    rest = [f for f in e.args if f.has(sp.Idx, sp.Indexed)]
    c = sp.Mul(*const)
    if len(rest) != 1 or not c.is_integer:
        return None
    inner = index_range(rest[0], ranges)
    if inner is None:
        return None
    lo, hi = inner
    if c.is_nonnegative:
        return c * lo, c * hi
    if c.is_nonpositive:
        return c * hi, c * lo
    return None


def nonnegative(expr):
    """True when ``expr >= 0`` for all positive integer values of its dimension symbols."""
    expr = sp.expand(sp.sympify(expr))
    if expr.is_nonnegative is True:
        return True
    lowered = _floor_lower(sp.expand(expr.replace(
        lambda e: hasattr(e, "formula"), lambda e: e.formula())))
    if lowered is not None and sp.expand(lowered).is_nonnegative is True:
        return True
    syms = sorted(expr.free_symbols, key=str)
    if not syms or len(syms) > 3:
        return False
    for values in itertools.product(range(1, SAMPLE_MAX + 1), repeat=len(syms)):
        try:
            value = expr.xreplace(dict(zip(syms, values)))
        except ShapeError:
            continue  # sizes for which the layer itself is invalid (window > input)
        if not value.is_number or value < 0:
            return False
    return True


def _floor_lower(expr):
    """A lower bound of ``expr`` using ``floor(z) <= z`` where floor enters with a minus."""
    out = []
    for t in sp.Add.make_args(expr):
        c, rest = t.as_coeff_Mul()
        if isinstance(rest, sp.floor) and c.is_negative:
            out.append(c * rest.args[0])
        elif rest.has(sp.floor):
            return None
        else:
            out.append(t)
    return sp.Add(*out)


def fits(value, target_extent, ranges=None):
    """True when every value of the index expression ``value`` lies in ``0..extent-1``."""
    r = index_range(value, ranges)
    if r is None:
        return False
    lo, hi = r
    return nonnegative(lo) and nonnegative(target_extent - 1 - hi)


# -- one term: gather where exact, then scatter where exact --------------------------------


def _gather_one(factors, bound, ranges):
    """Substitute one delta ``δ(s, v)`` with ``s`` bound and ``v`` inside its range."""
    for k, f in enumerate(factors):
        if not isinstance(f, sp.KroneckerDelta):
            continue
        for s, v in (f.args, f.args[::-1]):
            if s in bound and not v.has(s) and fits(v, extent(s), ranges):
                rest = factors[:k] + factors[k + 1:]
                return [subs_index(x, {s: v}) for x in rest], tuple(i for i in bound if i != s)
    return None


def gather_term(factors, bound, ranges=None):
    """Eliminate every delta of one term that an exact gather removes."""
    factors, bound, changed = list(factors), tuple(bound), False
    while True:
        step = _gather_one(factors, bound, ranges)
        if step is None:
            return factors, bound, changed
        factors, bound = step
        changed = True


def _scatter_pair(delta, K, bound, mapping, ranges):
    """``(k, e)`` when ``delta`` is ``δ(e, k)`` with k free and e an exact scatter position."""
    for k, e in (delta.args, delta.args[::-1]):
        if k not in K or k in mapping or e.has(k) or any(e.has(m) for m in mapping):
            continue
        if not any(e.has(b) for b in bound):
            continue
        if fits(e, extent(k), ranges):
            return k, e
    return None


def scatter_term(factors, bound, K, ranges=None):
    """One term as ``(loop, lhs, rhs)`` for ``target[lhs] += rhs`` over ``loop``, or None."""
    mapping, rest = {}, []
    for f in factors:
        pair = _scatter_pair(f, K, bound, mapping, ranges) \
            if isinstance(f, sp.KroneckerDelta) else None
        if pair is None:
            rest.append(f)
            continue
        k, e = pair
        rest = [subs_index(x, {k: e}) for x in rest]
        mapping = {m: subs_index(v, {k: e}) for m, v in mapping.items()}
        mapping[k] = e
    if not mapping:
        return None
    rest = [subs_index(x, mapping) for x in rest]
    lhs = tuple(mapping.get(k, k) for k in K)
    loop = [k for k in K if k not in mapping]
    for b in reversed(bound):  # terms_of lists inner sums first: outer loops go first
        if any(e.has(b) for e in lhs):
            loop.append(b)
    inner = tuple(b for b in bound if b not in loop)
    return tuple(loop), lhs, pull_sum(sp.Mul(*rest), inner)


def split(rhs, K, ranges=None):
    """``rhs`` (free indices ``K``) as ``(gather_rhs, [(loop, lhs, rhs), ...], changed)``."""
    if not rhs.has(sp.KroneckerDelta):
        return rhs, [], False
    gathers, scatters, changed = [], [], False
    for factors, bound in terms_of(sp.expand_mul(rhs)):
        factors, bound, done = gather_term(factors, bound, ranges)
        changed |= done
        sc = scatter_term(factors, bound, K, ranges)
        if sc is None:
            gathers.append(pull_sum(sp.Mul(*factors), bound))
        else:
            scatters.append(_canonical_scatter(*sc, K))
    if not changed and not scatters:
        return rhs, [], False
    return simplify_index(sp.Add(*gathers)), _group(scatters), True


def _canonical_scatter(loop, lhs, rhs, K):
    """Loop indices not free in the target renamed ``u0, u1, ..`` so equal scatters match."""
    fresh = {i: sp.Idx(f"u{k}", extent(i)) for k, i in enumerate(loop) if i not in K}
    return (tuple(fresh.get(i, i) for i in loop), tuple(subs_index(e, fresh) for e in lhs),
            simplify_index(subs_index(rhs, fresh)))


def _group(scatters):
    out = {}
    for loop, lhs, rhs in scatters:
        key = (loop, lhs)
        out[key] = out.get(key, sp.S.Zero) + rhs
    return [(loop, lhs, simplify_index(rhs)) for (loop, lhs), rhs in out.items()]


# -- programs -----------------------------------------------------------------------------------


def int_ranges(tensors):
    """name -> (lo, hi) for integer tensors that declare ``meta["range"]`` or ``classes``."""
    out = {}
    for t in tensors.values():
        if t.dtype != "int":
            continue
        if "range" in t.meta:
            out[t.name] = tuple(sp.sympify(v) for v in t.meta["range"])
        elif "classes" in t.meta:
            out[t.name] = (sp.S.Zero, sp.sympify(t.meta["classes"]) - 1)
    return out


def _matrix(rhs, indices, tensors):
    return None if rhs.has(sp.KroneckerDelta) else recognise(rhs, indices, tensors)


def rewrite(a, tensors, ranges):
    """The assignments replacing ``a`` (``[a]`` when nothing changes)."""
    if a.mode != "=" or not a.indices:
        return [a], {}
    gather, scatters, changed = split(a.rhs, a.indices, ranges)
    if not changed:
        return [a], {}
    if not scatters:
        return [Assignment(a.target, a.indices, gather, _matrix(gather, a.indices, tensors))], {}
    if len(scatters) == 1 and gather == 0:
        loop, lhs, rhs = scatters[0]
        return [Assignment(a.target, loop, rhs, None, "+=", lhs)], {}
    out, temps, total = [], {}, gather
    info = tensors[a.target]
    for k, (loop, lhs, rhs) in enumerate(scatters, 1):
        name = f"{a.target}_part{k}"
        temps[name] = TensorInfo(name, info.shape, info.role, info.dtype, {"part_of": a.target})
        out.append(Assignment(name, loop, rhs, None, "+=", lhs))
        total = total + sp.IndexedBase(name)[tuple(a.indices)]
    out.append(Assignment(a.target, a.indices, total, None))
    return out, temps


def scatterise(program):
    """``program`` with exact gathers and scatter-accumulates (see the module docs).

    Assignments without such deltas are kept as they are (the same objects).
    """
    tensors = dict(program.tensors)
    ranges = int_ranges(tensors)
    lists = []
    for assignments in (program.forward, program.backward):
        new = []
        for a in assignments:
            parts, temps = rewrite(a, tensors, ranges)
            tensors.update(temps)
            new.extend(parts)
        lists.append(new)
    return replace(program, tensors=tensors, forward=lists[0], backward=lists[1])


# -- display --------------------------------------------------------------------------------------


def scatter_steps(program):
    """Steps showing each ``+=`` assignment, and each gather through a computed index."""
    steps = []
    for a in program.forward + program.backward:
        if a.mode == "+=":
            names = pretty_names(a.indices)
            body, labels = pretty(a.rhs, a.indices, names)
            where = dict(zip(a.indices, [sp.Idx(n) for n in names]))
            lhs = sp.IndexedBase(a.target)[tuple(plain(subs_index(e, where)) for e in a.lhs)]
            loop = ", ".join(names)
            steps.append(Step(lhs, [sp.Add(lhs, body, evaluate=False)],
                              note=f"scatter-accumulate (+=) for every ({loop}), from zero"))
        elif _computed_read(a.rhs) and a.indices:
            body, labels = pretty(a.rhs, a.indices)
            steps.append(Step(sp.IndexedBase(a.target)[labels], [body],
                              note="gather through a computed index (exact: every index "
                                   "stays in range)"))
    return steps


def _computed_read(rhs):
    return any(not all(isinstance(i, sp.Idx) for i in x.indices)
               for x in rhs.atoms(sp.Indexed))


def routes(program):
    """True when ``program`` writes through computed positions (a ``+=``) or reads through
    indices other than plain loop indices and class labels (windows, offsets, routes).

    A label lookup alone (``z[n, y[n]]`` in a loss) is not a route.
    """
    tensors = program.tensors

    def label(i):
        return isinstance(i, sp.Indexed) and str(i.base) in tensors \
            and tensors[str(i.base)].role == "label"

    for a in program.forward + program.backward:
        if a.mode == "+=":
            return True
        if a.indices and any(not all(isinstance(i, sp.Idx) or label(i) for i in x.indices)
                             for x in a.rhs.atoms(sp.Indexed)):
            return True
    return False


def scatter_section(program):
    """The Section listing scatter-accumulates and computed gathers (None when the program
    has no :func:`routes`)."""
    steps = scatter_steps(program) if routes(program) else []
    if not steps:
        return None
    text = ("Where a tensor is read through an index expression, its adjoint is a "
            "scatter-accumulate: every output entry adds its contribution into the input "
            "entry it read (Σ over the window with a Kronecker delta, read backwards). A "
            "delta whose summation index provably covers the other side becomes a gather.")
    return Section("Scatter-accumulate and gather forms", steps, text=text)


def dense_form(a, shape):
    """``(rhs, K)`` with ``target[K] = rhs`` equal to the scatter ``a`` (deltas kept): the
    scatter ``x̄[lhs] += v`` read back as ``x̄[K] = Σ v δ(K, lhs)``."""
    K, deltas = [], []
    for e, size in zip(a.lhs, shape):
        if isinstance(e, sp.Idx) and e in a.indices and e not in K:
            K.append(e)
            continue
        k = Fresh.idx(size, "k")
        K.append(k)
        deltas.append(sp.KroneckerDelta(k, e))
    bound = tuple(i for i in a.indices if i not in K)
    return pull_sum(a.rhs * sp.Mul(*deltas), bound), tuple(K)


# -- small symbolic instances ------------------------------------------------------------------


def scalarise_program(program, sizes, leaves=None):
    """:func:`~derive.tensor.scalar.scalarise` that also runs ``+=`` (scatter) assignments.

    ``leaves`` may also fix forward nodes (integer routing such as max-pool's argmax
    positions, which cannot be decided on symbols): those are not recomputed.
    """
    from derive.tensor.scalar import Scalariser, scalarise

    leaves = dict(leaves or {})
    arrays = scalarise(replace(program, forward=[], backward=[]), sizes, leaves=leaves)
    sc = Scalariser(sizes, arrays)
    for a in program.forward + program.backward:
        if a.target in leaves:
            arrays[a.target] = np.asarray(leaves[a.target], dtype=object)
        elif a.mode == "=":
            arrays[a.target] = sc.tensor(a.indices, a.rhs)
        else:
            arrays[a.target] = _scatter_scalars(sc, a, program.tensors[a.target].shape)
    return arrays


def _scatter_scalars(sc, a, shape):
    out = np.full([int(sp.sympify(s).xreplace(sc.sizes)) for s in shape], sp.S.Zero,
                  dtype=object)
    for point in itertools.product(*[range(sc.size(i)) for i in a.indices]):
        env = dict(zip(a.indices, point))
        where = tuple(int(sc.expand(e, env)) for e in a.lhs)
        out[where] = out[where] + sc.expand(a.rhs, env)
    return out
