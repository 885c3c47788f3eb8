"""python -m hydra: the command line (hydra/cli.py)."""
from __future__ import annotations

import sys

from hydra.cli import main

if __name__ == "__main__":
    sys.exit(main())
