"""Functions every generated kernel calls, compiled once per machine, not once per kernel.

A generated module used to carry its own ``gemm``; numba compiled it once per array
layout it met (C, F, transposed views of a stacked buffer) in every new kernel: three
compilations, ~1.5 s of an LSTM's ~12 s cold compile. Here ``gemm`` is typed
once per dtype for any layout ('A' arrays, whose strides are read at run time) and kept
in numba's cache beside this file, so a new kernel only links them.

``gemm(a, b, c, alpha, beta)`` is ``c = alpha * (a @ b) + beta * c`` in place: one call
of BLAS ?gemm through numba's own entry point (``numba_xxgemm``, which calls SciPy's
BLAS), with transposed views passed as BLAS transposes (no copies); ``matmul(a, b, c)``
is ``np.dot(a, b, c)`` for matrices. alpha and beta are float64 for either dtype (a
float32 argument converts exactly); the product runs in the arrays' own precision.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types

import scipy.linalg  # noqa: F401 - numba_xxgemm calls SciPy's BLAS


_xxgemm = types.ExternalFunction("numba_xxgemm", types.intc(
    types.char, types.char, types.char, types.intp, types.intp, types.intp, types.voidptr,
    types.voidptr, types.intp, types.voidptr, types.intp, types.voidptr, types.voidptr,
    types.intp))


def _signature(t, scalars=True):
    m = types.Array(t, 2, "A")
    return types.void(m, m, m, types.float64, types.float64) if scalars else types.void(m, m, m)


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
    if k == 0:  # an empty sum: BLAS would reject lda = 0; c = beta * c
        for i in range(m):
            for j in range(n):
                c[i, j] = beta * c[i, j] if beta != 0 else 0
        return
    # BLAS is column-major: c (row-major) is c.T to it, and c.T = b.T @ a.T
    ta, lda = (110, k) if a.flags.c_contiguous else (116, m)  # 'n' or 't'
    tb, ldb = (110, n) if b.flags.c_contiguous else (116, k)
    scal = np.empty(2, c.dtype)
    scal[0] = alpha
    scal[1] = beta
    kind = 115 if c.itemsize == 4 else 100  # 's' or 'd'
    if _xxgemm(kind, tb, ta, n, m, k, scal[0:].ctypes, b.ctypes, ldb, a.ctypes, lda,
               scal[1:].ctypes, c.ctypes, n) != 0:
        raise RuntimeError("gemm: BLAS call failed")


@njit(cache=True, nogil=True, error_model="numpy")
def matmul(a, b, c):
    """c = a @ b into c (np.dot(a, b, c) for matrices, typed once for every layout)."""
    gemm(a, b, c, 1.0, 0.0)


@njit(cache=True, nogil=True)
def shuffled_rows(out, seed):
    """``out`` = 0, 1, ..., n-1 shuffled by numba's Mersenne Twister seeded with ``seed``
    (a 32-bit integer): an epoch's order in ~10 us (NumPy's seeded Generator takes ~90 us
    to build and shuffle, 10 % of a small epoch)."""
    np.random.seed(seed)
    for i in range(out.shape[0]):
        out[i] = i
    np.random.shuffle(out)
