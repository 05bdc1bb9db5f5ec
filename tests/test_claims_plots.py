"""Claims shown with plots (derive.worked.claims_plots) and figures in every output format.

Numbers are checked against the exam's published answers where they exist (midterm 3(a):
BatchNorm of N(1.5, 0.16) with beta = 3, gamma = 1; the midterm review's "sigmoid vanishes
for |x| > 5") and otherwise against an independent computation here (torch autograd for the
Jacobians and sigma', NumPy samples for BatchNorm).
"""
import base64
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import sympy as sp

from derive.derivation import png_size
from derive.errors import InputError
from derive.problem import solve_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "worked", "claims_plots.yaml")


def solved(**spec):
    return solve_spec({"kind": "claim", **spec}, "test.yaml")


@pytest.fixture(scope="module")
def gradients():
    return solved(claim="vanishing_gradients", depth=12, width=6, seed=3)


def test_sigmoid_derivative_bound_is_proved_and_is_the_true_maximum():
    from derive.worked.claims_plots import derivative_bounds

    _, sup = derivative_bounds()
    assert sup == {"sigmoid": sp.Rational(1, 4), "tanh": 1, "relu": 1}
    xs = np.linspace(-20, 20, 200001)
    s = 1 / (1 + np.exp(-xs))
    assert abs((s * (1 - s)).max() - 0.25) < 1e-9
    assert (1 - np.tanh(xs) ** 2).max() <= 1


def _torch_norms(weights, x0, f):
    torch = pytest.importorskip("torch")
    Ws = [torch.tensor(W, dtype=torch.float64) for W in weights]
    out = []
    for depth in range(1, len(Ws) + 1):
        def net(h, depth=depth):
            for W in Ws[:depth]:
                h = f(W @ h)
            return h
        J = torch.autograd.functional.jacobian(net, torch.tensor(x0, dtype=torch.float64))
        out.append(torch.linalg.matrix_norm(J, ord=2).item())
    return out


@pytest.mark.parametrize("through", ["depth", "time"])
def test_gradient_norms_match_torch_autograd(through):
    torch = pytest.importorskip("torch")
    d = solved(claim="vanishing_gradients", depth=10, width=5, seed=7, through=through,
               weight_scale=2)
    rng = np.random.default_rng(7)  # the net the claim documents: x0, then the W's
    x0 = rng.standard_normal(5)
    count = 1 if through == "time" else 10
    Ws = [rng.standard_normal((5, 5)) * 2 / np.sqrt(5) for _ in range(count)]
    Ws = Ws * 10 if through == "time" else Ws
    figure = d.sections[-1].figures[0]
    for name, f in (("sigmoid", torch.sigmoid), ("tanh", torch.tanh), ("relu", torch.relu)):
        expected = _torch_norms(Ws, x0, f)
        assert np.allclose(figure.data[name], expected, rtol=1e-9, atol=1e-300)
        assert abs(float(d.result["answer"][name]) - expected[-1]) <= 1e-9 * expected[-1]
    # the proved bound holds layer by layer: ||J_l|| <= (1/4)^l prod ||W_k||
    bound = np.cumprod([np.linalg.norm(W, 2) / 4 for W in Ws])
    assert np.all(np.array(figure.data["sigmoid"]) <= bound * (1 + 1e-12))


def test_gradients_vanish_fastest_through_sigmoid(gradients):
    norms = gradients.result["answer"]
    assert gradients.result["verdict"] == "shown"
    assert float(norms["sigmoid"]) < float(norms["relu"]) and \
        float(norms["sigmoid"]) < float(norms["tanh"])
    assert float(norms["sigmoid"]) < 0.25 ** 12 * 10 ** 6  # vanished, in line with the bound


def test_sigmoid_saturates_beyond_five_as_the_review_answers():
    torch = pytest.importorskip("torch")
    d = solved(claim="activation_saturation", at=[-5, 0, 5, 10])
    assert d.result["verdict"] == "proved"
    x = torch.tensor([-5.0, 0.0, 5.0, 10.0], dtype=torch.float64, requires_grad=True)
    torch.sigmoid(x).sum().backward()
    for a, g in zip(["-5", "0", "5", "10"], x.grad.tolist()):
        assert abs(float(d.result["answer"][a].args[0]) - g) < 1e-12
    # the review: vanishing for |x| > 5 -- under 3 % of the peak 1/4 already at 5
    assert x.grad[2] < 0.03 * 0.25 and x.grad[0] < 0.03 * 0.25
    data = d.sections[-1].figures[0].data
    xs, relu_prime = np.array(data["x"]), np.array(data["relu_prime"])
    assert np.all(relu_prime[xs < 0] == 0) and np.all(relu_prime[xs > 0] == 1)


def test_batchnorm_1d_matches_the_midterm_and_a_large_sample():
    # midterm 3(a): N(mu = 1.5, sigma^2 = 0.16), beta = 3, gamma = 1, a very large batch
    d = solved(claim="batchnorm_distribution", mean="3/2", variance="4/25", beta=3, gamma=1)
    answer = d.result["answer"]
    assert d.result["verdict"] == "proved"
    assert answer["mean"] == 3 and answer["variance"] == 1 and answer["sd"] == 1
    x = np.random.default_rng(0).normal(1.5, 0.4, 1_000_000)
    y = (x - x.mean()) / x.std() * 1 + 3
    assert abs(y.mean() - 3) < 1e-9 and abs(y.var() - 1) < 1e-9
    data = d.sections[-1].figures[0].data
    xs, after = np.array(data["x"]), np.array(data["after"])
    assert abs(xs[after.argmax()] - 3) < 0.05  # the peak sits at beta
    interval = [s for s in d.sections[-1].steps if "interval" in str(s.lhs)][0].rhs[0]
    assert (interval.start, interval.end) == (2, 4)


def test_batchnorm_2d_keeps_the_correlation():
    d = solved(claim="batchnorm_distribution", mean=[2, -1], covariance=[[4, "6/5"], ["6/5", 1]],
               beta=[1, 0], gamma=[2, 1])
    answer = d.result["answer"]
    assert answer["mean"] == [1, 0] and answer["correlation"] == sp.Rational(3, 5)
    cov = np.array([[4, 1.2], [1.2, 1]])
    x = np.random.default_rng(1).multivariate_normal([2, -1], cov, 400_000)
    y = (x - x.mean(0)) / x.std(0) * [2, 1] + [1, 0]
    assert np.allclose(np.array(answer["covariance"], dtype=float), np.cov(y.T), atol=0.02)


@pytest.mark.parametrize("spec, where", [
    ({"claim": "batchnorm_distribution", "mean": [0, 0], "covariance": [[1, 2], [2, 1]]},
     "covariance"),
    ({"claim": "batchnorm_distribution", "mean": 1, "variance": 0}, "variance"),
    ({"claim": "vanishing_gradients", "depth": 1000}, "depth"),
    ({"claim": "vanishing_gradients", "through": "space"}, "through"),
])
def test_bad_input_is_one_line_naming_the_key(spec, where):
    with pytest.raises(InputError) as err:
        solved(**spec)
    assert f"test.yaml: {where}" in str(err.value) and "\n" not in str(err.value)


# -- the figure in every output ---------------------------------------------------------------
def _html_images(text):
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', text)]


def test_html_embeds_the_png_of_the_right_size(gradients):
    import reports

    page = reports.render(gradients, "html")
    images = _html_images(page)
    figure = gradients.sections[-1].figures[0]
    assert len(images) == 1 and len(images[0]) > 1024
    assert images[0][:8] == b"\x89PNG\r\n\x1a\n" and png_size(images[0]) == figure.size
    assert figure.size == (960, 540)  # 6.4 x 3.6 inches at 150 dpi
    assert "<figcaption><strong>Gradient norm against depth.</strong>" in page


def test_markdown_links_an_image_written_beside_it(gradients, tmp_path):
    import reports

    reports.write(gradients, tmp_path / "notes.md")
    text = (tmp_path / "notes.md").read_text()
    assert "![Gradient norm against depth](notes-figure-1.png)" in text
    png = (tmp_path / "notes-figure-1.png").read_bytes()
    assert png == gradients.sections[-1].figures[0].png
    # shown on its own (Jupyter) the page carries the image as a data URI
    assert "](data:image/png;base64," in reports.render(gradients, "md")


def test_json_gives_the_plotted_data_not_the_image(gradients):
    import reports

    out = json.loads(reports.render(gradients, "json"))
    figures = out["sections"][-1]["figures"]
    assert figures[0]["size"] == [960, 540] and len(figures[0]["data"]["sigmoid"]) == 12
    assert figures[0]["data"]["step"] == list(range(1, 13))
    assert "base64" not in json.dumps(out)


@pytest.mark.pdf
def test_pdf_holds_the_image_and_the_tex_compiles_beside_its_image(gradients, tmp_path):
    import reports

    if not shutil.which("pdflatex") or not shutil.which("pdfimages"):
        pytest.skip("needs pdflatex and pdfimages (poppler-utils)")
    reports.write(gradients, tmp_path / "g.pdf")
    listing = subprocess.run(["pdfimages", "-list", str(tmp_path / "g.pdf")],
                             capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in listing.splitlines()[2:]]
    images = [r for r in rows if r[2] == "image"]
    assert len(images) == 1 and (int(images[0][3]), int(images[0][4])) == (960, 540)
    reports.write(gradients, tmp_path / "g.tex")
    assert (tmp_path / "g-figure-1.png").exists()
    assert r"{g-figure-1.png}" in (tmp_path / "g.tex").read_text()
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "g.tex"],
                   cwd=tmp_path, capture_output=True, check=True, timeout=300)
    assert (tmp_path / "g.pdf").stat().st_size > 20_000


def test_example_file_solves_with_a_figure_in_each_problem():
    from derive.problem import solve

    derivations = solve(EXAMPLE)
    assert [d.result["verdict"] for d in derivations] == ["shown", "shown", "proved",
                                                          "proved", "proved"]
    assert all(any(s.figures for s in d.sections) for d in derivations)
    assert derivations[3].result["answer"]["mean"] == 3  # the midterm's beta
