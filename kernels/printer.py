"""The numba printer: scalar index expressions -> numba-compilable Python.

:class:`NumbaPrinter` is a SymPy ``PythonCodePrinter`` with a ``_print_<Class>`` method
only where numba code differs from Python's: tensor elements, Kronecker deltas,
piecewise definitions, and every elementwise function, whose source is the ``kernel``
column of its row in the function registry (:mod:`derive.functions`). The helper
functions printed code may call (``tanh_f32``, ``gemm``) are here too, as source text.
Loop nests around the printed expressions are :mod:`kernels.loop_nests`.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from derive.functions import FUNCTIONS

INDENT = "    "


class NumbaPrinter(PythonCodePrinter):
    """Prints scalar SymPy expressions as numba-compilable Python.

    ``names`` maps Symbols (0-d tensors, dimensions) to the variable names the kernel
    uses; while a loop nest prints, ``loop_names`` maps its indices to its loop variables
    (:func:`loops`); ``float_type`` wraps float literals (``"np.float32"``) so float32
    kernels do not compute in float64.
    """

    def __init__(self, names=None, float_type=None):
        super().__init__({"fully_qualified_modules": False, "standard": "python3"})
        self.names = names or {}
        self.loop_names = {}
        self.float_type = float_type
        self.int_inputs = set()  # integer inputs (token ids) the kernels hold as floats

    # -- leaves -------------------------------------------------------------------------
    def _print_Symbol(self, e):
        return self.names.get(e, e.name)

    def _print_Idx(self, e):
        return self.loop_names.get(e) or self.names.get(e, str(e.label))

    def _print_Indexed(self, e):
        subs = ", ".join(self._print_index(i) for i in e.indices)
        return f"{e.base.label}[{subs}]"

    def _print_index(self, i):
        text = self._print(i)
        held = isinstance(i, sp.Indexed) and str(i.base.label) in self.int_inputs
        return text if not (isinstance(i, sp.Float) or held) else f"int({text})"

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
# tanh_f32 is a plain njit function: LLVM inlines it into each loop and vectorises the
# loop as before; numba's inline="always" re-typed its body at every call site (~2 s of
# an LSTM's cold compile)
TANH_F32 = '''
@njit(cache=True, nogil=True, error_model="numpy")
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
# c = alpha * (a @ b) + beta * c in one BLAS call (numba's np.dot has no alpha or beta);
# compiled once per machine for every kernel (kernels/runtime.py)
from kernels.runtime import gemm
'''
MATMUL = '''
# c = a @ b into c for matrices of any layout, compiled once per machine (kernels/runtime.py)
from kernels.runtime import matmul
'''
HELPERS = {"tanh_f32(": TANH_F32, "gemm(": GEMM, "matmul(": MATMUL}


def helpers(text):
    """Source of the helper functions ``text`` calls (defined before their callers)."""
    return "".join(src for call, src in HELPERS.items() if call in text)
