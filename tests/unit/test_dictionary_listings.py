"""The dictionary answers the /ui charts and the job listings as the old Python aggregation
did (hypothesis, both backends): what the year bench (issue 20) moved into SQL."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from redpss.dictionary import Dictionary
from redpss.dictionary.jobs import JobDef, RunUpdate
from redpss.rest import charts
from tests.unit.test_dictionary_year import _plan

pytestmark = pytest.mark.unit

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
@example(  # one job's newest run of three, in one schema: the cut is by the newest RUN_ID
    runs=[("DWH", "j1", -30, 1, 1), ("DWH", "j1", -20, 1, 2), ("DWH", "j1", -10, 1, 3)],
    hours=1, per_job=1,
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
