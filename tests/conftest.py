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
