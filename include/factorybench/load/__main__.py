"""Allows `python -m factorybench.load`."""

import sys

from factorybench.load.cli import main

sys.exit(main())
