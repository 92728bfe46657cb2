"""How the CLI prints: aligned tables for people, JSON or CSV for programs."""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import Any, Sequence


def add_format(parser, default: str = "table") -> None:
    parser.add_argument("--format", choices=("table", "json", "csv"), default=default,
                        help=f"output format (default: {default})")
    parser.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")


def cell(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
    return "-" if value is None else str(value)


def emit(rows: list[dict[str, Any]], columns: Sequence[str], fmt: str, doc: Any = None) -> None:
    """Rows as a table or CSV (the given columns), or `doc` (default: the rows) as JSON."""
    if fmt == "json":
        print(json.dumps(rows if doc is None else doc, indent=2, default=str))
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows({c: r.get(c) for c in columns} for r in rows)
        sys.stdout.write(buf.getvalue())
    else:
        widths = {c: max([len(c), *(len(cell(r.get(c))) for r in rows)]) for c in columns}
        print("  ".join(c.ljust(widths[c]) for c in columns))
        for r in rows:
            print("  ".join(cell(r.get(c)).ljust(widths[c]) for c in columns))
