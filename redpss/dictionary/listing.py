"""Light rows of what the listings and the charts read: a job as ``list_db_jobs`` and
``/api/jobs`` show it, and the newest ended runs of a job (the duration chart).

Tuples rather than frozen records: 10 000 of them are built per listing, and a frozen
dataclass costs a ``setattr`` per field (bench/year.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

__all__ = ["JOB_LINE_COLUMNS", "EndedRun", "JobLine", "job_line", "merge_ended"]


class JobLine(NamedTuple):
    """One job as the listings show it (``list_db_jobs``, ``/api/jobs``): columns of its
    definition and of ``STA_JOB_STATUS``, one light row (a tuple, not two records)."""

    job: str
    schema: str
    kind: str
    pool: str
    schedule_type: str | None
    interval_seconds: int | None
    cron_expr: str | None
    active: bool
    last_state: str | None
    last_run: datetime | None  # the last run's start, else the time it was queued
    next_run: datetime | None
    alert: int
    alert_reason: str | None


JOB_LINE_COLUMNS = (
    ("J", "JOB_NAME"), ("J", "SCHEMA_NAME"), ("J", "JOB_KIND"), ("J", "POOL_NAME"),
    ("J", "SCHEDULE_TYPE"), ("J", "INTERVAL_SECONDS"), ("J", "CRON_EXPR"), ("J", "ACTIVE"),
    ("S", "LAST_STATE"), ("S", "LAST_STARTED_AT"), ("S", "LAST_QUEUED_AT"), ("S", "NEXT_RUN_AT"),
    ("S", "ALERT"), ("S", "ALERT_REASON"),
)  # fmt: skip
"""What a backend selects for :class:`JobLine` (J: ADM_JOBS, S: STA_JOB_STATUS), in order."""


def job_line(r: Sequence[Any], ts: Callable[[Any], datetime | None]) -> JobLine:
    """A row of :data:`JOB_LINE_COLUMNS`."""
    return JobLine(
        r[0], r[1], r[2], r[3], r[4], None if r[5] is None else int(r[5]), r[6], bool(r[7]),
        r[8], ts(r[9] if r[9] is not None else r[10]), ts(r[11]),
        0 if r[12] is None else int(r[12]), r[13],
    )  # fmt: skip


EndedRun = tuple[int, datetime, datetime]
"""RUN_ID, STARTED_AT and ENDED_AT of a run that ended (:meth:`JobStore.ended_runs`)."""


def merge_ended(
    found: dict[str, tuple[int, list[EndedRun]]],
    rows: Iterable[tuple[str, int, EndedRun]],
    per_job: int,
) -> None:
    """Add one schema's ``(name, its count there, run)`` rows to ``found``: counts add up and
    a job's runs stay the newest ``per_job`` over every schema (a job may have moved)."""
    counts: dict[str, int] = {}
    here: dict[str, list[EndedRun]] = {}
    for name, count, run in rows:
        counts[name] = int(count)
        here.setdefault(name, []).append(run)
    for name, runs in here.items():
        before, old = found.get(name, (0, []))
        found[name] = (before + counts[name], sorted([*old, *runs], reverse=True)[:per_job])
