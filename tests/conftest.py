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
