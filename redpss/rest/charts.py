"""The data of the status page's charts, computed on the server from the run logs.

Three charts an operator would rather look at than read (``/api/charts/...``):

- runs per hour by state over the last ``hours`` (a stacked column per hour);
- rows loaded per hour (LOAD runs, their ``rows``);
- run duration per job over the last day (a line per job, one point per ended run).

Each answers columns ready for the chart library (uPlot: x as UNIX seconds, one list per series,
``None`` where a series has no point) and ``range``, the time span the chart covers. The two
per-hour charts ask the dictionary for counts and sums per hour (one query: a year-old
instance's day of runs, read here run by run, took 143-198 ms a chart); the duration chart
reads the newest :data:`SCAN` runs of its window.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from redpss.dictionary import Dictionary
from redpss.dictionary.jobs import RunRecord

__all__ = ["SCAN", "durations", "load_rows_per_hour", "runs_per_hour"]

SCAN = 20_000
STATES = ("OK", "FAILED", "TIMEOUT", "ABORTED", "KILLED", "SKIPPED", "RUNNING", "QUEUED")
MAX_JOBS = 12  # lines in the duration chart: the jobs with the most runs


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _hours(now: datetime, hours: int) -> list[datetime]:
    top = now.replace(minute=0, second=0, microsecond=0)
    return [top - timedelta(hours=h) for h in range(hours - 1, -1, -1)]


def _span(slots: list[datetime]) -> list[int]:
    return [int(slots[0].timestamp()), int(slots[-1].timestamp()) + 3600]


def _recent(d: Dictionary, since: datetime) -> list[RunRecord]:
    # the time range in the query (an index on SQLite): the newest SCAN runs of a year-old
    # instance, read and filtered here, took 0.9 s a chart (bench/year.py)
    return [r for r in d.runs(limit=SCAN, since=since) if _utc(r.queued_at) >= since]


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
    found = d.rows_by_hour(slots[0])
    # every definition is read only when some run has rows (10 000 jobs: ~130 ms)
    loads = {j.name for j in d.jobs() if j.kind == "LOAD"} if found else set()
    rows = [0] * len(slots)
    for (slot, name), n in found.items():
        if name in loads and slot in index:
            rows[index[slot]] += n
    return {"x": [int(s.timestamp()) for s in slots], "series": {"rows": rows},
            "range": _span(slots)}  # fmt: skip


def durations(d: Dictionary, *, hours: int = 24, now: datetime | None = None) -> dict[str, Any]:
    """Seconds each ended run of a job took over the last ``hours``: one series per job (the
    :data:`MAX_JOBS` with the most runs), on the common x of every run's end."""
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=hours)
    points: dict[str, dict[int, float]] = defaultdict(dict)
    for r in _recent(d, since):
        if r.started_at is None or r.ended_at is None:
            continue
        end = _utc(r.ended_at)
        seconds = (end - _utc(r.started_at)).total_seconds()
        points[r.name][int(end.timestamp())] = round(max(seconds, 0.0), 3)
    jobs = sorted(points, key=lambda name: (-len(points[name]), name))[:MAX_JOBS]
    xs = sorted({x for name in jobs for x in points[name]})
    return {
        "x": xs,
        "series": {name: [points[name].get(x) for x in xs] for name in sorted(jobs)},
        "range": [int(since.timestamp()), int(now.timestamp())],
    }
