"""Run the benchmark: ``python bench/run.py [--quick] [--only W1,W2]`` (see kernels.bench)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kernels.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
