"""Spatial BatchNorm (BatchNorm2d), LayerNorm over the last k axes and the running-variance
option, against PyTorch (skipped cleanly without it), central differences, the printed
document and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import derive as dt
import reports
from derive.errors import InputError, ShapeError
from derive.layers.catalog import entry, layer_from_text, make_layer
from derive.layers.norms import BatchNorm, BatchNorm2d, LayerNorm
from derive.tensor.index import dim
from derive.tensor.printed import check_printed
from derive.tensor.tensor_graph import TensorGraph

B, C, H, W = 3, 4, 5, 2
RNG = np.random.default_rng(11)
X = RNG.normal(1.0, 2.0, (B, C, H, W))
UP = RNG.normal(size=(B, C, H, W))
GAMMA, BETA = RNG.normal(size=C), RNG.normal(size=C)
RM, RV = RNG.normal(size=C), RNG.uniform(0.5, 1.5, C)


def bn2d_values():
    return {"x": X, "gamma": GAMMA, "beta": BETA, "running_mean": RM, "running_var": RV}


def run(layer, values, upstream=UP):
    """(output, gradients, every array incl. running_*_new) of the derived program."""
    program = dt.program(layer)
    out, grads = dt.evaluate(program, values, upstream=upstream)
    return out, grads, program.run(values, upstream)


def torch_bn2d(torch, momentum=0.1, train=True):
    bn = torch.nn.BatchNorm2d(C, eps=1e-5, momentum=momentum, dtype=torch.float64)
    with torch.no_grad():  # copied parameters and running statistics
        bn.weight.copy_(torch.tensor(GAMMA))
        bn.bias.copy_(torch.tensor(BETA))
        bn.running_mean.copy_(torch.tensor(RM))
        bn.running_var.copy_(torch.tensor(RV))
    bn.train(train)
    x = torch.tensor(X, requires_grad=True)
    y = bn(x)
    (y * torch.tensor(UP)).sum().backward()
    return bn, x, y


def close(a, b, tol=1e-10):
    assert np.allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=tol), \
        f"max difference {np.abs(np.asarray(a) - np.asarray(b)).max():.3g}"


# -- PyTorch ---------------------------------------------------------------------------------


def test_batchnorm2d_train_matches_torch_outputs_gradients_and_running_statistics():
    torch = pytest.importorskip("torch")
    bn, x, y = torch_bn2d(torch, momentum=0.1)
    out, grads, arrays = run(BatchNorm2d(C, momentum=0.1), bn2d_values())
    close(out, y.detach().numpy())
    close(grads["x"], x.grad.numpy())
    close(grads["gamma"], bn.weight.grad.numpy())
    close(grads["beta"], bn.bias.grad.numpy())
    close(arrays["running_mean_new"], bn.running_mean.numpy(), 1e-12)
    close(arrays["running_var_new"], bn.running_var.numpy(), 1e-12)  # unbiased, as torch


def test_batchnorm2d_eval_matches_torch():
    torch = pytest.importorskip("torch")
    bn, x, y = torch_bn2d(torch, train=False)
    out, grads, arrays = run(BatchNorm2d(C, train=False), bn2d_values())
    close(out, y.detach().numpy())
    close(grads["x"], x.grad.numpy())
    close(grads["gamma"], bn.weight.grad.numpy())
    close(grads["beta"], bn.bias.grad.numpy())
    assert "running_var_new" not in arrays  # eval mode updates nothing


def test_the_train_program_in_eval_mode_is_torch_eval():
    torch = pytest.importorskip("torch")
    _, _, y = torch_bn2d(torch, train=False)
    inference = dt.program(BatchNorm2d(C)).eval_mode()
    out, _ = dt.evaluate(inference, bn2d_values(), wrt=[])
    close(out, y.detach().numpy())


def test_biased_running_variance_is_needles_update():
    torch = pytest.importorskip("torch")
    m = 0.2
    _, _, arrays = run(BatchNorm2d(C, momentum=m, running_var="biased"), bn2d_values())
    xt = torch.tensor(X)
    biased = xt.var(dim=(0, 2, 3), unbiased=False).numpy()
    # needle: running_var = (1 - momentum) * running_var + momentum * var (biased)
    close(arrays["running_var_new"], (1 - m) * RV + m * biased, 1e-12)
    close(arrays["running_mean_new"], (1 - m) * RM + m * X.mean(axis=(0, 2, 3)), 1e-12)
    # the normalisation itself is the same in both options
    out_u, *_ = run(BatchNorm2d(C, momentum=m), bn2d_values())
    out_b, *_ = run(BatchNorm2d(C, momentum=m, running_var="biased"), bn2d_values())
    close(out_u, out_b, 0)


def test_batchnorm1d_running_var_option():
    torch = pytest.importorskip("torch")
    x = RNG.normal(size=(5, C))
    values = {"x": x, "gamma": GAMMA, "beta": BETA, "running_mean": RM, "running_var": RV}
    rm, rv = torch.tensor(RM), torch.tensor(RV)
    torch.nn.functional.batch_norm(torch.tensor(x), rm, rv, training=True, momentum=0.1)
    _, _, unbiased = run(BatchNorm(C), values, upstream=None)
    close(unbiased["running_var_new"], rv.numpy(), 1e-12)
    _, _, biased = run(BatchNorm(C, running_var="biased"), values, upstream=None)
    close(biased["running_var_new"], 0.9 * RV + 0.1 * x.var(axis=0), 1e-12)


@pytest.mark.parametrize("shape", [(C, H, W), (H, W), (W,)])
def test_layernorm_over_the_last_axes_matches_torch(shape):
    torch = pytest.importorskip("torch")
    k = len(shape)
    x = X.reshape(-1, *shape) if k < 3 else X
    up = UP.reshape(x.shape)
    g, b = RNG.normal(size=shape), RNG.normal(size=shape)
    ln = torch.nn.LayerNorm(normalized_shape=shape, eps=1e-5, dtype=torch.float64)
    with torch.no_grad():
        ln.weight.copy_(torch.tensor(g))
        ln.bias.copy_(torch.tensor(b))
    xt = torch.tensor(x, requires_grad=True)
    y = ln(xt)
    (y * torch.tensor(up)).sum().backward()
    layer = LayerNorm(normalized_shape=list(shape))
    out, grads, _ = run(layer, {"x": x, "gamma": g, "beta": b}, up)
    close(out, y.detach().numpy())
    close(grads["x"], xt.grad.numpy())
    close(grads["gamma"], ln.weight.grad.numpy())
    close(grads["beta"], ln.bias.grad.numpy())


def test_layernorm_of_one_axis_on_a_sequence_batch():
    """[B, T, d] normalised over d (a transformer's LayerNorm): statistics per (n, t)."""
    torch = pytest.importorskip("torch")
    g = TensorGraph("ln")
    x = g.leaf("x", ("B", "T", "d"))
    g.output = LayerNorm("d").build(g, [x]).name
    xs, gam, bet = RNG.normal(size=(2, 3, 4)), RNG.normal(size=4), RNG.normal(size=4)
    out, grads = dt.evaluate(dt.program(g), {"x": xs, "gamma": gam, "beta": bet})
    xt = torch.tensor(xs, requires_grad=True)
    y = torch.nn.functional.layer_norm(xt, (4,), torch.tensor(gam), torch.tensor(bet), 1e-5)
    y.sum().backward()
    close(out, y.detach().numpy())
    close(grads["x"], xt.grad.numpy())


# -- central finite differences ------------------------------------------------------------


@pytest.mark.parametrize("layer, values", [
    (BatchNorm2d(C, running_var="biased"), bn2d_values()),
    (BatchNorm2d(C, train=False), bn2d_values()),
    (LayerNorm(normalized_shape=[C, H, W]),
     {"x": X, "gamma": RNG.normal(size=(C, H, W)), "beta": RNG.normal(size=(C, H, W))}),
], ids=["bn2d_biased", "bn2d_eval", "ln_chw"])
def test_central_differences(layer, values):
    program = dt.program(layer)
    _, grads = dt.evaluate(program, values, upstream=UP)
    eps = 1e-6

    def f(name, direction, sign):
        shifted = dict(values, **{name: values[name] + sign * eps * direction})
        return float(np.sum(UP * dt.evaluate(program, shifted, wrt=[])[0]))

    for name in ("x", "gamma", "beta"):
        t = np.random.default_rng(3).normal(size=np.shape(values[name]))
        numeric = (f(name, t, 1) - f(name, t, -1)) / (2 * eps)
        assert float(np.sum(t * grads[name])) == pytest.approx(numeric, rel=1e-6, abs=1e-8)


# -- the document ----------------------------------------------------------------------------


@pytest.mark.parametrize("name, options", [
    ("batchnorm2d", {}), ("batchnorm2d", {"train": False}),
    ("batchnorm2d", {"running_var": "biased"}), ("batchnorm", {"running_var": "biased"}),
])
def test_every_printed_form_is_checked(name, options):
    counts = check_printed(make_layer(name, **options).derive())
    assert counts["skipped"] == 0 and counts["checked"] >= 25, counts


def test_layernorm_over_three_axes_prints_checked_forms():
    counts = check_printed(LayerNorm(normalized_shape=["C", "H", "W"]).derive())
    assert counts["skipped"] == 0 and counts["checked"] >= 25, counts


def test_the_document_shows_the_running_statistics_update():
    md = reports.render(make_layer("batchnorm2d").derive(), "md")
    section = md.split("## BatchNorm2d: running statistics (train mode)")[1].split("\n## ")[0]
    assert "M = B·H·W entries per channel" in section and "unbiased" in section
    assert r"\mathrm{running\_var\_new}" in section and "B H W - 1" in section
    biased = reports.render(make_layer("batchnorm2d", running_var="biased").derive(), "md")
    section = biased.split("running statistics (train mode)")[1].split("\n## ")[0]
    assert "needle" in section and "B H W - 1" not in section
    eval_md = reports.render(make_layer("batchnorm2d", train=False).derive(), "md")
    assert "running statistics (train mode)" not in eval_md


def test_the_catalogue_knows_the_new_names():
    assert entry("BatchNorm2d").key == entry("bn2d").key == "batchnorm2d"
    assert entry("batchnorm2d").options()["running_var"] == "unbiased"
    layer = layer_from_text('layernorm(normalized_shape=["C", "H", "W"])')
    chw = tuple(dim(s) for s in "CHW")
    assert layer.parameters() == {"gamma": chw, "beta": chw}
    assert layer.describe() == "LayerNorm(normalized_shape=(C, H, W), eps=1e-05, affine=True)"
    assert LayerNorm().describe() == "LayerNorm(features=d, eps=1e-05, affine=True)"


def test_the_compact_form_sums_over_batch_and_space():
    d = make_layer("batchnorm2d").derive()
    section = next(s for s in d.sections if "compact form" in s.title)
    assert "the batch and both spatial axes" in section.text
    assert "max |difference| = " in section.steps[0].note


# -- bad input: one line naming the shapes or the option -----------------------------------


def one_line(excinfo):
    text = str(excinfo.value)
    assert "\n" not in text
    return text


def test_wrong_channel_count_names_the_shapes():
    g = TensorGraph("bad")
    x = g.leaf("x", (2, 3, 4, 4))
    with pytest.raises(ShapeError) as e:
        BatchNorm2d(5).build(g, [x])
    assert "[2, 3, 4, 4]" in one_line(e) and "[B, 5, H, W]" in one_line(e)


def test_batchnorm2d_refuses_a_flat_input_and_batchnorm1d_an_image():
    g = TensorGraph("bad")
    flat, image = g.leaf("x", (2, 3)), g.leaf("z", (2, 3, 4, 4))
    with pytest.raises(ShapeError) as e:
        BatchNorm2d(3).build(g, [flat])
    assert "[B, C, H, W], got [2, 3]" in one_line(e)
    with pytest.raises(ShapeError) as e:
        BatchNorm(3).build(g, [image])
    assert "[2, 3, 4, 4]" in one_line(e) and "BatchNorm2d" in one_line(e)


def test_layernorm_shape_mismatch_names_both_shapes():
    g = TensorGraph("bad")
    x = g.leaf("x", (2, 3, 4, 5))
    with pytest.raises(ShapeError) as e:
        LayerNorm(normalized_shape=[3, 5, 4]).build(g, [x])
    assert "[2, 3, 4, 5] and [.., 3, 5, 4]" in one_line(e)
    with pytest.raises(ShapeError):
        LayerNorm(normalized_shape=[2, 3, 4, 5]).build(g, [x])  # no batch axis left
    with pytest.raises(InputError) as e:
        LayerNorm(normalized_shape=[])
    assert "normalized_shape" in one_line(e)


@pytest.mark.parametrize("make", [
    lambda: make_layer("batchnorm2d", running_var="sample"),
    lambda: BatchNorm(running_var="Bessel"),
    lambda: layer_from_text('bn(4, running_var="population")'),
])
def test_unknown_running_var_option_names_the_option(make):
    with pytest.raises(InputError) as e:
        make()
    assert "'running_var'" in one_line(e) and "'unbiased' or 'biased'" in one_line(e)


def test_in_a_network_after_a_convolution():
    """Conv2d -> BatchNorm2d -> ReLU -> LayerNorm(C, H, W) -> Flatten -> Linear: one graph,
    running statistics as state, and an eval mode."""
    from derive.layers.conv import Conv2d

    net = dt.Sequential(Conv2d(1, 2, 3, padding=1, height=4, width=4), BatchNorm2d(2),
                        dt.ReLU(), LayerNorm(normalized_shape=[2, 4, 4]),
                        dt.Flatten(channels=2, height=4, width=4), dt.Linear(32, 3),
                        loss=dt.CrossEntropy())
    program = dt.program(net)
    assert program.state == ["running_mean2", "running_var2"]
    assert {"gamma2", "gamma3"} <= set(program.params) and program.inference is not None
