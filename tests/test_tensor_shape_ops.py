"""Shape ops (batched @, reshape, broadcast_to, permute, reductions over several axes) and
derive.evaluate's return_nodes: values and gradients against PyTorch autograd and central
finite differences, printed = computed with no skips, reports, and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import derive
from derive.errors import InputError, ShapeError
from derive.problem import solve_spec
from derive.tensor.printed import check_printed



def _torch():
    return pytest.importorskip("torch")


#: (name, tensors, node text, torch function of the tensors by name)
CASES = [
    ("matmul_batched", {"A": [2, 3, 4], "B": [2, 4, 5]}, "A @ B",
     lambda t, T: T.matmul(t["A"], t["B"])),
    ("matmul_broadcast", {"A": [2, 1, 3, 4], "B": [5, 4, 2]}, "A @ B",
     lambda t, T: T.matmul(t["A"], t["B"])),
    ("matmul_matrix_stack", {"A": [3, 4], "B": [2, 4, 5]}, "A @ B",
     lambda t, T: T.matmul(t["A"], t["B"])),
    ("matmul_stack_vector", {"A": [2, 3, 4], "b": [4]}, "A @ b",
     lambda t, T: T.matmul(t["A"], t["b"])),
    ("matmul_vector_stack", {"a": [3], "B": [2, 3, 4]}, "a @ B",
     lambda t, T: T.matmul(t["a"], t["B"])),
    ("reshape", {"A": [2, 3, 4]}, "reshape(A, 6, 4)",
     lambda t, T: t["A"].reshape(6, 4)),
    ("reshape_mixed", {"A": [2, 3, 4]}, "reshape(A, shape=[4, -1])",
     lambda t, T: t["A"].reshape(4, -1)),
    ("reshape_split", {"A": [6, 4]}, "reshape(A, 2, 2, 3, 2)",
     lambda t, T: t["A"].reshape(2, 2, 3, 2)),
    ("broadcast_to", {"C": [3, 1]}, "broadcast_to(C, 2, 3, 4)",
     lambda t, T: t["C"].expand(2, 3, 4)),
    ("permute", {"A": [2, 3, 4]}, "permute(A, 2, 0, 1)",
     lambda t, T: t["A"].permute(2, 0, 1)),
    ("transpose_axes", {"A": [2, 3, 4]}, "transpose(A, 1, 0, 2)",
     lambda t, T: t["A"].permute(1, 0, 2)),
    ("dot_T_reverses", {"A": [2, 3, 4]}, "A.T",
     lambda t, T: t["A"].permute(2, 1, 0)),
    ("sum_axes", {"A": [2, 3, 4]}, "sum(A, 0, 2)",
     lambda t, T: t["A"].sum(dim=(0, 2))),
    ("summation_axes", {"A": [2, 3, 4]}, "summation(A, axes=[1, 2])",
     lambda t, T: t["A"].sum(dim=(1, 2))),
    ("mean_axes", {"A": [2, 3, 4]}, "mean(A, axes=[0, 1])",
     lambda t, T: t["A"].mean(dim=(0, 1))),
    ("max_axes", {"A": [2, 3, 4]}, "max(A, 0, 2)",
     lambda t, T: T.amax(t["A"], dim=(0, 2))),
    ("max_all", {"A": [2, 3]}, "max(A)",
     lambda t, T: T.amax(t["A"])),
    ("logsumexp_axes", {"A": [2, 3, 4]}, "logsumexp(A, axes=[0, 2])",
     lambda t, T: T.logsumexp(t["A"], dim=(0, 2))),
]
IDS = [c[0] for c in CASES]


def _values(tensors, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=s) for k, s in tensors.items()}


def _derive(tensors, text, values=None):
    spec = {"kind": "tensor_graph", "tensors": tensors, "nodes": {"v": text}, "output": "v"}
    if values is not None:
        spec["values"] = {k: v.tolist() for k, v in values.items()}
    return solve_spec(spec, "shape.yaml")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_value_and_gradient_match_torch_autograd(case):
    T = _torch()
    _, tensors, text, fn = case
    values = _values(tensors)
    d = _derive(tensors, text)
    out, grads = derive.evaluate(d, values)
    upstream = np.random.default_rng(1).normal(size=out.shape)
    out, grads = derive.evaluate(d, values, upstream=upstream)
    t = {k: T.tensor(v, dtype=T.float64, requires_grad=True) for k, v in values.items()}
    want = fn(t, T)
    assert out.shape == tuple(want.shape)
    np.testing.assert_allclose(out, want.detach().numpy(), rtol=1e-12, atol=1e-12)
    want.backward(T.tensor(upstream, dtype=T.float64))
    for k in tensors:
        np.testing.assert_allclose(grads[k], t[k].grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=f"d/d{k}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradient_matches_central_differences(case):
    _, tensors, text, _ = case
    values = _values(tensors, seed=2)
    d = _derive(tensors, text)
    out, _ = derive.evaluate(d, values)
    upstream = np.random.default_rng(3).normal(size=out.shape)
    _, grads = derive.evaluate(d, values, upstream=upstream)
    h = 1e-6
    for k in tensors:
        fd = np.zeros_like(values[k])
        for pos in np.ndindex(values[k].shape):
            plus, minus = dict(values), dict(values)
            plus[k], minus[k] = values[k].copy(), values[k].copy()
            plus[k][pos] += h
            minus[k][pos] -= h
            fd[pos] = np.sum(upstream * (derive.evaluate(d, plus)[0]
                                         - derive.evaluate(d, minus)[0])) / (2 * h)
        np.testing.assert_allclose(grads[k], fd, rtol=1e-6, atol=1e-7, err_msg=f"d/d{k}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_printed_equals_computed_with_no_skips(case):
    _, tensors, text, _ = case
    d = _derive(tensors, text, _values(tensors, seed=4))
    counts = check_printed(d)
    assert counts["checked"] > 0 and counts["skipped"] == 0, counts


def test_one_document_with_every_op_renders_and_checks():
    import reports

    tensors = {"A": [2, 3, 4], "B": [4, 5], "C": [3, 1, 5], "x": [6, 4]}
    nodes = {"v1": "A @ B", "v2": "reshape(v1, shape=[6, -1])",
             "v3": "broadcast_to(C, 2, 3, 4, 5)", "v4": "permute(v3, 3, 1, 0, 2)",
             "v5": "summation(v4, axes=[1, 3])", "v6": "max(v2, 0, 1)",
             "v7": "logsumexp(A, axes=[0, 2])", "v8": "mean(A, axes=[1, 2])",
             "v10": "x @ permute(A, 0, 2, 1)",
             "v9": "sum(v5) + v6 + sum(v7) + sum(v8) + sum(tanh(v10))"}
    values = _values(tensors, seed=5)
    spec = {"kind": "tensor_graph", "tensors": tensors, "nodes": nodes, "output": "v9",
            "values": {k: v.tolist() for k, v in values.items()}}
    d = solve_spec(spec, "all.yaml")
    counts = check_printed(d)
    assert counts["skipped"] == 0 and counts["checked"] > 50, counts
    md = reports.render(d, "md")
    assert "Backward pass" in md or "adjoint" in md.lower()
    assert r"\lfloor" in md  # reshape's positions are printed as integer divisions


def test_reshape_adjoint_is_a_reshape_and_broadcast_adjoint_a_sum():
    d = _derive({"A": [2, 3, 4]}, "reshape(A, 6, 4)")
    (back,) = [a for a in d.program.backward if a.target == "A_bar"]
    # one exact scatter visiting each entry once: A_bar[⌊i/3⌋, i mod 3, j] += v_bar[i, j]
    assert back.mode == "+=" and "KroneckerDelta" not in str(back.rhs)
    assert str(back.rhs).startswith("v_bar[")
    d = _derive({"C": [3, 1]}, "broadcast_to(C, 2, 3, 4)")
    (back,) = [a for a in d.program.backward if a.target == "C_bar"]
    assert "ISum" in str(back.rhs)


@pytest.mark.parametrize("text, tensors, words", [
    ("reshape(A, 5, 5)", {"A": [2, 3, 4]}, ["[2, 3, 4]", "[5, 5]"]),
    ("reshape(A, -1, 5)", {"A": [2, 3, 4]}, ["[2, 3, 4]", "[-1, 5]"]),
    ("broadcast_to(C, 2, 4)", {"C": [3]}, ["[3]", "[2, 4]"]),
    ("broadcast_to(C, 3)", {"C": [2, 3]}, ["[2, 3]", "[3]"]),
    ("A @ B", {"A": [2, 3, 4], "B": [3, 4, 5]}, ["[2, 3, 4]", "[3, 4, 5]"]),
    ("A @ B", {"A": [2, 3, 4], "B": [2, 3, 5]}, ["[2, 3, 4]", "[2, 3, 5]"]),
    ("permute(A, 0, 0, 1)", {"A": [2, 3, 4]}, ["[0, 0, 1]", "[2, 3, 4]"]),
    ("sum(A, 3)", {"A": [2, 3, 4]}, ["3", "[2, 3, 4]"]),
])
def test_bad_shapes_are_one_line_errors_naming_the_shapes(text, tensors, words):
    with pytest.raises(ShapeError) as err:
        _derive(tensors, text)
    message = str(err.value)
    assert "\n" not in message and "shape.yaml" in message
    for w in words:
        assert w in message, message


def test_bad_keywords_are_input_errors():
    with pytest.raises(InputError):
        _derive({"A": [2, 3]}, "sum(A, axes=[0], shape=[1])")
    with pytest.raises(InputError):
        _derive({"A": [2, 3]}, "sum(A, axes=[0.5])")
    with pytest.raises(InputError):
        _derive({"A": [2, 3]}, "mse(A, A, axes=[0])")


# -- derive.evaluate(..., return_nodes=...) and BatchNorm's starting statistics ------------------


def test_evaluate_returns_nodes_and_updated_running_statistics_like_torch():
    T = _torch()
    from derive.layers import BatchNorm

    rng = np.random.default_rng(6)
    x, gamma, beta = rng.normal(size=(5, 3)), rng.normal(size=3), rng.normal(size=3)
    out, grads, nodes = derive.evaluate(BatchNorm(3), {"x": x, "gamma": gamma, "beta": beta},
                                        return_nodes=["state", "xhat"])
    bn = T.nn.BatchNorm1d(3).double()
    bn.train()
    with T.no_grad():
        bn.weight.copy_(T.tensor(gamma))
        bn.bias.copy_(T.tensor(beta))
    want = bn(T.tensor(x))
    np.testing.assert_allclose(out, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(nodes["running_mean_new"], bn.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(nodes["running_var_new"], bn.running_var.numpy(), rtol=1e-12)
    assert nodes["xhat"].shape == (5, 3) and set(grads) >= {"x", "gamma", "beta"}


def test_running_statistics_start_at_zero_and_one_unless_given():
    from derive.layers import BatchNorm

    x = np.arange(6.0).reshape(3, 2)
    base = {"x": x, "gamma": np.ones(2), "beta": np.zeros(2)}
    _, _, a = derive.evaluate(BatchNorm(2), base, return_nodes=["running_mean_new"])
    _, _, b = derive.evaluate(BatchNorm(2), {**base, "running_mean": np.zeros(2),
                                             "running_var": np.ones(2)},
                              return_nodes="running_mean_new")
    np.testing.assert_allclose(a["running_mean_new"], b["running_mean_new"])
    _, _, c = derive.evaluate(BatchNorm(2), {**base, "running_mean": np.full(2, 5.0)},
                              return_nodes=["running_mean_new"])
    np.testing.assert_allclose(c["running_mean_new"], 0.9 * 5.0 + 0.1 * x.mean(0))
    out, grads = derive.evaluate(BatchNorm(2), base)  # two values without return_nodes
    assert out.shape == (3, 2)


def test_return_nodes_names_an_unknown_node():
    from derive.layers import Linear

    values = {"x": [[1.0, 2.0]], "W": [[3.0, 4.0]], "b": [0.5]}
    with pytest.raises(InputError, match="no array named 'nope'"):
        derive.evaluate(Linear(2, 1), values, return_nodes=["nope"])
    _, _, nodes = derive.evaluate(Linear(2, 1), values, return_nodes=["W_bar"])
    assert nodes["W_bar"].tolist() == [[1.0, 2.0]]
