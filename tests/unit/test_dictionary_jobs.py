"""The jobs area of the dictionary (JobStore), the same tests on every backend.

``any_dic`` is SQLite, then the Exasol backend on the emulated database
(tests/unit/exasol_emulator.py: an emulation of Exasol for the backend's logic, not Exasol).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from redpss.dictionary import Dictionary
from redpss.dictionary.jobs import JobDef, PoolSample, RunUpdate, WatcherDef
from redpss.errors import DictionaryError

pytestmark = pytest.mark.unit

T0 = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
NIGHTLY = JobDef(
    "nightly", "DWH", "SQL", "DELETE FROM T", schedule_type="CRON", cron_expr="0 2 * * *",
    timeout_seconds=60, description="nightly clean-up",
)  # fmt: skip
LOAD = JobDef(
    "load", "DWH", "LOAD", "ldr", pool="loader", schedule_type="INTERVAL", interval_seconds=300,
    max_parallel=2, misfire_policy="SKIP", active=False,
)  # fmt: skip
WATCH = WatcherDef("w", "DWH", "FILE", r"^a.*\.csv$", "load", check_interval=30)


def _plain(d: JobDef | WatcherDef) -> JobDef | WatcherDef:
    return dataclasses.replace(d, changed_at=None)


def test_definitions_round_trip(any_dic: Dictionary) -> None:
    assert any_dic.jobs() == [] and any_dic.watchers() == []
    any_dic.apply_definitions([NIGHTLY, LOAD], [WATCH])
    jobs = any_dic.jobs()
    assert [_plain(j) for j in jobs] == [LOAD, NIGHTLY]
    assert all(j.changed_at is not None and j.changed_at.tzinfo is not None for j in jobs)
    assert [_plain(w) for w in any_dic.watchers()] == [WATCH]
    changed = dataclasses.replace(NIGHTLY, action="DELETE FROM U", active=False)
    any_dic.apply_definitions([changed], [])
    assert [(j.name, j.action, j.active) for j in any_dic.jobs()] == [
        ("load", "ldr", False),
        ("nightly", "DELETE FROM U", False),
    ]


def test_disallowed_values_are_refused_before_writing(any_dic: Dictionary) -> None:
    # the backends word it differently (a CHECK constraint, a check in Python): both name it
    with pytest.raises(DictionaryError, match="POOL_NAME"):
        any_dic.apply_definitions([NIGHTLY, dataclasses.replace(LOAD, pool="p")], [])
    with pytest.raises(DictionaryError, match="WATCHER_KIND"):
        any_dic.apply_definitions([], [dataclasses.replace(WATCH, kind="XML")])
    assert any_dic.jobs() == [] and any_dic.watchers() == []


def test_stamp_active_and_delete(any_dic: Dictionary) -> None:
    empty = any_dic.definitions_stamp()
    any_dic.apply_definitions([NIGHTLY, LOAD], [WATCH])
    applied = any_dic.definitions_stamp()
    assert applied != empty and any_dic.definitions_stamp() == applied
    assert any_dic.set_active("job", "load", True) is True
    assert any_dic.set_active("job", "nope", True) is False
    activated = any_dic.definitions_stamp()
    assert activated != applied
    assert any_dic.set_active("watcher", "w", False) is True
    assert any_dic.watchers()[0].active is False
    assert any_dic.delete_definition("watcher", "w") is True
    assert any_dic.delete_definition("watcher", "w") is False
    assert any_dic.definitions_stamp() not in (activated, applied)
    with pytest.raises(DictionaryError, match="'table'"):
        any_dic.set_active("table", "x", True)


def _run(run_id: int, state: str, **kw: object) -> RunUpdate:
    fields: dict[str, object] = {"schema": "DWH", "name": "nightly", "pool": "default"}
    fields |= {"queued_at": T0 + timedelta(seconds=run_id)}
    return RunUpdate(run_id=run_id, state=state, **fields | kw)  # type: ignore[arg-type]


def test_runs_are_upserted_and_keep_what_an_update_leaves_out(any_dic: Dictionary) -> None:
    started = T0 + timedelta(minutes=1)
    any_dic.record_runs([_run(1, "QUEUED"), _run(2, "QUEUED", name="other")])
    any_dic.record_runs([_run(1, "RUNNING", started_at=started, host="h1", pid=42, message="go")])
    any_dic.record_runs([_run(1, "OK", ended_at=started + timedelta(seconds=2), rows=7)])
    (run,) = any_dic.runs(name="nightly")
    assert (run.run_id, run.state, run.rows, run.host, run.pid) == (1, "OK", 7, "h1", 42)
    assert run.message == "go"
    assert run.queued_at == T0 + timedelta(seconds=1) and run.started_at == started
    assert run.ended_at == started + timedelta(seconds=2)
    assert [r.run_id for r in any_dic.runs()] == [2, 1]
    assert [r.run_id for r in any_dic.runs(states=("QUEUED",))] == [2]
    assert [r.run_id for r in any_dic.runs(limit=1)] == [2]
    assert any_dic.runs(schema="NOPE") == []
    assert set(any_dic.last_runs()) == {"nightly", "other"}


def test_runs_span_schemas_and_watchers(any_dic: Dictionary) -> None:
    any_dic.record_runs(
        [
            _run(1, "OK"),
            _run(2, "OK", schema="STAGE"),
            _run(3, "RUNNING", schema="STAGE"),
            _run(4, "OK", name="w", watcher=True, watch_key="a.csv", executor_run_id=3),
        ]
    )
    assert [(r.schema, r.run_id) for r in any_dic.runs()] == [
        ("STAGE", 3),
        ("STAGE", 2),
        ("DWH", 1),
    ]
    (fire,) = any_dic.runs(watcher=True)
    assert (fire.name, fire.watch_key, fire.executor_run_id) == ("w", "a.csv", 3)
    assert any_dic.last_runs()["nightly"].run_id == 3
    with pytest.raises(DictionaryError, match="STATE"):
        any_dic.record_runs([_run(5, "BORED")])


def test_abort_unfinished_appends_to_a_message(any_dic: Dictionary) -> None:
    any_dic.record_runs(
        [_run(1, "QUEUED"), _run(2, "RUNNING", message="half"), _run(3, "OK", message="done")]
    )
    assert any_dic.abort_unfinished("instance stopped") == 2
    states = {r.run_id: (r.state, r.message) for r in any_dic.runs()}
    assert states == {
        1: ("ABORTED", "instance stopped"),
        2: ("ABORTED", "half; instance stopped"),
        3: ("OK", "done"),
    }
    assert all(r.ended_at is not None for r in any_dic.runs(states=("ABORTED",)))


def test_exec_errors_count_list_and_reset(any_dic: Dictionary) -> None:
    assert any_dic.record_exec_error("DWH", "w", "a.csv", "boom") == 1
    assert any_dic.record_exec_error("DWH", "w", "a.csv", "boom again") == 2
    assert any_dic.record_exec_error("STAGE", "v", "b.csv", "") == 1
    errors = {(e.schema, e.watcher, e.key): e for e in any_dic.exec_errors()}
    first = errors[("DWH", "w", "a.csv")]
    assert (first.count, first.message) == (2, "boom again")
    assert first.first_seen <= first.last_seen and first.first_seen.tzinfo is not None
    assert errors[("STAGE", "v", "b.csv")].message in (None, "")
    assert [e.key for e in any_dic.exec_errors("v")] == ["b.csv"]
    assert any_dic.reset_exec_errors("w", "other.csv") == 0
    assert any_dic.reset_exec_errors("w") == 1
    assert any_dic.reset_exec_errors() == 1 and any_dic.exec_errors() == []


def test_clear_logs_empties_runs_errors_messages_and_samples(any_dic: Dictionary) -> None:
    any_dic.record_runs([_run(1, "OK"), _run(2, "OK", schema="STAGE")])
    any_dic.record_exec_error("DWH", "w", "k", "m")
    any_dic.log_message("DWH", level="ERROR", message="x")
    any_dic.write_jmon_sample(T0, [PoolSample("default", 4, 1, 0, 3)], [])
    assert any_dic.clear_logs() == 5
    assert any_dic.runs() == [] and any_dic.exec_errors() == []
    assert any_dic.all_log_messages() == []


def test_jmon_sample_of_the_same_time_replaces(any_dic: Dictionary) -> None:
    pools = [PoolSample("default", 4, 1, 0, 3), PoolSample("loader", 2, 0, 0, 0)]
    jobs = [("nightly", T0 + timedelta(hours=1), T0, "OK"), ("load", None, None, None)]
    any_dic.write_jmon_sample(T0, pools, jobs)
    any_dic.write_jmon_sample(T0, pools[:1], jobs[:1])
    assert any_dic.clear_logs() == 4
    with pytest.raises(DictionaryError, match="POOL_NAME"):
        any_dic.write_jmon_sample(T0, [PoolSample("huge", 1, 0, 0, 0)], [])


def test_sql_jobs_and_watcher_queries(any_dic: Dictionary) -> None:
    assert any_dic.run_sql("DWH", "CREATE TABLE T (A DECIMAL(9,0), B VARCHAR(10))") == 0
    assert (
        any_dic.run_sql("DWH", "INSERT INTO T VALUES (1, 'x'); INSERT INTO T VALUES (2, 'y')") == 2
    )
    assert any_dic.query_value("DWH", "SELECT COUNT(*) FROM T") == "2"
    assert any_dic.query_value("DWH", "SELECT MAX(B) FROM T") == "y"
    digest = any_dic.query_value("DWH", "SELECT A, B FROM T ORDER BY A")
    assert digest.startswith("sha256:")
    assert any_dic.run_sql("DWH", "UPDATE T SET B = 'z' WHERE A = 2") == 1
    assert any_dic.query_value("DWH", "SELECT A, B FROM T ORDER BY A") != digest
    with pytest.raises(DictionaryError):
        any_dic.run_sql("DWH", "INSERT INTO NOPE VALUES (1)")
    assert any_dic.query_value("DWH", "SELECT COUNT(*) FROM T") == "2"
