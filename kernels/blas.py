"""Matrix products printed as BLAS calls.

An assignment whose matrix form (:mod:`derive.tensor.matrix`) holds products of stored
arrays is printed as ``matmul(a, b, out)`` (``np.dot`` when an operand is a vector) into
the target, or into a work array when the product is one term of a larger expression,
followed by one loop for whatever the matrix form adds or multiplies element by element
(``+ b``, ``⊙ H(z)``). A sum of products accumulates in place with ``gemm`` (beta = 1).
Both come from :mod:`kernels.runtime`.
"""
from __future__ import annotations

import sympy as sp

from derive.errors import UnsupportedError
from derive.tensor import matrix as M

from .loop_nests import loops


def blas(st, a):
    """The product into the target, then a fused loop for the elementwise rest (or None).

    ``st`` is the :class:`kernels.statements.Statements` printing ``a``."""
    root = a.matrix
    products = [n for n in walk(root) if isinstance(n, M.MatMul)]
    if not products or tuple(root.axes) != tuple(a.indices):
        return None
    first = products[0]
    if not all(operand(op) for p in products for op in (p.a, p.b)):
        return None
    if (isinstance(root, M.Add) and len(products) > 1
            and all(p in root.ops and is_matrix(p) for p in products)):
        return blas_sum(st, a, products)
    lines, swap = [], {}
    for p in products:
        elementwise_root = isinstance(root, (M.Add, M.Hadamard, M.Scale))
        if p is first and root is not first and not elementwise_root:
            return None
        out = a.target if p is first else st.temp(p)
        lines.append(product(st, p, out))
        swap[p] = sp.IndexedBase(out)[tuple(p.axes)] if p.axes else sp.Symbol(out)
    if root is first:
        return lines
    rest = to_index(root, swap)
    return lines + loops(a.target, a.indices, rest, st.printer, names=st.names)


def blas_sum(st, a, products):
    """``P1 + P2 + ... (+ rest)``: P1 into the target, each further product added in
    place by gemm (beta = 1), then one loop for the rest. An RNN's
    ``W_hh_bar = sum_t a_t_barᵀ h_(t-1)`` used to take a temporary per step and a pass
    adding them all (19 [64, 64] arrays and 5% of the compile time of a 20-step RNN)."""
    root = a.matrix
    lines = []
    for k, p in enumerate(products):
        lines.append(product(st, p, a.target, accumulate=k > 0))
    rest = [o for o in root.ops if o not in products]
    if not rest:
        return lines
    here = sp.IndexedBase(a.target)[tuple(a.indices)]
    body = sp.Add(here, *[to_index(o, {}) for o in rest])
    return lines + loops(a.target, a.indices, body, st.printer, names=st.names)


def product(st, p, out, accumulate=False):
    """``out = a @ b`` (``out += a @ b`` when ``accumulate``) as one call: a product of two
    matrices through the shared :mod:`kernels.runtime` (``matmul``, ``gemm``: numba types
    them once per machine for every layout, where np.dot is compiled again in every
    kernel for each layout it meets), a product with a vector through np.dot."""
    args = f"{operand(p.a, p.ta)}, {operand(p.b, p.tb)}, {out}"
    if is_matrix(p):
        return f"gemm({args}, 1.0, 1.0)" if accumulate else f"matmul({args})"
    if accumulate:
        raise UnsupportedError("a sum of products with a vector (gemm takes matrices)")
    return f"np.dot({args})"


def walk(node):
    yield node
    for c in node.children:
        yield from walk(c)


def is_matrix(p):
    """A product of two matrices (gemm's case; np.dot also takes vectors)."""
    return all(len(n.axes) == 2 for n in (p, p.a, p.b))


def operand(node, transposed=False):
    """``name`` / ``name.T`` for a stored array (possibly transposed), else None."""
    if isinstance(node, M.Transpose) and isinstance(node.a, M.Ref):
        node, transposed = node.a, not transposed
    if not isinstance(node, M.Ref):
        return None
    return f"{node.name}.T" if transposed else node.name


def to_index(node, swap):
    """The element of a matrix-form node at its own axes, as a scalar index expression
    (products already computed into arrays are read back through ``swap``)."""
    if node in swap:
        return swap[node]
    if isinstance(node, M.Ref):
        return sp.IndexedBase(node.name)[tuple(node.axes)] if node.axes else sp.Symbol(node.name)
    if isinstance(node, M.Const):
        return node.value
    if isinstance(node, (M.Transpose, M.Broadcast)):
        return to_index(node.a, swap)
    if isinstance(node, M.Hadamard):
        return sp.Mul(*[to_index(o, swap) for o in node.ops])
    if isinstance(node, M.Add):
        return sp.Add(*[to_index(o, swap) for o in node.ops])
    if isinstance(node, M.Scale):
        return node.c * to_index(node.a, swap)
    if isinstance(node, M.Map):
        return node.fn(*[to_index(o, swap) for o in node.ops])
    raise UnsupportedError(f"matrix node {type(node).__name__} inside a product's rest")
