"""What every worked-example kind shares: reading numbers and arrays, and naming entries.

Numbers from a problem file become SymPy numbers: YAML ints are exact, strings such as
``"1/2"`` or ``"sqrt(2)"`` are parsed by the whitelist parser (exact), floats stay floats
(``sympy.Float``). Arrays are nested Python lists of such numbers, checked rectangular.

Worked steps hold SymPy objects only (symbols, numbers, matrices, arithmetic as written
by :mod:`derive.stepforms`); ``reports`` typesets them, decimals and line breaks included.
"""
from __future__ import annotations

import sympy as sp

from derive.errors import InputError, ShapeError
from derive.scalar.parse import parse_number
from derive.problem import get
from derive.stepforms import approx, plus, times

#: Shown once in every worked example whose inputs were exact.
EXACT_NOTE = "Inputs are exact, so every value is kept exact (fractions and radicals)."


# -- reading ----------------------------------------------------------------------------
def number(value, where):
    """One number from a problem file (int exact, float kept, string parsed exactly)."""
    if isinstance(value, sp.Basic) and value.is_number:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(f"expected a number, got {value!r:.40}", where=where)
    return parse_number(value, where=where)


def array(value, where, ndim=None, name="value"):
    """A (nested) list of numbers, rectangular; ``ndim`` is an int or a tuple of allowed ranks.

    Returns the nested list of SymPy numbers (a scalar for rank 0).
    """
    out = _read(value, where)
    return _with_rank(out, ndim, name, where)


def _with_rank(out, ndim, name, where):
    """``out`` when its rank is ``ndim`` (an int, a tuple of them, or None: any)."""
    rank = len(shape(out))
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is not None and rank not in allowed:
        want = " or ".join(str(r) for r in allowed)
        raise ShapeError(f"{name} must have {want} dimension(s), got shape "
                         f"{dims(shape(out))}", where=where)
    return out


def _read(value, where):
    return _read_leaves(value, where, number)


def shape(nested):
    """The shape of a rectangular nested list (``()`` for a scalar)."""
    dims_ = []
    while isinstance(nested, list):
        dims_.append(len(nested))
        nested = nested[0]
    return tuple(dims_)


def dims(shape_):
    """``(3, 4)`` as ``"3x4"`` for messages."""
    return "x".join(str(s) for s in shape_) or "scalar"


def key_number(spec, key, where, default=None):
    """``spec[key]`` as a number (``default`` if absent, which may be None)."""
    if key not in spec:
        return default
    return number(spec[key], f"{where}: {key}")


def key_int(spec, key, where, default=None, minimum=1):
    """``spec[key]`` as a Python int at least ``minimum`` (ShapeError otherwise)."""
    value = get(spec, key, where, default=default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"expected an integer, got {value!r:.40}", where=f"{where}: {key}")
    if value < minimum:
        raise ShapeError(f"must be at least {minimum}, got {value}", where=f"{where}: {key}")
    return value


def key_choice(spec, key, where, choices, default):
    """``spec[key]`` as one of ``choices`` (strings)."""
    value = get(spec, key, where, default=default)
    if value not in choices:
        raise InputError(f"expected one of {', '.join(map(str, choices))}; got {value!r:.40}",
                         where=f"{where}: {key}")
    return value


def key_bool(spec, key, where, default):
    """``spec[key]`` as a bool."""
    return get(spec, key, where, types=bool, default=default)


def all_exact(*arrays):
    """True if every number in the (nested) arguments is exact (no Float anywhere)."""
    for a in arrays:
        if isinstance(a, list):
            if not all_exact(*a):
                return False
        elif a is not None and isinstance(a, sp.Basic) and a.has(sp.Float):
            return False
    return True


# -- arithmetic ---------------------------------------------------------------------------
def tidy(value):
    """A value in its simplest exact form (Floats are left as they are)."""
    value = sp.sympify(value, strict=True)
    if value.is_Number or value.has(sp.Float):
        return value
    if value.is_algebraic:
        simpler = sp.radsimp(value)  # rationalises denominators, exactly
    elif sp.count_ops(value) <= 40:  # bounded: simplify is slow on large expressions
        simpler = sp.simplify(value)
    else:
        return value
    return simpler if sp.count_ops(simpler) <= sp.count_ops(value) else value


def with_approx(value):
    """``[value]``, or ``[value, Approx(decimal)]`` when the exact value is not a plain number."""
    value = sp.sympify(value, strict=True)
    if value.is_Rational or value.is_Float:
        return [value]
    return [value, approx(value)]


def said(value):
    """A number of the problem as plain text for a note or a title: a float as the file wrote
    it (``0.01``, not ``0.0100000000000000``), an exact number as SymPy writes it (``9/10``)."""
    if isinstance(value, (sp.Float, float)):
        return repr(float(value))
    return str(value)


def mean(values):
    """The arithmetic mean of a list of numbers (exact when they are)."""
    return sp.Add(*values) / len(values)


def tolist(nested, fn):
    """Apply ``fn`` to every leaf of a nested list."""
    if isinstance(nested, list):
        return [tolist(v, fn) for v in nested]
    return fn(nested)


# -- steps ------------------------------------------------------------------------------------
def products(pairs):
    """``a_1 b_1 + a_2 b_2 + ...`` as written, for pairs of numbers."""
    return plus(*[times(a, b) for a, b in pairs])


def matrix(nested):
    """A nested list as a SymPy Matrix (a vector as a row) for display in a Step."""
    if not isinstance(nested, list):
        return sp.sympify(nested, strict=True)
    if not isinstance(nested[0], list):
        return sp.Matrix([nested])
    if isinstance(nested[0][0], list):
        raise ValueError("matrix() takes at most two dimensions")
    return sp.Matrix(nested)


def entry(name, *indices):
    """The symbol of an entry, ``entry("x", 0, 1)`` -> ``x_1_2`` (1-based, as exam answers
    number entries; printed x_{1,2})."""
    return sp.Symbol("_".join([name] + [str(i + 1) for i in indices]))


def symbol(name, *subscripts):
    """``symbol("theta", 3)`` -> the symbol ``theta_3``; no subscripts: ``theta``."""
    return sp.Symbol("_".join([name] + [str(s) for s in subscripts]))


# -- declared symbols ---------------------------------------------------------------------------
#: What a kind says about its declared symbols, for the derivation's note.
SYMBOLS_NOTE = "{names} are symbols (declared under 'symbols'): the steps are exact in them."


def declared_symbols(spec, where, **assumptions):
    """The names a problem file declares under ``symbols: [a, b]``, as SymPy symbols with
    ``assumptions`` (``real=True`` for values, ``positive=True, integer=True`` for sizes);
    ``{}`` when the key is absent. A name must be an identifier and not a function or
    constant of the expression language (``exp``, ``pi``)."""
    from derive.scalar.parse import CONSTANTS, FUNCTIONS, check_identifier

    names = get(spec, "symbols", where, types=list, default=[])
    out = {}
    for i, name in enumerate(names):
        at = f"{where}: symbols[{i}]"
        check_identifier(name, at)
        if name in FUNCTIONS or name in CONSTANTS:
            raise InputError(f"{name!r} is a {'function' if name in FUNCTIONS else 'constant'}"
                             " of the expression language; choose another name", where=at)
        if name in out:
            raise InputError(f"symbol {name!r} is declared twice", where=at)
        out[name] = sp.Symbol(name, **assumptions)
    return out


def value(raw, where, symbols):
    """One entry of a problem file that may be an expression in the declared ``symbols``
    (a dict name -> Symbol, possibly empty): numbers as :func:`number`, text through the
    whitelist parser. A name that is not declared is an InputError naming it."""
    from derive.scalar.parse import Parser

    if not isinstance(raw, str) or symbols is None:
        return number(raw, where)
    parser = Parser(names=symbols, unknown="symbol", where=where)
    expr = parser.parse(raw)
    if parser.mentioned:
        name = next(iter(parser.mentioned))
        declared = f"declared: {', '.join(symbols)}" if symbols else "none is declared"
        raise InputError(f"symbol {name!r} is used but not declared ({declared}; add it to "
                         f"'symbols: [...]')", where=where)
    return expr


def symbolic_array(raw, where, symbols, ndim=None, name="value"):
    """:func:`array` whose entries may be expressions in the declared ``symbols`` (None:
    numbers only, as :func:`array`)."""
    if symbols is None:
        return array(raw, where, ndim, name)
    out = _read_leaves(raw, where, lambda v, at: value(v, at, symbols))
    return _with_rank(out, ndim, name, where)


def _read_leaves(raw, where, leaf):
    if isinstance(raw, (list, tuple)):
        if not raw:
            raise ShapeError("empty list (sizes must be positive)", where=where)
        items = [_read_leaves(v, f"{where}[{i}]", leaf) for i, v in enumerate(raw)]
        first = shape(items[0])
        for i, item in enumerate(items[1:], 1):
            if shape(item) != first:
                raise ShapeError(f"inconsistent shapes: entry {i} has shape {dims(shape(item))}"
                                 f" but entry 0 has {dims(first)}", where=where)
        return items
    return leaf(raw, where)


def key_constant(spec, key, where, default, symbols):
    """``spec[key]`` as a number where a symbol cannot stand (``eps``, ``momentum``): a
    value that uses a declared symbol gets one line saying so."""
    raw = spec.get(key) if isinstance(spec, dict) else None
    if isinstance(raw, str) and symbols:
        expr = value(raw, f"{where}: {key}", symbols)
        if not expr.is_number:
            raise InputError(f"{key} must be a number, not an expression in the declared "
                             f"symbols ({', '.join(sorted(map(str, expr.free_symbols)))})",
                             where=f"{where}: {key}")
    return key_number(spec, key, where, default)


def symbolic(*arrays):
    """The declared symbols that occur in the (nested) arguments, sorted by name."""
    found = set()
    for a in arrays:
        if isinstance(a, list):
            found |= set(symbolic(*a))
        elif isinstance(a, sp.Basic):
            found |= a.free_symbols
    return sorted(found, key=lambda s: s.name)


def shown(value):
    """The forms a value is shown in: :func:`with_approx` for a number, the value alone
    when it holds symbols (it has no decimal)."""
    value = sp.sympify(value, strict=True)
    return [value] if value.free_symbols else with_approx(value)


def tidy_symbolic(value):
    """:func:`tidy`, and for an expression in symbols the shortest of it as it stands,
    simplified, over one denominator, factored and expanded (``(a + b + c)/3`` rather than
    ``a/3 + b/3 + c/3``; ``1/(1 + exp(-z))`` stays as written)."""
    value = sp.sympify(value, strict=True)
    if not value.free_symbols or value.has(sp.Float) or sp.count_ops(value) > 200:
        return tidy(value)
    forms = [value, tidy(value), sp.together(value), sp.factor(value), sp.expand(value)]
    return min(forms, key=sp.count_ops)
