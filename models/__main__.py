"""``python -m models``: the same as ``scripts/model-check``."""

import sys

from .cli import main

sys.exit(main())
