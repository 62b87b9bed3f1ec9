"""The status of every job on Exasol: ``ADM_JOB_STATUS`` and the view ``STA_JOB_STATUS``.

The same model and rules as the embedded dictionary (:mod:`redpss.dictionary.jobs`:
``next_status`` for what sched writes, ``job_alert`` for the view, which ``ddl`` renders).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from redpss.dictionary.exasol.core import ExasolCore
from redpss.dictionary.exasol.ddl import JOB_STATUS_COLUMNS, epoch_seconds, job_status_select
from redpss.dictionary.exasol.session import Tx
from redpss.dictionary.exasol.sqltext import from_db, ident
from redpss.dictionary.jobs import (
    STATUS_RUN_COLUMNS,
    JobStatus,
    RunUpdate,
    StatusRun,
    next_status,
)
from redpss.dictionary.listing import JobLine, iso_seconds, job_line
from redpss.dictionary.rows import opt_int

_SELECT_RUN_SQL = (
    "SELECT JOB_NAME, {columns!r} FROM REDSYS.ADM_JOB_STATUS WHERE JOB_NAME IN ({names!r})"
)
_MERGE_RUN_SQL = (
    "MERGE INTO REDSYS.ADM_JOB_STATUS T USING (SELECT {name} AS JOB_NAME FROM DUAL) S "
    "ON T.JOB_NAME = S.JOB_NAME WHEN MATCHED THEN UPDATE SET LAST_RUN_ID = {run_id}, "
    "LAST_STATE = {state}, LAST_QUEUED_AT = {queued}, LAST_STARTED_AT = {started}, "
    "LAST_ENDED_AT = {ended}, LAST_MESSAGE = {message}, LAST_SEEN_AT = {seen} "
    "WHEN NOT MATCHED THEN INSERT (JOB_NAME, LAST_RUN_ID, LAST_STATE, LAST_QUEUED_AT, "
    "LAST_STARTED_AT, LAST_ENDED_AT, LAST_MESSAGE, LAST_SEEN_AT) VALUES ({name}, {run_id}, "
    "{state}, {queued}, {started}, {ended}, {message}, {seen})"
)
_CLEAR_PLAN_SQL = (
    "UPDATE REDSYS.ADM_JOB_STATUS SET NEXT_RUN_AT = NULL, DEFINITION_ERROR = NULL, "
    "PLANNED_AT = {at}"
)
_MERGE_PLAN_SQL = (
    "MERGE INTO REDSYS.ADM_JOB_STATUS T USING (SELECT {name} AS JOB_NAME FROM DUAL) S "
    "ON T.JOB_NAME = S.JOB_NAME WHEN MATCHED THEN UPDATE SET NEXT_RUN_AT = {next_run}, "
    "DEFINITION_ERROR = {error}, PLANNED_AT = {at} WHEN NOT MATCHED THEN INSERT "
    "(JOB_NAME, NEXT_RUN_AT, DEFINITION_ERROR, PLANNED_AT) "
    "VALUES ({name}, {next_run}, {error}, {at})"
)
_STATUS_SQL = "SELECT {columns!r} FROM REDSYS.STA_JOB_STATUS ORDER BY JOB_NAME"
_STATUS_AT_SQL = "SELECT {columns!r} FROM ({select!r}) ORDER BY JOB_NAME"
_JOB_LINES_SQL = (
    "SELECT J.JOB_NAME, J.SCHEMA_NAME, J.JOB_KIND, J.POOL_NAME, J.SCHEDULE_TYPE, "
    "J.INTERVAL_SECONDS, J.CRON_EXPR, J.ACTIVE, S.LAST_STATE, "
    "COALESCE(S.LAST_STARTED_AT, S.LAST_QUEUED_AT), S.NEXT_RUN_AT, S.ALERT, S.ALERT_REASON "
    "FROM REDSYS.ADM_JOBS J JOIN REDSYS.STA_JOB_STATUS S "
    "ON S.JOB_NAME = J.JOB_NAME ORDER BY J.JOB_NAME{limit_clause!r}"
)
_ALL_COLUMNS = (*JOB_STATUS_COLUMNS, "ALERT", "ALERT_REASON")


class ExasolJobStatus(ExasolCore):
    """What sched and jmon write about each job, and the status an operator reads."""

    def record_job_status(self, updates: list[RunUpdate]) -> None:
        """Keep ``ADM_JOB_STATUS`` up with these job run changes (see the interface)."""
        by_job: dict[str, list[RunUpdate]] = defaultdict(list)
        for u in updates:
            if not u.watcher:
                by_job[u.name].append(u)
        if not by_job:
            return
        columns = ", ".join(ident(c) for c in STATUS_RUN_COLUMNS)

        def unit(tx: Tx) -> None:
            found = tx.rows(_SELECT_RUN_SQL, columns=columns, names=tx.literals(list(by_job)))
            old: dict[str, StatusRun] = {
                r[0]: (opt_int(r[1]), r[2], from_db(r[3]), from_db(r[4]), from_db(r[5]), r[6],
                       from_db(r[7]))
                for r in found
            }  # fmt: skip
            for job, changes in by_job.items():
                run_id, state, queued, started, ended, message, seen = next_status(
                    old.get(job), changes
                )
                tx.execute(
                    _MERGE_RUN_SQL, name=job, run_id=run_id, state=state, queued=queued,
                    started=started, ended=ended, message=message, seen=seen,
                )  # fmt: skip

        self.tx(unit, what="recording the job status")

    def record_job_plan(
        self,
        plan: dict[str, tuple[datetime | None, str | None]],
        at: datetime,
        *,
        complete: bool = False,
    ) -> None:
        """jmon's next run and definition error of jobs (see the interface)."""

        def unit(tx: Tx) -> None:
            if complete:
                tx.execute(_CLEAR_PLAN_SQL, at=at)
            for job in sorted(plan):
                nxt, error = plan[job]
                tx.execute(
                    _MERGE_PLAN_SQL, name=job, next_run=nxt,
                    error=error[:2000] if error else None, at=at,
                )  # fmt: skip

        self.tx(unit, what="recording jmon's plan of the jobs")

    def job_status(self, now: datetime | None = None) -> list[JobStatus]:
        """``STA_JOB_STATUS`` sorted by job; with ``now``, overdue times are measured then."""
        columns = ", ".join(ident(c) for c in _ALL_COLUMNS)

        def unit(tx: Tx) -> list[tuple[Any, ...]]:
            if now is None:
                return tx.rows(_STATUS_SQL, columns=columns)
            select = job_status_select(epoch_seconds(tx.literal(now)))
            return tx.rows(_STATUS_AT_SQL, columns=columns, select=select)

        rows = self.tx(unit, what="reading STA_JOB_STATUS")
        return [_job_status(dict(zip(_ALL_COLUMNS, r, strict=True))) for r in rows]

    def job_lines(self, limit: int | None = None, offset: int = 0) -> list[JobLine]:
        """ADM_JOBS joined to STA_JOB_STATUS in one query (see the interface)."""
        clause = "" if limit is None else f" LIMIT {int(limit)}"
        clause += f" OFFSET {int(offset)}" if offset else ""
        if offset and limit is None:  # Exasol has no OFFSET without LIMIT
            clause = f" LIMIT {2**62} OFFSET {int(offset)}"

        def unit(tx: Tx) -> list[tuple[Any, ...]]:
            return tx.rows(_JOB_LINES_SQL, limit_clause=clause)

        rows = self.tx(unit, what="listing the jobs")
        return [job_line(r, lambda v: iso_seconds(from_db(v))) for r in rows]


def _job_status(row: dict[str, Any]) -> JobStatus:
    overdue = row["OVERDUE_SECONDS"]
    return JobStatus(
        job=row["JOB_NAME"],
        schema=row["SCHEMA_NAME"],
        active=bool(row["ACTIVE"]),
        last_run_id=opt_int(row["LAST_RUN_ID"]),
        last_state=row["LAST_STATE"],
        last_queued_at=from_db(row["LAST_QUEUED_AT"]),
        last_started_at=from_db(row["LAST_STARTED_AT"]),
        last_ended_at=from_db(row["LAST_ENDED_AT"]),
        last_message=row["LAST_MESSAGE"],
        last_seen_at=from_db(row["LAST_SEEN_AT"]),
        next_run_at=from_db(row["NEXT_RUN_AT"]),
        definition_error=row["DEFINITION_ERROR"],
        planned_at=from_db(row["PLANNED_AT"]),
        overdue_seconds=None if overdue is None else float(overdue),
        alert=int(row["ALERT"]),
        alert_reason=row["ALERT_REASON"],
    )
