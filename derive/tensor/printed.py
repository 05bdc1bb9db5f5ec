"""Printed = computed: every index form a tensor Derivation shows, evaluated as printed.

A displayed element form (``[rhs]_(n,i,j)`` with plain Symbols for every index, as the
reports print it) is read back the way a reader reads it: a label on the left runs over the
tensor's shape, a summed index over the axis of the tensor it indexes (or, for an offset in
a pooling window, printed ``x_{n,i,2j+l,2k+p}``, over the layer's window). It is evaluated at
one random point (``derive.tensor.evaluate``) and compared entry by entry with the
derivation's own arrays (``Program.run``): forward definitions, adjoints, gradients, each
edge's contribution, and each edge's local partial (a Jacobian, contracted with the adjoint
above it). :func:`check_printed` raises :class:`PrintedFormError` naming the derivation, the
field and the formula on the first disagreement. Forms whose index ranges cannot be read, or
whose derivation cannot be run at any of a few small sizes, are skipped and counted.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from derive.errors import DeriveError
from derive.tensor.display import ElementForm
from derive.tensor.evaluate import evaluate_expr
from derive.tensor.index import IndexOp, ISum

#: small sizes tried in turn for a derivation's symbolic dimensions (the first that runs)
SIZE_TABLES = (
    {"B": 2, "C": 2, "F": 3, "H": 5, "W": 6, "d": 3, "h": 2, "T": 3, "V": 5, "D": 3,
     "M": 2, "d_k": 2, "d_h": 2, "d_m": 3},
    {},
    {"H": 6, "W": 6},
)
DEFAULT_SIZE = (3, 4, 4)
RTOL, ATOL = 1e-7, 1e-9


class PrintedFormError(DeriveError):
    """A formula a document would print disagrees with the derivation's own numbers."""


class Unreadable(Exception):
    """The range of an index in a printed form cannot be read (the form is skipped)."""


def _direct_axis(body, label, arrays):
    """The length of an axis ``label`` indexes directly in ``body`` (None if none does)."""
    for e in sp.preorder_traversal(body):
        if isinstance(e, sp.Indexed) and str(e.base) in arrays:
            for pos, i in enumerate(e.indices):
                if i == label:
                    return np.shape(arrays[str(e.base)])[pos]
    return None


def _delta_axis(body, label, scope):
    """The range of ``label`` read from a Kronecker delta pairing it with an index whose
    range is known (``Σ_r δ_{j,r} ...``, r runs where j does); None if none does."""
    for e in sp.preorder_traversal(body):
        if isinstance(e, sp.KroneckerDelta) and label in e.args:
            other = e.args[1] if e.args[0] == label else e.args[0]
            idx = scope.get(other)
            if isinstance(idx, sp.Idx) and idx.upper is not None:
                return int(idx.upper) + 1
    return None


def _as_index_form(e, scope, arrays, window=None):
    """The printed ``e`` with each index label made an Idx over the range it reads as."""
    if isinstance(e, IndexOp):
        inner = dict(scope)
        for s in e.indices:
            size = _direct_axis(e.body, s, arrays) or _delta_axis(e.body, s, scope) \
                or window
            if size is None:
                raise Unreadable(f"the range of summed index {s} cannot be read in {e}")
            inner[s] = sp.Idx(str(s), size)
        body = _as_index_form(e.body, inner, arrays, window)
        return sp.Expr.__new__(type(e), body, *[inner[s] for s in e.indices])
    if isinstance(e, sp.Sum):  # Σ with printed limits (a, 0, 2): an index over hi - lo + 1
        body, inner, labels = e.function, dict(scope), []
        for s, lo, hi in e.limits:
            if lo != 0:
                body, hi = body.xreplace({s: s + lo}), hi - lo
            size = _as_index_form(sp.sympify(hi), scope, arrays, window) + 1
            if not size.is_Integer:
                raise Unreadable(f"the range of summed index {s} cannot be read in {e}")
            inner[s] = sp.Idx(str(s), int(size))
            labels.append(inner[s])
        return ISum(_as_index_form(body, inner, arrays, window), *labels)
    if isinstance(e, sp.Symbol):
        return scope.get(e, e)
    if isinstance(e, sp.Indexed):
        return e.base[tuple(_as_index_form(i, scope, arrays, window) for i in e.indices)]
    if not e.args:
        return e
    return e.func(*[_as_index_form(a, scope, arrays, window) for a in e.args])


def evaluate_printed(form, shape, env, window=None):
    """An ElementForm as printed, evaluated over ``shape`` against ``env``'s arrays."""
    if not isinstance(form, ElementForm) or len(form.labels) != len(shape):
        raise Unreadable(f"{form} is not an index form over {len(shape)} indices")
    free = {s: sp.Idx(str(s), n) for s, n in zip(form.labels, shape)}
    scope = {**{k: v for k, v in env.dims.items() if k not in free}, **free}
    rhs = _as_index_form(form.rhs, scope, env.arrays, window)
    return evaluate_expr(rhs, [free[s] for s in form.labels], env)


def printed_forms(d):
    """(what, array name, printed form) of every node/adjoint/gradient element form."""
    out = [(f"{n.name} (forward definition, index form)", n.name, n.definition)
           for n in d.nodes if isinstance(n.definition, ElementForm)]
    out += [(f"{a.name}_bar (adjoint, index form)", f"{a.name}_bar", a.in_nodes)
            for a in d.adjoints if isinstance(a.in_nodes, ElementForm)]
    grads = d.program.grads
    out += [(f"d/d{w} (gradient, index form)", grads[w], g.expression)
            for w, g in d.gradients.items()
            if isinstance(g.expression, ElementForm) and w in grads]
    return out


# -- a random point ---------------------------------------------------------------------------


def _size(sym, table, attempt):
    return table.get(str(sym), DEFAULT_SIZE[attempt % len(DEFAULT_SIZE)])


def random_values(program, seed=0, attempt=0):
    """Random values for every leaf of ``program`` at small sizes (attempt picks a table)."""
    table = SIZE_TABLES[attempt % len(SIZE_TABLES)]
    dims = {s: sp.Integer(_size(s, table, attempt)) for s in program.dims}
    rng = np.random.default_rng(seed)
    values = {}

    def concrete(x):
        return int(sp.sympify(x).xreplace(dims))

    for info in program.tensors.values():
        if info.role in ("node", "adjoint") or info.name in program.given \
                or info.name in program.random:
            continue
        shape = [concrete(s) for s in info.shape]
        if info.role == "mask":  # a mask given as data (0 or 1)
            values[info.name] = rng.integers(0, 2, shape).astype(float)
        elif info.dtype == "int":
            values[info.name] = rng.integers(0, concrete(info.meta["classes"]), shape)
        elif info.role == "state":
            values[info.name] = rng.uniform(0.5, 1.5, shape)
        elif attempt == 0:
            values[info.name] = rng.normal(size=shape)
        else:  # inside (0, 1): probabilities, logs and square roots are defined there
            values[info.name] = rng.uniform(0.2, 0.8, shape)
    return values


def _finite(arrays):
    return all(np.all(np.isfinite(np.asarray(v, dtype=float))) for v in arrays.values()
               if np.asarray(v).dtype.kind in "fi")


def instance(program, seed=0):
    """(values, upstream, run arrays, env) at the first small size that runs and is finite."""
    last = None
    for attempt in range(len(SIZE_TABLES)):
        try:
            values = random_values(program, seed, attempt)
            env = program.environment(values)
            out_shape = np.shape(env.arrays[program.seed])
            upstream = np.random.default_rng(seed + 1).normal(size=out_shape) \
                if out_shape else 1.0
            with np.errstate(all="ignore"):
                arrays = program.run(values, upstream)
            if not _finite(arrays):
                continue
            arrays.update({a: arrays[t] for a, t in program.aliases.items() if t in arrays})
            env = program.environment(values, upstream)
            env.arrays = dict(arrays)
            return values, upstream, arrays, env
        except (DeriveError, ValueError, TypeError, KeyError, IndexError) as e:
            last = e
    return None, None, None, last


# -- the check --------------------------------------------------------------------------------


def _compare(d, what, name, got, want):
    want = np.asarray(want, dtype=float)
    got = np.broadcast_to(np.asarray(got, dtype=float), want.shape)
    diff = np.abs(got - want)
    bad = ~(diff <= ATOL + RTOL * np.abs(want))
    if np.any(bad):
        idx = np.unravel_index(int(np.argmax(np.where(bad, diff, -1))), want.shape) \
            if want.shape else ()
        entry = "(" + ",".join(str(int(i)) for i in idx) + ")"
        worst = diff[idx] if want.shape else float(diff)
        raise PrintedFormError(f"printed {what} disagrees with the computed {name} by "
                               f"{worst:.3g} at entry {entry}", where=d.title)


def _skip(counts, what, why, n=1):
    """Count ``n`` forms not checked, and say which and why (``counts["skips"]``)."""
    counts["skipped"] += n
    counts.setdefault("skips", []).append((what, why))


def check_printed(d, seed=0, window=None):
    """Evaluate every index form ``d`` prints against ``d.program``'s numbers.

    Returns ``{"checked": n, "skipped": m}``; raises PrintedFormError on a disagreement.
    A derivation without a program is not checked here (``checked`` 0).
    """
    counts = {"checked": 0, "skipped": 0}
    if d.program is None:
        return counts
    window = window if window is not None else d.meta.get("window")
    values, upstream, arrays, env = instance(d.program, seed)
    if values is None:
        _skip(counts, "every form", f"the program cannot run: {env}",
              len(printed_forms(d)) + len(d.edges))
        counts["unrunnable"] = str(env)
        return counts

    def evaluate(form, shape):
        with np.errstate(all="ignore"):
            return evaluate_printed(form, shape, env, window)

    for what, name, form in printed_forms(d):
        if name not in arrays:
            _skip(counts, what, f"the program computes no {name}")
            continue
        want = np.asarray(arrays[name], dtype=float)
        try:
            got = evaluate(form, want.shape)
        except Unreadable as e:
            _skip(counts, what, str(e))
            continue
        _compare(d, what, name, got, want)
        counts["checked"] += 1
    _check_edges(d, arrays, evaluate, counts)
    _check_matrix_forms(d, arrays, env, counts)
    _check_steps(d, arrays, env, evaluate, counts, window)
    return counts


def _display_names(env, arrays):
    """Name -> value as the matrix display evaluator reads them: dimensions as numbers,
    1-D tensors as rows (matrix forms write vectors as rows)."""
    names = {str(k): float(v) for k, v in env.dims.items()}
    names.update({str(k): float(v) for k, v in getattr(env, "constants", {}).items()})
    names.update({k: (np.asarray(v, dtype=float).reshape(1, -1) if np.ndim(v) == 1 else
                      np.asarray(v, dtype=float)) for k, v in arrays.items()})
    return names


def _check_steps(d, arrays, env, evaluate, counts, window=None):
    """The worked sections' steps ``t[n, i] = form = form ...`` whose left side is a tensor
    the program computes (forward passes, adjoints, the compact BatchNorm form): each form
    on the right, index or matrix, against that tensor."""
    from derive.verify.tensor.answer_eval import display_value

    names = _display_names(env, arrays)
    for section in d.sections:
        for step in section.steps:
            lhs, forms = getattr(step, "lhs", None), getattr(step, "rhs", None)
            if not isinstance(lhs, sp.Indexed) or str(lhs.base) not in arrays \
                    or not isinstance(forms, (list, tuple)):
                continue
            name = str(lhs.base)
            want = np.asarray(arrays[name], dtype=float)
            labels = lhs.indices
            if len(labels) != want.ndim:
                _skip(counts, f"{name} ({section.title})", f"left side {lhs} does not "
                      f"index {name}'s {want.ndim} axes", len(forms))
                continue
            if not all(isinstance(i, sp.Symbol) for i in labels):
                _check_indexed_step(d, section, lhs, forms, want, env, window, counts)
                continue
            aux = {a: f(arrays) for a, f in getattr(step, "auxiliary", {}).items()}
            env.arrays = {**arrays, **aux}
            for k, form in enumerate(forms):
                what = f"{name} ({section.title}, form {k + 1})"
                try:
                    if getattr(form, "is_Matrix", False):
                        with np.errstate(all="ignore"):
                            got = np.asarray(display_value(form, names), dtype=float)
                        if got.size != want.size:
                            raise Unreadable(what)
                        got = got.reshape(want.shape)
                    else:
                        if not isinstance(form, ElementForm):
                            form = ElementForm(form, *labels)
                        got = evaluate(form, want.shape)
                except (Unreadable, DeriveError, KeyError, ValueError, TypeError,
                        AttributeError, IndexError) as e:
                    _skip(counts, what, f"{type(e).__name__}: {e}")
                    continue
                _compare(d, what, name, got, want)
                counts["checked"] += 1
            env.arrays = arrays


def _check_indexed_step(d, section, lhs, forms, want, env, window, counts):
    """A step whose left side is read through index expressions: a gather into the entries
    it names (``s_next[0, i] = ...``, ``y[n, HWi + Wj + k] = x[n, i, j, k]``), or a
    scatter-accumulate from zero (``x̄p[n, i, 2k + l, 2j + m] = Σ_p K ȳ + x̄p[...]``: the
    left side appears on the right). Each form is evaluated over its labels' ranges and
    put (or added) where the left side's indices point, then compared with the tensor."""
    name = str(lhs.base)
    bases = {e.base.label for i in lhs.indices for e in i.atoms(sp.Indexed)}
    labels = sorted({s for i in lhs.indices for s in i.free_symbols if isinstance(s, sp.Symbol)
                     and s not in env.dims and s not in bases}, key=str)
    for k, form in enumerate(forms):
        what = f"{name} ({section.title}, form {k + 1})"
        try:
            rhs = form.rhs if isinstance(form, ElementForm) else form
            if not isinstance(rhs, sp.Basic):  # a side given as text (LaTeX) is not read
                raise Unreadable(f"{what} is {type(rhs).__name__}, not a SymPy form")
            accumulate = rhs.has(lhs)
            increment = rhs.xreplace({lhs: sp.S.Zero})
            sizes = [_label_size(s, lhs, increment, want.shape, env.arrays, window)
                     for s in labels]
            with np.errstate(all="ignore"):
                got = np.broadcast_to(evaluate_printed(ElementForm(increment, *labels),
                                                       sizes, env, window), sizes)
                at = tuple(_index_grid(i, labels, sizes, env, window) for i in lhs.indices)
        except (Unreadable, DeriveError, KeyError, ValueError, TypeError, AttributeError,
                IndexError) as e:
            _skip(counts, what, f"{type(e).__name__}: {e}")
            continue
        if accumulate:
            built = np.zeros(want.shape)
            np.add.at(built, at, got)
            _compare(d, what + ", accumulated from zero", name, built, want)
        else:
            _compare(d, what + ", the entries it writes", name, got, want[at])
        counts["checked"] += 1


def _index_grid(index, labels, sizes, env, window):
    """The integer values of one left-side index over the labels' grid."""
    if index in labels:
        pos = labels.index(index)
        shape = [1] * len(labels)
        shape[pos] = sizes[pos]
        return np.broadcast_to(np.arange(sizes[pos]).reshape(shape), sizes)
    if index.is_Integer:
        return np.full(sizes, int(index))
    values = evaluate_printed(ElementForm(index, *labels), sizes, env, window)
    return np.broadcast_to(np.rint(values), sizes).astype(int)


def _label_size(label, lhs, rhs, shape, arrays, window=None):
    """The range of a label: the axis it indexes plainly on the left, else on the right."""
    for pos, i in enumerate(lhs.indices):
        if i == label:
            return shape[pos]
    size = _direct_axis(rhs, label, arrays) or window
    if size is None:
        raise Unreadable(f"the range of index {label} cannot be read in {rhs}")
    return size


def matrix_forms(d):
    """(what, array name, printed matrix form) of every matrix form the derivation shows."""
    def is_matrix(e):
        return isinstance(e, sp.Basic) and getattr(e, "is_Matrix", False)

    out = [(f"{n.name} (forward definition, matrix form)", n.name, n.definition)
           for n in d.nodes if is_matrix(n.definition)]
    out += [(f"{a.name}_bar (adjoint, matrix form)", f"{a.name}_bar", a.in_nodes)
            for a in d.adjoints if is_matrix(a.in_nodes)]
    grads = d.program.grads
    out += [(f"d/d{w} (gradient, matrix form)", grads[w], g.expression)
            for w, g in d.gradients.items() if is_matrix(g.expression) and w in grads]
    edges = {}
    for e in d.edges:
        edges.setdefault(e.src, []).append(e)
    partial = set(d.meta.get("elided_uses", ()))  # some uses are in elided steps
    for src, into in edges.items():  # the contributions into an adjoint add up to it
        if src not in partial and all(getattr(e.contribution, "is_Matrix", False) for e in into):
            out.append((f"contributions into {src}_bar (edge contributions, matrix form), "
                        "added", f"{src}_bar", sp.MatAdd(*[e.contribution for e in into])
                        if len(into) > 1 else into[0].contribution))
    return out


def _check_matrix_forms(d, arrays, env, counts):
    """The matrix display, evaluated with NumPy (derive.verify's display evaluator)."""
    from derive.verify.tensor.answer_eval import display_value

    names = _display_names(env, arrays)
    for what, name, form in matrix_forms(d):
        if name not in arrays:
            _skip(counts, what, f"the program computes no {name}")
            continue
        want = np.asarray(arrays[name], dtype=float)
        try:
            with np.errstate(all="ignore"):
                got = np.asarray(display_value(form, names), dtype=float)
        except (DeriveError, KeyError, ValueError, TypeError, AttributeError) as e:
            _skip(counts, what, f"{type(e).__name__}: {e}")
            continue
        if got.size == want.size:
            got = got.reshape(want.shape)
        elif got.size != 1:
            _skip(counts, what, f"{got.size} entries printed, {want.size} computed")
            continue
        _compare(d, what, name, got, want)
        counts["checked"] += 1


def _check_edges(d, arrays, evaluate, counts):
    """Each edge's printed contribution, and its printed Jacobian contracted with the
    adjoint above it, against each other; the contributions into an adjoint against it."""
    def bar(name):
        return f"{name}_bar" if f"{name}_bar" in arrays else None

    sums = {}
    for e in d.edges:
        shown = [f for f in (e.partial, e.contribution) if isinstance(f, ElementForm)]
        if not shown:
            sums[e.src] = None
            continue
        if bar(e.dst) is None or bar(e.src) is None:
            _skip(counts, f"edge {e.dst} -> {e.src}", "no adjoint array on one end",
                  len(shown))
            sums[e.src] = None
            continue
        src = np.shape(arrays[bar(e.src)])
        dst_bar = np.asarray(arrays[bar(e.dst)], dtype=float)
        contribution = None
        if isinstance(e.contribution, ElementForm):
            try:
                contribution = np.broadcast_to(evaluate(e.contribution, src), src)
                counts["checked"] += 1
            except Unreadable as err:
                _skip(counts, f"contribution of {e.dst} to {e.src}_bar", str(err))
        if isinstance(e.partial, ElementForm):
            try:
                jac = evaluate(e.partial, dst_bar.shape + src)
                jac = np.broadcast_to(jac, dst_bar.shape + src)
                contracted = np.tensordot(dst_bar, jac, axes=dst_bar.ndim)
                counts["checked"] += 1
                if contribution is not None:
                    _compare(d, f"∂{e.dst}/∂{e.src} (local partial, index form) "
                                f"contracted with {e.dst}_bar", f"contribution of {e.dst} "
                             f"to {e.src}_bar", contracted, contribution)
                else:
                    contribution = contracted
            except Unreadable as err:
                _skip(counts, f"∂{e.dst}/∂{e.src} (local partial)", str(err))
        prev = sums.get(e.src, 0)
        sums[e.src] = None if prev is None or contribution is None else prev + contribution
    partial = set(d.meta.get("elided_uses", ()))  # some uses are in elided steps
    for name, total in sums.items():
        if total is not None and name not in partial:
            _compare(d, f"contributions into {name}_bar (edge contributions, index form), "
                        "added", f"{name}_bar", total, arrays[bar(name)])
