"""Printed = computed: the index forms a Derivation shows, evaluated as printed.

The displayed element forms (``[rhs]_(n,i,j)`` with plain Symbols for every index, as the
reports print them) are read back the way a reader reads them: a label on the left runs
over the tensor's shape, a summed index over the axis of the tensor it indexes. They are
then evaluated at random values (``derive.tensor.evaluate``) and compared entry by entry
with the derivation's own arrays: forward definitions, adjoints, gradients, and each edge's
local partial (a Jacobian, contracted with the adjoint above it) and contribution. For
multi-head attention the printed backward pass is followed from the seed to the gradients
and compared entry by entry with central finite differences. Matrix forms are not read here.
A swallowed or captured index (``k̄_{n,i,j,k} = Σ_l q_{n,i,l,k} s̄_{n,i,l,l}``) fails here.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import derive as dt
from derive.layers.attention import SelfAttention
from derive.layers.catalog import LAYER_NAMES, make_layer
from derive.tensor.display import ElementForm
from derive.tensor.evaluate import Env
from derive.tensor.printed import evaluate_printed, printed_forms

import test_tensor_table as table


def setup_row(row, seed=3):
    layer = row.make()
    d = layer.derive()
    program = d.program
    values = table.instance(program, row.sizes, row, seed)
    out, _ = dt.evaluate(program, values)
    # a loss is shown as its gradient (seed 1); a layer's adjoints carry the upstream y_bar
    upstream = np.random.default_rng(seed + 1).normal(size=np.shape(out)) \
        if np.ndim(out) else 1.0
    arrays = program.run(values, upstream)
    env = program.environment(values, upstream)
    env.arrays = dict(arrays)
    return layer, d, program, values, upstream, env


# -- multi-head attention, entry by entry against finite differences ------------------------


def _shape(arrays, name):
    return np.shape(arrays[name])


def test_attention_adjoints_print_every_index():
    d = SelfAttention(heads=2).derive()
    shown = {a.name: a.in_nodes for a in d.adjoints}
    for name in ("k", "q", "s", "v"):
        form = shown[name]
        for label in form.labels:
            assert form.rhs.has(label), f"{name}_bar does not depend on {label}: {form}"


def test_multihead_attention_printed_backward_pass_matches_finite_differences():
    row = next(r for r in table.ROWS if r.name == "multihead_attention")
    _, d, program, values, upstream, env = setup_row(row)
    # follow the printed backward pass: each adjoint from the printed forms before it
    printed = dict(env.arrays)
    for key in [k for k in printed if k.endswith("_bar") and k != program.seed]:
        del printed[key]
    env.arrays = printed
    for a in d.adjoints:
        name = f"{a.name}_bar"
        printed[name] = evaluate_printed(a.in_nodes, _shape(program.run(values, upstream),
                                                            name), env)
    grads = {w: evaluate_printed(g.expression, np.shape(values[w]), env)
             for w, g in d.gradients.items()}
    assert set(grads) == {"x", "W_q", "W_k", "W_v", "W_o"}

    def loss(vals):
        return float(np.sum(upstream * dt.evaluate(program, vals)[0]))

    eps = 1e-6
    for w, g in grads.items():
        for idx in np.ndindex(g.shape):
            plus = {k: np.array(v, dtype=float) for k, v in values.items()}
            minus = {k: np.array(v, dtype=float) for k, v in values.items()}
            plus[w][idx] += eps
            minus[w][idx] -= eps
            fd = (loss(plus) - loss(minus)) / (2 * eps)
            assert g[idx] == pytest.approx(fd, rel=1e-5, abs=1e-7), (w, idx)


# -- every layer of the catalogue -------------------------------------------------------------


#: catalogue layers without a gradient (forward only, no program): checked against NumPy
FORWARD_ONLY = {
    "zero_one": lambda a: np.mean(np.argmax(a["z"], 1) != a["y"]),
    "argmax_attention": lambda a: np.take_along_axis(
        a["v"], np.argmax(a["q"] @ a["k"].transpose(0, 2, 1), 2)[..., None], 1),
}


def test_every_catalogue_layer_is_checked():
    keys = {getattr(r.make(), "key", None) for r in table.ROWS} | set(FORWARD_ONLY)
    missing = [n for n in LAYER_NAMES if n not in keys]
    assert not missing, missing


@pytest.mark.parametrize("row", table.ROWS, ids=lambda r: r.name)
def test_printed_forms_equal_computed(row):
    layer, d, program, values, upstream, env = setup_row(row)
    forms = printed_forms(d)
    checked = 0
    for what, name, form in forms:
        if name not in env.arrays:
            continue
        want = np.asarray(env.arrays[name], dtype=float)
        got = evaluate_printed(form, want.shape, env, getattr(layer, "k", None))
        checked += 1
        assert np.allclose(got, want, rtol=1e-9, atol=1e-10), \
            f"{row.name}: printed {what} = {form} disagrees (max difference " \
            f"{np.abs(got - want).max():.3g})"
    assert checked or all(not isinstance(a.in_nodes, ElementForm) for a in d.adjoints)


@pytest.mark.parametrize("name", sorted(FORWARD_ONLY))
def test_forward_only_layers_print_their_forward_pass(name):
    d = make_layer(name).derive()
    assert d.program is None
    rng = np.random.default_rng(5)
    sizes = {sp.Symbol(k, integer=True, positive=True): v for k, v in table.SPATIAL.items()}
    env = Env({}, dims=table.SPATIAL)
    for node in d.nodes:
        shape = tuple(int(sp.sympify(s).xreplace(sizes)) for s in node.shape or ())
        if node.definition is None:
            labels = node.name == "y"  # class labels of the scores z
            env.arrays[node.name] = rng.integers(0, np.shape(env.arrays["z"])[1], shape) \
                if labels else rng.normal(size=shape)
        else:
            env.arrays[node.name] = evaluate_printed(node.definition, shape, env)
    want = FORWARD_ONLY[name](env.arrays)
    assert np.allclose(env.arrays[d.nodes[-1].name], want, atol=1e-12)


@pytest.mark.parametrize("row", table.ROWS, ids=lambda r: r.name)
def test_printed_local_partials_and_contributions(row):
    """Each edge's printed Jacobian ∂dst/∂src, contracted with dst's adjoint, is its printed
    contribution; an adjoint is the sum of its printed contributions, and of its printed
    Jacobians contracted."""
    layer, d, program, values, upstream, env = setup_row(row)
    window = getattr(layer, "k", None)
    bar = lambda name: "%s_bar" % name if "%s_bar" % name in env.arrays else None  # noqa
    sums = {"contribution": {}, "partial": {}}
    for e in d.edges:
        if bar(e.dst) is None or bar(e.src) is None:
            continue
        src = np.shape(env.arrays[bar(e.src)])
        dst_bar = np.asarray(env.arrays[bar(e.dst)], dtype=float)
        got = {}
        if isinstance(e.contribution, ElementForm):
            got["contribution"] = evaluate_printed(e.contribution, src, env, window)
        if isinstance(e.partial, ElementForm):
            jac = evaluate_printed(e.partial, dst_bar.shape + src, env, window)
            got["partial"] = np.tensordot(dst_bar, jac, axes=dst_bar.ndim)
        if len(got) == 2:
            assert np.allclose(got["contribution"], got["partial"], rtol=1e-9, atol=1e-10), \
                f"{row.name}: printed ∂{e.dst}/∂{e.src} = {e.partial} disagrees with " \
                f"its contribution {e.contribution}"
        for kind, total in sums.items():  # None once an edge into src is not shown so
            prev = total.get(e.src, 0)
            total[e.src] = None if prev is None or kind not in got else prev + got[kind]
    for kind, total in sums.items():
        for name, value in total.items():
            if value is not None:
                assert np.allclose(value, env.arrays[bar(name)], rtol=1e-9, atol=1e-10), \
                    f"{row.name}: printed {kind}s into {name}_bar do not add up to it"
