"""kernels.compile reads the Derivation: ``compile(net.derive())`` prints the record the
derivation holds (forward, backward, eval mode, the prediction) without deriving again,
and trains exactly as ``compile(net)``, which derives first."""

import numpy as np
import pytest

import derive as dv
import kernels
from derive.errors import InputError
from derive.tensor import reverse_sweep
from kernels import describe, program_of

pytestmark = pytest.mark.usefixtures("kernel_cache")


def mlp():
    return dv.Sequential(dv.Linear(16, 12), dv.Tanh(), dv.Linear(12, 4),
                         loss=dv.SoftmaxCrossEntropy())


def dropout_batchnorm():
    return dv.Sequential(dv.Linear(16, 12), dv.BatchNorm(12), dv.ReLU(), dv.Dropout(0.25),
                         dv.Linear(12, 4), loss=dv.SoftmaxCrossEntropy())


def conv():
    return dv.Sequential(dv.Conv2d(1, 3, 3, padding=1), dv.ReLU(), dv.MaxPool2d(2),
                         dv.Flatten(), dv.Linear(12, 4), loss=dv.SoftmaxCrossEntropy(),
                         input_shape=(1, 4, 4))


def printed(model):
    """The kernel source without its checksum line. Loops and temporaries are named per
    loop nest (kernels.names), not from the engine's process-wide index counter, so
    equal records print byte-equal text."""
    return model.source.split("\n", 1)[1]


def data(rows=96, seed=0):
    """Four separable classes of 4x4 images (16 features per row)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, rows)
    centres = rng.normal(size=(4, 16)) * 2
    return centres[y] + rng.normal(size=(rows, 16)), y


@pytest.mark.slow
@pytest.mark.parametrize("make", [mlp, dropout_batchnorm, conv])
def test_compiled_from_the_derivation_trains_exactly_as_compiled_from_the_net(make):
    X, y = data()
    X_val, y_val = data(48, seed=1)
    if make is conv:  # one channel of 4x4 pixels
        X, X_val = X.reshape(-1, 1, 4, 4), X_val.reshape(-1, 1, 4, 4)
    models = []
    for net in (make().derive(), make()):
        model = kernels.compile(net, dtype="float64", optimizer="sgd", lr=0.1, seed=3)
        kernels.fit(model, (X, y, X_val, y_val), epochs=4, batch_size=16, progress=False)
        models.append(model)
    from_derivation, from_net = models
    # the same record, so the same printed kernel ...
    assert printed(from_derivation) == printed(from_net)
    # ... and the same numbers, and it learns
    losses = [h["loss"] for h in from_derivation.history]
    assert losses[-1] < losses[0]
    assert losses == [h["loss"] for h in from_net.history]
    delta = max(np.abs(from_derivation.params[k] - from_net.params[k]).max()
                for k in from_net.params)
    assert delta <= 1e-12
    for k in from_net.stats:
        assert np.abs(from_derivation.stats[k] - from_net.stats[k]).max() <= 1e-12
    assert np.abs(from_derivation.outputs(X_val) - from_net.outputs(X_val)).max() <= 1e-12


@pytest.mark.parametrize("make", [mlp, dropout_batchnorm, conv])
def test_the_derivations_record_pruned_to_parameters_is_what_compile_net_prints(make):
    net = make()
    d = net.derive()  # gradients of the input x too
    assert d.program.grads.keys() > set(net.parameters())
    prog = program_of(d)
    assert set(prog.grads) == set(net.parameters()) and "x_bar" not in prog.tensors
    assert describe(prog) == describe(program_of(make()))


def test_prediction_and_eval_mode_are_part_of_the_record():
    d = dropout_batchnorm().derive()
    p = d.program
    assert p.prediction == "z3"
    ev = p.inference  # masks by their expectation, batch statistics by running ones
    assert ev is p.eval_mode() and not ev.random and not ev.updates and not ev.backward
    assert "m2" not in ev.tensors
    mu = next(a for a in ev.forward if a.target == "mu2")
    assert str(mu.rhs.base) == "running_mean2"
    y2_2 = next(a for a in ev.forward if a.target == "y2_2")
    assert "m2" not in str(y2_2.rhs)
    plain = mlp().derive().program
    assert plain.inference is None and plain.eval_mode() is plain
    assert plain.prediction == "z2"


@pytest.mark.slow
def test_a_sequential_names_its_prediction_so_a_penalised_loss_compiles():
    # the output J = L + R1 + R2 reads no [B, classes] node: the Sequential says which
    def net():
        return dv.Sequential(dv.Linear(16, 8), dv.ReLU(), dv.Linear(8, 4),
                             loss=dv.SoftmaxCrossEntropy(), penalty=dv.L2(1e-2))

    d = net().derive()
    assert d.output == "J" and d.program.prediction == "z2"
    model = kernels.compile(d, dtype="float64", lr=0.1)
    X, y = data(64)
    kernels.fit(model, (X, y), epochs=3, batch_size=16, progress=False, validation=0.25)
    assert model.history[-1]["loss"] < model.history[0]["loss"]
    want, _ = dv.evaluate(net(), {"x": X, "y": y, **model.params}, wrt=[])
    assert abs(model.evaluate(X, y)["loss"] - want) < 1e-12


def test_compiling_a_derivation_does_not_run_the_sweep(tmp_path, monkeypatch):
    d = dropout_batchnorm().derive()
    monkeypatch.setenv("DERIVEKIT_CACHE", str(tmp_path))  # cold: the module is generated

    def no_sweep(*args, **kwargs):
        raise AssertionError("the sweep ran again")

    monkeypatch.setattr(reverse_sweep, "sweep", no_sweep)
    model = kernels.compile(d, dtype="float64")
    assert model.meta["prediction"] == "z3" and model.meta["masks"][0][0] == "m2"
    assert list(tmp_path.glob("dk_*.py"))  # generated here, not found in a cache
    X, y = data(32)
    kernels.fit(model, (X, y), epochs=1, batch_size=16, progress=False, validation=0.25)
    # the guard bites: a net (another key) is derived, so it reaches the sweep
    with pytest.raises(AssertionError, match="the sweep ran again"):
        kernels.compile(mlp(), dtype="float64")


def test_a_warm_cache_compiles_a_net_without_deriving_it(monkeypatch):
    kernels.compile(mlp(), dtype="float64")  # generated (or found) once

    def no_sweep(*args, **kwargs):
        raise AssertionError("the sweep ran again")

    monkeypatch.setattr(reverse_sweep, "sweep", no_sweep)
    kernels.compile(mlp(), dtype="float64")  # the definition's key: nothing derived


def test_a_derivation_without_a_tensor_program_is_a_one_line_error():
    d = dv.grad("x*y", wrt=["x"])
    with pytest.raises(InputError, match="no tensor program") as err:
        kernels.compile(d)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="cannot compile str"):
        kernels.compile("Linear(4, 3)")
