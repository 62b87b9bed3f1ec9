"""Light rows of what the listings and the charts read: a job as ``list_db_jobs`` and
``/api/jobs`` show it, and the newest ended runs of a job (the duration chart).

Tuples rather than frozen records: 10 000 of them are built per listing, and a frozen
dataclass costs a ``setattr`` per field (bench/year.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

__all__ = ["EndedRun", "JobLine", "ended_by_job", "iso_seconds", "job_line"]


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


def ended_by_job(
    rows: Iterable[tuple[str, str, Any, Any, Any, Any]],
    per_job: int,
    top: int | None,
    ts: Callable[[Any], datetime | None],
) -> dict[str, tuple[int, list[EndedRun]]]:
    """Every schema's ``(schema, name, the job's count in that schema, RUN_ID, STARTED_AT,
    ENDED_AT)`` rows, by job: counts add up over the schemas (a job may have moved), a job's
    runs are its newest ``per_job``, and only the ``top`` jobs with the most (ties by name)
    have their times parsed and are answered (10 000 weekly jobs end ~1 400 runs a day)."""
    counts: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    runs: dict[str, list[tuple[int, Any, Any]]] = {}
    for schema, name, count, run_id, started, ended in rows:
        if (schema, name) not in seen:
            seen.add((schema, name))
            counts[name] = counts.get(name, 0) + int(count)
        runs.setdefault(name, []).append((int(run_id), started, ended))
    names = sorted(counts, key=lambda name: (-counts[name], name))[:top]
    return {
        name: (counts[name], [(r, _at(ts, b), _at(ts, e))
                              for r, b, e in sorted(runs[name], reverse=True)[:per_job]])
        for name in names
    }  # fmt: skip


def _at(ts: Callable[[Any], datetime | None], value: Any) -> datetime:
    found = ts(value)
    assert found is not None  # the queries ask for runs that started and ended
    return found
