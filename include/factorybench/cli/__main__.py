import sys

from factorybench.cli import main

sys.exit(main())
