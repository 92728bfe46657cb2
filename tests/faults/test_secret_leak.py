"""A secret given by reference reaches the service and nothing else: after a full DAG run over
ssh and over rest, its value is in no task log or captured output, no XCom or other Airflow DB
row, no archive file, no results-DB row and no file in the job's work directory, while the
service proves it received it (it prints the value's SHA-256 and length)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets as pysecrets
from pathlib import Path

import pytest

from faultkit import dag_of, jobs_of_run, latest_row, recipe_copy, states

pytestmark = [pytest.mark.cluster, pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(600)]

# The service command first prints a digest of the secret, then execs the simulator's usual argv.
# (Python, not `bash -c`: a bash exec'd from a job whose environment came over SSH may source
# ~/.bashrc again and put another Python first on PATH.)
REPORT = ("import hashlib, os, sys; v = os.environ['LEAK_TEST_SECRET']; "
          "print(f'secret-sha256={hashlib.sha256(v.encode()).hexdigest()} secret-length={len(v)}', flush=True); "
          "os.execvp(sys.argv[1], sys.argv[1:])")


def leak_recipe(directory: Path, name: str, ref: dict) -> Path:
    def edit(data: dict) -> None:
        svc = data["service"]
        svc["command"] = ["python", "-c", REPORT, *svc["command"]]
        svc["secrets"] = {"LEAK_TEST_SECRET": ref}

    return recipe_copy(directory, name, edit)


def grep_tree(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def results_rows(url: str) -> list[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            meta = sa.MetaData()
            meta.reflect(conn)
            return [f"{table.name}: {tuple(row)}" for table in meta.sorted_tables
                    for row in conn.execute(sa.select(table))]
    finally:
        engine.dispose()


@pytest.mark.parametrize("transport,kind", [("ssh", "variable"), ("rest", "connection")])
def test_secret_reaches_the_service_and_nothing_else(native_cluster, airflow_db, tmp_path, monkeypatch, capfd, caplog,
                                                    transport, kind):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    value = "fbleak-" + pysecrets.token_urlsafe(24)
    if kind == "variable":
        monkeypatch.setenv("AIRFLOW_VAR_FB_LEAK_SECRET", value)
        ref = {"variable": "fb_leak_secret"}
    else:
        monkeypatch.setenv("AIRFLOW_CONN_FB_LEAK", json.dumps({"conn_type": "generic", "login": "svc",
                                                                "extra": {"api_key": value}}))
        ref = {"connection": "fb_leak", "field": "extra.api_key"}
    name = f"leak-{transport}"
    monkeypatch.setenv("FB_RECIPES_DIR", str(tmp_path))  # dag_of sets it; monkeypatch restores it
    run = dag_of(leak_recipe(tmp_path, name, ref)).test(run_conf={"transport": transport, "max_requests": 12})
    got, row = states(run), latest_row(name)
    assert str(run.state) == "success", (got, row.status, row.message, row.verdict_line)
    archive = Path(row.archive_url)
    service_out = (archive / "service.out").read_text()
    # The service received the value (and nothing else has it).
    assert f"secret-sha256={hashlib.sha256(value.encode()).hexdigest()}" in service_out
    assert f"secret-length={len(value)}" in service_out
    needle = value.encode()
    out, err = capfd.readouterr()
    out += caplog.text  # structlog may hold a stream capfd does not see; records reach caplog
    assert value not in out + err, "the secret is in the task logs / captured output"
    assert "LEAK_TEST_SECRET from " + ("variable 'fb_leak_secret'" if kind == "variable"
                                       else "connection 'fb_leak' (extra.api_key)") in out + err
    airflow_home = Path(os.environ["AIRFLOW_HOME"])
    assert grep_tree(airflow_home, needle) == [], "the secret is in Airflow's DB, logs or archive"
    with create_session() as session:
        xcoms = session.query(XComModel).filter(XComModel.run_id == run.run_id).all()
        assert xcoms and not [x.key for x in xcoms if value in json.dumps(x.value, default=str)]
    assert grep_tree(archive, needle) == []
    rows = results_rows(os.environ["FB_RESULTS_URL"])
    assert rows and not [r for r in rows if value in r]
    workdir = Path(native_cluster["FB_SLURM_WORKDIR"])
    job_files = [p for p in workdir.iterdir() if p.name.startswith(f"fb-{name}-")]
    assert job_files and grep_tree(workdir, needle) == [], "the secret is in the job's work directory"
    assert not jobs_of_run(run)
