"""The server/client token cross-check: exact accounting, and what a disagreement does to the run."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from factorybench.monitoring.reconcile import TokenCheck, client_tokens, outcome


def samples(*rows: tuple[int | None, str | None, str | None]) -> bytes:
    table = pa.table({"output_tokens": [r[0] for r in rows], "output_tokens_source": [r[1] for r in rows],
                      "error": [r[2] for r in rows], "warmup": [i < 2 for i in range(len(rows))]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def test_client_count_includes_warmup_and_is_conclusive_with_usage_counts():
    check = client_tokens(samples((10, "usage", None), (12, "usage", None), (20, "usage", None)), 0.0)
    assert check.client == 42 and check.conclusive
    check.server = 42
    assert check.agree and check.ratio == 1.0
    assert outcome(check, "success", "") == ("success", "")


def test_a_conclusive_disagreement_makes_a_successful_run_invalid():
    check = client_tokens(samples((10, "usage", None), (10, "usage", None)), 0.0)
    check.server = 30
    status, message = outcome(check, "success", "")
    assert status == "invalid"
    assert "the server generated 30 output tokens" in message and "the client received 20" in message
    assert "ratio 1.5000" in message
    assert outcome(check, "failed", "3 of 9 requests failed")[0] == "failed"  # never overrides a failure


def test_tolerance():
    check = TokenCheck(server=1005, client=1000, tolerance=0.01)
    assert check.agree
    check.tolerance = 0.001
    assert check.agree is False


def test_an_inconclusive_disagreement_is_only_a_warning():
    check = client_tokens(samples((10, "usage", None), (None, None, "timeout"), (7, "counted_chunks", None)), 0.0)
    assert not check.conclusive and len(check.reasons) == 2
    check.server = 40
    status, message = outcome(check, "success", "")
    assert status == "success" and message.startswith("warning: server/client token check")
    assert "1 requests failed" in message and "counted or estimated by the client" in message


def test_no_check_without_server_counter_or_tokens():
    check = client_tokens(samples((10, "usage", None)), 0.0)
    assert check.agree is None and outcome(check, "success", "") == ("success", "")
    assert client_tokens(samples((None, None, None)), 0.0) is None  # embeddings: no output tokens
    assert client_tokens(None, 0.0) is None
