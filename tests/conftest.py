import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture
def example():
    """Path of a file under examples/."""
    return lambda *parts: os.path.join(EXAMPLES, *parts)


@pytest.fixture(scope="session")
def v():
    """The v1..v7 tensor problem (examples/tensor/v_problem.yaml), derived once."""
    import derive as dv

    return dv.solve(os.path.join(EXAMPLES, "tensor", "v_problem.yaml"))[0]


@pytest.fixture(scope="session")
def tensor_mlp():
    """A batched MLP with an MSE loss (examples/tensor/mlp_mse.yaml), derived once."""
    import derive as dv

    return dv.solve(os.path.join(EXAMPLES, "tensor", "mlp_mse.yaml"))[0]


@pytest.fixture(scope="module")
def kernel_cache(tmp_path_factory):
    """A fresh kernel cache folder (DERIVEKIT_CACHE) for one test module, so its
    kernels are generated and compiled by this run's code, not loaded from an old run."""
    mp = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("kcache")
    mp.setenv("DERIVEKIT_CACHE", str(folder))
    yield folder
    mp.undo()


@pytest.fixture
def vjp_equals_evaluate():
    """A check: the generated forward+VJP kernel of ``layer`` (kernels.vjp) gives the
    output and every gradient derive.evaluate (the float64 oracle) gives, to 1e-10."""
    import numpy as np

    import derive as dv
    from kernels import vjp

    def check(layer, values, upstream):
        want_out, want = dv.evaluate(layer, values, upstream=upstream)
        got_out, got = vjp.run(layer, values, upstream=upstream)
        assert np.abs(got_out - want_out).max() <= 1e-10
        for name in want:
            assert np.abs(got[name] - want[name]).max() <= 1e-10, name

    return check


@pytest.fixture
def train_step_equals_evaluate():
    """A check: one generated train step of ``model`` (compiled from ``net`` in float64)
    gives the loss and every parameter gradient derive.evaluate gives, at ``x``, ``y``."""
    from kernelcheck import train_step_equals_evaluate

    return train_step_equals_evaluate


# -- fuzzing profiles (tests/test_fuzz_*.py; shared generators in tests/fuzzgen*.py) -----
def pytest_addoption(parser):
    parser.addoption("--fuzz-long", action="store_true",
                     help="run the fuzz tests with the long profile (as DERIVEKIT_FUZZ=long)")


def pytest_configure(config):
    """The fast, reproducible fuzz profile by default; the long one on request."""
    if config.getoption("--fuzz-long", default=False):
        os.environ["DERIVEKIT_FUZZ"] = "long"
    try:
        from hypothesis import HealthCheck, Phase, settings
    except ImportError:
        return
    quiet = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
    # CI does not shrink (a slow graph shrinks for minutes); a failure prints its case as a
    # one-line reproduction anyway. The long profile shrinks to a minimal case.
    settings.register_profile("derivekit-ci", deadline=None, derandomize=True, database=None,
                              print_blob=True, suppress_health_check=quiet,
                              phases=[Phase.explicit, Phase.generate])
    settings.register_profile("derivekit-long", deadline=None, derandomize=False,
                              print_blob=True, suppress_health_check=quiet,
                              phases=[Phase.explicit, Phase.reuse, Phase.generate,
                                      Phase.target, Phase.shrink])
    long = os.environ.get("DERIVEKIT_FUZZ") == "long"
    settings.load_profile("derivekit-long" if long else "derivekit-ci")
