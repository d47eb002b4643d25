"""``python -m benchmark.speed NAME``: see :mod:`benchmark.speed`."""

import sys

from benchmark.speed import main

sys.exit(main())
