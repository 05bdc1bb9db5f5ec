"""A message-passing graph layer over a given adjacency, defined element by element.

``s'_i = s_i + W1 · agg_{j ∈ N(i)} tanh(W2 · m_ij)``; with mean aggregation (the default)
``agg = (1/n_i) Σ_j`` over the n_i neighbours of node i. In index form, with ``A`` the 0/1
adjacency (``A[i,j] = 1`` when j sends to i):

    u[i,j,l]  = tanh(Σ_e W2[l,e] m[i,j,e])
    agg[i,l]  = Σ_j A[i,j] u[i,j,l] / n[i]            (mean; "sum" drops the 1/n)
    s'[i,k]   = s[i,k] + Σ_l W1[k,l] agg[i,l]

``max`` aggregation takes, per feature, the neighbour with the largest message (the first
one on ties): ``agg[i,l] = A[i, r] u[i, r, l]`` with ``r = argmax_j`` over neighbours held
fixed when differentiating (as in max-pooling). ``messages="states"`` uses ``m_ij = s_j``.

The adjacency and the degrees are data given with the layer (``meta["value"]``), so a node
with no neighbours is caught when the layer is made: under mean or max aggregation its
aggregate is undefined, which is an error unless ``isolated="zero"`` is passed (then the
aggregate of no messages is 0, as PyTorch Geometric's scatter-mean gives).
``include_self=True`` adds a self-loop at every node (``A + I``): node i's own message
``m_ii`` (its own state with ``messages="states"``) is aggregated with its neighbours', and
``n_i`` counts it. ``expand=True`` adds the derivation written out node by node.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from derive.errors import InputError
from derive.derivation import BAR_SUFFIX
from derive.tensor.index import IndexOp, ISum, dim, extent, inline, simplify_index
from derive.layers.dense import Layer
from derive.layers.windows import as_int_node, stop_gradient

AGGREGATIONS = ("mean", "max", "sum")


def adjacency_array(adjacency, where):
    """A square 0/1 integer array from a list of lists (one clear line otherwise)."""
    try:
        arr = np.asarray(adjacency, dtype=float)
    except (TypeError, ValueError):
        raise InputError("the adjacency must be a square list of 0/1 rows", where=where) from None
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise InputError(f"the adjacency must be square, got shape {list(arr.shape)}",
                         where=where)
    if not np.all((arr == 0) | (arr == 1)):
        raise InputError("the adjacency must hold only 0 and 1", where=where)
    return arr


def self_loops(A, include_self, where):
    """``include_self`` checked: a bool, and no node already looped (it would count twice)."""
    if not isinstance(include_self, bool):
        raise InputError(f"include_self must be true or false, got {include_self!r:.40}",
                         where=where)
    looped = [int(i) for i in np.flatnonzero(np.diag(A))]
    if include_self and looped:
        raise InputError(f"node {looped[0]} already has a self-loop in the adjacency, so "
                         "include_self would count its own message twice", where=where)
    return include_self


class MessagePassing(Layer):
    """``s'_i = s_i + W1 · (1/n_i) Σ_{j∈N(i)} tanh(W2 · m_ij)`` (and max / sum variants).

    >>> MessagePassing([[0, 1], [1, 0]]).parameters()
    {'W1': (d, d_h), 'W2': (d_h, d_m)}
    """

    key, title, out_base = "message_passing", "MessagePassing", "s_next"

    def __init__(self, adjacency=((0, 1, 1), (1, 0, 0), (1, 1, 0)), features="d", hidden="d_h",
                 message_size="d_m", aggregation="mean", messages="edges", isolated="error",
                 expand=False, include_self=False):
        where = self.title
        self.A = adjacency_array(adjacency, where)
        self.include_self = self_loops(self.A, include_self, where)
        if include_self:
            self.A = self.A + np.eye(self.A.shape[0])
        if aggregation not in AGGREGATIONS:
            raise InputError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got "
                             f"{aggregation!r}", where=where)
        if messages not in ("edges", "states"):
            raise InputError(f"messages must be 'edges' or 'states', got {messages!r}",
                             where=where)
        if isolated not in ("error", "zero"):
            raise InputError(f"isolated must be 'error' or 'zero', got {isolated!r}", where=where)
        self.degrees = self.A.sum(axis=1)
        lonely = [int(i) for i in np.flatnonzero(self.degrees == 0)]
        if lonely and aggregation != "sum" and isolated == "error":
            raise InputError(f"node {lonely[0]} has no neighbours: its {aggregation} over no "
                             "messages is undefined (pass isolated='zero' to use 0, the "
                             "convention of PyTorch Geometric, or add a self-loop)", where=where)
        self.features, self.hidden = dim(features), dim(hidden)
        self.message_size = self.features if messages == "states" else dim(message_size)
        self.aggregation, self.messages, self.isolated = aggregation, messages, isolated
        self.expand = expand

    @property
    def nodes(self):
        return self.A.shape[0]

    def options(self):
        extra = {"include_self": True} if self.include_self else {}
        return {"nodes": self.nodes, "aggregation": self.aggregation,
                "messages": self.messages, **extra}

    def param_shapes(self):
        return {"W1": (self.features, self.hidden), "W2": (self.hidden, self.message_size)}

    def input_specs(self):
        N = self.nodes
        specs = [("s", (N, self.features), "input", "float", {})]
        if self.messages == "edges":
            specs.append(("m", (N, N, self.message_size), "input", "float", {}))
        return specs

    def build(self, g, inputs, tag=""):
        s = inputs[0]
        m = inputs[1] if self.messages == "edges" else None
        layer = self.describe()
        N = self.nodes
        A = g.leaf(f"A{tag}", (N, N), role="mask", value=self.A)
        n = g.leaf(f"n{tag}", (N,), role="mask", value=np.maximum(self.degrees, 1.0))
        p = self.add_params(g, tag)
        W1, W2 = p["W1"], p["W2"]
        read = (lambda i, j, e: m[i, j, e]) if m is not None else (lambda i, j, e: s[j, e])
        u = g.define(g.unique(f"u{tag}"), (N, N, self.hidden),
                     lambda i, j, q: sp.tanh(g.sum(self.message_size,
                                                   lambda e: W2[q, e] * read(i, j, e))),
                     layer=layer, text="tanh(W2 m_ij)")
        agg = self.aggregate(g, A, n, u, tag, layer)
        out = g.define(g.unique(f"{self.out_base}{tag}"), s.shape,
                       lambda i, k: s[i, k] + g.sum(self.hidden, lambda q: W1[k, q] * agg[i, q]),
                       layer=layer, text=f"{s.name} + {agg.name} @ W1.T")
        if self.include_self:
            g.notes.append("Self-loops (include_self): every node aggregates its own message "
                           "m_ii with its neighbours' (A + I), and n_i counts it.")
        if self.isolated == "zero":
            g.notes.append("A node with no neighbours aggregates no messages; its aggregate is "
                           "taken to be 0 (n_i is set to 1 so the mean of nothing is 0).")
        if self.expand:
            g.checks.append(lambda view: expanded_section(view, self, out.name))
        return out

    def aggregate(self, g, A, n, u, tag, layer):
        N, c = self.nodes, self.hidden
        name = g.unique(f"agg{tag}")
        if self.aggregation != "max":
            scale = (lambda i: 1 / n[i]) if self.aggregation == "mean" else (lambda i: 1)
            return g.define(name, (N, c), lambda i, q: scale(i) * g.sum(
                N, lambda j: A[i, j] * u[i, j, q]), layer=layer,
                text=f"{self.aggregation} over neighbours of {u.name}")
        r = g.define(g.unique(f"r{tag}"), (N, c), lambda i, q: g.argmax(
            N, lambda j: sp.Piecewise((u[i, j, q], A[i, j] > 0), (-sp.oo, True))),
            layer=layer, text="neighbour with the largest message (first on ties)")
        as_int_node(g, r.name, 0, N - 1)
        stop_gradient(g, r.name)
        g.notes.append("Max aggregation routes each feature's gradient to the first neighbour "
                       "with the largest message; the choice is held fixed when "
                       "differentiating (zero derivative almost everywhere).")
        return g.define(name, (N, c), lambda i, q: A[i, r[i, q]] * u[i, r[i, q], q],
                        layer=layer, text=f"max over neighbours of {u.name}")


# -- node by node ---------------------------------------------------------------------------


def expand_nodes(expr, free, point, layer, arrays):
    """``expr`` at node indices ``point``, sums over nodes written out, data substituted."""
    N = layer.nodes
    env = dict(zip(free, point))
    out = _expand(expr, env, N, arrays)
    return simplify_index(out)


def _expand(e, env, N, arrays):
    if isinstance(e, sp.Idx) and e in env:
        return sp.Integer(env[e])
    if isinstance(e, ISum) and any(extent(i) == N for i in e.indices):
        nodes = [i for i in e.indices if extent(i) == N]
        rest = tuple(i for i in e.indices if i not in nodes)
        total = sp.S.Zero
        for values in np.ndindex(*[N] * len(nodes)):
            inner = _expand(e.body, {**env, **dict(zip(nodes, values))}, N, arrays)
            total += ISum(inner, *rest) if rest else inner
        return total
    if isinstance(e, sp.Indexed):
        idx = tuple(_expand(i, env, N, arrays) for i in e.indices)
        name = str(e.base)
        if name in arrays and all(i.is_Integer for i in idx):
            return sp.nsimplify(arrays[name][tuple(int(i) for i in idx)])
        return e.base[idx]
    if not e.args:
        return e
    args = [_expand(a, env, N, arrays) for a in e.args]
    if isinstance(e, IndexOp):
        return type(e)(args[0], *e.indices)
    return e.func(*args)


def expanded_section(view, layer, out):
    """The layer and its gradients written out node by node (adjacency substituted)."""
    from derive.derivation import Section, Step
    from derive.tensor.display import pretty

    g = view.g
    given = {n.name: np.asarray(n.meta["value"]) for n in g.nodes.values() if "value" in n.meta}
    steps = []
    node = g.nodes[out]
    forward = {n.name: (n.indices, n.rhs) for n in g.nodes.values()
               if n.rhs is not None and n.name != out}
    for i in range(layer.nodes):
        rhs = expand_nodes(inline(node.rhs, forward), node.indices[:1], (i,), layer, given)
        body, labels = pretty(rhs, node.indices[1:])
        heard = [int(j) for j in np.flatnonzero(layer.A[i])]
        steps.append(Step(sp.IndexedBase(out)[(i,) + labels], [body],
                          note=f"node {i}: neighbours {heard}"))
    bars = {o + BAR_SUFFIX: (view.s.indices[o], view.adjoint_rhs(o)) for o in view.s.order[1:]}
    for name in view.s.wrt:
        if name not in view.s.adjoints:
            continue
        K = view.s.indices[name]
        per_node = bool(K) and extent(K[0]) == layer.nodes
        for i in range(layer.nodes if per_node else 1):
            lead = K[:1] if per_node else ()
            rhs = expand_nodes(inline(view.adjoint_rhs(name), bars), lead,
                               (i,) if per_node else (), layer, given)
            body, labels = pretty(rhs, K[len(lead):])
            lhs = sp.IndexedBase(name + BAR_SUFFIX)[(i,) * per_node + labels]
            steps.append(Step(lhs, [body],
                              note=f"node {i}" if per_node else "summed over every node"))
    return Section(f"{layer.title}, node by node", steps,
                   text="Every sum over nodes written out with the given adjacency.")
