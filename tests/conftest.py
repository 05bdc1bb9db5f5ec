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
