"""The numba printer: index-form expressions -> plain Python loops numba compiles.

:class:`NumbaPrinter` is a SymPy ``PythonCodePrinter`` with a ``_print_<Class>`` method
only where numba code differs from Python's: tensor elements, Kronecker deltas,
piecewise definitions, and every elementwise function, whose source is the ``kernel``
column of its row in the function registry (:mod:`derive.functions`).

:func:`loops` turns one assignment ``target[I] = rhs`` into a loop nest. Reductions in the
right-hand side (``ISum``, ``LogSumExp``, ``Argmax``) become accumulator loops *hoisted*
to the outermost loop level whose indices they use: the row-wise log-sum-exp of a
softmax is computed once per row, not once per entry. ``LogSumExp`` is printed stably
(max first, then the sum of ``exp(x - max)``). Common subexpressions of the innermost
statement are shared with ``sympy.cse``.
"""
from __future__ import annotations

import functools
import itertools

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from derive.functions import FUNCTIONS
from derive.tensor.index import Argmax, IndexOp, ISum, LogSumExp, extent

INDENT = "    "


class NumbaPrinter(PythonCodePrinter):
    """Prints scalar SymPy expressions as numba-compilable Python.

    ``names`` maps Symbols (0-d tensors, dimensions, loop indices) to the variable names
    the kernel uses; ``float_type`` wraps float literals (``"np.float32"``) so float32
    kernels do not compute in float64.
    """

    def __init__(self, names=None, float_type=None):
        super().__init__({"fully_qualified_modules": False, "standard": "python3"})
        self.names = names or {}
        self.float_type = float_type

    # -- leaves -------------------------------------------------------------------------
    def _print_Symbol(self, e):
        return self.names.get(e, e.name)

    def _print_Idx(self, e):
        return self.names.get(e, str(e.label))

    def _print_Indexed(self, e):
        subs = ", ".join(self._print_index(i) for i in e.indices)
        return f"{e.base.label}[{subs}]"

    def _print_index(self, i):
        text = self._print(i)
        return text if not isinstance(i, sp.Float) else f"int({text})"

    def _print_Pi(self, e):
        return "np.pi"

    def _print_Exp1(self, e):
        return "np.e"

    def _print_floor(self, e):
        return f"int(np.floor({self._print(e.args[0])}))"

    def _print_ceiling(self, e):
        return f"int(np.ceil({self._print(e.args[0])}))"

    def _print_Integer(self, e):
        return str(int(e))

    def _print_Float(self, e):
        text = repr(float(e))
        return f"{self.float_type}({text})" if self.float_type else text

    def _print_Rational(self, e):
        return self._print_Float(sp.Float(e.p / e.q))

    def _print_Half(self, e):
        return self._print_Rational(e)

    # -- arithmetic ---------------------------------------------------------------------
    def _print_Pow(self, e, rational=False):
        base, ex = e.args
        b = self.parenthesize(base, sp.printing.precedence.PRECEDENCE["Pow"])
        if ex == 2:
            return f"({b}*{b})"
        if ex == -1:
            return f"({self._one()}/{b})"
        if ex == sp.S.Half:
            return f"np.sqrt({self._print(base)})"
        if ex == -sp.S.Half:
            return f"({self._one()}/np.sqrt({self._print(base)}))"
        return f"{b}**{self._print(ex)}"

    def _one(self):
        return self._print_Float(sp.Float(1.0))

    # -- functions ----------------------------------------------------------------------
    def _print_KroneckerDelta(self, e):
        a, b = (self._print(x) for x in e.args)
        return f"({self._one()} if {a} == {b} else {self._zero()})"

    def _minus_inf(self):
        # typed like the data, so max(m, z) and exp(z - m) stay in the data's precision
        return f"{self.float_type}(-np.inf)" if self.float_type else "-np.inf"

    def _zero(self):
        return self._print_Float(sp.Float(0.0))

    def _print_Piecewise(self, e):
        out = self._zero()
        for value, cond in reversed(e.args):
            if cond == sp.true:
                out = self._print(value)
            else:
                out = f"({self._print(value)} if {self._print(cond)} else {out})"
        return out

    def _print_Function(self, e):
        name = type(e).__name__
        if name in ("expm1", "log1p"):
            return f"np.{name}({self._print(e.args[0])})"
        return super()._print_Function(e)

    def _tanh(self):
        # np.tanh is a libm call per element; float32 kernels use a rational tanh_f32
        return "tanh_f32" if self.float_type == "np.float32" else "np.tanh"

    def function(self, row, e):
        """``e`` (an application of the registry function ``row``) as numba source."""
        if callable(row.kernel):
            return row.kernel(self, *e.args)
        names = row.inputs + tuple(p.name for p in row.params)
        args = dict(zip(names, (self._print(a) for a in e.args)))
        return row.kernel.format(one=self._one(), zero=self._zero(), tanh=self._tanh(), **args)

    def _print_IndexOp(self, e):
        raise TypeError(f"{type(e).__name__} must be lowered to loops before printing")

    _print_ISum = _print_LogSumExp = _print_Argmax = _print_IndexOp


def _printer_of(row):
    return lambda self, e: self.function(row, e)


for _row in FUNCTIONS:  # _print_sigmoid, _print_exp, ... from the registry's kernel column
    if _row.cls is not None:
        setattr(NumbaPrinter, f"_print_{_row.cls.__name__}", _printer_of(_row))


# -- helpers the printed code may call ------------------------------------------------
TANH_F32 = '''
@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def tanh_f32(a):
    # tanh in float32 as Eigen (and XLA on CPUs) compute it: a rational function on
    # [-7.9, 7.9] (max abs error 2.7e-7, a few float32 ulps); tanh(a) = a below 4e-4.
    # np.tanh is a libm call per element and stops the loop around it vectorising.
    x = min(max(a, np.float32(-7.90531110763549805)), np.float32(7.90531110763549805))
    x2 = x * x
    p = np.float32(-2.76076847742355e-16)
    p = p * x2 + np.float32(2.00018790482477e-13)
    p = p * x2 + np.float32(-8.60467152213735e-11)
    p = p * x2 + np.float32(5.12229709037114e-08)
    p = p * x2 + np.float32(1.48572235717979e-05)
    p = p * x2 + np.float32(6.37261928875436e-04)
    p = p * x2 + np.float32(4.89352455891786e-03)
    q = np.float32(1.19825839466702e-06)
    q = q * x2 + np.float32(1.18534705686654e-04)
    q = q * x2 + np.float32(2.26843463243900e-03)
    q = q * x2 + np.float32(4.89352518554385e-03)
    return a if abs(a) < np.float32(0.0004) else x * p / q
'''
GEMM = '''
# numba's np.dot has no alpha or beta; numba's own BLAS entry point (numba_xxgemm, which
# calls SciPy's ?gemm) has both, so an update c = beta*c + alpha*(a @ b) is one call
from numba import types as _nb

_xxgemm = _nb.ExternalFunction("numba_xxgemm", _nb.intc(
    _nb.char, _nb.char, _nb.char, _nb.intp, _nb.intp, _nb.intp, _nb.CPointer(_nb.{T}),
    _nb.CPointer(_nb.{T}), _nb.intp, _nb.CPointer(_nb.{T}), _nb.intp,
    _nb.CPointer(_nb.{T}), _nb.CPointer(_nb.{T}), _nb.intp))


@njit(cache=True, nogil=True, error_model="numpy")
def gemm(a, b, c, alpha, beta):
    """c = alpha * (a @ b) + beta * c, in place; a and b may be transposed views."""
    if not c.flags.c_contiguous:
        raise ValueError("gemm: the output must be C-contiguous")
    a = a if (a.flags.c_contiguous or a.flags.f_contiguous) else np.ascontiguousarray(a)
    b = b if (b.flags.c_contiguous or b.flags.f_contiguous) else np.ascontiguousarray(b)
    m, k = a.shape
    n = b.shape[1]
    if m == 0 or n == 0:
        return
    # BLAS is column-major: c (row-major) is c.T to it, and c.T = b.T @ a.T
    ta, lda = (110, k) if a.flags.c_contiguous else (116, m)  # 'n' or 't'
    tb, ldb = (110, n) if b.flags.c_contiguous else (116, k)
    scal = np.empty(2, np.{T})
    scal[0] = alpha
    scal[1] = beta
    if _xxgemm({kind}, tb, ta, n, m, k, scal[0:].ctypes, b.ctypes, ldb, a.ctypes, lda,
               scal[1:].ctypes, c.ctypes, n) != 0:
        raise RuntimeError("gemm: BLAS call failed")
'''
HELPERS = {"tanh_f32(": TANH_F32, "gemm(": GEMM}
BLAS_KIND = {"float32": ("float32", "115"), "float64": ("float64", "100")}  # 's', 'd'


def helpers(text, dtype="float32"):
    """Source of the helper functions ``text`` calls (defined before their callers)."""
    T, kind = BLAS_KIND[dtype]
    return "".join(src.replace("{T}", T).replace("{kind}", kind)
                   for call, src in HELPERS.items() if call in text)


# -- loop nests ---------------------------------------------------------------------------
class Scope:
    """Loop levels of a nest: level d holds the statements run before loop d opens."""

    def __init__(self, indices, printer, counter):
        self.indices = list(indices)
        self.pre = [[] for _ in range(len(self.indices) + 1)]
        self.printer = printer
        self.counter = counter

    def fresh(self, hint):
        return sp.Symbol(f"_{hint}_{next(self.counter)}")

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
    # bound indices get fresh names so nested reductions never shadow each other
    fresh = [sp.Idx(str(scope.fresh(str(i.label))), i.upper + 1) for i in r.indices]
    body = r.body.xreplace(dict(zip(r.indices, fresh)))
    d = scope.depth(r)
    inner = Scope(scope.indices[:d] + fresh, scope.printer, scope.counter)
    inner.pre[:d + 1] = scope.pre[:d + 1]  # levels shared with the enclosing nest
    body = lower(body, inner, memo, shared)
    p = scope.printer
    var = scope.fresh({ISum: "s", LogSumExp: "lse", Argmax: "arg"}[type(r)])
    v = p._print(var)
    lines = []
    loops = [(p._print(i), inner.extent(i)) for i in fresh]
    pres = [[]] + inner.pre[d + 1:]  # hoisted statements inside the reduction's loops
    if isinstance(r, ISum):
        lines += [f"{v} = {p._zero()}"]
        lines += _nest(loops, pres, [f"{v} += {p._print(body)}"])
    elif isinstance(r, LogSumExp):
        m = p._print(scope.fresh("max"))
        lines += [f"{m} = {p._minus_inf()}"]
        lines += _nest(loops, pres, [f"{m} = max({m}, {p._print(body)})"])
        lines += [f"{v} = {p._zero()}"]
        lines += _nest(loops, pres, [f"{v} += np.exp({p._print(body)} - {m})"])
        lines += [f"{v} = {m} + np.log({v})"]
    else:
        best = p._print(scope.fresh("best"))
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


def loops(target, indices, rhs, printer, *, mode="=", lhs=None, counter=None, scalar=False,
          shared=None):
    """Lines computing ``target[lhs or indices] (mode) rhs`` for every value of indices.

    ``scalar`` targets (0-d tensors) are plain variables; ``shared`` (a :class:`Shared`)
    lets reductions computed by an earlier assignment be read instead of recomputed.
    """
    counter = counter if counter is not None else itertools.count()
    scope = Scope(indices, printer, counter)
    expr = lower(sp.sympify(rhs), scope, {}, shared)
    subs, (expr,) = sp.cse([expr], symbols=(sp.Symbol(f"_c{next(counter)}_{k}")
                                            for k in itertools.count()))
    body = [f"{printer._print(s)} = {printer._print(v)}" for s, v in subs]
    where = lhs if lhs is not None else indices
    ref = target if scalar else f"{target}[{', '.join(printer._print(i) for i in where)}]"
    op = "+=" if mode == "+=" else "="
    loops_ = [(printer._print(i), scope.extent(i)) for i in indices]
    guard = _zero_guard(expr, scope) if mode == "+=" and not subs else None
    if guard is None:
        body.append(f"{ref} {op} {printer._print(expr)}")
        return _nest(loops_, scope.pre, body)
    d, factor = guard
    var = printer._print(scope.fresh("d"))
    rest = expr.xreplace({factor: sp.Symbol(var)})
    outer = _nest(loops_[:d], scope.pre[:d] + [scope.pre[d] + [
        f"{var} = {printer._print(factor)}"]], [f"if {var} != 0:  # zero terms add nothing"])
    inner = _nest(loops_[d:], [[]] + scope.pre[d + 1:], [f"{ref} {op} {printer._print(rest)}"])
    return outer + [INDENT * (d + 1) + line for line in inner]


def _zero_guard(expr, scope):
    """(level, factor) to skip an accumulation's inner loops where a factor is zero.

    In ``K_bar[f, c, u, v] += x[n, c, j+u, k+v] * y_bar[n, f, j, k]`` the factor ``y_bar``
    is fixed inside the (c, u, v) loops, and after a ReLU and a max-pool most of it is
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
        if any(str(s).startswith("_") for s in factor.free_symbols if isinstance(s, sp.Symbol)
               and not isinstance(s, sp.Indexed) and s != factor.base.label):
            continue
        d = scope.depth(factor)
        if any(scope.pre[d + 1:]):  # statements hoisted inside (a shared store) must run
            continue
        if 0 < d < len(scope.indices) and (best is None or d < best[0]):
            best = (d, factor)
    return best
