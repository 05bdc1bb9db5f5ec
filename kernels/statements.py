"""A Program's assignments printed as numba statements (shared by every generated kernel).

The tensor engine gives a :class:`derive.tensor.program.Program`: forward and backward
as ordered assignments, each in index form and, where recognised, in matrix form. This
module only *prints* them (kernels never differentiate):

* an assignment whose matrix form is a product (``MatMul``) is printed as a BLAS call
  (:mod:`kernels.blas`), followed by one fused loop for the elementwise rest;
* a column sum of a 2-D array is accumulated row by row, a long sum into few outputs
  with the sum's loops outside (:meth:`Statements.accumulate`);
* every other assignment is printed from its index form as loops
  (:func:`kernels.loop_nests.loops`), named as :mod:`kernels.names` says.

Adjacent elementwise loop nests are then fused (:mod:`kernels.fuse`).
"""
from __future__ import annotations

import sympy as sp

from derive.tensor.index import IndexOp, ISum, extent
from derive.tensor import matrix as M

from .blas import blas
from .fuse import fuse
from .names import Names
from .loop_nests import Shared, flat_sum, loops
from .printer import NumbaPrinter

# Statements.accumulate: sums at least this long into at most this many outputs
ACCUMULATE_MIN_TERMS, ACCUMULATE_MAX_OUTPUTS = 32, 1024


class Statements:
    """Printing a Program's assignments as numba statements (shared by every kernel)."""

    def __init__(self, prog, *, dtype="float32", title=""):
        self.prog = prog
        self.dtype = dtype
        self.title = title or prog.title
        # float32 kernels keep their literals float32 (a float64 literal would promote
        # the arithmetic around it and block single-precision vectorisation)
        self.printer = NumbaPrinter(float_type="np.float32" if dtype == "float32" else None)
        # token ids (an Embedding's input) come in the float X batch: indices read int()
        self.printer.int_inputs = {n for n, t in prog.tensors.items()
                                   if t.role == "input" and t.dtype == "int"}
        # loop variables and temporaries never shadow a tensor or a dimension
        self.names = Names(list(prog.tensors) + [str(d) for d in prog.dims])
        self.temps = {}  # name -> shape (extents) of BLAS temporaries
        self.batch = None
        for sym, value in prog.constants.items():  # epsilon, momentum: compiled in
            self.printer.names[sym] = self.printer._print_Float(sp.Float(value))
        # reductions both passes compute (the loss's log-sum-exp): computed once
        self.shared = Shared(prog.forward + prog.backward, self.buffer)

    def buffers(self):
        """Arrays written by the step: nodes, adjoints (not 0-d) and BLAS temporaries."""
        names = [n for n, info in self.prog.tensors.items()
                 if info.role in ("node", "adjoint") and info.shape and n in self.written()]
        return names + list(self.temps)

    def written(self):
        return {a.target for a in self.prog.forward + self.prog.backward}

    def shape_of(self, name):
        info = self.prog.tensors.get(name)
        return tuple(info.shape) if info is not None else self.temps[name]

    def statements(self, assignments):
        """Printed assignments, with adjacent elementwise loops fused (kernels.fuse)."""
        return fuse([(a.target, self.assignment(a)) for a in assignments])

    def assignment(self, a):
        scalar = not a.indices
        self.shared.current = a.target
        if a.mode == "+=":
            zero = [f"{a.target}[...] = 0.0"] if not scalar else [f"{a.target} = 0.0"]
            return zero + loops(a.target, a.indices, a.rhs, self.printer, mode="+=",
                                lhs=a.lhs, names=self.names, scalar=scalar,
                                shared=self.shared)
        special = blas(self, a) if a.matrix is not None else None
        if special is None and a.matrix is not None:
            special = self.column_sum(a)
        if special is None:
            special = self.accumulate(a)
        if special is not None:
            return special
        return loops(a.target, a.indices, a.rhs, self.printer, names=self.names,
                     scalar=scalar, shared=self.shared)

    def column_sum(self, a):
        """``Reduce(Ref(v), axis=(0,))`` of a 2-D array: accumulate row by row, in memory
        order (the index form's loop order would walk down the columns)."""
        node = a.matrix
        if not (isinstance(node, M.Reduce) and tuple(node.axis) == (0,)
                and isinstance(node.a, M.Ref) and len(node.a.axes) == 2):
            return None
        src, p = node.a.name, self.printer
        n, k = self.names.nest([src, a.target]).free(node.a.axes)
        rows, cols = (p._print(e) for e in node.a.shape)
        return [f"{a.target}[:] = {p._zero()}", f"for {n} in range({rows}):",
                f"    for {k} in range({cols}):",
                f"        {a.target}[{k}] += {src}[{n}, {k}]"]

    def accumulate(self, a):
        """A long sum into few outputs, printed with the sum's loops outside.

        ``K_bar[i, j, k, l] = sum_{n, p, q} x[n, j, k+p, l+q] y_bar[n, i, p, q]`` printed
        output by output is one 2,048-long chain of dependent additions per element
        (numba may not reorder float sums), which made a conv's kernel gradient half the
        epoch of a digits classifier with one 3x3 conv layer (8 filters). With the sum's
        loops outermost, consecutive additions go to different outputs and overlap. Each
        output still adds its terms in the same order, so the result is the same to the
        last bit.
        """
        r = a.rhs
        if not (a.indices and isinstance(r, ISum)):
            return None
        r = flat_sum(r)
        if r.body.atoms(IndexOp):
            # an inner reduction of the outputs' indices would be recomputed per term
            return None

        def size(indices):
            n = 1
            for i in indices:
                e = extent(i)
                n *= int(e) if e.is_Integer else 64  # the batch: assume a typical size
            return n

        if size(r.indices) < ACCUMULATE_MIN_TERMS or size(a.indices) > ACCUMULATE_MAX_OUTPUTS:
            return None
        zero = [f"{a.target}[...] = {self.printer._zero()}"]
        return zero + loops(a.target, list(r.indices) + list(a.indices), r.body, self.printer,
                            mode="+=", lhs=a.indices, names=self.names, summed=r.indices,
                            shared=self.shared)

    def temp(self, node):
        return self.buffer(tuple(node.shape))

    def buffer(self, shape):
        """A new work array (BLAS product, shared reduction) of ``shape`` (extents)."""
        name = f"_t{len(self.temps)}"
        self.temps[name] = tuple(shape)
        return name
