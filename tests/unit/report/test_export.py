"""CSV and JSON export of any table: dicts and the read API's rows, round trip."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import pytest

from factorybench.results.export import to_csv, to_json
from factorybench.results.query import Results

ROWS = [
    {"metric": "ttft_p99_ms", "value": 267.6123456789, "unit": "ms", "ok": True,
     "at": datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc), "nodes": ["n1", "n2"]},
    {"metric": "errors", "value": None, "extra": {"http_5xx": 3}, "nan": float("nan")},
]


def test_csv_round_trip_of_dicts():
    text = to_csv(ROWS)
    back = list(csv.DictReader(io.StringIO(text)))
    assert list(back[0]) == ["metric", "value", "unit", "ok", "at", "nodes", "extra", "nan"]  # union, first seen
    assert float(back[0]["value"]) == ROWS[0]["value"]  # repr-exact floats
    assert back[0]["at"] == "2026-03-01T02:00:00+00:00" and json.loads(back[0]["nodes"]) == ["n1", "n2"]
    assert back[1]["value"] == "" and back[1]["unit"] == "" and json.loads(back[1]["extra"]) == {"http_5xx": 3}
    assert back[1]["nan"] == ""


def test_json_round_trip_of_dicts():
    back = json.loads(to_json(ROWS))
    assert back[0]["value"] == ROWS[0]["value"] and back[0]["at"] == "2026-03-01T02:00:00+00:00"
    assert back[1]["nan"] is None and back[1]["extra"] == {"http_5xx": 3}


def test_read_api_rows_export_as_their_to_dict(history):
    results = Results(history["url"])
    for rows in (results.runs("smoke", limit=5), results.series("smoke", "ttft_p50_ms"),
                 results.annotations("smoke"), results.run(history["dag_run_id"]).metrics):
        assert json.loads(to_json(rows)) == [r.to_dict() for r in rows]
        back = list(csv.DictReader(io.StringIO(to_csv(rows))))
        assert len(back) == len(rows) and list(back[0]) == list(rows[0].to_dict())
    series = results.series("smoke", "ttft_p50_ms")
    back = list(csv.DictReader(io.StringIO(to_csv(series))))
    assert [float(r["value"]) for r in back] == [p.value for p in series]


def test_a_row_that_is_no_table_row_is_named():
    with pytest.raises(TypeError, match="row 1: a table row must be a dict"):
        to_csv([{"a": 1}, 42])
