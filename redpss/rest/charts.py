"""The data of the status page's charts, computed on the server from the run logs.

Three charts an operator would rather look at than read (``/api/charts/...``):

- runs per hour by state over the last ``hours`` (a stacked column per hour);
- rows loaded per hour (LOAD runs, their ``rows``);
- run duration per job over the last day (a line per job, one point per ended run).

Each answers columns ready for the chart library (uPlot: x as UNIX seconds, one list per series,
``None`` where a series has no point) and ``range``, the time span the chart covers. The two
per-hour charts ask the dictionary for counts and sums per hour (one query: a year-old
instance's day of runs, read here run by run, took 143-198 ms a chart); the duration chart
asks for each job's count of ended runs and its newest :data:`PER_JOB` of them (reading every
run of the day took 160-270 ms: the heartbeat alone ends 8 640 runs a day).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from redpss.dictionary import Dictionary

__all__ = ["PER_JOB", "durations", "load_rows_per_hour", "runs_per_hour"]

PER_JOB = 500  # points of a job in the duration chart: its newest ended runs (420 px wide)
STATES = ("OK", "FAILED", "TIMEOUT", "ABORTED", "KILLED", "SKIPPED", "RUNNING", "QUEUED")
MAX_JOBS = 12  # lines in the duration chart: the jobs with the most runs


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _hours(now: datetime, hours: int) -> list[datetime]:
    top = now.replace(minute=0, second=0, microsecond=0)
    return [top - timedelta(hours=h) for h in range(hours - 1, -1, -1)]


def _span(slots: list[datetime]) -> list[int]:
    return [int(slots[0].timestamp()), int(slots[-1].timestamp()) + 3600]


def runs_per_hour(d: Dictionary, *, hours: int = 24, now: datetime | None = None) -> dict[str, Any]:
    """Job runs per hour by state: ``{"x": [...], "series": {state: [count, ...]}}``."""
    now = now or datetime.now(UTC)
    slots = _hours(now, hours)
    index = {slot: i for i, slot in enumerate(slots)}
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * len(slots))
    for (slot, state), n in d.runs_by_hour(slots[0]).items():
        if slot in index:
            counts[state][index[slot]] += n
    ordered = [s for s in STATES if s in counts] + sorted(set(counts) - set(STATES))
    return {
        "x": [int(s.timestamp()) for s in slots],
        "series": {state: counts[state] for state in ordered},
        "range": _span(slots),
    }


def load_rows_per_hour(
    d: Dictionary, *, hours: int = 24, now: datetime | None = None
) -> dict[str, Any]:
    """Rows loaded per hour by LOAD runs: ``{"x": [...], "series": {"rows": [...]}}``."""
    now = now or datetime.now(UTC)
    slots = _hours(now, hours)
    index = {slot: i for i, slot in enumerate(slots)}
    # the names of the LOAD jobs first (every definition of 10 000 read here: ~70 ms); no LOAD
    # job, no sum over the runs of the window (16 ms a year-old day of 10 000 weekly jobs)
    loads = set(d.job_names("LOAD"))
    found = d.rows_by_hour(slots[0]) if loads else {}
    rows = [0] * len(slots)
    for (slot, name), n in found.items():
        if name in loads and slot in index:
            rows[index[slot]] += n
    return {"x": [int(s.timestamp()) for s in slots], "series": {"rows": rows},
            "range": _span(slots)}  # fmt: skip


def durations(
    d: Dictionary, *, hours: int = 24, now: datetime | None = None, per_job: int = PER_JOB
) -> dict[str, Any]:
    """Seconds each ended run of a job took over the last ``hours``: one series per job (the
    :data:`MAX_JOBS` with the most ended runs), each of its newest ``per_job`` runs a point,
    on the common x of every run's end (at the same second, the older run's point)."""
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=hours)
    found = d.ended_runs(since, per_job, top=MAX_JOBS)
    jobs = sorted(found, key=lambda name: (-found[name][0], name))[:MAX_JOBS]
    points: dict[str, dict[int, float]] = {}
    for name in jobs:
        mine = points[name] = {}
        for _, started, ended in found[name][1]:  # newest first: an older run overwrites
            end = _utc(ended)
            seconds = (end - _utc(started)).total_seconds()
            mine[int(end.timestamp())] = round(max(seconds, 0.0), 3)
    xs = sorted({x for name in jobs for x in points[name]})
    return {
        "x": xs,
        "series": {name: [points[name].get(x) for x in xs] for name in sorted(jobs)},
        "range": [int(since.timestamp()), int(now.timestamp())],
    }
