"""CSV and JSON export of any table: a list of dicts, or of the read API's rows (anything with to_dict()).

Every table the CLI, the reports or the UI show goes out through these two functions, so a table
downloaded from an HTML report and one exported from the CLI are byte-for-byte alike.
- Columns are the union of the rows' keys, in first-seen order; a row lacking a key gets an empty cell.
- CSV cells: None is empty, lists and dicts are compact JSON, datetimes ISO 8601, floats repr-exact.
- JSON: a list of objects; non-finite floats become null (JSON has no NaN or inf).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any


def as_dicts(rows: Iterable[Any]) -> list[dict[str, Any]]:
    """Each row as a plain dict: mappings as they are, rows of the read API through to_dict()."""
    out = []
    for i, row in enumerate(rows):
        if isinstance(row, Mapping):
            out.append(dict(row))
        elif callable(getattr(row, "to_dict", None)):
            out.append(row.to_dict())
        elif dataclasses.is_dataclass(row) and not isinstance(row, type):
            out.append(dataclasses.asdict(row))
        else:
            raise TypeError(f"row {i}: a table row must be a dict, a dataclass or have to_dict(), "
                            f"not {type(row).__name__}")
    return out


def columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _plain(value: Any) -> Any:
    """JSON-ready: datetimes as ISO text, non-finite floats as None, containers recursively."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _plain(value.item())
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _cell(value: Any) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def to_csv(rows: Iterable[Any], cols: list[str] | None = None) -> str:
    """The rows as CSV text with a header line (RFC 4180 quoting, \\r\\n line ends)."""
    dicts = as_dicts(rows)
    cols = cols or columns(dicts)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(cols)
    for row in dicts:
        writer.writerow([_cell(row.get(c)) for c in cols])
    return buf.getvalue()


def to_json(rows: Iterable[Any], *, indent: int | None = None) -> str:
    """The rows as a JSON array of objects."""
    return json.dumps([_plain(r) for r in as_dicts(rows)], indent=indent, allow_nan=False)
