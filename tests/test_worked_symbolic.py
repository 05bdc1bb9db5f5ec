"""Worked kinds over declared symbols (BCE, LayerNorm/BatchNorm, architecture tables) and
BatchNorm's running-variance convention.

Symbolic answers are checked against expressions built here with SymPy from the textbook
formulas, and against torch / NumPy after putting numbers in for the symbols; every step's
chain is checked to agree along itself at those numbers.
"""

import numpy as np
import pytest
import sympy as sp

from derive.errors import InputError, ShapeError
from derive.problem import solve_spec
from derive.step_values import number


def solve(**spec):
    return solve_spec(spec, "t.yaml")


def at(expr, values):
    """``expr`` with the named symbols replaced by numbers (whatever their assumptions)."""
    subs = {s: values[s.name] for s in sp.sympify(expr).free_symbols if s.name in values}
    return sp.sympify(expr).subs(subs)


def chains_agree(d, values):
    """Every step side that becomes a number once the symbols get ``values`` equals the
    next such side (the symbolic sides of a chain are the same quantity)."""
    checked = 0
    for section in d.sections:
        for step in section.steps:
            previous = None
            for side in step.rhs:
                if not isinstance(side, (sp.Basic, sp.MatrixBase)):
                    continue
                value = number(side.subs({s: values[s.name] for s in side.free_symbols
                                          if s.name in values}))
                if value is None:
                    continue
                if previous is not None:
                    assert abs(complex(value - previous)) < 1e-9, (section.title, step.lhs)
                    checked += 1
                previous = value
    return checked


# -- BCE over symbolic probabilities ---------------------------------------------------------
def test_bce_of_letters_is_the_exam_average_over_the_training_nodes():
    # exam: nodes 1..5 with y = 0 1 1 1 0 and predictions a..e; nodes 1 and 4 held out,
    # so the training loss averages over nodes 2, 3, 5: (1/n) sum y log(1/yhat) + ...
    d = solve(kind="bce", symbols=["b", "c", "e"], probs=["b", "c", "e"], targets=[1, 1, 0])
    b, c, e = sp.symbols("b c e")
    expected = (sp.log(1 / b) + sp.log(1 / c) + sp.log(1 / (1 - e))) / 3
    for values in ({"b": 0.9, "c": 0.6, "e": 0.2}, {"b": 0.3, "c": 0.75, "e": 0.55}):
        got = float(at(d.result, values))
        assert got == pytest.approx(float(at(expected, values)), rel=1e-12)
        p, y = np.array([values["b"], values["c"], values["e"]]), np.array([1, 1, 0])
        assert got == pytest.approx(float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))))
        assert chains_agree(d, values) >= 4
    assert not d.result.has(sp.Float)  # exact: logs of the letters, no decimals
    assert any("b, c, e are symbols" in n for n in d.notes)


def test_bce_of_symbolic_logits_against_torch():
    torch = pytest.importorskip("torch")
    d = solve(kind="bce", symbols=["z", "w"], logits=["z", "2*w"], targets=[1, "1/4"],
              reduction="sum")
    for z, w in ((0.7, -0.3), (-2.0, 1.5)):
        want = torch.nn.functional.binary_cross_entropy_with_logits(
            torch.tensor([z, 2 * w], dtype=torch.float64),
            torch.tensor([1.0, 0.25], dtype=torch.float64), reduction="sum").item()
        assert float(at(d.result, {"z": z, "w": w})) == pytest.approx(want, rel=1e-12)
        assert chains_agree(d, {"z": z, "w": w}) >= 3
    first = next(s for s in d.sections[-2].steps if str(s.lhs) == "l_1")
    assert sp.simplify(at(first.rhs[-1], {"z": sp.Symbol("z")})
                       - sp.log(1 + sp.exp(-sp.Symbol("z")))) == 0


@pytest.mark.parametrize("spec, where, words", [
    (dict(probs=["b"], targets=[1]), "probs[0]", "'b' is used but not declared"),
    (dict(symbols=["b"], probs=["b", "c"], targets=[1, 0]), "probs[1]", "'c' is used but not"),
    (dict(symbols=["b"], probs=["b"], targets=["b"]), "targets[0]", "must be a number"),
    (dict(symbols=["b", "b"], probs=["b"], targets=[1]), "symbols[1]", "declared twice"),
    (dict(symbols=["exp"], probs=["exp"], targets=[1]), "symbols[0]", "function"),
    (dict(symbols=["2b"], probs=["b"], targets=[1]), "symbols[0]", "not a valid name"),
    (dict(symbols="b", probs=["b"], targets=[1]), "symbols", "list"),
])
def test_bce_bad_symbols_are_one_line_naming_the_key(spec, where, words):
    with pytest.raises(InputError) as err:
        solve(kind="bce", **spec)
    message = str(err.value)
    assert f"t.yaml: {where}:" in message and words in message and "\n" not in message


# -- LayerNorm / BatchNorm over symbolic entries --------------------------------------------
def _normalised(row):
    """Textbook LayerNorm of one row with eps = 0, written independently here."""
    n = len(row)
    mu = sum(row) / n
    var = sum((v - mu) ** 2 for v in row) / n
    return mu, var, [(v - mu) / sp.sqrt(var) for v in row]


def test_layernorm_of_letters_against_sympy_and_torch():
    torch = pytest.importorskip("torch")
    d = solve(kind="layernorm", symbols=["a", "b", "c"], X=[["a", "b", "c"]])
    a, b, c = sp.symbols("a b c", real=True)
    mu, var, xhat = _normalised([a, b, c])
    by_lhs = {str(s.lhs): s.rhs[-1] for sec in d.sections for s in sec.steps}
    assert sp.simplify(by_lhs["mu_1"] - mu) == 0
    assert sp.expand(by_lhs["sigma_1**2"] - var) == 0
    for values in ({"a": 1, "b": 2, "c": 4}, {"a": -3, "b": 5, "c": "1/2"}):
        vals = {k: sp.Rational(v) for k, v in values.items()}
        for got, want in zip(d.result[0], xhat):
            assert sp.nsimplify(at(got, vals) - at(want, vals)) == 0  # exact agreement
        x = torch.tensor([[float(vals[k]) for k in "abc"]], dtype=torch.float64)
        ref = torch.nn.functional.layer_norm(x, (3,), eps=0.0)[0].tolist()
        assert [float(at(v, vals)) for v in d.result[0]] == pytest.approx(ref, rel=1e-12)
        assert chains_agree(d, vals) >= 5  # mean, variance, three entries


def test_layernorm_of_two_letters_is_the_sign_of_their_difference():
    d = solve(kind="layernorm", symbols=["a", "b"], X=[["a", "b"]])
    a, b = sp.symbols("a b", real=True)
    first = at(d.result[0][0], {"a": a, "b": b})
    assert sp.simplify(first.subs(a, b + sp.Symbol("t", positive=True))) == 1  # a > b
    assert sp.simplify(first.subs(a, b - sp.Symbol("t", positive=True))) == -1  # a < b
    assert at(d.result[0][1], {"a": 1, "b": 4}) == 1
    assert any("absolute value" in n for n in d.notes)


def test_batchnorm_symbolic_column_with_affine_against_torch():
    torch = pytest.importorskip("torch")
    d = solve(kind="batchnorm", symbols=["a", "b", "g"], X=[["a", 1], ["b", 3], [0, "2*a"]],
              eps="1/100", gamma=["g", 2], beta=[1, "b"])
    for values in ({"a": 2, "b": 5, "g": 3}, {"a": -1, "b": "1/2", "g": "1/3"}):
        vals = {k: sp.Rational(v) for k, v in values.items()}
        fl = {k: float(v) for k, v in vals.items()}
        bn = torch.nn.BatchNorm1d(2, eps=0.01, dtype=torch.float64)
        with torch.no_grad():
            bn.weight.copy_(torch.tensor([fl["g"], 2.0], dtype=torch.float64))
            bn.bias.copy_(torch.tensor([1.0, fl["b"]], dtype=torch.float64))
        x = torch.tensor([[fl["a"], 1], [fl["b"], 3], [0, 2 * fl["a"]]], dtype=torch.float64)
        ref = bn(x).detach().numpy()
        got = np.array([[float(at(v, vals)) for v in row] for row in d.result])
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
        assert chains_agree(d, vals) >= 10


@pytest.mark.parametrize("update", ["unbiased", "biased"])
def test_running_variance_convention_published_batch(update):
    torch = pytest.importorskip("torch")
    X = [[2, 3, 4], [1, 2, 2]]  # the exam's BatchNorm1d batch
    spec = dict(kind="batchnorm", X=X, eps=0, momentum="1/10")
    if update == "biased":
        spec["running_var_update"] = "biased"
    d = solve(**spec)
    section = next(s for s in d.sections if s.title.startswith("Running statistics"))
    got = [s.rhs[-1] for s in section.steps if "sigmahat" in str(s.lhs)]
    x = np.array(X, dtype=float)
    if update == "unbiased":  # PyTorch's own update
        bn = torch.nn.BatchNorm1d(3, momentum=0.1, dtype=torch.float64)  # eps: not in the update
        bn(torch.tensor(x))
        want = bn.running_var.tolist()
        assert got == [sp.Rational(19, 20), sp.Rational(19, 20), sp.Rational(11, 10)]
        assert "running_var_update: unbiased" in section.text and "n - 1" in section.text
    else:  # needle / CS231n: the biased batch variance
        want = list(0.9 * 1 + 0.1 * x.var(axis=0, ddof=0))
        assert got == [sp.Rational(37, 40), sp.Rational(37, 40), 1]
        assert "running_var_update: biased" in section.text and "needle" in section.text
    assert [float(v) for v in got] == pytest.approx(want, rel=1e-12)
    assert d.result == [[1, 1, 1], [-1, -1, -1]]  # normalising is the same either way


def test_running_variance_of_letters_biased_and_unbiased():
    a, b = sp.symbols("a b", real=True)
    for update, divide in (("biased", 2), ("unbiased", 1)):
        d = solve(kind="batchnorm", symbols=["a", "b", "r"], X=[["a"], ["b"]],
                  running_var=["r"], momentum="1/4", running_var_update=update)
        section = next(s for s in d.sections if s.title.startswith("Running statistics"))
        var = next(s for s in section.steps if "sigmahat" in str(s.lhs)).rhs[-1]
        r = sp.Symbol("r")
        batch = ((a - b) ** 2 / 2) / divide  # squares about the mean, over n or n - 1
        want = sp.Rational(3, 4) * r + sp.Rational(1, 4) * batch
        assert sp.expand(at(var, {"a": a, "b": b, "r": r}) - want) == 0
        assert chains_agree(d, {"a": 3, "b": -1, "r": 2}) >= 4


def test_one_example_batch_biased_updates_the_variance_unbiased_says_why_not():
    biased = solve(kind="batchnorm", X=[[1, 2]], eps=1, running_var_update="biased")
    section = next(s for s in biased.sections if s.title.startswith("Running"))
    assert [s.rhs[-1] for s in section.steps if "sigmahat" in str(s.lhs)] == [
        sp.Rational(9, 10), sp.Rational(9, 10)]
    unbiased = solve(kind="batchnorm", X=[[1, 2]], eps=1, momentum="1/10")
    section = next(s for s in unbiased.sections if s.title.startswith("Running"))
    assert not any("sigmahat" in str(s.lhs) for s in section.steps)
    assert "undefined" in section.text


@pytest.mark.parametrize("spec, where, words", [
    (dict(kind="batchnorm", X=[[1, 2], [3, 5]], running_var="biased"), "running_var",
     "running_var_update: biased"),
    (dict(kind="batchnorm", X=[[1, 2], [3, 5]], running_var_update="sample"),
     "running_var_update", "unbiased, biased"),
    (dict(kind="batchnorm", X=[[1, 2], [3, 5]], mode="eval", running_var_update="biased"),
     "running_var_update", "eval mode"),
    (dict(kind="layernorm", symbols=["a"], X=[["a", 2]], eps="a"), "eps", "must be a number"),
    (dict(kind="batchnorm", symbols=["a"], X=[["a", 2], [1, 3]], momentum="a/2"), "momentum",
     "must be a number"),
    (dict(kind="layernorm", X=[["a", "b"]]), "X[0][0]", "'a' is used but not declared"),
    (dict(kind="batchnorm", symbols=["a"], X=[[1, 2], [3, 4]], gamma=["a", "q"]), "gamma[1]",
     "'q' is used but not declared"),
])
def test_norm_bad_input_is_one_line_naming_the_key(spec, where, words):
    with pytest.raises(InputError) as err:
        solve(**spec)
    message = str(err.value)
    assert f"t.yaml: {where}:" in message and words in message and "\n" not in message


# -- architecture tables in symbols ---------------------------------------------------------
def _torch_count(module):
    return sum(p.numel() for p in module.parameters())


def test_mlp_in_letters_against_torch():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    d = solve(kind="architecture", symbols=["d", "h", "C", "B"], input=["d"],
              layers=["linear(h)", "layernorm", "relu", "linear(2*h)", "linear(C)"])
    dd, h, C = sp.symbols("d h C")
    want = [dd * h + h, 2 * h, 0, 2 * h ** 2 + 2 * h, 2 * h * C + C]
    got = [at(r["parameters"], {"d": dd, "h": h, "C": C}) for r in d.result]
    assert [sp.expand(g - w) for g, w in zip(got, want)] == [0] * 5
    assert d.result[-1]["shape"][0] == "B" and str(d.result[3]["shape"][1]) == "2*h"
    for n_d, n_h, n_c in ((2, 16, 20), (7, 3, 5)):
        net = nn.Sequential(nn.Linear(n_d, n_h), nn.LayerNorm(n_h), nn.ReLU(),
                            nn.Linear(n_h, 2 * n_h), nn.Linear(2 * n_h, n_c))
        values = {"d": n_d, "h": n_h, "C": n_c}
        assert [at(r["parameters"], values) for r in d.result] == [
            _torch_count(m) for m in net]
        assert at(d.meta["total_parameters"], values) == _torch_count(net)
    assert d.meta["total_parameters"].is_polynomial()


def test_mlp_shorthand_and_conv_in_letters_against_torch():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    mlp = solve(kind="architecture", symbols=["d", "h", "C"], mlp=["d", "h", "C"])
    assert at(mlp.meta["total_parameters"], {"d": 2, "h": 1024, "C": 3}) == 2 * 1024 + 1024 \
        + 1024 * 3 + 3
    d = solve(kind="architecture", symbols=["C", "F", "H", "W"], input=["C", "H", "W"],
              layers=["conv2d(F, 3, padding=1)", "batchnorm", "relu", "maxpool(2)",
                      "conv2d(2*F, [3, 5], padding=[1, 2])", "globalavgpool", "linear(10)"])
    for n_c, n_f, n_h, n_w in ((1, 4, 28, 28), (3, 8, 17, 10)):
        net = nn.Sequential(nn.Conv2d(n_c, n_f, 3, padding=1), nn.BatchNorm2d(n_f), nn.ReLU(),
                            nn.MaxPool2d(2), nn.Conv2d(n_f, 2 * n_f, (3, 5), padding=(1, 2)),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * n_f, 10))
        values = {"C": n_c, "F": n_f, "H": n_h, "W": n_w}
        counts = [_torch_count(m) for m in net]
        counts = counts[:6] + counts[7:]  # nn.Flatten is part of this kind's globalavgpool
        assert [at(r["parameters"], values) for r in d.result] == counts
        x = torch.zeros(2, n_c, n_h, n_w)
        shapes = []
        for m in list(net)[:6]:
            x = m(x)
            shapes.append(list(x.shape[1:]))
        got = [[at(s, values) for s in r["shape"][1:]] for r in d.result[:5]]
        assert got == shapes[:5]


def test_recurrent_in_letters_against_torch():
    torch = pytest.importorskip("torch")
    d = solve(kind="architecture", symbols=["T", "d", "h"], input=["T", "d"], bias_vectors=2,
              layers=["lstm(h, num_layers=2)", "gru(h, return_sequences=0)"])
    for n_d, n_h in ((5, 7), (16, 3)):
        want = [_torch_count(torch.nn.LSTM(n_d, n_h, num_layers=2)),
                _torch_count(torch.nn.GRU(n_h, n_h))]
        assert [at(r["parameters"], {"d": n_d, "h": n_h}) for r in d.result] == want
    assert any("left out" in n for n in d.notes)  # the formula's h and d are the file's


def test_architecture_example_head_in_exam_symbols():
    d = solve(kind="architecture", symbols=["C_6", "H_6", "W_6", "n_c"],
              input=["C_6", "H_6", "W_6"], layers=["globalavgpool", "linear(n_c)"])
    C6, nc = sp.symbols("C_6 n_c")
    assert sp.expand(at(d.result[1]["parameters"], {"C_6": C6, "n_c": nc}) - (C6 * nc + nc)) == 0
    assert [str(s) for s in d.result[0]["shape"]] == ["B", "C_6"]


@pytest.mark.parametrize("spec, where, words, error", [
    (dict(input=["d"], layers=["linear(3)"]), "input[0]", "'d' is used but not declared",
     InputError),
    (dict(symbols=["d"], input=["d"], layers=["linear(h)"]), "layers[0]",
     "'h' is used but not declared", InputError),
    (dict(symbols=["d"], mlp=["d", "q"]), "mlp[1]", "'q' is used but not declared", InputError),
    (dict(symbols=["C", "k"], input=["C", 8, 8], layers=["conv2d(4, k, padding='same')"]),
     "layers[0]", "numeric (odd) kernel", ShapeError),
    (dict(symbols=["d"], input=["d"], layers=["linear(d, bias=d)"]), "layers[0]",
     "bias must be 0 or 1", InputError),
])
def test_architecture_bad_symbols_are_one_line(spec, where, words, error):
    with pytest.raises(error) as err:
        solve(kind="architecture", **spec)
    message = str(err.value)
    assert f"t.yaml: {where}:" in message and words in message and "\n" not in message


def test_a_result_mixing_letters_and_radicals_renders_in_every_format():
    reports = pytest.importorskip("reports")
    d = solve(kind="batchnorm", mode="eval", symbols=["a", "m", "v"], X=[["a", 1], [2, 3]],
              running_mean=["m", 0], running_var=["v", 1], eps="1/100")
    assert d.result[0][1] == 10 * sp.sqrt(101) / 101
    md = reports.render(d, "md")
    result = md[md.index("## Result"):]
    assert r"\approx" in result and "0.995037" in result and result.count("v + ") == 4
    assert "0.995037" in reports.render(d, "tex") and reports.render(d, "html")
