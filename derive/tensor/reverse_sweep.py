"""The reverse sweep over a tensor graph, and the Program built from it.

For every node ``u`` on a path from a ``wrt`` tensor to the output, in reverse definition
order, each consumer ``c`` contributes ``Σ_I c̄[I] ∂c[I]/∂u[K]`` (derived element-wise by
:func:`~derive.tensor.index.vjp`, deltas eliminated) and ``ū[K]`` is their simplified sum:
micrograd's loop, with index expressions for numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from derive.derivation import BAR_SUFFIX
from derive.errors import InputError, NotDifferentiableError
from derive.tensor.index import (Conventions, Fresh, IndexOp, canonical, eliminate, free_indices,
                    simplify_index, subs_index, vjp)
from derive.tensor.matrix import recognise
from derive.tensor.modes import eval_program, prediction_node
from derive.tensor.program import Assignment, Program, TensorInfo
from derive.tensor.renaming import shape_of
from derive.tensor.scatter import scatterise


class EdgeRecord:
    """Edge ``src -> dst``: the element partial and the contribution to ``src``'s adjoint.

    * ``partial``: ∂dst[I]/∂src[K] (free: dst.indices + K), deltas kept where needed;
    * ``contribution``: Σ_I dst_bar[I] ∂dst[I]/∂src[K] (free: K);
    * ``raw``: the partial as differentiated, before delta elimination.

    The partials are for display; an edge derived as a renamed copy of an earlier one
    (see :func:`_edge`) renames them when they are first read."""

    def __init__(self, src, dst, partial, contribution, raw=None, rename=None):
        self.src, self.dst, self.contribution = src, dst, contribution
        self._forms, self._rename = [partial, raw], rename

    def _form(self, k):
        if self._rename is not None:
            self._forms = [self._rename(f) for f in self._forms]
            self._rename = None
        return self._forms[k]

    partial = property(lambda self: self._form(0))
    raw = property(lambda self: self._form(1))

    def __repr__(self):
        return f"EdgeRecord({self.src} -> {self.dst}: {self.contribution})"


@dataclass
class Sweep:
    """Everything the reverse sweep derived, in index form."""

    graph: object
    wrt: list
    order: list  # nodes whose adjoint was derived, in sweep order (output first)
    indices: dict  # name -> the Idx of its adjoint assignment
    adjoints: dict  # name -> rhs (index form, simplified)
    edges: list = field(default_factory=list)
    aliases: dict = field(default_factory=dict)  # name -> name whose adjoint it equals
    conventions: list = field(default_factory=list)
    derived: dict = field(default_factory=dict)  # edge shape -> its results (placeholders)

    def bar_element(self, name, indices=None):
        node = self.graph.nodes[name]
        idx = self.indices[name] if indices is None else indices
        return sp.IndexedBase(name + BAR_SUFFIX)[tuple(idx)] if node.shape \
            else sp.Symbol(name + BAR_SUFFIX)


def check_wrt(graph, wrt, where="wrt"):
    """The wrt list checked: known, float tensors (labels and masks have no gradient)."""
    if wrt is None:
        wrt = [n.name for n in graph.leaves()
               if n.role in ("param", "input") and n.dtype == "float"]
    wrt = list(wrt)
    for name in wrt:
        if name not in graph.nodes:
            raise InputError(f"'{name}' is not a tensor of the graph (known: "
                             f"{', '.join(graph.nodes)})", where=where)
        node = graph.nodes[name]
        if node.dtype == "int" or node.role in ("label", "mask", "state"):
            raise InputError(f"'{name}' is a {node.role} ({node.dtype}); it has no gradient",
                             where=where)
    return wrt


def sweep(graph, wrt=None):
    """Derive the adjoint of every node between ``wrt`` and the output."""
    wrt = check_wrt(graph, wrt)
    out = graph.output
    need = graph.ancestors(out) & graph.descendants(wrt)
    conv = Conventions()
    s = Sweep(graph, wrt, [out], {out: graph.nodes[out].indices}, {})
    for name in reversed(list(graph.nodes)):
        if name not in need or name == out:
            continue
        node = graph.nodes[name]
        K = tuple(Fresh.idx(size, "k") for size in node.shape)
        s.indices[name] = K
        terms = []
        for c in graph.consumers(name):
            if c in need:
                terms.append(_edge(s, graph.nodes[c], node, K, conv))
        s.adjoints[name] = simplify_index(sp.Add(*terms))
        s.order.append(name)
        alias = _alias_of(s, name)
        if alias:
            s.aliases[name] = alias
    s.conventions = conv.used
    return s


def _edge(s, consumer, node, K, conv):
    """``consumer``'s contribution to ``node``'s adjoint. An edge of the same shape as one
    derived before (the same step of an unrolled sequence, renamed) is not derived again:
    the earlier result is renamed (derive.tensor.renaming)."""
    c_bar = s.bar_element(consumer.name, consumer.indices)
    shape = shape_of([consumer.rhs, c_bar, node.symbol, *consumer.indices, *K],
                     s.graph.nodes)
    done = s.derived.get(shape.key)
    if done is None:
        before = len(conv.used)
        rhs, p_bar, target = shape.forward[:3]
        n = 3 + len(consumer.indices)
        try:
            contrib, partial = vjp(rhs, tuple(shape.forward[3:n]), p_bar, target,
                                   tuple(shape.forward[n:]), conv)
        except NotDifferentiableError as exc:
            raise NotDifferentiableError(
                f"no gradient of '{consumer.name}' ({consumer.text or consumer.layer}) with "
                f"respect to '{node.name}': {exc.message}", where=f"node {consumer.name}") \
                from None
        raw = partial
        partial = simplify_index(eliminate(partial)) if partial != 0 else partial
        done = s.derived[shape.key] = (contrib, partial, raw, conv.used[before:])
    for text in done[3]:
        if text not in conv.used:
            conv.used.append(text)
    contrib = shape.restore(done[0])
    s.edges.append(EdgeRecord(node.name, consumer.name, done[1], contrib, done[2],
                              shape.restore))
    return contrib


def _alias_of(s, name):
    """The node whose adjoint equals ``name``'s exactly (v̄5 = v̄6), if any."""
    rhs, K = s.adjoints[name], s.indices[name]
    if isinstance(rhs, sp.Indexed) and tuple(rhs.indices) == tuple(K):
        base = str(rhs.base)
    elif isinstance(rhs, sp.Symbol) and not K:
        base = str(rhs)
    else:
        return None
    target = base[: -len(BAR_SUFFIX)]
    if base.endswith(BAR_SUFFIX) and s.graph.nodes[target].shape == s.graph.nodes[name].shape:
        return s.aliases.get(target, target)
    return None


def substitute_aliases(expr, aliases):
    """Replace the adjoints of alias nodes by the adjoints they equal."""
    if not aliases:
        return expr
    mapping = {}
    for a, b in aliases.items():
        mapping[sp.IndexedBase(a + BAR_SUFFIX)] = sp.IndexedBase(b + BAR_SUFFIX)
        mapping[sp.Symbol(a + BAR_SUFFIX)] = sp.Symbol(b + BAR_SUFFIX)
    return expr.xreplace(mapping)


# -- reuse of forward values ----------------------------------------------------------------


class ForwardPatterns:
    """Reuse of forward values: a sub-expression equal to a forward node's definition is
    replaced by that node (``exp(z[n,j] - LSE_k z[n,k])`` becomes ``p[n,j]`` when ``p`` is
    that softmax), so the backward pass reads stored activations instead of recomputing
    them. Candidates are looked up by what they read."""

    def __init__(self, graph):
        self.memo = {}  # expression -> the tensors it reads (shared by every lookup)
        self.by_key = {}
        for n in graph.nodes.values():
            if n.rhs is not None and not isinstance(n.rhs, (sp.Indexed, sp.Symbol)) \
                    and not n.rhs.is_Number:
                self.by_key.setdefault(_pattern_key(n.rhs, self.memo), []).append(n)

    def reuse(self, expr):
        return _reuse(expr, self.by_key, self.memo) if self.by_key else expr


def _pattern_key(e, memo):
    """What an expression equal to a node's definition must share with it: its type and
    the tensors it reads (renaming indices changes neither). Looking candidates up by it
    keeps the search linear in the graph's size (an unrolled sequence has T copies of
    every step's definitions)."""
    return type(e), _reads(e, memo)


def _reads(e, memo):
    """The tensors (and 0-d tensors) ``e`` reads, computed once per sub-expression."""
    r = memo.get(e)
    if r is None:
        if isinstance(e, sp.Idx):
            r = frozenset()
        elif isinstance(e, sp.Indexed):
            r = frozenset([("t", e.base.label)]).union(*(_reads(i, memo) for i in e.indices))
        elif isinstance(e, sp.Symbol):
            r = frozenset([("s", e)])
        else:
            r = frozenset().union(*(_reads(a, memo) for a in e.args))
        memo[e] = r
    return r


def _reuse(e, patterns, memo):
    if e.args and not isinstance(e, (sp.Indexed, sp.Idx)):
        for node in patterns.get(_pattern_key(e, memo), ()):
            m = _match(node, e)
            if m is not None:
                return node.element(m)
    if not e.args or isinstance(e, (sp.Indexed, sp.Idx)):
        return e
    args = [_reuse(a, patterns, memo) for a in e.args]
    if isinstance(e, IndexOp):
        return type(e)(args[0], *e.indices)
    return e.func(*args) if any(a is not b for a, b in zip(args, e.args)) else e


def _match(node, e):
    """Indices ``m`` with ``node.rhs`` at ``m`` equal to ``e``, or None."""
    keep = tuple(free_indices(e))
    target = canonical(e, keep)
    for p in _outer_indexed(node.rhs):
        for q in _outer_indexed(e):
            if q.base != p.base:
                continue
            mapping = {a: b for a, b in zip(p.indices, q.indices) if a in node.indices}
            if len(mapping) != len(node.indices):
                continue
            if canonical(subs_index(node.rhs, mapping), keep) == target:
                return tuple(mapping[i] for i in node.indices)
    return None


def _outer_indexed(e):
    """Tensor elements of ``e`` outside any reduction (their indices are free)."""
    if isinstance(e, sp.Indexed):
        return [e]
    if isinstance(e, IndexOp) or not e.args:
        return []
    return [x for a in e.args for x in _outer_indexed(a)]


# -- the program --------------------------------------------------------------------------------


def build_program(graph, wrt=None, reuse=True, matrix=True, scatter=True):
    """The :class:`Program` of ``graph``: forward, updates, backward (index + matrix form).

    With ``scatter`` (the default), reads through computed indices (convolution windows,
    pooling routes, Flatten, embeddings) get their exact gather / scatter-accumulate forms
    (:func:`~derive.tensor.scatter.scatterise`); programs without such reads are unchanged.
    """
    s = sweep(graph, wrt)
    tensors = _tensor_infos(graph, s)
    forward = [_assign(n.name, n.indices, n.rhs, tensors, matrix)
               for n in graph.nodes.values() if n.rhs is not None and not n.meta.get("update")]
    updates = [_assign(n.meta["update"], n.indices, n.rhs, tensors, matrix)
               for n in graph.nodes.values() if n.meta.get("update")]
    backward = []
    patterns = ForwardPatterns(graph) if reuse else None
    for name in s.order[1:]:
        if name in s.aliases:
            continue
        rhs = substitute_aliases(s.adjoints[name], s.aliases)
        if reuse:
            rhs = patterns.reuse(rhs)
        backward.append(_assign(name + BAR_SUFFIX, s.indices[name], rhs, tensors, matrix))
    grads = {w: s.aliases.get(w, w) + BAR_SUFFIX for w in s.wrt}
    random = {n.name: dict(n.meta["random"], name=n.name) for n in graph.nodes.values()
              if n.meta.get("random")}
    given = {n.name: n.meta["value"] for n in graph.nodes.values()
             if n.is_leaf and "value" in n.meta}
    program = Program(tensors, forward, backward, updates, graph.output,
                      graph.output + BAR_SUFFIX, grads, tuple(graph.dims()),
                      dict(graph.constants), random, graph.title, given=given,
                      aliases={a + BAR_SUFFIX: t + BAR_SUFFIX for a, t in s.aliases.items()})
    if scatter:
        program = scatterise(program)
    # what the network predicts and computes in eval mode are part of the record
    program.prediction = graph.prediction or prediction_node(program)
    program.inference = eval_program(program)
    program.repeats = [(layer, [list(names) for names in steps])
                       for layer, steps in getattr(graph, "repeats", ())]
    return program, s


def _assign(target, indices, rhs, tensors, matrix):
    node = recognise(rhs, indices, tensors) if matrix else None
    return Assignment(target, tuple(indices), rhs, node)


def _tensor_infos(graph, s):
    infos = {}
    for n in graph.nodes.values():
        if n.meta.get("update"):
            continue
        infos[n.name] = TensorInfo(n.name, n.shape, n.role, n.dtype, dict(n.meta))
    for name in s.order:
        bar = name + BAR_SUFFIX
        infos[bar] = TensorInfo(bar, graph.nodes[name].shape, "adjoint")
    return infos
