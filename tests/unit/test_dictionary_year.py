"""A dictionary that has run for a year: the queries operators ask walk an index, and jmon's
look at the definitions costs O(changes) (dictionary version 7)."""

from __future__ import annotations

import re
import sqlite3
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from redpss.dictionary import Dictionary, open_dictionary
from redpss.dictionary.columns import YEAR_SINCE
from redpss.dictionary.jobs import DefinitionChanges, JobDef, RunRecord, RunUpdate, WatcherDef
from redpss.dictionary.model import DICTIONARY, MIGRATIONS, TABLES, VIEWS
from redpss.dictionary.objects import Model
from redpss.dictionary.purge import PURGE_TABLES, PurgeTable
from redpss.dictionary.sqlite.changes import read_stamp
from redpss.dictionary.sqlite.purge import batch_sql
from redpss.rest import charts

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

NOW = datetime(2030, 5, 6, 12, 30, 7, tzinfo=UTC)
SCAN = 20_000  # what the old chart code read at most


def _old_runs_per_hour(d: Dictionary, hours: int = 24) -> dict[str, Any]:
    """The reference: what charts.runs_per_hour computed before (every run read, Python)."""
    slots = charts._hours(NOW, hours)
    index = {slot: i for i, slot in enumerate(slots)}
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * len(slots))
    for r in d.runs(limit=SCAN, since=slots[0]):
        slot = r.queued_at.replace(minute=0, second=0, microsecond=0)
        if slot in index:
            counts[r.state][index[slot]] += 1
    states = charts.STATES
    ordered = [s for s in states if s in counts] + sorted(set(counts) - set(states))
    return {"x": [int(s.timestamp()) for s in slots],
            "series": {s: counts[s] for s in ordered}, "range": charts._span(slots)}  # fmt: skip


def _old_load_rows_per_hour(d: Dictionary, hours: int = 24) -> dict[str, Any]:
    slots = charts._hours(NOW, hours)
    index = {slot: i for i, slot in enumerate(slots)}
    loads = {j.name for j in d.jobs() if j.kind == "LOAD"}
    rows = [0] * len(slots)
    for r in d.runs(limit=SCAN, since=slots[0]):
        if r.name not in loads or not r.rows:
            continue
        at = r.ended_at or r.started_at or r.queued_at
        slot = at.replace(minute=0, second=0, microsecond=0)
        if slot in index:
            rows[index[slot]] += r.rows
    return {"x": [int(s.timestamp()) for s in slots], "series": {"rows": rows},
            "range": charts._span(slots)}  # fmt: skip


_CHART_RUN = st.tuples(
    st.sampled_from(["DWH", "STG"]),
    st.sampled_from(["load", "load", "calc", "gone"]),  # "gone": a job no longer defined
    st.sampled_from(charts.STATES),
    st.integers(-26 * 3600, 2 * 3600),  # queued: seconds from NOW
    st.integers(0, 7200) | st.none(),  # started: seconds after queued
    st.integers(0, 7200) | st.none(),  # ended: seconds after started
    st.integers(0, 1000) | st.none(),  # rows
)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(runs=st.lists(_CHART_RUN, min_size=1, max_size=40), hours=st.sampled_from([1, 3, 24]))
@example(  # loads that start in one hour and end in the next: the end's hour counts
    runs=[("DWH", "load", "OK", -3 * 3600 + 50 * 60, 2000, 1000, 7),
          ("STG", "load", "FAILED", -2 * 3600, 3000, 3000, 5),
          ("DWH", "calc", "OK", -600, None, None, None)],
    hours=24,
)  # fmt: skip
def test_hourly_charts_answer_as_the_python_aggregation_did(
    any_dic: Dictionary, runs: list[tuple[Any, ...]], hours: int
) -> None:
    """The per-hour charts ask the dictionary for counts and sums (runs_by_hour,
    rows_by_hour); the reference is the old code that read every run of the window."""
    any_dic.clear_logs()
    for schema in ("DWH", "STG"):
        any_dic.ensure_schema(schema)
    any_dic.apply_definitions(
        [JobDef("load", "DWH", "LOAD", "SELECT 1"), JobDef("calc", "DWH", "SQL", "SELECT 1")], []
    )
    updates = []
    for i, (schema, name, state, queued, started, ended, rows) in enumerate(runs):
        q = NOW + timedelta(seconds=queued, microseconds=i)
        s = None if started is None else q + timedelta(seconds=started)
        e = None if ended is None or s is None else s + timedelta(seconds=ended)
        run_id = int(q.timestamp() * 1000) * 1000 + i
        updates.append(RunUpdate(schema, run_id, name, "default", state, q,
                                 started_at=s, ended_at=e, rows=rows))  # fmt: skip
    any_dic.record_runs(updates)
    assert charts.runs_per_hour(any_dic, hours=hours, now=NOW) == _old_runs_per_hour(any_dic, hours)
    assert charts.load_rows_per_hour(any_dic, hours=hours, now=NOW) == _old_load_rows_per_hour(
        any_dic, hours
    )


def _old_durations(d: Dictionary, hours: int, per_job: int) -> dict[str, Any]:
    """The reference: what charts.durations computed before (every run of the window read,
    Python), its jobs ranked by their ended runs and each cut to its newest ``per_job``."""
    since = NOW - timedelta(hours=hours)
    points: dict[str, dict[int, float]] = defaultdict(dict)
    ended: dict[str, int] = defaultdict(int)
    for r in d.runs(limit=SCAN, since=since):  # newest first
        if r.queued_at < since or r.started_at is None or r.ended_at is None:
            continue
        ended[r.name] += 1
        if ended[r.name] > per_job:
            continue
        seconds = (r.ended_at - r.started_at).total_seconds()
        points[r.name][int(r.ended_at.timestamp())] = round(max(seconds, 0.0), 3)
    jobs = sorted(points, key=lambda name: (-ended[name], name))[: charts.MAX_JOBS]
    xs = sorted({x for name in jobs for x in points[name]})
    return {"x": xs, "series": {n: [points[n].get(x) for x in xs] for n in sorted(jobs)},
            "range": [int(since.timestamp()), int(NOW.timestamp())]}  # fmt: skip


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    runs=st.lists(
        st.tuples(
            st.sampled_from(["DWH", "STG"]),
            st.sampled_from([f"j{i}" for i in range(14)]),  # more than MAX_JOBS
            st.integers(-26 * 3600, 600),  # queued: seconds from NOW
            st.integers(0, 300) | st.none(),  # started: seconds after queued
            st.integers(0, 5) | st.none(),  # ended: seconds after started (same seconds too)
        ),
        min_size=1,
        max_size=60,
    ),
    hours=st.sampled_from([1, 24]),
    per_job=st.sampled_from([1, 2, 5, charts.PER_JOB]),
)
@example(  # one job in two schemas, cut to the newest 2 over both
    runs=[("DWH", "j1", -100, 1, 1), ("STG", "j1", -50, 1, 2), ("DWH", "j1", -10, 1, 3),
          ("STG", "j2", -5, 0, 0)],
    hours=1, per_job=2,
)  # fmt: skip
def test_duration_chart_answers_as_the_python_aggregation_did(
    any_dic: Dictionary, runs: list[tuple[Any, ...]], hours: int, per_job: int
) -> None:
    """The duration chart asks the dictionary for each job's newest ended runs (ended_runs,
    cut per job by the database) instead of reading every run of its day."""
    any_dic.clear_logs()
    for schema in ("DWH", "STG"):
        any_dic.ensure_schema(schema)
    updates = []
    for i, (schema, name, queued, started, ended) in enumerate(runs):
        q = NOW + timedelta(seconds=queued, microseconds=i)
        s = None if started is None else q + timedelta(seconds=started)
        e = None if ended is None or s is None else s + timedelta(seconds=ended)
        state = "RUNNING" if e is None else "OK"
        run_id = int(q.timestamp() * 1000) * 1000 + i
        updates.append(RunUpdate(schema, run_id, name, "default", state, q,
                                 started_at=s, ended_at=e))  # fmt: skip
    any_dic.record_runs(updates)
    want = _old_durations(any_dic, hours, per_job)
    assert charts.durations(any_dic, hours=hours, now=NOW, per_job=per_job) == want
    every = any_dic.ended_runs(NOW - timedelta(hours=hours), per_job)
    ranked = sorted(every, key=lambda name: (-every[name][0], name))
    top = any_dic.ended_runs(NOW - timedelta(hours=hours), per_job, top=3)
    assert top == {name: every[name] for name in ranked[:3]}


def test_load_jobs_are_named_by_the_dictionary(any_dic: Dictionary) -> None:
    """The rows chart asks for the LOAD jobs' names, not for every definition."""
    any_dic.apply_definitions(
        [JobDef("b_load", "DWH", "LOAD", "x"), JobDef("a", "DWH", "SQL", "SELECT 1"),
         JobDef("a_load", "DWH", "LOAD", "y")], [],
    )  # fmt: skip
    assert any_dic.job_names("LOAD") == ["a_load", "b_load"]
    assert any_dic.job_names() == ["a", "a_load", "b_load"]
    assert any_dic.job_names("SHELL") == []
    assert [j.name for j in any_dic.jobs(kind="LOAD")] == ["a_load", "b_load"]
    assert [j.name for j in any_dic.jobs()] == ["a", "a_load", "b_load"]


# -- the listing of 10 000 jobs: one query, a page at a time -----------------------------------


def _old_list_jobs(d: Dictionary) -> list[dict[str, Any]]:
    """The reference: what list_jobs computed before (every definition and every status read
    as records, joined in Python)."""
    status = {s.job: s for s in d.job_status()}
    rows = []
    for j in d.jobs():
        st = status.get(j.name)
        last = (st.last_started_at or st.last_queued_at) if st else None
        schedule = {"INTERVAL": f"every {j.interval_seconds}s", "CRON": f"cron {j.cron_expr}"}
        rows.append({
            "job": j.name, "schema": j.schema, "kind": j.kind, "pool": j.pool,
            "schedule": schedule.get(j.schedule_type, "-"), "active": j.active,
            "last_state": st.last_state if st else None,
            "last_run": last.isoformat(timespec="seconds") if last else None,
            "next_run": st.next_run_at.isoformat(timespec="seconds")
            if st and st.next_run_at else None,
            "alert": st.alert if st else 0,
            "reason": st.alert_reason if st else None,
        })  # fmt: skip
    return rows


_LISTED_JOB = st.tuples(
    st.sampled_from(["NONE", "INTERVAL", "CRON"]),
    st.booleans(),  # active
    st.sampled_from([None, "OK", "FAILED", "KILLED", "RUNNING"]),  # its last run
    st.booleans(),  # started (else only queued)
    st.none() | st.integers(-7200, 7200),  # next run: seconds from now
    st.booleans(),  # a refused definition
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    jobs=st.lists(_LISTED_JOB, max_size=12),
    limit=st.none() | st.integers(1, 5),
    offset=st.integers(0, 14),
)
def test_the_job_listing_answers_as_jobs_and_status_joined_in_python(
    any_dic: Dictionary, jobs: list[tuple[Any, ...]], limit: int | None, offset: int
) -> None:
    """list_jobs reads one query (job_lines); every page of it is the slice of what the old
    join of jobs() and job_status() in Python listed, on both backends."""
    from redpss.sched import control

    now = datetime.now(UTC).replace(microsecond=0)
    defs, updates, plan = [], [], {}
    for i, (kind, active, last, started, nxt, refused) in enumerate(jobs):
        name = f"job{i:02d}"
        defs.append(JobDef(
            name, "DWH", "SQL", "SELECT 1", schedule_type=kind, active=active,
            interval_seconds=60 if kind == "INTERVAL" else None,
            cron_expr="0 * * * *" if kind == "CRON" else None,
        ))  # fmt: skip
        if last is not None:
            q = now - timedelta(minutes=10 + i)
            updates.append(RunUpdate("DWH", 1000 + i, name, "default", last, q,
                                     started_at=q + timedelta(seconds=3) if started else None,
                                     message=f"m{i}"))  # fmt: skip
        if nxt is not None or refused:
            plan[name] = (None if nxt is None else now + timedelta(seconds=nxt),
                          "bad cron" if refused else None)  # fmt: skip
    any_dic.apply_definitions(defs, [])
    any_dic.record_job_status(updates)
    any_dic.record_job_plan(plan, now, complete=True)
    everything = _same_second(_old_list_jobs(any_dic))
    assert _same_second(control.list_jobs(any_dic)) == everything
    want = everything[offset:] if limit is None else everything[offset : offset + limit]
    assert _same_second(control.list_jobs(any_dic, limit=limit, offset=offset)) == want


def _same_second(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A late job's reason counts the seconds when it is read: two reads may differ by one."""
    return [{**r, "reason": re.sub(r"no run for \d+ s", "no run for N s", r["reason"] or "")}
            for r in rows]  # fmt: skip


def test_a_page_of_jobs_reads_its_jobs_not_every_status(dic: Dictionary) -> None:
    """The view is joined, not left-joined: a LEFT JOIN made SQLite materialize
    STA_JOB_STATUS for every job before the page's LIMIT (19 ms at 10 000 jobs; 0.4 ms now)."""
    from redpss.dictionary.sqlite.jobstatus import _JOB_LINES

    plan = _plan(dic.db_dir / "REDSYS.db", _JOB_LINES, (100, 0))  # type: ignore[attr-defined]
    assert "MATERIALIZE" not in plan and "AUTOMATIC" not in plan, plan
    assert "SCAN J USING INDEX" in plan, plan  # the page walks ADM_JOBS by name
