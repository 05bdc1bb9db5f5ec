"""One graph-network layer by hand: ``H' = σ(P H W)`` on a given graph, and its gradients.

Nodes are numbered 1..N as exams number them. ``A[i, j] = 1`` when node j sends its state
to node i (an undirected edge sends both ways), so row i of ``A H`` is the sum of node i's
neighbours' states. The propagation matrix ``P`` is the aggregation written as a matrix:

====================  =====================================  ==============================
aggregation           per node                               matrix
====================  =====================================  ==============================
``sum``               ``m_i = Σ_{j∈N(i)} h_j``                ``P = A``
``mean``              ``m_i = (1/d_i) Σ_{j∈N(i)} h_j``        ``P = D⁻¹ A``
``symmetric`` (GCN)   ``m_i = Σ_{j∈N(i)} h_j / √(d_i d_j)``   ``P = D^{-1/2} A D^{-1/2}``
====================  =====================================  ==============================

With ``include_self`` every node also hears itself: ``Â = A + I`` replaces ``A`` and the
degrees ``D̂`` count the self-loop (Kipf and Welling's GCN is ``symmetric`` with self-loops).
Then ``Z = M W`` with ``M = P H`` and ``H' = σ(Z)``. Given ``G = ∂L/∂H'``::

    Z̄ = G ⊙ σ'(Z),   W̄ = Mᵀ Z̄ = Hᵀ Pᵀ Z̄,   M̄ = Z̄ Wᵀ,   H̄ = Pᵀ M̄

so node j's gradient collects ``p_ij m̄_i`` from every node i that hears j (``Pᵀ``, not
``P``: under mean aggregation the two differ).

Without numbers (no ``H``, ``W``) each node's update rule is written out with every sum over
its neighbours expanded: ``gcn`` (the layer above) or ``residual_tanh``, the midterm's
``s^l_i = s^(l-1)_i + W_1 (1/n_i) Σ_j tanh(W_2 s^(l-1)_j)``.
"""
from __future__ import annotations

import sympy as sp

from derive.derivation import Derivation, Section, Step, bar
from derive.errors import InputError, ShapeError
from derive.functions import sigmoid
from derive.problem import check_keys, get, problem_kind
from derive.stepforms import approx, over, plus, root, times, written
from derive.worked.common import (EXACT_NOTE, all_exact, array, dims, key_bool, key_choice,
                                  key_int, shape, symbol, tidy)

AGGREGATIONS = ("sum", "mean", "symmetric")
_GRAPH_KEYS = {"kind", "title", "edges", "adjacency", "directed", "aggregation", "include_self"}
_KEYS = _GRAPH_KEYS | {"H", "W", "activation", "upstream"}
_RULE_KEYS = _GRAPH_KEYS | {"nodes", "update", "show", "activation"}
#: the update rules written out symbolically (no H, W given)
UPDATES = ("gcn", "residual_tanh")

#: name -> (σ at a number, σ' at a number, how σ' is written)
_ACT = {
    "relu": (lambda z: sp.Max(z, 0), lambda z: sp.Integer(1 if z > 0 else 0),
             "ReLU'(z) = 1 if z > 0 else 0 (ReLU'(0) = 0)"),
    "tanh": (sp.tanh, lambda z: 1 - sp.tanh(z) ** 2, "tanh'(z) = 1 - tanh(z)^2"),
    "sigmoid": (sigmoid, lambda z: sigmoid(z) * (1 - sigmoid(z)),
                "sigmoid'(z) = sigmoid(z) (1 - sigmoid(z))"),
    "linear": (lambda z: z, lambda z: sp.Integer(1), "the identity: sigma'(z) = 1"),
}
SIGMA, SIGMA_PRIME = sp.Function("sigma"), sp.Function("sigmaprime")


@problem_kind("gnn")
def gnn(spec, where):
    """``H' = σ(P H W)`` on the graph of ``edges`` (1-based) or ``adjacency``, with gradients."""
    if "H" not in spec and "W" not in spec:
        return _rules(spec, where)
    check_keys(spec, _KEYS, where)
    H = _matrix_key(spec, "H", where)
    W = _matrix_key(spec, "W", where)
    A = _adjacency(spec, where, H.shape[0])
    if W.shape[0] != H.shape[1]:
        raise ShapeError(f"W has {W.shape[0]} rows but each node's state H has {H.shape[1]} "
                         f"features (H {dims(H.shape)}, W {dims(W.shape)})", where=f"{where}: W")
    agg = key_choice(spec, "aggregation", where, AGGREGATIONS, "sum")
    include_self = key_bool(spec, "include_self", where, False)
    act = key_choice(spec, "activation", where, tuple(_ACT), "relu")
    G = _upstream(spec, where, (H.shape[0], W.shape[1]))
    d = Derivation(title=get(spec, "title", where, types=str,
                             default=f"A graph-network layer by hand ({agg} aggregation)"),
                   kind="gnn")
    exact = all_exact(H.tolist(), W.tolist(), G.tolist())
    if exact:
        d.note(EXACT_NOTE)
    else:  # one float makes the layer a float computation: no exact value from a float sum
        H, W, G = (X.applyfunc(lambda v: sp.Float(v, 15)) for X in (H, W, G))
    d.note("Nodes are numbered 1..N; A_ij = 1 when node j sends its state to node i, so "
           "row i of A H sums the states of node i's neighbours.")
    d.note(f"sigma = {act}: {_ACT[act][2]}.")
    if "upstream" not in spec:
        d.note("No upstream gradient given: L is the sum of every entry of H', so dL/dH' is "
               "all ones.")
    graph_key = "edges" if "edges" in spec else "adjacency"
    P, hat = _propagation(d, A, agg, include_self, where, graph_key)
    M = _aggregate(d, P, H, agg, hat)
    # a float sum that cancels is SymPy's exact 0: sigma of it is taken as a float again
    at = (lambda z: z) if exact else (lambda z: sp.Float(z, 15))
    Z, out = _transform(d, M, W, act, at)
    grad_W, grad_H = _gradients(d, P, H, W, M, Z, G, act, at)
    d.result = {"P": _rows(P), "M": _rows(M), "Z": _rows(Z), "output": _rows(out),
                "grad_W": _rows(grad_W), "grad_H": _rows(grad_H)}
    d.meta.update(aggregation=agg, include_self=include_self, activation=act)
    return d


# -- reading -------------------------------------------------------------------------------------
def _matrix_key(spec, key, where):
    return sp.Matrix(array(get(spec, key, where), f"{where}: {key}", ndim=2, name=key))


def _adjacency(spec, where, n, counted=lambda n: f"H has {n} rows"):
    """The 0/1 adjacency (N x N, A[i, j] = 1 when j sends to i) from ``edges`` or ``adjacency``."""
    if ("edges" in spec) == ("adjacency" in spec):
        raise InputError("give the graph as 'edges' (1-based node pairs) or as 'adjacency' "
                         "(an N x N 0/1 matrix), exactly one of them", where=where)
    directed = key_bool(spec, "directed", where, False)
    if "adjacency" in spec:
        if "directed" in spec:
            raise InputError("'directed' applies to 'edges'; an adjacency matrix says it "
                             "itself (A_ij = 1 when j sends to i)", where=f"{where}: directed")
        return _adjacency_matrix(spec["adjacency"], f"{where}: adjacency", n)
    return _edge_list(get(spec, "edges", where, types=list), f"{where}: edges", n, directed,
                      counted)


def _adjacency_matrix(value, where, n):
    A = array(value, where, ndim=2, name="adjacency")
    rows, cols = shape(A)
    if rows != cols:
        raise ShapeError(f"the adjacency must be square (N x N), got {dims((rows, cols))}",
                         where=where)
    if n is not None and rows != n:
        raise ShapeError(f"the adjacency is {dims((rows, cols))} but H has {n} rows (one per "
                         "node)", where=where.rsplit(": ", 1)[0] + ": H")
    for i, row in enumerate(A):
        for j, v in enumerate(row):
            if v not in (0, 1):
                raise InputError(f"entries must be 0 or 1, got {v} at row {i + 1}, column "
                                 f"{j + 1}", where=where)
    return sp.Matrix(A)


def _edge_list(edges, where, n, directed, counted=lambda n: f"H has {n} rows"):
    if not edges:
        raise InputError("no edges: give at least one pair [i, j] of node numbers", where=where)
    if n is None:  # no states given: N is the largest node number named
        n = max((v for pair in edges if isinstance(pair, list) for v in pair
                 if isinstance(v, int) and not isinstance(v, bool)), default=1)
        counted = (lambda n: f"the largest node named is {n}")
    A = sp.zeros(n, n)
    for k, pair in enumerate(edges):
        at = f"{where}[{k}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise InputError(f"an edge is a pair [i, j] of node numbers, got {pair!r:.40}",
                             where=at)
        for node in pair:
            if isinstance(node, bool) or not isinstance(node, int):
                raise InputError(f"node numbers are integers 1..{n}, got {node!r:.40}", where=at)
            if not 1 <= node <= n:
                raise InputError(f"node {node} does not exist: nodes are numbered 1..{n} "
                                 f"(1-based; {counted(n)})", where=at)
        i, j = pair
        A[j - 1, i - 1] = 1  # i sends to j
        if not directed:
            A[i - 1, j - 1] = 1
    return A


def _upstream(spec, where, size):
    if "upstream" not in spec:
        return sp.ones(*size)
    G = _matrix_key(spec, "upstream", where)
    if G.shape != size:
        raise ShapeError(f"dL/dH' must have the shape of H' ({dims(size)}), got "
                         f"{dims(G.shape)}", where=f"{where}: upstream")
    return G


# -- the forward pass ----------------------------------------------------------------------------
def _names(hat):
    """(adjacency name, degree-matrix name, degree symbol) with or without self-loops."""
    return ("Ahat", "Dhat", "dhat") if hat else ("A", "D", "d")


def _propagation(d, A, agg, include_self, where, graph_key):
    n = A.shape[0]
    a_name, d_name, deg = _names(include_self)
    A_sym = sp.MatrixSymbol("A", n, n)
    steps = [Step(A_sym, [A], "A_ij = 1 when node j sends to node i")]
    if include_self:
        for i in range(n):
            if A[i, i]:
                raise InputError(f"node {i + 1} already has a self-loop in '{graph_key}', so "
                                 "include_self would count its own state twice",
                                 where=f"{where}: include_self")
        A = A + sp.eye(n)
        steps.append(Step(sp.MatrixSymbol(a_name, n, n),
                          [written(sp.MatAdd(A_sym, sp.Identity(n), evaluate=False)), A],
                          "self-loops: each node's own state is one of its messages"))
    for i in range(n):
        heard = [j + 1 for j in range(n) if A[i, j]]
        steps.append(Step(symbol("Ntilde" if include_self else "N", i + 1),
                          [sp.FiniteSet(*heard) if heard else sp.S.EmptySet],
                          f"the nodes heard by node {i + 1}"))
    degrees = [sum(A.row(i)) for i in range(n)]
    if agg != "sum":
        lonely = [i + 1 for i, v in enumerate(degrees) if v == 0]
        if lonely:
            raise InputError(f"node {lonely[0]} hears no node, so its {agg} aggregation divides "
                             "by a degree of 0 (add an edge or include_self: true)",
                             where=f"{where}: {graph_key}")
        steps.append(Step(sp.MatrixSymbol(d_name, n, n), [sp.diag(*degrees)],
                          "degrees: the number of nodes node i hears"
                          + (" (itself included)" if include_self else "")))
    P = _propagation_matrix(A, degrees, agg)
    steps.append(Step(sp.MatrixSymbol("P", n, n), [_propagation_form(agg, n, a_name, d_name), P],
                      {"sum": "sum aggregation", "mean": "mean aggregation: row i divided by "
                       "node i's degree", "symmetric": "symmetric normalisation: a_ij divided "
                       "by the square root of the degrees of nodes i and j"}[agg]))
    d.sections.append(Section("The graph and its propagation matrix", steps, text=(
        "The layer computes H' = sigma(P H W): P says how much of node j's state reaches "
        "node i." + (" include_self: true adds a self-loop at every node, so each node's "
                     "own state is one of the messages it aggregates." if include_self else ""))))
    return P, include_self


def _propagation_matrix(A, degrees, agg):
    n = A.shape[0]
    if agg == "sum":
        return A
    if agg == "mean":
        return sp.Matrix(n, n, lambda i, j: tidy(A[i, j] / degrees[i]))
    return sp.Matrix(n, n, lambda i, j: tidy(A[i, j] / sp.sqrt(degrees[i] * degrees[j])))


def _propagation_form(agg, n, a_name, d_name):
    A, D = sp.MatrixSymbol(a_name, n, n), sp.MatrixSymbol(d_name, n, n)
    if agg == "sum":
        return A
    if agg == "mean":
        return sp.MatMul(sp.Inverse(D), A)
    half = sp.MatPow(D, sp.Rational(-1, 2))
    return sp.MatMul(half, A, half)


def _aggregate(d, P, H, agg, hat):
    n = P.shape[0]
    _, _, deg = _names(hat)
    M = (P * H).applyfunc(tidy)
    steps = []
    for i in range(n):
        heard = [j for j in range(n) if P[i, j] != 0]
        hs = [symbol("h", j + 1) for j in heard]
        rows = [sp.ImmutableMatrix(H.row(j)) for j in heard]
        if agg == "sum":
            form = plus(*hs) if hs else sp.Integer(0)
            numbers = _written(_row_sum(rows))
        elif agg == "mean":
            form = over(plus(*hs), symbol(deg, i + 1))
            numbers = written(sp.MatMul(sp.Rational(1, len(heard)), _row_sum(rows),
                                        evaluate=False))
        else:
            form = plus(*[times(over(1, root(times(symbol(deg, i + 1), symbol(deg, j + 1)))), h)
                          for j, h in zip(heard, hs)])
            numbers = written(sp.MatAdd(*[sp.MatMul(P[i, j], r, evaluate=False)
                                          for j, r in zip(heard, rows)], evaluate=False)) \
                if len(rows) > 1 else written(sp.MatMul(P[i, heard[0]], rows[0], evaluate=False))
        steps.append(Step(symbol("m", i + 1), [form, numbers, *_shown(M.row(i))],
                          f"node {i + 1}" + (" hears no node" if not heard else "")))
    n_sym, f = P.shape[0], H.shape[1]
    steps.append(Step(sp.MatrixSymbol("M", n_sym, f), [
        sp.MatMul(sp.MatrixSymbol("P", n_sym, n_sym), sp.MatrixSymbol("H", n_sym, f)),
        written(sp.MatMul(sp.ImmutableMatrix(P), sp.ImmutableMatrix(H), evaluate=False)),
        *_shown(M)], "the same, all nodes at once (row i is m_i)"))
    d.sections.append(Section("Aggregation: node by node, then M = P H", steps, text=(
        {"sum": "Each node adds the states h_j of the nodes it hears: m_i = sum over j in N(i) "
                "of h_j.",
         "mean": "Each node averages the states h_j of the nodes it hears: m_i = (1/d_i) sum "
                 "over j in N(i) of h_j.",
         "symmetric": "Each node adds the states of the nodes it hears, each divided by "
                      "sqrt(d_i d_j): m_i = sum over j in N(i) of h_j / sqrt(d_i d_j)."}[agg]
        + (" With include_self, N(i) contains i and the degrees count the self-loop."
           if hat else ""))))
    return M


def _row_sum(rows):
    """``h_1 + h_3`` with numbers, as written (not yet marked; see :func:`_written`)."""
    if not rows:
        return sp.Integer(0)
    return sp.MatAdd(*rows, evaluate=False) if len(rows) > 1 else rows[0]


def _written(expr):
    return written(expr) if isinstance(expr, (sp.MatAdd, sp.MatMul)) else expr


def _transform(d, M, W, act, at):
    n, f = M.shape
    k = W.shape[1]
    phi = _ACT[act][0]
    Z = (M * W).applyfunc(tidy)
    out = Z.applyfunc(lambda z: tidy(at(phi(at(z)))))
    W_im = sp.ImmutableMatrix(W)
    steps = []
    for i in range(n):
        steps.append(Step(symbol("z", i + 1), [
            sp.Symbol(f"m_{i + 1}", commutative=False) * sp.Symbol("W", commutative=False),
            written(sp.MatMul(sp.ImmutableMatrix(M.row(i)), W_im, evaluate=False)),
            *_shown(Z.row(i))]))
        steps.append(Step(sp.Symbol(f"h'_{i + 1}"),
                          [SIGMA(symbol("z", i + 1)), *_shown(out.row(i))]))
    Msym, Wsym = sp.MatrixSymbol("M", n, f), sp.MatrixSymbol("W", f, k)
    Zsym = sp.MatrixSymbol("Z", n, k)
    steps.append(Step(Zsym, [sp.MatMul(Msym, Wsym), written(sp.MatMul(
        sp.ImmutableMatrix(M), W_im, evaluate=False)), *_shown(Z)], "all nodes at once"))
    steps.append(Step(sp.MatrixSymbol("H'", n, k), [
        SIGMA(sp.MatMul(sp.MatrixSymbol("P", n, n), sp.MatrixSymbol("H", n, f), Wsym)),
        SIGMA(Zsym), *_shown(out)], "the layer in matrix form"))
    d.sections.append(Section("Transform and activation: Z = M W, H' = sigma(Z)", steps, text=(
        "The same W transforms every node (weights are shared across nodes): z_i = m_i W, "
        "h'_i = sigma(z_i). Per node, h'_i = sigma(sum over j of p_ij h_j W).")))
    return Z, out


# -- update rules written out (no numbers) ----------------------------------------------------
def _rules(spec, where):
    """Each node's update rule with every sum over its neighbours written out."""
    check_keys(spec, _RULE_KEYS, where)
    update = key_choice(spec, "update", where, UPDATES, "gcn")
    agg = key_choice(spec, "aggregation", where, AGGREGATIONS,
                     "mean" if update == "residual_tanh" else "sum")
    include_self = key_bool(spec, "include_self", where, False)
    if update == "residual_tanh" and "activation" in spec:
        raise InputError("residual_tanh has no outer activation (tanh acts on each message)",
                         where=f"{where}: activation")
    act = key_choice(spec, "activation", where, tuple(_ACT), "relu")
    n = key_int(spec, "nodes", where)
    if n is not None and "edges" not in spec:
        raise InputError("'nodes' goes with 'edges'; an adjacency has one row per node",
                         where=f"{where}: nodes")
    A = _adjacency(spec, where, n, lambda n: f"nodes: {n}")
    N = A.shape[0]
    show = _shown_nodes(spec, where, N)
    d = Derivation(title=get(spec, "title", where, types=str,
                             default=f"Graph-network update rules ({agg} aggregation)"),
                   kind="gnn")
    d.note("Nodes are numbered 1..N; A_ij = 1 when node j sends its state to node i.")
    graph_key = "edges" if "edges" in spec else "adjacency"
    P, _ = _propagation(d, A, agg, include_self, where, graph_key)
    if update == "gcn":
        d.note(f"sigma = {act}. The same W is used at every node.")
    else:
        d.note("The update adds W_1 times the aggregate of tanh(W_2 m_ij) to the node's own "
               "state (a residual connection), with node j's state as the message m_ij; "
               "W_1 and W_2 are shared by every node.")
    steps, rules = [], {}
    for i in show:
        heard = [j for j in range(N) if P[i, j] != 0]
        lhs, forms = _rule(update, i, heard, P, agg, include_self)
        steps.append(Step(lhs, forms, f"node {i + 1} hears "
                          + (", ".join(str(j + 1) for j in heard) or "no node")))
        rules[f"node {i + 1}"] = forms[-1]
    d.sections.append(Section("Update rules, every sum written out", steps, text=_RULE_TEXT[
        update].format(agg={"sum": "the sum", "mean": "the mean",
                            "symmetric": "the symmetric-normalised sum"}[agg])))
    d.result = rules
    d.meta.update(aggregation=agg, include_self=include_self, update=update)
    return d


_RULE_TEXT = {
    "gcn": "h'_i = sigma(sum over j in N(i) of p_ij h_j W), with {agg} over the nodes i hears.",
    "residual_tanh": "Node i's new state is its state at the layer before plus W_1 times "
                     "{agg}, over the nodes j it hears, of tanh(W_2 times node j's state at "
                     "the layer before) (the state itself is the message).",
}


def _shown_nodes(spec, where, n):
    """The 0-based nodes to write out (``show`` is 1-based; all nodes when absent)."""
    value = get(spec, "show", where, types=list, default=None)
    if value is None:
        return list(range(n))
    for k, node in enumerate(value):
        if isinstance(node, bool) or not isinstance(node, int) or not 1 <= node <= n:
            raise InputError(f"nodes are numbered 1..{n} (1-based), got {node!r:.40}",
                             where=f"{where}: show[{k}]")
    return [node - 1 for node in value]


def _rule(update, i, heard, P, agg, hat):
    """(lhs, [with degree symbols, with numbers]) for node ``i``'s update."""
    _, _, deg = _names(hat)
    if update == "residual_tanh" and not hat:
        deg = "n"  # the exam's n_i: the number of node i's neighbours
    nc = (lambda name: sp.Symbol(name, commutative=False))
    if update == "gcn":
        term = (lambda j: nc(f"h_{j + 1}") * nc("W"))
        lhs, wrap = sp.Symbol(f"h'_{i + 1}"), SIGMA
    else:
        term = (lambda j: sp.tanh(nc("W_2") * nc(f"s^(l-1)_{j + 1}")))
        lhs = sp.Symbol(f"s^l_{i + 1}")

        def wrap(aggregate):
            return plus(nc(f"s^(l-1)_{i + 1}"),
                        written(sp.Mul(nc("W_1"), aggregate, evaluate=False)))
    if not heard:
        return lhs, [wrap(sp.Integer(0))]
    terms = [term(j) for j in heard]
    if agg == "sum":
        return lhs, [wrap(plus(*terms))]
    if agg == "mean":
        return lhs, [wrap(over(plus(*terms), symbol(deg, i + 1))),
                     wrap(over(plus(*terms), len(heard)))]
    return lhs, [wrap(plus(*[times(over(1, root(times(symbol(deg, i + 1), symbol(deg, j + 1)))),
                                   t) for j, t in zip(heard, terms)])),
                 wrap(plus(*[times(P[i, j], t) if P[i, j] != 1 else t
                             for j, t in zip(heard, terms)]))]


# -- the backward pass ---------------------------------------------------------------------------
def _gradients(d, P, H, W, M, Z, G, act, at):
    n, f = H.shape
    k = W.shape[1]
    dphi = Z.applyfunc(lambda z: tidy(at(_ACT[act][1](at(z)))))
    Zbar = G.multiply_elementwise(dphi).applyfunc(tidy)
    Wbar = (M.T * Zbar).applyfunc(tidy)
    Mbar = (Zbar * W.T).applyfunc(tidy)
    Hbar = (P.T * Mbar).applyfunc(tidy)
    im = sp.ImmutableMatrix
    Ps, Hs, Ws = sp.MatrixSymbol("P", n, n), sp.MatrixSymbol("H", n, f), sp.MatrixSymbol("W", f, k)
    Ms, Zs = sp.MatrixSymbol("M", n, f), sp.MatrixSymbol("Z", n, k)
    Zb, Mb = bar("Z", (n, k)), bar("M", (n, f))
    steps = [
        Step(bar("H'", (n, k)), [im(G)], "given" if G != sp.ones(n, k) else
             "L = sum of the entries of H'"),
        Step(sp.MatrixSymbol("S", n, k), [SIGMA_PRIME(Zs), *_shown(dphi)],
             f"sigma' at each entry of Z ({act})"),
        Step(Zb, [sp.HadamardProduct(bar("H'", (n, k)), sp.MatrixSymbol("S", n, k)),
                  written(sp.HadamardProduct(im(G), im(dphi), evaluate=False)), *_shown(Zbar)],
             "elementwise: sigma acts entry by entry"),
        Step(bar("W", (f, k)), [sp.MatMul(Ms.T, Zb), sp.MatMul(Hs.T, Ps.T, Zb),
                                written(sp.MatMul(im(M.T), im(Zbar), evaluate=False)),
                                *_shown(Wbar)],
             "W is shared by every node, so its gradient sums over nodes"),
    ]
    per_node_W = plus(*[sp.MatMul(sp.MatrixSymbol(f"m_{i + 1}", 1, f).T,
                                  bar(f"z_{i + 1}", (1, k))) for i in range(n)])
    outer = _written(sp.MatAdd(*[sp.MatMul(im(M.row(i).T), im(Zbar.row(i)), evaluate=False)
                                 for i in range(n)], evaluate=False) if n > 1 else
                     sp.MatMul(im(M.row(0).T), im(Zbar.row(0)), evaluate=False))
    steps.append(Step(bar("W", (f, k)), [per_node_W, outer, *_shown(Wbar)],
                      "the same sum, node by node: the outer product m_i^T zbar_i of every "
                      "node i"))
    steps.append(Step(Mb, [sp.MatMul(Zb, Ws.T), written(sp.MatMul(im(Zbar), im(W.T),
                                                                  evaluate=False)),
                           *_shown(Mbar)], "mbar_i = zbar_i W^T for each node i"))
    steps.append(Step(bar("H", (n, f)), [sp.MatMul(Ps.T, Mb), written(sp.MatMul(
        im(P.T), im(Mbar), evaluate=False)), *_shown(Hbar)],
        "P^T, not P: node j's state reaches every node i that hears it"))
    for j in range(n):
        listeners = [i for i in range(n) if P[i, j] != 0]
        form = plus(*[times(P[i, j], bar(f"m_{i + 1}", (1, f))) if P[i, j] != 1
                      else bar(f"m_{i + 1}", (1, f)) for i in listeners]) if listeners \
            else sp.Integer(0)
        terms = [im(Mbar.row(i)) if P[i, j] == 1 else
                 sp.MatMul(P[i, j], im(Mbar.row(i)), evaluate=False) for i in listeners]
        numbers = [_written(sp.MatAdd(*terms, evaluate=False) if len(terms) > 1 else terms[0])]\
            if terms and (len(terms) > 1 or P[listeners[0], j] != 1) else []
        steps.append(Step(bar(f"h_{j + 1}", (1, f)), [form, *numbers, *_shown(Hbar.row(j))],
                          f"node {j + 1} is heard by " + _nodes_text(listeners)))
    text = ("Backward through H' = sigma(Z), Z = M W and M = P H, with the graph (P) fixed. "
            "Per node: zbar_i = hbar'_i * sigma'(z_i), Wbar = sum over i of m_i^T zbar_i, "
            "mbar_i = zbar_i W^T and hbar_j = sum over the nodes i that hear j of p_ij mbar_i.")
    d.sections.append(Section("Gradients with respect to W and H", steps, text=text))
    return Wbar, Hbar


# -- showing values ------------------------------------------------------------------------------
def _shown(value):
    """``[value]``, and its decimals too when an entry is not a plain number."""
    value = sp.ImmutableMatrix(value)
    if all(v.is_Rational or v.is_Float for v in value):
        return [value]
    return [value, value.applyfunc(lambda v: v if v.is_Rational or v.is_Float else approx(v))]


def _nodes_text(indices):
    """``node 2`` / ``nodes 1, 3`` / ``no node`` for 0-based ``indices``, numbered from 1."""
    if not indices:
        return "no node"
    return ("node " if len(indices) == 1 else "nodes ") + ", ".join(str(i + 1) for i in indices)


def _rows(matrix):
    return [[matrix[i, j] for j in range(matrix.shape[1])] for i in range(matrix.shape[0])]
