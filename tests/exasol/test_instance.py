"""A whole instance on a real Exasol dictionary: roles, a SQL job, a SQL watcher, loads of CSV
and Parquet through the landing zone, and a connection drop in the middle of loading."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from redpss.instance import Instance
from tests.conftest import run_cli, wait_for
from tests.exasol.conftest import ExasolDb

DEFINITIONS = """
[job.tick]
schema = "DWH"
kind = "SQL"
action = "INSERT INTO DWH.TICKS VALUES (CURRENT_TIMESTAMP)"
interval = 1

[job.count_ticks]
schema = "DWH"
kind = "SQL"
action = "INSERT INTO DWH.SEEN SELECT COUNT(*) FROM DWH.TICKS"

[watcher.new_ticks]
schema = "DWH"
kind = "SQL"
query = "SELECT COUNT(*) FROM DWH.TICKS"
interval = 1
executor = "count_ticks"

[loader.sales]
pattern = '^sales_.*\\.csv$'
target = "DWH.SALES"
format = "CSV"
header = true
columns = [
  { name = "ID", type = "DECIMAL(18,0)" },
  { name = "AMOUNT", type = "DECIMAL(12,2)" },
  { name = "DAY", type = "DATE", format = "%Y-%m-%d" },
]

[job.load_sales]
schema = "DWH"
kind = "LOAD"
action = "sales"
pool = "loader"

[watcher.sales_files]
schema = "DWH"
kind = "FILE"
pattern = '^sales_.*\\.csv$'
interval = 1
executor = "load_sales"
"""


def _sql(db: ExasolDb, query: str) -> list[tuple[Any, ...]]:
    conn = db.connect()
    try:
        return [tuple(r) for r in conn.execute(query).fetchall()]
    finally:
        conn.close()


@pytest.fixture
def running(exa_instance: Instance, clean_db: ExasolDb, tmp_path: Path) -> Iterator[Instance]:
    inst = exa_instance
    init = run_cli("redctl", "db", "init", inst=inst)
    assert init.returncode == 0, init.stderr
    conn = clean_db.connect()
    try:
        conn.execute("CREATE SCHEMA IF NOT EXISTS DWH")
        conn.execute("CREATE TABLE DWH.TICKS (TS TIMESTAMP)")
        conn.execute("CREATE TABLE DWH.SEEN (N DECIMAL(18,0))")
    finally:
        conn.close()
    definitions = tmp_path / "definitions.toml"
    definitions.write_text(DEFINITIONS)
    applied = run_cli("redctl", "db", "apply", str(definitions), inst=inst)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    started = run_cli("redctl", "start", inst=inst, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield inst
    finally:
        run_cli("redctl", "stop", inst=inst, timeout=180)


def test_roles_jobs_watchers_and_loads_on_exasol(running: Instance, clean_db: ExasolDb) -> None:
    inst = running
    status = run_cli("redctl", "status", inst=inst)
    assert status.returncode == 0, status.stdout
    roles = _sql(clean_db, "SELECT ROLE, ALERT FROM REDSYS.STA_PSS_STATUS ORDER BY ROLE")
    assert {"sched", "jmon", "dbls"} <= {r[0] for r in roles}

    # a SQL job every second, and a SQL watcher that fires on its changes
    wait_for(
        lambda: _sql(clean_db, "SELECT COUNT(*) FROM DWH.TICKS")[0][0] >= 3,
        timeout=60,
        what="three runs of the SQL job",
    )
    wait_for(
        lambda: _sql(clean_db, "SELECT COUNT(*) FROM DWH.SEEN")[0][0] >= 2,
        timeout=60,
        what="the SQL watcher's executor ran twice",
    )
    states = _sql(clean_db, "SELECT DISTINCT STATE FROM DWH.ADM_JOB_LOG WHERE JOB_NAME = 'tick'")
    assert ("OK",) in states

    # CSV straight, Parquet through parq2csv, both by the FILE watcher's LOAD job
    data = inst.home / "data"
    (data / "input" / "sales_1.csv").write_text(
        "ID,AMOUNT,DAY\n1,9.50,2026-11-01\n2,3.25,2026-11-02\n"
    )
    table = pa.table(
        {"ID": [3, 4, 5], "AMOUNT": ["1.00", "2.00", "3.00"], "DAY": ["2026-11-03"] * 3}
    )
    pq.write_table(table, data / "input" / "sales_2.parquet")
    wait_for(
        lambda: _sql(clean_db, "SELECT COUNT(*) FROM DWH.SALES")[0][0] == 5,
        timeout=120,
        what="five rows of two files in DWH.SALES",
    )
    ledger = _sql(clean_db, "SELECT FILE_NAME, ROW_COUNT FROM DWH.ADM_LOAD_LOG ORDER BY FILE_NAME")
    assert [(name, int(rows)) for name, rows in ledger] == [("sales_1.csv", 2), ("sales_2.csv", 3)]
    wait_for(
        lambda: {p.name for p in (data / "archive").rglob("sales_*")} >= {"sales_1.csv"},
        timeout=30,
        what="the CSV archived",
    )


def test_connection_drops_during_loads_lose_nothing_and_load_nothing_twice(
    running: Instance, clean_db: ExasolDb
) -> None:
    """Kill the roles' database sessions again and again while 200 files arrive."""
    data = running.home / "data" / "input"
    files = 200
    stop = threading.Event()
    killed: list[int] = []

    def killer() -> None:
        conn = clean_db.connect()
        try:
            while not stop.wait(0.4):
                sessions = conn.execute(
                    "SELECT SESSION_ID FROM SYS.EXA_DBA_SESSIONS WHERE CLIENT LIKE 'redpss%'"
                ).fetchall()
                for (session_id,) in sessions[:2]:
                    try:
                        conn.execute(f"KILL SESSION {int(session_id)}")
                        killed.append(int(session_id))
                    except Exception:  # the session ended on its own meanwhile
                        continue
        finally:
            conn.close()

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        for i in range(files):
            (data / f"sales_{i:04d}.csv").write_text(f"ID,AMOUNT,DAY\n{i},1.00,2026-11-01\n")
        wait_for(
            lambda: _sql(clean_db, "SELECT COUNT(*) FROM DWH.ADM_LOAD_LOG")[0][0] >= files,
            timeout=600,
            what=f"{files} files in the ledger",
        )
    finally:
        stop.set()
        thread.join()
    assert killed, "no database session was killed: the test did not test anything"
    rows = _sql(clean_db, "SELECT COUNT(*), COUNT(DISTINCT ID) FROM DWH.SALES")[0]
    assert (int(rows[0]), int(rows[1])) == (files, files)
    ledger = _sql(clean_db, "SELECT COUNT(*), COUNT(DISTINCT CONTENT_SHA256) FROM DWH.ADM_LOAD_LOG")
    assert (int(ledger[0][0]), int(ledger[0][1])) == (files, files)
    wait_for(
        lambda: not list(data.iterdir()) and not list((data.parent / "work").iterdir()),
        timeout=120,
        what="input/ and work/ empty",
    )
