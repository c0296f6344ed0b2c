"""``python -m sidecar serve``."""

import sys

from .cli import main

sys.exit(main())
