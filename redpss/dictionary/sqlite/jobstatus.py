"""The status of every job in SQLite: ``ADM_JOB_STATUS`` and the view ``STA_JOB_STATUS``."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from redpss.dictionary.jobs import (
    STATUS_RUN_COLUMNS,
    JobStatus,
    RunUpdate,
    StatusRun,
    next_status,
)
from redpss.dictionary.listing import JobLine, job_line
from redpss.dictionary.sqlite.core import SqliteCore, from_db, to_db
from redpss.dictionary.sqlite.ddl import job_status_select

# a stored time is ISO text in UTC ("2026-11-30 11:18:53.123456+00:00"): cut, not parsed
_ISO = "substr({t}, 1, 10) || 'T' || substr({t}, 12, 8) || '+00:00'"
_JOB_LINES = (
    "SELECT J.JOB_NAME, J.SCHEMA_NAME, J.JOB_KIND, J.POOL_NAME, J.SCHEDULE_TYPE, "
    "J.INTERVAL_SECONDS, J.CRON_EXPR, J.ACTIVE, S.LAST_STATE, "
    f"{_ISO.format(t='COALESCE(S.LAST_STARTED_AT, S.LAST_QUEUED_AT)')}, "
    f"{_ISO.format(t='S.NEXT_RUN_AT')}, S.ALERT, S.ALERT_REASON FROM ADM_JOBS J "
    "JOIN STA_JOB_STATUS S ON S.JOB_NAME = J.JOB_NAME ORDER BY J.JOB_NAME LIMIT ? OFFSET ?"
)
_UPSERT_RUN = (
    f"INSERT INTO ADM_JOB_STATUS (JOB_NAME, {', '.join(STATUS_RUN_COLUMNS)}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (JOB_NAME) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in STATUS_RUN_COLUMNS)
)
_UPSERT_PLAN = (
    "INSERT INTO ADM_JOB_STATUS (JOB_NAME, NEXT_RUN_AT, DEFINITION_ERROR, PLANNED_AT) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (JOB_NAME) DO UPDATE SET NEXT_RUN_AT = "
    "excluded.NEXT_RUN_AT, DEFINITION_ERROR = excluded.DEFINITION_ERROR, "
    "PLANNED_AT = excluded.PLANNED_AT"
)


def _opt(value: datetime | None) -> str | None:
    return None if value is None else to_db(value)


class SqliteJobStatus(SqliteCore):
    """What sched and jmon write about each job, and the status an operator reads."""

    def record_job_status(self, updates: list[RunUpdate]) -> None:
        """Keep ``ADM_JOB_STATUS`` up with these job run changes (see the interface)."""
        by_job: dict[str, list[RunUpdate]] = defaultdict(list)
        for u in updates:
            if not u.watcher:
                by_job[u.name].append(u)
        if not by_job:
            return
        with self._write(self._redsys) as conn:
            for job, changes in by_job.items():
                row = conn.execute(
                    f"SELECT {', '.join(STATUS_RUN_COLUMNS)} FROM ADM_JOB_STATUS "
                    "WHERE JOB_NAME = ?",
                    (job,),
                ).fetchone()
                old: StatusRun | None = None
                if row is not None:
                    old = (row[0], row[1], from_db(row[2]), from_db(row[3]), from_db(row[4]),
                           row[5], from_db(row[6]))  # fmt: skip
                run_id, state, queued, started, ended, message, seen = next_status(old, changes)
                conn.execute(
                    _UPSERT_RUN,
                    (job, run_id, state, _opt(queued), _opt(started), _opt(ended), message,
                     _opt(seen)),
                )  # fmt: skip

    def record_job_plan(
        self,
        plan: dict[str, tuple[datetime | None, str | None]],
        at: datetime,
        *,
        complete: bool = False,
    ) -> None:
        """jmon's next run and definition error of jobs (see the interface)."""
        stamp = to_db(at)
        with self._write(self._redsys) as conn:
            if complete:
                conn.execute(
                    "UPDATE ADM_JOB_STATUS SET NEXT_RUN_AT = NULL, DEFINITION_ERROR = NULL, "
                    "PLANNED_AT = ?",
                    (stamp,),
                )
            for job in sorted(plan):
                nxt, error = plan[job]
                conn.execute(_UPSERT_PLAN, (job, _opt(nxt), error[:2000] if error else None, stamp))

    def job_status(self, now: datetime | None = None) -> list[JobStatus]:
        """``STA_JOB_STATUS`` sorted by job; with ``now``, overdue times are measured then."""
        with self._connect(self._redsys) as conn:
            if now is None:
                cur = conn.execute("SELECT * FROM STA_JOB_STATUS ORDER BY JOB_NAME")
            else:
                sql = f"{job_status_select('?')} ORDER BY JOB_NAME"
                cur = conn.execute(sql, (to_db(now),))
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return [_job_status(dict(zip(names, row, strict=True))) for row in rows]

    def job_lines(self, limit: int | None = None, offset: int = 0) -> list[JobLine]:
        """ADM_JOBS joined to STA_JOB_STATUS in one query (see the interface)."""
        with self._connect(self._redsys) as conn:
            rows = conn.execute(_JOB_LINES, (-1 if limit is None else limit, offset)).fetchall()
        return [job_line(r, _text) for r in rows]


def _text(value: str | None) -> str | None:
    return value


def _job_status(row: dict[str, Any]) -> JobStatus:
    return JobStatus(
        job=row["JOB_NAME"],
        schema=row["SCHEMA_NAME"],
        active=bool(row["ACTIVE"]),
        last_run_id=row["LAST_RUN_ID"],
        last_state=row["LAST_STATE"],
        last_queued_at=from_db(row["LAST_QUEUED_AT"]),
        last_started_at=from_db(row["LAST_STARTED_AT"]),
        last_ended_at=from_db(row["LAST_ENDED_AT"]),
        last_message=row["LAST_MESSAGE"],
        last_seen_at=from_db(row["LAST_SEEN_AT"]),
        next_run_at=from_db(row["NEXT_RUN_AT"]),
        definition_error=row["DEFINITION_ERROR"],
        planned_at=from_db(row["PLANNED_AT"]),
        overdue_seconds=row["OVERDUE_SECONDS"],
        alert=int(row["ALERT"]),
        alert_reason=row["ALERT_REASON"],
    )
