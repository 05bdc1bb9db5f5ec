"""Worked dropout, attention, perceptron, kNN and decoding."""
import numpy as np
import pytest
import sympy as sp

from derive.errors import InputError, ShapeError
from derive.problem import solve_spec
from reports.latex_printer import latex


def solve(**spec):
    return solve_spec(spec, "t.yaml")


# -- dropout -----------------------------------------------------------------------------------
def test_inverted_dropout_with_mask_and_expectation():
    d = solve(kind="dropout", x=[2, 4, -1, 3], p="1/2", mask=[1, 0, 1, 1])
    assert d.result == [4, 0, -2, 6]
    expect = next(s for sec in d.sections for s in sec.steps
                  if latex(s.lhs) == r"\mathbb{E}\left[y_{\mathrm{train}}\right]")
    assert list(expect.rhs[0]) == [2, 4, -1, 3]


def test_dropout_expectation_matches_monte_carlo():
    x, p = np.array([1.0, -2.0, 3.0]), 0.3
    d = solve(kind="dropout", x=x.tolist(), p=p)
    rng = np.random.default_rng(0)
    masks = rng.random((200000, 3)) >= p
    samples = masks * x / (1 - p)
    np.testing.assert_allclose(np.array(d.result, dtype=float), samples.mean(0), atol=0.03)
    var = next(s for sec in d.sections for s in sec.steps
               if latex(s.lhs) == r"\operatorname{Var}\left[y_{\mathrm{train}}\right]")
    np.testing.assert_allclose(np.array(var.rhs[0], dtype=float).ravel(), samples.var(0),
                               rtol=0.03)


def test_classic_dropout_scales_at_eval_and_torch_eval_is_identity():
    d = solve(kind="dropout", x=[[2, 4]], keep_prob="4/5", inverted=False, mode="eval")
    assert d.result == [[sp.Rational(8, 5), sp.Rational(16, 5)]]
    torch = pytest.importorskip("torch")
    layer = torch.nn.Dropout(0.5).eval()
    x = torch.tensor([2.0, 4.0])
    evaluated = solve(kind="dropout", x=[2, 4], p=0.5, mode="eval").result
    assert [float(v) for v in evaluated] == x.tolist()
    assert layer(x).tolist() == x.tolist()


@pytest.mark.parametrize("spec, error, where", [
    ({"kind": "dropout", "x": [1, 2], "p": 1}, InputError, "p"),
    ({"kind": "dropout", "x": [1, 2], "p": 0.5, "keep_prob": 0.5}, InputError, "t.yaml"),
    ({"kind": "dropout", "x": [1, 2], "p": 0.5, "mask": [1]}, ShapeError, "mask"),
    ({"kind": "dropout", "x": [1, 2], "p": 0.5, "mask": [1, 2]}, InputError, "mask"),
])
def test_bad_dropout(spec, error, where):
    with pytest.raises(error) as info:
        solve(**spec)
    assert where in str(info.value) and "\n" not in str(info.value)


# -- attention ---------------------------------------------------------------------------------
Q, K, V = [[1, 0], [0, 1]], [[1, 0], [0, 1], [1, 1]], [[1, 2], [3, 4], [5, 6]]


def test_attention_against_numpy_and_torch():
    d = solve(kind="attention", Q=Q, K=K, V=V)
    q, k, v = (np.array(a, float) for a in (Q, K, V))
    s = q @ k.T / np.sqrt(2)
    a = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    np.testing.assert_allclose(np.array(d.result["weights"], dtype=float), a, rtol=1e-12)
    np.testing.assert_allclose(np.array(d.result["output"], dtype=float), a @ v, rtol=1e-12)
    assert d.result["output"][0] == [3, 4]  # exact: equal weights on keys 1 and 3
    torch = pytest.importorskip("torch")
    ref = torch.nn.functional.scaled_dot_product_attention(
        *(torch.tensor(x, dtype=torch.float64)[None] for x in (Q, K, V)))[0]
    np.testing.assert_allclose(np.array(d.result["output"], dtype=float), ref.numpy())


def test_argmax_attention_takes_the_first_maximum():
    d = solve(kind="attention", Q=Q, K=K, V=V)
    assert d.result["argmax_weights"] == [[1, 0, 0], [0, 1, 0]]
    assert d.result["argmax_output"] == [[1, 2], [3, 4]]


def test_causal_mask_and_scale():
    d = solve(kind="attention", Q=[[1.0, 0], [0, 1]], K=[[1, 0], [0, 1]], V=[[1, 2], [3, 4]],
              mask="causal", scale="none")
    assert [float(v) for v in d.result["weights"][0]] == [1, 0]
    e = np.e
    np.testing.assert_allclose(np.array(d.result["output"][1], dtype=float),
                               [(1 + 3 * e) / (1 + e), (2 + 4 * e) / (1 + e)])


@pytest.mark.parametrize("spec, error, where", [
    ({"Q": [[1, 0]], "K": [[1, 0, 0]], "V": [[1]]}, ShapeError, "K"),
    ({"Q": [[1, 0]], "K": [[1, 0]], "V": [[1], [2]]}, ShapeError, "V"),
    ({"Q": [[1, 0]], "K": [[1, 0]], "V": [[1]], "mask": [[0]]}, InputError, "mask"),
])
def test_bad_attention(spec, error, where):
    with pytest.raises(error) as info:
        solve(kind="attention", **spec)
    assert where in str(info.value) and "\n" not in str(info.value)


# -- perceptron --------------------------------------------------------------------------------
@pytest.mark.parametrize("gate, table", [("AND", [0, 0, 0, 1]), ("OR", [0, 1, 1, 1]),
                                         ("NAND", [1, 1, 1, 0])])
def test_perceptron_learns_linearly_separable_gates(gate, table):
    d = solve(kind="perceptron", function=gate)
    r = d.result
    assert r["converged"]
    w, b = np.array(r["w"], dtype=float), float(r["b"])
    preds = [int(w @ x + b > 0) for x in ([0, 0], [0, 1], [1, 0], [1, 1])]
    assert preds == table


def test_perceptron_and_steps_from_zero():
    d = solve(kind="perceptron", function="AND")
    first = d.sections[0]
    assert first.title == "Epoch 1" and "1 mistake(s)" in first.text
    assert d.result == {"w": [2, 1], "b": -2, "converged": True, "epochs": 6}


def test_perceptron_xor_fails_with_cycle_and_proof():
    d = solve(kind="perceptron", function="XOR", epochs=20)
    assert d.result["converged"] is False
    titles = [s.title for s in d.sections]
    assert "Cycle" in titles and "Why XOR cannot be learned" in titles
    assert d.result["epochs"] < 20  # the cycle is detected early


# -- kNN ---------------------------------------------------------------------------------------
def test_knn_l1_and_l2_differ_where_they_should():
    spec = {"kind": "knn", "X": [[2, 2], [3, 0]], "y": ["a", "b"], "query": [0, 0], "k": 1,
            "metric": "both"}
    d = solve_spec(spec, "t.yaml")
    # L1: 4 and 3 -> b;  L2: sqrt(8) < 3 -> a
    assert d.result == {"l1": "b", "l2": "a"}
    l2 = [s.rhs for s in d.sections[1].steps[:2]]
    assert l2[0][-2] == 2 * sp.sqrt(2) and l2[1][-1] == 3


def test_knn_tied_vote_goes_to_the_nearest():
    spec = {"kind": "knn", "X": [[0, 0], [3, 0], [2, 2]], "y": ["a", "b", "c"],
            "query": [[2, 0], [3, 3]], "k": 3, "metric": "l2"}
    # every class has one vote: the nearest point decides (b at 1; c at sqrt(2))
    assert solve_spec(spec, "t.yaml").result == ["b", "c"]
    spec.update(query=[0, 2], k=1, metric="l1")  # L1 distances 2, 5, 2: the earlier point
    assert solve_spec(spec, "t.yaml").result == "a"


def test_knn_against_sklearn_majority():
    sklearn = pytest.importorskip("sklearn.neighbors")
    rng = np.random.default_rng(1)
    X = rng.integers(0, 10, size=(12, 2))
    y = rng.integers(0, 2, size=12)
    q = [[4, 5], [9, 0], [1, 1]]
    for metric, p in (("l1", 1), ("l2", 2)):
        ours = solve(kind="knn", X=X.tolist(), y=y.tolist(), query=q, k=5, metric=metric).result
        ref = sklearn.KNeighborsClassifier(5, p=p).fit(X, y).predict(q)
        assert ours == ref.tolist()


def test_knn_bad_k():
    with pytest.raises(ShapeError, match="k = 4"):
        solve(kind="knn", X=[[0], [1]], y=[0, 1], query=[0], k=4)


# -- decoding ----------------------------------------------------------------------------------
TREE = {"A": {"p": "1/2", "next": {"x": {"p": "2/5"}, "y": {"p": "3/5"}}},
        "B": {"p": "2/5", "next": {"x": {"p": "9/10"}, "y": {"p": "1/10"}}},
        "C": {"p": "1/10"}}


def test_greedy_misses_what_beam_and_exhaustive_find():
    d = solve(kind="decoding", tree=TREE, beam=2)
    r = d.result
    assert r["greedy"]["sequence"] == ["A", "y"] and r["beam"]["sequence"] == ["B", "x"]
    assert r["exhaustive"]["sequence"] == ["B", "x"]
    assert sp.simplify(r["exhaustive"]["score"] - sp.log(sp.Rational(9, 25))) == 0
    assert solve(kind="decoding", tree=TREE, beam=1).result["beam"]["sequence"] == ["A", "y"]


def test_decoding_with_log_probabilities():
    tree = {"a": {"logp": -0.1, "next": {"b": {"logp": -3.0}}}, "c": {"logp": -0.5}}
    r = solve(kind="decoding", tree=tree, beam=2).result
    assert r["greedy"]["sequence"] == ["a", "b"] and r["exhaustive"]["sequence"] == ["c"]
    assert float(r["beam"]["score"]) == pytest.approx(-0.5)


@pytest.mark.parametrize("tree, where", [
    ({"a": {"p": 2}}, "tree.a.p"), ({"a": {"logp": 1}}, "tree.a.logp"),
    ({"a": {"p": 0.5, "logp": -1}}, "tree.a"), ({"a": 3}, "tree.a"),
    ({"a": {"p": 0.5, "nxt": {}}}, "tree.a"),
])
def test_bad_tree(tree, where):
    with pytest.raises(InputError) as info:
        solve(kind="decoding", tree=tree)
    assert where in str(info.value)
