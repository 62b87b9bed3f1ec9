"""Watchers end to end: FILE watchers with command and loader executors, executor errors."""

from __future__ import annotations

import json
import time

from redpss.dictionary import open_dictionary
from redpss.instance import Instance
from tests.conftest import run_cli, wait_for
from tests.integration.sched_support import (
    apply,
    file_watcher,
    job,
    redctl,
    runs,
    start,
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
