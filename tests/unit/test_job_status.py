"""STA_JOB_STATUS: what sched and jmon write about each job, and the ALERT rule — the SQL of
both backends against the Python rule (``job_alert``), as STA_PSS_STATUS is tested."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redpss.dictionary import Dictionary, open_dictionary
from redpss.dictionary.columns import JOB_STATUS_SINCE
from redpss.dictionary.jobs import JobDef, RunUpdate, job_alert, next_status
from redpss.dictionary.model import DICTIONARY, MIGRATIONS
from redpss.dictionary.objects import Model, Table
from redpss.dictionary.sqlite import SqliteDictionary
from tests.unit.exasol_emulator import EmulatedDatabase
from tests.unit.exasol_support import emulated_dictionary

NOW = datetime(2026, 10, 25, 1, 30, 0, 250_000, tzinfo=UTC)  # a DST night in Europe


def run(run_id: int, state: str, **kw: object) -> RunUpdate:
    base: dict[str, object] = {"queued_at": NOW + timedelta(seconds=run_id)}
    base.update(kw)
    return RunUpdate("DWH", run_id, "j", "default", state, **base)  # type: ignore[arg-type]


def test_the_newest_run_that_was_not_skipped_is_the_last_run() -> None:
    first = next_status(None, [run(1, "QUEUED"), run(1, "RUNNING", started_at=NOW)])
    assert first[:2] == (1, "RUNNING") and first[3] == NOW
    ended = next_status(first, [run(1, "OK", ended_at=NOW, message="fine")])
    assert ended[:2] == (1, "OK") and ended[3] == NOW and ended[5] == "fine"
    skipped = next_status(ended, [run(2, "SKIPPED", message="max_parallel")])
    assert skipped[:2] == (1, "OK") and skipped[6] == NOW + timedelta(seconds=2)
    older = next_status(skipped, [run(0, "FAILED")])  # a late write of an older run
    assert older[:2] == (1, "OK")


def test_sched_and_jmon_write_and_the_view_judges(dic: Dictionary) -> None:
    dic.apply_definitions(
        [
            JobDef("ok", "DWH", "SQL", "SELECT 1", schedule_type="INTERVAL", interval_seconds=60),
            JobDef("bad", "DWH", "SQL", "SELECT 1"),
            JobDef("late", "DWH", "SQL", "SELECT 1", schedule_type="CRON", cron_expr="0 * * * *"),
            JobDef("off", "DWH", "SQL", "SELECT 1", active=False),
            JobDef("broken", "DWH", "SQL", "SELECT 1", schedule_type="CRON", cron_expr="x"),
        ],
        [],
    )
    t = datetime.now(UTC) - timedelta(minutes=5)
    dic.record_job_status(
        [
            RunUpdate("DWH", 1, "ok", "default", "OK", t, started_at=t, ended_at=t),
            RunUpdate("DWH", 2, "bad", "default", "FAILED", t, ended_at=t, message="boom " * 100),
            RunUpdate("DWH", 3, "off", "default", "FAILED", t, message="off anyway"),
            RunUpdate("DWH", 4, "w", "default", "OK", t, watcher=True),  # a watcher fire: not a job
        ]
    )
    dic.record_job_plan(
        {
            "ok": (t + timedelta(minutes=6), None),
            "late": (t + timedelta(minutes=1), None),
            "broken": (None, "job broken: cron expression 'x': wrong number of fields"),
        },
        t,
        complete=True,
    )
    by = {s.job: s for s in dic.job_status()}
    assert set(by) == {"ok", "bad", "late", "off", "broken"}  # one row per definition
    assert (by["ok"].alert, by["ok"].last_state) == (0, "OK")
    assert by["bad"].alert == 2 and by["bad"].alert_reason == "last run FAILED: " + ("boom " * 40)
    assert by["late"].alert == 1
    assert (by["late"].alert_reason or "").startswith("late: no run for 2")
    assert (by["off"].alert, by["off"].alert_reason) == (0, None)
    assert by["broken"].alert == 2 and "invalid definition: job broken" in (
        by["broken"].alert_reason or ""
    )
    # a plan of changes touches only those; a complete one forgets what jmon no longer says
    dic.record_job_plan({"late": (None, None)}, t)
    by = {s.job: s for s in dic.job_status()}
    assert by["late"].next_run_at is None and by["ok"].next_run_at is not None
    dic.record_job_plan({}, t, complete=True)
    assert all(s.next_run_at is None and s.definition_error is None for s in dic.job_status())


STATES = st.none() | st.sampled_from(
    ["QUEUED", "RUNNING", "OK", "FAILED", "TIMEOUT", "ABORTED", "SKIPPED", "KILLED"]
)
TEXT = st.none() | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=260)
OFFSET = st.none() | st.integers(-7200_000, 7200_000).map(lambda ms: timedelta(milliseconds=ms))


@st.composite
def rows(draw: st.DrawFn) -> dict[str, object]:
    return {
        "active": draw(st.booleans()),
        "state": draw(STATES),
        "message": draw(TEXT),
        "seen": draw(OFFSET),
        "next": draw(OFFSET),
        "error": draw(
            st.none() | st.text(min_size=1, max_size=50).filter(lambda s: "\x00" not in s)
        ),
    }


def _put(dic: Dictionary, row: dict[str, object]) -> None:
    dic.apply_definitions([JobDef("j", "DWH", "SQL", "SELECT 1", active=bool(row["active"]))], [])
    seen = row["seen"]
    nxt = row["next"]
    planned = NOW + nxt if isinstance(nxt, timedelta) else None
    error = str(row["error"]) if row["error"] else None
    dic.record_job_plan({"j": (planned, error)}, NOW, complete=True)
    if row["state"] is not None or seen is not None:
        queued = NOW + seen if isinstance(seen, timedelta) else NOW
        state = str(row["state"] or "SKIPPED")
        msg = row["message"] if isinstance(row["message"], str) else None
        dic.record_job_status([RunUpdate("DWH", 1, "j", "default", state, queued, message=msg)])


def _expected(row: dict[str, object], overdue: float | None) -> tuple[int, str | None]:
    state = row["state"] if row["state"] != "SKIPPED" else None
    seen = row["seen"]
    nxt = row["next"]
    message = row["message"] if row["state"] not in (None, "SKIPPED") else None
    return job_alert(
        active=bool(row["active"]),
        last_state=state if isinstance(state, str) else None,
        last_message=(message[:2000] or None) if isinstance(message, str) else None,
        last_seen_at=NOW + seen if isinstance(seen, timedelta) else (
            NOW if row["state"] is not None else None
        ),
        next_run_at=NOW + nxt if isinstance(nxt, timedelta) else None,
        definition_error=str(row["error"]) if row["error"] else None,
        overdue_seconds=overdue,
    )  # fmt: skip


@pytest.fixture(scope="module")
def sqlite_dic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dictionary]:
    with open_dictionary("sqlite", db_dir=tmp_path_factory.mktemp("db")) as d:
        d.init()
        yield d


def _reset_sqlite(dic: Dictionary) -> None:
    with sqlite3.connect(dic.db_dir / "REDSYS.db") as conn:  # type: ignore[attr-defined]
        conn.execute("DELETE FROM ADM_JOB_STATUS")
        conn.execute("DELETE FROM ADM_JOBS")
    conn.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row=rows())
def test_the_sql_of_sta_job_status_is_the_python_rule_sqlite(
    sqlite_dic: Dictionary, row: dict[str, object]
) -> None:
    _reset_sqlite(sqlite_dic)
    _put(sqlite_dic, row)
    (status,) = sqlite_dic.job_status(now=NOW)
    nxt = row["next"]
    if isinstance(nxt, timedelta):
        assert status.overdue_seconds == pytest.approx(-nxt.total_seconds(), abs=0.002)
    assert (status.alert, status.alert_reason) == _expected(row, status.overdue_seconds)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row=rows())
def test_the_sql_of_sta_job_status_is_the_python_rule_exasol(
    exa_template: Path, row: dict[str, object]
) -> None:
    db = EmulatedDatabase(copy_of=exa_template)
    try:
        with emulated_dictionary(db) as dic:
            dic.init()
            _put(dic, row)
            (status,) = dic.job_status(now=NOW)
    finally:
        db.close()
    nxt = row["next"]
    if isinstance(nxt, timedelta):
        assert status.overdue_seconds == pytest.approx(-nxt.total_seconds(), abs=0.002)
    assert (status.alert, status.alert_reason) == _expected(row, status.overdue_seconds)


def test_upgrade_to_job_status_keeps_runs_and_allows_killed(tmp_path: Path) -> None:
    """Migration 6 rebuilds the run logs (SQLite checks run states) with their rows."""

    def without_killed(table: Table) -> Table:
        columns = tuple(
            dataclasses.replace(c, values=tuple(v for v in c.values if v != "KILLED"))
            for c in table.columns
        )
        return dataclasses.replace(table, columns=columns)

    tables = tuple(without_killed(t) for t in DICTIONARY.tables)
    before = Model(tables, DICTIONARY.views[:-1], MIGRATIONS[: JOB_STATUS_SINCE - 1])
    t = datetime.now(UTC)
    with SqliteDictionary(tmp_path, model=before) as old:
        old.init()
        old.record_runs([RunUpdate("DWH", 7, "j", "default", "OK", t, message="kept")])
        with pytest.raises(Exception, match="CHECK"):
            old.record_runs([RunUpdate("DWH", 8, "j", "default", "KILLED", t)])
    with SqliteDictionary(tmp_path) as new:
        done = new.upgrade()
        assert any("version 6" in line for line in done)
        new.record_runs([RunUpdate("DWH", 8, "j", "default", "KILLED", t, message="by alice")])
        runs = {r.run_id: (r.state, r.message) for r in new.runs(schema="DWH")}
        assert runs == {7: ("OK", "kept"), 8: ("KILLED", "by alice")}
        assert new.job_status() == []
        with sqlite3.connect(tmp_path / "DWH.db") as conn:
            indexes = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
            }
        conn.close()
        assert "ADM_JOB_LOG_JOB_NAME_QUEUED_AT_IX" in indexes
        assert not any("REBUILD" in name for name in indexes)
