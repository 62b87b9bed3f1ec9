"""A dictionary that has run for a year: the queries operators ask walk an index, and jmon's
look at the definitions costs O(changes) (dictionary version 7)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redpss.dictionary import Dictionary, open_dictionary
from redpss.dictionary.columns import YEAR_SINCE
from redpss.dictionary.jobs import DefinitionChanges, JobDef, RunRecord, RunUpdate, WatcherDef
from redpss.dictionary.model import DICTIONARY, MIGRATIONS, TABLES, VIEWS
from redpss.dictionary.objects import Model
from redpss.dictionary.purge import PURGE_TABLES, PurgeTable
from redpss.dictionary.sqlite.changes import read_stamp
from redpss.dictionary.sqlite.purge import batch_sql

pytestmark = pytest.mark.unit

T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
STATES = ("OK", "FAILED", "SKIPPED", "RUNNING")


def _run(i: int, name: str, state: str, *, watcher: bool = False) -> RunUpdate:
    queued = T0 + timedelta(minutes=i)
    return RunUpdate(
        "DWH", int(queued.timestamp() * 1000) * 1000, name, "default", state, queued,
        watcher=watcher, message=f"run {i}",
    )  # fmt: skip


def _plan(db: Path, sql: str, args: tuple[object, ...] = ()) -> str:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", args).fetchall()
    return "\n".join(str(r[-1]) for r in rows)


# -- the queries operators ask ----------------------------------------------------------------


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    runs=st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(STATES)), max_size=40),
    name=st.none() | st.sampled_from("abcd"),
    states=st.none() | st.lists(st.sampled_from(STATES), min_size=1, max_size=3, unique=True),
    since=st.none() | st.integers(0, 45),
    until=st.none() | st.integers(0, 45),
    limit=st.integers(1, 10),
)
def test_runs_answer_as_the_filter_says(
    any_dic: Dictionary,
    runs: list[tuple[str, str]],
    name: str | None,
    states: list[str] | None,
    since: int | None,
    until: int | None,
    limit: int,
) -> None:
    """The reference is Python's filter and sort over the same rows, on both backends."""
    any_dic.clear_logs()
    updates = [_run(i, n, s) for i, (n, s) in enumerate(runs)]
    any_dic.record_runs(updates)
    lo = None if since is None else T0 + timedelta(minutes=since)
    hi = None if until is None else T0 + timedelta(minutes=until)
    got = any_dic.runs(
        name=name, states=tuple(states) if states else None, limit=limit, since=lo, until=hi
    )
    want = [
        u.run_id
        for u in sorted(updates, key=lambda u: u.run_id, reverse=True)
        if (name is None or u.name == name)
        and (not states or u.state in states)
        and (lo is None or u.queued_at >= lo)
        and (hi is None or u.queued_at < hi)
    ][:limit]
    assert [r.run_id for r in got] == want


def test_last_runs_take_the_newest_run_of_every_job(any_dic: Dictionary) -> None:
    any_dic.record_runs([_run(i, "abc"[i % 3], STATES[i % 4]) for i in range(30)])
    any_dic.record_runs([_run(100, "solo", "SKIPPED")])
    last = any_dic.last_runs()
    assert {n: r.message for n, r in last.items()} == {
        "a": "run 27", "b": "run 28", "c": "run 29", "solo": "run 100",
    }  # fmt: skip
    assert all(isinstance(r, RunRecord) for r in last.values())


@pytest.mark.parametrize(
    ("sql", "args", "index"),
    [
        # the last N runs of a job
        ("SELECT * FROM ADM_JOB_LOG WHERE JOB_NAME = ? ORDER BY RUN_ID DESC LIMIT 50", ("a",),
         "ADM_JOB_LOG_JOB_NAME_RUN_ID_IX"),
        # runs by state (one query per state)
        ("SELECT * FROM ADM_JOB_LOG WHERE STATE = ? ORDER BY RUN_ID DESC LIMIT 50", ("FAILED",),
         "ADM_JOB_LOG_STATE_RUN_ID_IX"),
        # the errors of a watcher
        ("SELECT * FROM ADM_WATCHER_LOG WHERE WATCHER_NAME = ? ORDER BY RUN_ID DESC LIMIT 50",
         ("w",), "ADM_WATCHER_LOG_WATCHER_NAME_RUN_ID_IX"),
        ("SELECT * FROM ADM_WATCHER_LOG WHERE STATE = ? ORDER BY RUN_ID DESC LIMIT 50",
         ("FAILED",), "ADM_WATCHER_LOG_STATE_RUN_ID_IX"),
        # the purge, oldest first
        ("SELECT RUN_ID FROM ADM_JOB_LOG WHERE QUEUED_AT < ? ORDER BY QUEUED_AT LIMIT 500",
         ("2030",), "ADM_JOB_LOG_QUEUED_AT_IX"),
        ("SELECT CLAIM_ID FROM ADM_LOAD_LOG WHERE LOADED_AT < ? ORDER BY LOADED_AT LIMIT 500",
         ("2030",), "ADM_LOAD_LOG_LOADED_AT_IX"),
    ],
)  # fmt: skip
def test_what_operators_ask_walks_an_index_without_sorting(
    dic: Dictionary, sql: str, args: tuple[object, ...], index: str
) -> None:
    dic.ensure_schema("DWH")
    plan = _plan(dic.db_dir / "DWH.db", sql, args)  # type: ignore[attr-defined]
    assert index in plan
    assert "TEMP B-TREE" not in plan


@pytest.mark.parametrize(
    "spec", [s for s in PURGE_TABLES if s.scope == "TARGET"], ids=lambda s: s.table
)
def test_a_purge_batch_walks_the_time_index_without_sorting(
    dic: Dictionary, spec: PurgeTable
) -> None:
    """The batch's own SQL (with its rules: only ended runs, claims kept): the time index, no
    sort of the table — a sort per batch made a year's purge crawl (bench/year.py)."""
    dic.ensure_schema("DWH")
    args: tuple[object, ...] = ("2030", "[]", 500) if spec.keep_claims else ("2030", 500)
    plan = _plan(dic.db_dir / "DWH.db", batch_sql(spec), args)  # type: ignore[attr-defined]
    assert f"{spec.table}_{spec.time_column}_IX" in plan
    assert "TEMP B-TREE" not in plan


def test_last_runs_do_not_scan_the_log(dic: Dictionary) -> None:
    """The newest run of each job is found per job (loose index scan): the work grows with
    the jobs, not with their runs."""
    dic.record_runs([_run(i, "abc"[i % 3], "OK") for i in range(3)])
    few = _steps(dic, dic.last_runs)
    dic.record_runs([_run(i, "abc"[i % 3], "OK") for i in range(3, 3000)])
    many = _steps(dic, dic.last_runs)
    assert many < few * 3, (few, many)


def _steps(dic: Dictionary, call: object) -> int:
    """SQLite virtual machine steps (in units of 100) a call makes."""
    counted = [0]
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = real(*args, **kwargs)
        conn.set_progress_handler(lambda: counted.__setitem__(0, counted[0] + 1) or 0, 100)
        return conn

    mp = pytest.MonkeyPatch()
    mp.setattr(sqlite3, "connect", connect)
    try:
        call()  # type: ignore[operator]
    finally:
        mp.undo()
    return counted[0]


# -- migration 7 on a dictionary that has lived -----------------------------------------------


def test_version_7_adds_its_indexes_and_triggers_and_keeps_the_rows(tmp_path: Path) -> None:
    old = Model(TABLES, VIEWS, MIGRATIONS[: YEAR_SINCE - 1])
    from redpss.dictionary.sqlite import SqliteDictionary

    before = SqliteDictionary(tmp_path, model=old)
    before.init()
    before.apply_definitions([JobDef("a", "DWH", "SQL", "SELECT 1")], [])
    before.record_runs([_run(i, "a", "OK") for i in range(5)])
    stamp = before.definitions_stamp()
    assert before.definition_changes(stamp) is None  # no change log yet: read everything
    with open_dictionary("sqlite", db_dir=tmp_path) as d:
        done = d.upgrade()
        assert any("version 7" in line for line in done)
        assert len(d.runs(name="a")) == 5
        plan = _plan(
            tmp_path / "DWH.db",
            "SELECT * FROM ADM_JOB_LOG WHERE JOB_NAME = ? ORDER BY RUN_ID DESC LIMIT 5",
            ("a",),
        )
        assert "ADM_JOB_LOG_JOB_NAME_RUN_ID_IX" in plan
        with sqlite3.connect(tmp_path / "REDSYS.db") as conn:
            found = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            triggers = {r[0] for r in found}
        assert triggers == {
            f"{table}_LOG_{when}"
            for table in ("ADM_JOBS", "ADM_WATCHER")
            for when in ("INSERT", "UPDATE", "DELETE")
        }
        assert d.definitions_stamp().startswith("log:")


def test_a_rebuild_of_a_definition_table_keeps_its_triggers(tmp_path: Path) -> None:
    """A later migration that rebuilds ADM_JOBS (drop, rename) drops its triggers; every
    migration of REDSYS creates them again."""
    from redpss.dictionary.objects import Migration
    from redpss.dictionary.sqlite import SqliteDictionary

    rebuild = Migration(DICTIONARY.version + 1, "test", rebuild=("ADM_JOBS",))
    later = Model(TABLES, VIEWS, (*MIGRATIONS, rebuild))
    with open_dictionary("sqlite", db_dir=tmp_path) as d:
        d.init()
    newer = SqliteDictionary(tmp_path, model=later)
    newer.upgrade()
    stamp = newer.definitions_stamp()
    with sqlite3.connect(tmp_path / "REDSYS.db") as conn:
        conn.execute(_INSERT_JOB.format(name="x"))
    changes = newer.definition_changes(stamp)
    assert changes is not None and list(changes.jobs) == ["x"]


# -- the change log of the definitions --------------------------------------------------------


def _sql(dic: Dictionary, statement: str) -> None:
    """A user's plain SQL, on a connection of its own (as sqlite3's shell would)."""
    with sqlite3.connect(dic.db_dir / "REDSYS.db") as conn:  # type: ignore[attr-defined]
        conn.execute(statement)


_INSERT_JOB = (
    "INSERT INTO ADM_JOBS (JOB_NAME, SCHEMA_NAME, JOB_KIND, ACTION_TEXT, SCHEDULE_TYPE, "
    "INTERVAL_SECONDS, CREATED_AT, CHANGED_AT) VALUES ('{name}', 'DWH', 'SQL', 'SELECT 1', "
    "'INTERVAL', 60, '2030-01-01 00:00:00.000000+00:00', '2030-01-01 00:00:00.000000+00:00')"
)


def test_plain_sql_changes_come_out_of_the_log_one_by_one(dic: Dictionary) -> None:
    dic.apply_definitions(
        [JobDef(f"j{i}", "DWH", "SQL", "SELECT 1") for i in range(3)],
        [WatcherDef("w", "DWH", "FILE", "x", "j0")],
    )
    stamp = dic.definitions_stamp()
    assert dic.definition_changes(stamp) == DefinitionChanges(stamp, {}, {})
    _sql(dic, _INSERT_JOB.format(name="new"))
    _sql(dic, "UPDATE ADM_JOBS SET ACTION_TEXT = 'SELECT 2' WHERE JOB_NAME = 'j1'")
    _sql(dic, "UPDATE ADM_JOBS SET JOB_NAME = 'renamed' WHERE JOB_NAME = 'j2'")
    _sql(dic, "UPDATE ADM_WATCHER SET ACTIVE = 0")
    changes = dic.definition_changes(stamp)
    assert changes is not None and changes.stamp == dic.definitions_stamp() != stamp
    assert {n: (j.action if j else None) for n, j in changes.jobs.items()} == {
        "new": "SELECT 1", "j1": "SELECT 2", "j2": None, "renamed": "SELECT 1",
    }  # fmt: skip
    assert {n: (w.active if w else None) for n, w in changes.watchers.items()} == {"w": False}
    _sql(dic, "DELETE FROM ADM_JOBS")  # no WHERE: SQLite's truncate would skip the triggers
    gone = dic.definition_changes(changes.stamp)
    assert gone is not None
    assert gone.jobs == {"j0": None, "j1": None, "new": None, "renamed": None}


def test_a_purged_log_or_another_file_means_read_everything(dic: Dictionary) -> None:
    dic.apply_definitions([JobDef("a", "DWH", "SQL", "SELECT 1")], [])
    stamp = dic.definitions_stamp()
    _sql(dic, _INSERT_JOB.format(name="b"))
    _sql(dic, _INSERT_JOB.format(name="c"))
    _sql(
        dic,
        "DELETE FROM ADM_DEFINITION_LOG "
        "WHERE CHANGE_ID < (SELECT MAX(CHANGE_ID) FROM ADM_DEFINITION_LOG)",
    )
    assert dic.definition_changes(stamp) is None
    assert dic.definition_changes("log:another file:1") is None
    assert dic.definition_changes("0123abcd") is None  # a hash stamp of an older dictionary
    now = dic.definitions_stamp()
    assert dic.definition_changes(now) is not None


def test_the_stamp_costs_the_same_for_ten_or_five_thousand_definitions(dic: Dictionary) -> None:
    def steps() -> int:
        counted = [0]
        with sqlite3.connect(dic.db_dir / "REDSYS.db") as conn:  # type: ignore[attr-defined]
            conn.set_progress_handler(lambda: counted.__setitem__(0, counted[0] + 1) or 0, 1)
            assert read_stamp(conn, YEAR_SINCE)
        return counted[0]

    dic.apply_definitions([JobDef(f"j{i}", "DWH", "SQL", "SELECT 1") for i in range(10)], [])
    few = steps()
    dic.apply_definitions([JobDef(f"k{i}", "DWH", "SQL", "SELECT 1") for i in range(5000)], [])
    assert steps() <= few + 5


def test_exasol_reads_everything_again_after_any_change(exa_dic: Dictionary) -> None:
    """Exasol has no triggers: its stamp is the hash the database computes over every row
    (docs/dictionary.md says what it costs), and after a change jmon reads everything."""
    exa_dic.apply_definitions([JobDef("a", "DWH", "SQL", "SELECT 1")], [])
    stamp = exa_dic.definitions_stamp()
    assert exa_dic.definition_changes(stamp) is None


# -- the /ui charts: counted by the dictionary ------------------------------------------------
