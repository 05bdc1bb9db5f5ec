"""Loop nests: one assignment ``target[I] = rhs`` of index form -> ``for`` loops.

:func:`loops` prints an assignment as a loop nest over its indices, the expressions with
:class:`kernels.printer.NumbaPrinter`. Reductions in the right-hand side (``ISum``,
``LogSumExp``, ``Argmax``) become accumulator loops *hoisted* to the outermost loop level
whose indices they use: the row-wise log-sum-exp of a softmax is computed once per row,
not once per entry. ``LogSumExp`` is printed stably (max first, then the sum of
``exp(x - max)``). Common subexpressions of the innermost statement are shared with
``sympy.cse``; reductions two assignments compute alike are computed once
(:class:`Shared`). Loops and temporaries are named per nest (:mod:`kernels.names`).
"""
from __future__ import annotations

import functools
import itertools

import sympy as sp

from derive.tensor.index import Argmax, IndexOp, ISum, LogSumExp, extent

from .names import Names
from .printer import INDENT


class Scope:
    """Loop levels of a nest: level d holds the statements run before loop d opens.

    ``nest`` (a :class:`kernels.names.Nest`) names the loops and temporaries; ``around``
    holds the names of the loops the scope's statements may sit in (the whole nest's and
    the enclosing reductions'), which a reduction's own loops must not reuse.
    """

    def __init__(self, indices, printer, nest, around=None, temps=None):
        self.indices = list(indices)
        self.pre = [[] for _ in range(len(self.indices) + 1)]
        self.printer = printer
        self.nest = nest
        self.around = set(around if around is not None else
                          (nest.index[i] for i in self.indices))
        self.temps = temps if temps is not None else set()  # Symbols of temporaries

    def temp(self, role):
        """A new temporary named by its role (``acc``, ``lse``, ``best``, ...)."""
        var = sp.Symbol(self.nest.temp(role))
        self.temps.add(var)
        return var

    def depth(self, expr):
        """Loop level after which everything ``expr`` uses is defined."""
        free = {s for s in expr.free_symbols}
        d = 0
        for k, i in enumerate(self.indices):
            if i in free or i.label in free:
                d = k + 1
        return d

    def extent(self, i):
        return self.printer._print(extent(i))


class Shared:
    """Reductions that several assignments compute alike, computed once.

    The softmax cross-entropy's row-wise log-sum-exp appears in the loss (forward) and
    again in the logits' adjoint (backward). The first assignment that computes such a
    reduction (the *writer*) also stores it in a buffer indexed by the reduction's free
    indices; later assignments read the buffer instead of looping again. Sharing is
    sound because every tensor of a Program is assigned once, so the reduction's inputs
    do not change between the writer and its readers.

    ``new_buffer(shape)`` names a work array of that shape (the caller allocates it).
    Only sums and log-sum-exps are shared (an argmax is an integer).
    """

    def __init__(self, assignments, new_buffer):
        owners = {}  # key -> targets of the assignments computing it, in order
        for a in assignments:
            for r in sp.sympify(a.rhs).atoms(ISum, LogSumExp):
                c = canonical(r)
                if c is not None:
                    owners.setdefault(c[0], [])
                    if a.target not in owners[c[0]]:
                        owners[c[0]].append(a.target)
        self.writer = {k: t[0] for k, t in owners.items() if len(t) > 1}
        self.readers = {k: t[1:] for k, t in owners.items() if len(t) > 1}
        self.new_buffer = new_buffer
        self.buffers = {}  # key -> buffer name, once the writer has stored it
        self.current = None  # target of the assignment being printed

    def lookup(self, r):
        """("read", element) or ("write", store(var) -> line) for reduction r, or None."""
        c = canonical(r)
        if c is None or c[0] not in self.writer:
            return None
        key, free = c
        if self.writer[key] == self.current:
            def store(var, printer):
                if key not in self.buffers:
                    self.buffers[key] = self.new_buffer(tuple(extent(i) for i in free))
                subs = ", ".join(printer._print(i) for i in free)
                kept = f"  # kept for {', '.join(self.readers[key])} (computed once)"
                return f"{self.buffers[key]}[{subs}] = {printer._print(var)}{kept}"
            return "write", store
        if key in self.buffers:
            return "read", sp.IndexedBase(self.buffers[key])[tuple(free)]
        return None


def flat_sum(r):
    """``Σ_c Σ_u Σ_v b`` as ``Σ_{c,u,v} b``: one accumulator, not one per level."""
    while isinstance(r, ISum) and isinstance(r.body, ISum):
        r = ISum(r.body.body, *r.indices, *r.body.indices)
    return r


@functools.lru_cache(maxsize=4096)  # the plan and the printing both ask
def canonical(r):
    """(text, free indices) naming reduction ``r`` up to the names of its indices, or None.

    Bound indices are renamed in order of appearance; free indices are tried in every
    order (there are few) and the smallest text wins, so ``lse_j z[n, j]`` and
    ``lse_k z[m, k]`` get the same text with ``n`` and ``m`` as their free index.
    """
    fs = r.free_symbols
    free = sorted((i for i in r.atoms(sp.Idx) if i in fs or i.label in fs), key=str)
    if not free or len(free) > 3:
        return None
    bound, k = {}, 0
    for op in sp.preorder_traversal(r):
        if isinstance(op, IndexOp):
            for i in op.indices:
                if i not in bound:
                    bound[i] = sp.Idx(f"_b{k}", (i.lower, i.upper))
                    k += 1
    best = None
    for perm in itertools.permutations(free):
        names = {i: sp.Idx(f"_f{k}", (i.lower, i.upper)) for k, i in enumerate(perm)}
        text = sp.srepr(r.xreplace({**bound, **names}))
        if best is None or text < best[0]:
            best = (text, perm)
    return best


def lower(expr, scope, memo, shared=None):
    """``expr`` with every reduction replaced by a variable computed in ``scope``."""
    if isinstance(expr, IndexOp):
        key = expr
        if key not in memo:
            found = shared.lookup(expr) if shared is not None else None
            if found and found[0] == "read":
                memo[key] = found[1]
            else:
                memo[key] = _reduction(expr, scope, memo, shared)
                if found:
                    scope.pre[scope.depth(expr)].append(found[1](memo[key], scope.printer))
        return memo[key]
    if not expr.args or isinstance(expr, sp.Idx):
        return expr
    args = [lower(a, scope, memo, shared) for a in expr.args]
    return expr.func(*args) if any(a is not b for a, b in zip(args, expr.args)) else expr


def _reduction(r, scope, memo, shared=None):
    """Emit the loops computing reduction ``r`` at the right level; return its variable."""
    r = flat_sum(r)
    # bound indices become new Idx objects, so nested reductions never capture each
    # other's, named as the derivation names a sum's indices (not those around it)
    fresh, around = [], set(scope.around)
    for i in r.indices:
        new = sp.Idx(f"_bound{len(scope.nest.index)}", i.upper + 1)
        around.add(scope.nest.bound(new, around))
        fresh.append(new)
    body = r.body.xreplace(dict(zip(r.indices, fresh)))
    d = scope.depth(r)
    inner = Scope(scope.indices[:d] + fresh, scope.printer, scope.nest, around, scope.temps)
    inner.pre[:d + 1] = scope.pre[:d + 1]  # levels shared with the enclosing nest
    body = lower(body, inner, memo, shared)
    p = scope.printer
    var = scope.temp({ISum: "acc", LogSumExp: "lse", Argmax: "arg"}[type(r)])
    v = p._print(var)
    lines = []
    loops = [(p._print(i), inner.extent(i)) for i in fresh]
    pres = [[]] + inner.pre[d + 1:]  # hoisted statements inside the reduction's loops
    if isinstance(r, ISum):
        lines += [f"{v} = {p._zero()}"]
        lines += _nest(loops, pres, [f"{v} += {p._print(body)}"])
    elif isinstance(r, LogSumExp):
        m = p._print(scope.temp(f"{v}_max"))
        lines += [f"{m} = {p._minus_inf()}"]
        lines += _nest(loops, pres, [f"{m} = max({m}, {p._print(body)})"])
        lines += [f"{v} = {p._zero()}"]
        lines += _nest(loops, pres, [f"{v} += np.exp({p._print(body)} - {m})"])
        lines += [f"{v} = {m} + np.log({v})"]
    else:
        best = p._print(scope.temp("best"))
        lines += [f"{best} = {p._minus_inf()}", f"{v} = 0"]
        (i_name, _), = loops
        lines += _nest(loops, pres,
                       [f"if {p._print(body)} > {best}:",
                        f"{INDENT}{best} = {p._print(body)}", f"{INDENT}{v} = {i_name}"])
    scope.pre[d].extend(lines)
    return var


def _nest(loops, pres, body):
    """Lines of ``for`` loops around ``body``; ``pres[k]`` (hoisted statements) runs just
    before loop k opens, ``pres[len(loops)]`` inside the innermost loop before ``body``."""
    lines = []
    for depth, ((name, ext), pre) in enumerate(zip(loops, pres)):
        lines += [INDENT * depth + s for s in pre]
        lines.append(INDENT * depth + f"for {name} in range({ext}):")
    depth = len(loops)
    if len(pres) > depth:
        lines += [INDENT * depth + s for s in pres[depth]]
    lines += [INDENT * depth + s for s in body]
    return lines


def loops(target, indices, rhs, printer, *, mode="=", lhs=None, names=None, summed=(),
          scalar=False, shared=None):
    """Lines computing ``target[lhs or indices] (mode) rhs`` for every value of indices.

    ``scalar`` targets (0-d tensors) are plain variables; ``shared`` (a :class:`Shared`)
    lets reductions computed by an earlier assignment be read instead of recomputed.
    ``names`` (a :class:`kernels.names.Names`) holds the names the module reserves;
    loops and temporaries are named per nest (:mod:`kernels.names`), the indices in
    ``summed`` (a sum's, printed as loops around its outputs) as a sum's indices.
    """
    rhs = sp.sympify(rhs)
    nest = (names or Names()).nest([rhs, target, *(lhs or ())])
    nest.free([i for i in indices if i not in summed])
    for i in summed:
        nest.bound(i, set(nest.index.values()))
    saved, printer.loop_names = printer.loop_names, nest.index
    try:
        return _loops(target, indices, rhs, printer, nest, mode, lhs, scalar, shared)
    finally:
        printer.loop_names = saved


def _loops(target, indices, rhs, printer, nest, mode, lhs, scalar, shared):
    scope = Scope(indices, printer, nest)
    expr = lower(rhs, scope, {}, shared)
    subs, (expr,) = sp.cse([expr], symbols=(sp.Symbol(f"_cse{k}") for k in itertools.count()))
    # common subexpressions are temporaries too: cse, cse2, ...
    named = {s: scope.temp("cse") for s, _ in subs}
    subs = [(named[s], v.xreplace(named)) for s, v in subs]
    expr = expr.xreplace(named)
    body = [f"{printer._print(s)} = {printer._print(v)}" for s, v in subs]
    where = lhs if lhs is not None else indices
    ref = target if scalar else f"{target}[{', '.join(printer._print_index(i) for i in where)}]"
    op = "+=" if mode == "+=" else "="
    loops_ = [(printer._print(i), scope.extent(i)) for i in indices]
    guard = _zero_guard(expr, scope) if mode == "+=" and not subs else None
    if guard is None:
        body.append(f"{ref} {op} {printer._print(expr)}")
        return _nest(loops_, scope.pre, body)
    d, factor = guard
    var = printer._print(scope.temp("factor"))
    rest = expr.xreplace({factor: sp.Symbol(var)})
    outer = _nest(loops_[:d], scope.pre[:d] + [scope.pre[d] + [
        f"{var} = {printer._print(factor)}"]], [f"if {var} != 0:  # zero terms add nothing"])
    inner = _nest(loops_[d:], [[]] + scope.pre[d + 1:], [f"{ref} {op} {printer._print(rest)}"])
    return outer + [INDENT * (d + 1) + line for line in inner]


def _zero_guard(expr, scope):
    """(level, factor) to skip an accumulation's inner loops where a factor is zero.

    In ``K_bar[i, j, k, l] += x[n, j, p+k, q+l] * y_bar[n, i, p, q]`` the factor ``y_bar``
    is fixed inside the (j, k, l) loops, and after a ReLU and a max-pool most of it is
    zero: testing it once skips 9 multiply-adds (as hand-written conv backward passes
    do). Adding ``0 * x`` is skipped, which differs only if ``x`` is inf or NaN.
    """
    if not isinstance(expr, sp.Mul):
        return None
    best = None
    for factor in expr.args:
        # zeros come from adjoints (a ReLU's or a max-pool's); a forward value is dense
        if not (isinstance(factor, sp.Indexed) and factor.base.label.name.endswith("_bar")):
            continue
        if factor.free_symbols & scope.temps:  # computed inside the nest
            continue
        d = scope.depth(factor)
        if any(scope.pre[d + 1:]):  # statements hoisted inside (a shared store) must run
            continue
        if 0 < d < len(scope.indices) and (best is None or d < best[0]):
            best = (d, factor)
    return best
