"""Watchers end to end: FILE watchers with command and loader executors, executor errors."""

from __future__ import annotations

import json
import sqlite3
import time

from redpss import wire
from redpss.dictionary import open_dictionary
from redpss.dictionary.jobs import RunRecord
from redpss.instance import Instance
from redpss.supervisor import Supervisor
from tests.conftest import run_cli, wait_for
from tests.integration.sched_support import (
    apply,
    file_watcher,
    job,
    redctl,
    runs,
    start,
    states,
)


def test_file_watcher_fires_errors_are_not_retried_until_reset(inst: Instance) -> None:
    apply(
        inst,
        jobs={"load_in": job("CMD", "fail_on_bad.sh")},
        watchers={"inbox": file_watcher(r"^(good|bad)_.*\.csv$", "load_in")},
    )
    start(inst)
    inbox = inst.home / "data" / "input"
    (inbox / "good_1.csv").write_text("a\n")
    (inbox / "bad_1.csv").write_text("b\n")
    (inbox / "other.txt").write_text("c\n")
    wait_for(
        lambda: (inst.home / "data" / "archive" / "good_1.csv").exists(),
        timeout=20,
        what="good file handled",
    )

    def errors() -> list[dict[str, object]]:
        return list(json.loads(redctl(inst, "--json", "we_list_error")))

    rows = wait_for(errors, timeout=20, what="an executor error")
    assert isinstance(rows, list)
    assert [(r["watcher"], r["key"], r["count"]) for r in rows] == [("inbox", "bad_1.csv", 1)]
    fires = runs(inst, "inbox", watcher=True)
    assert {f.watch_key for f in fires} == {"good_1.csv", "bad_1.csv"}
    # checks go on every second (3 s: 3 more checks), but the failing key is not retried
    until = time.monotonic() + 3.5
    while time.monotonic() < until:
        assert len(runs(inst, "load_in")) == 2
        time.sleep(0.2)  # sampling an invariant, not waiting for an event
    redctl(inst, "we_reset_error", "inbox")
    wait_for(lambda: len(runs(inst, "load_in")) == 3, timeout=20, what="retry after reset")
    rows = wait_for(errors, timeout=20, what="the error again")
    assert isinstance(rows, list) and rows[0]["count"] == 1
    out = run_cli("redctl", "we_reset_error", inst=inst)
    assert out.returncode == 1 and "--all" in out.stderr


def test_file_watcher_load_job_lands_rows_once(inst: Instance) -> None:
    columns = [{"name": "ID", "type": "DECIMAL(18,0)"}, {"name": "AMOUNT", "type": "DECIMAL(12,2)"}]
    apply(
        inst,
        loaders={
            "sales": {"pattern": r"^sales_.*\.csv$", "target": "DWH.SALES", "columns": columns}
        },
        jobs={"load_sales": job("LOAD", "sales", pool="loader")},
        watchers={"sales_files": file_watcher("^sales_", "load_sales")},
    )
    start(inst)
    data = inst.home / "data"
    (data / "input" / "sales_1.csv").write_text("ID,AMOUNT\n1,10.50\n2,3.25\n")
    (data / "input" / "sales_bad.csv").write_text("ID,AMOUNT\n1,10.50,extra\n")
    final = {"OK", "FAILED", "TIMEOUT", "ABORTED", "SKIPPED"}

    def handled() -> bool:
        fires = runs(inst, "sales_files", watcher=True)
        return len(fires) == 2 and all(f.state in final for f in fires)

    wait_for(handled, timeout=30, what="both files handled")
    by_key = {r.watch_key: r.state for r in runs(inst, "sales_files", watcher=True)}
    assert by_key == {"sales_1.csv": "OK", "sales_bad.csv": "FAILED"}
    ok = next(r for r in runs(inst, "load_sales") if r.state == "OK")
    assert ok.rows == 2
    assert list((data / "error").glob("*sales_bad.csv.error.json"))
    with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
        assert d.target_row_count("DWH", "SALES") == 2
    errors = json.loads(redctl(inst, "--json", "we_list_error"))
    assert [e["key"] for e in errors] == ["sales_bad.csv"]


def test_failing_sql_watcher_is_counted_shown_and_reset(inst: Instance) -> None:
    """#13: a SQL watcher on a missing table logged ERRORs while list_db_watcher said 0."""
    apply(
        inst,
        jobs={"noop": job()},
        watchers={
            "orders": {
                "schema": "DWH",
                "kind": "SQL",
                "query": "SELECT MAX(ID) FROM NO_SUCH_TABLE",
                "executor": "noop",
                "interval": 1,
            }
        },
    )
    start(inst)

    def check_errors() -> list[dict[str, object]]:
        rows = json.loads(redctl(inst, "--json", "we_list_error"))
        return [r for r in rows if r["watcher"] == "orders" and int(r["count"]) >= 2]

    rows = wait_for(check_errors, timeout=20, what="the failing check counted twice")
    assert isinstance(rows, list)
    assert rows[0]["key"] == "(check)"
    assert "no such table: NO_SUCH_TABLE" in str(rows[0]["message"])
    listed = json.loads(redctl(inst, "--json", "list_db_watcher"))
    assert next(w for w in listed if w["watcher"] == "orders")["errors"] == 1
    assert "no such table" in redctl(inst, "we_list_error", "orders")
    # the table appears: checks work (the watcher fires), the count stays until reset
    with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
        d.run_sql(
            "DWH", "CREATE TABLE NO_SUCH_TABLE (ID INTEGER); INSERT INTO NO_SUCH_TABLE VALUES (7)"
        )
    wait_for(lambda: runs(inst, "noop"), timeout=20, what="the executor fired by the value")
    redctl(inst, "we_reset_error", "orders")
    assert json.loads(redctl(inst, "--json", "we_list_error")) == []
    listed = json.loads(redctl(inst, "--json", "list_db_watcher"))
    assert next(w for w in listed if w["watcher"] == "orders")["errors"] == 0


def test_file_backlog_drains_at_executor_speed_not_one_per_check(inst: Instance) -> None:
    """#13: 2 000 files behind a FILE watcher loaded at one file per check interval."""
    apply(
        inst,
        jobs={"move": job("CMD", "fail_on_bad.sh", pool="action")},
        watchers={"batch": file_watcher(r"^good_\d+\.csv$", "move", interval=3600)},
    )
    inbox = inst.home / "data" / "input"
    names = [f"good_{i:03d}.csv" for i in range(40)]
    for name in names:
        (inbox / name).write_text("x\n")
    start(inst)  # the first check comes at once, the next only in an hour
    archive = inst.home / "data" / "archive"
    wait_for(lambda: all((archive / n).exists() for n in names), timeout=60, what="all 40 handled")

    def recorded() -> list[RunRecord]:  # the run log is written by its own thread, a bit later
        fires = runs(inst, "batch", watcher=True)
        ended = all(f.state not in ("QUEUED", "RUNNING") for f in fires)
        return fires if len(fires) >= len(names) and ended else []

    fires = wait_for(recorded, timeout=30, what="the 40 fires recorded as ended")
    assert sorted(f.watch_key or "" for f in fires) == names  # each its own key and run, once
    assert {f.state for f in fires} == {"OK"}
    assert len(runs(inst, "move")) == 40


def test_a_load_failing_for_a_lock_is_retried_not_an_executor_error(inst: Instance) -> None:
    """#14.7: a load that met "database is locked" became an executor error, the file stuck."""
    columns = [{"name": "ID", "type": "DECIMAL(18,0)"}]
    apply(
        inst,
        loaders={"f": {"pattern": r"^f_.*\.csv$", "target": "DWH.F", "columns": columns}},
        # the runs are logged in OPS: the lock on DWH.db must not hold up the run log
        jobs={"load_f": job("LOAD", "f", pool="loader", schema="OPS")},
        watchers={"f_files": file_watcher("^f_", "load_f", schema="OPS")},
    )
    start(inst)
    inbox, archive = inst.home / "data" / "input", inst.home / "data" / "archive"
    (inbox / "f_1.csv").write_text("ID\n1\n")
    wait_for(lambda: (archive / "f_1.csv").exists(), timeout=20, what="the first load")
    holder = sqlite3.connect(inst.db_dir / "DWH.db", isolation_level=None, timeout=30)
    holder.execute("BEGIN IMMEDIATE")  # another process writes DWH.db for longer than 10 s
    try:
        (inbox / "f_2.csv").write_text("ID\n2\n")

        def failed_for_the_lock() -> bool:
            return any("locked" in (r.message or "") for r in runs(inst, "load_f"))

        wait_for(failed_for_the_lock, timeout=40, what="a load failing for the lock")
        assert json.loads(redctl(inst, "--json", "we_list_error")) == []
        assert (inbox / "f_2.csv").exists()  # requeued, not in error/
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    wait_for(lambda: (archive / "f_2.csv").exists(), timeout=60, what="the retry loading it")
    with sqlite3.connect(inst.db_dir / "DWH.db") as conn:
        assert sorted(r[0] for r in conn.execute("SELECT ID FROM F")) == [1, 2]
    assert json.loads(redctl(inst, "--json", "we_list_error")) == []
    assert "tried again in" in (inst.log_dir / "sched.log").read_text()


def test_a_transient_failure_is_retried_after_its_back_off_not_at_the_next_check(
    inst: Instance,
) -> None:
    """The log said "tried again in 1 s", but the key waited for the watcher's next check (an
    hour here): the retry comes when its back-off ends."""
    columns = [{"name": "ID", "type": "DECIMAL(18,0)"}]
    apply(
        inst,
        loaders={"f": {"pattern": r"^f_.*\.csv$", "target": "DWH.F", "columns": columns}},
        jobs={"load_f": job("LOAD", "f", pool="loader", schema="OPS")},
        watchers={"f_files": file_watcher("^f_", "load_f", schema="OPS", interval=3600)},
    )
    inbox, archive = inst.home / "data" / "input", inst.home / "data" / "archive"
    (inbox / "f_1.csv").write_text("ID\n1\n")
    start(inst)  # the first check comes at once, the next only in an hour
    wait_for(lambda: (archive / "f_1.csv").exists(), timeout=30, what="the first load")
    cfg = inst.load_config().redsys
    holder = sqlite3.connect(inst.db_dir / "DWH.db", isolation_level=None, timeout=30)
    holder.execute("BEGIN IMMEDIATE")  # the next load fails for the lock (transient)
    try:
        (inbox / "f_2.csv").write_text("ID\n2\n")

        def checked() -> bool:  # a check as jmon asks for one; again until the file is quiet
            wire.call(
                "127.0.0.1",
                cfg.sched_service_port,
                "submit",
                secret=cfg.pss_secret.reveal(),
                items=[{"kind": "watch", "name": "f_files"}],
            )
            return len(runs(inst, "load_f")) > 1

        wait_for(checked, timeout=30, what="a check firing the second load")

        def failed_for_the_lock() -> bool:
            return any("locked" in (r.message or "") for r in runs(inst, "load_f"))

        wait_for(failed_for_the_lock, timeout=60, what="a load failing for the lock")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    wait_for(lambda: (archive / "f_2.csv").exists(), timeout=60, what="the retry loading it")
    assert json.loads(redctl(inst, "--json", "we_list_error")) == []


def test_a_run_fired_while_jexec_is_down_waits_for_it_and_runs_once(inst: Instance) -> None:
    """At an instance's start sched fired before jexec listened: the run was FAILED at once
    ("jexec does not answer"), the file fired again. Nothing had run: the run waits for jexec."""
    apply(
        inst,
        jobs={"move": job("CMD", "fail_on_bad.sh")},
        watchers={"batch": file_watcher(r"^good_\d+\.csv$", "move")},
    )
    start(inst)
    Supervisor(inst).stop_process("jexec")
    (inst.home / "data" / "input" / "good_1.csv").write_text("x\n")
    wait_for(lambda: runs(inst, "move"), timeout=30, what="the run fired while jexec is down")
    Supervisor(inst).start_process("jexec")
    archived = inst.home / "data" / "archive" / "good_1.csv"
    wait_for(archived.exists, timeout=30, what="the command run once jexec is back")
    wait_for(lambda: states(inst, "move") == ["OK"], timeout=30, what="one run, OK")
