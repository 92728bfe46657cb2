"""`factorybench`: validate recipes, run them, read and judge their results, and trigger them from CI.

The load engine and the simulator have their own entry points
(`python -m factorybench.load`, `python -m factorybench.sim`).
"""

from __future__ import annotations

import argparse
import sys

from factorybench.cli import recipes, results, run
from factorybench.errors import FactorybenchError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="factorybench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (recipes, run, results):
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except FactorybenchError as exc:
        print(f"factorybench {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
