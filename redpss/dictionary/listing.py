"""Light rows of what the listings and the charts read: a job as ``list_db_jobs`` and
``/api/jobs`` show it, and the newest ended runs of a job (the duration chart).

Tuples rather than frozen records: 10 000 of them are built per listing, and a frozen
dataclass costs a ``setattr`` per field (bench/year.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

__all__ = ["EndedRun", "JobLine", "iso_seconds", "job_line", "merge_ended"]


class JobLine(NamedTuple):
    """One job as the listings show it (``list_db_jobs``, ``/api/jobs``): columns of its
    definition and of ``STA_JOB_STATUS``, one light row (a tuple, not two records).

    Its times are text, ISO 8601 in UTC to the second (``2026-11-30T11:18:53+00:00``), as the
    listings print them: parsing 20 000 stored times and formatting them again cost ~40 ms of
    a 10 000-job listing (SQLite cuts its stored text in the query).
    """

    job: str
    schema: str
    kind: str
    pool: str
    schedule_type: str | None
    interval_seconds: int | None
    cron_expr: str | None
    active: bool
    last_state: str | None
    last_run: str | None  # the last run's start, else the time it was queued
    next_run: str | None
    alert: int
    alert_reason: str | None


def job_line(r: Sequence[Any], ts: Callable[[Any], str | None]) -> JobLine:
    """A row of the listing's 13 columns, its times (10 and 11) made text by ``ts``."""
    return JobLine(
        r[0], r[1], r[2], r[3], r[4], None if r[5] is None else int(r[5]), r[6], bool(r[7]),
        r[8], ts(r[9]), ts(r[10]), 0 if r[11] is None else int(r[11]), r[12],
    )  # fmt: skip


def iso_seconds(value: datetime | None) -> str | None:
    """A time as :class:`JobLine` holds it."""
    return None if value is None else value.isoformat(timespec="seconds")


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
