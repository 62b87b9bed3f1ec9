"""Jobs and watchers in the dictionary: definitions, run logs, executor errors, JMON statistics.

The dataclasses here are what crosses the interface; :class:`JobStore` is the area of
:class:`~redpss.dictionary.base.Dictionary` that jmon, sched and redctl use.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from redpss.dictionary.listing import EndedRun, JobLine

__all__ = [
    "FINAL_STATES",
    "LATE_AFTER",
    "RUN_ID_SLACK",
    "DefinitionChanges",
    "ExecError",
    "JobDef",
    "JobStatus",
    "JobStore",
    "PoolSample",
    "RunRecord",
    "RunUpdate",
    "SqlResult",
    "WatcherDef",
    "job_alert",
    "run_id_floor",
]

QUEUED, RUNNING, OK, FAILED, TIMEOUT, ABORTED, SKIPPED, KILLED = (
    "QUEUED",
    "RUNNING",
    "OK",
    "FAILED",
    "TIMEOUT",
    "ABORTED",
    "SKIPPED",
    "KILLED",
)
FINAL_STATES = (OK, FAILED, TIMEOUT, ABORTED, SKIPPED, KILLED)

RUN_ID_SLACK = timedelta(days=1)
"""How far a run's QUEUED_AT may lie before the moment its RUN_ID encodes (a clock stepped
back while sched kept its ids growing): a lower bound of RUN_ID for a time keeps this much."""


def run_id_floor(moment: datetime) -> int:
    """The smallest RUN_ID sched gives at ``moment`` or later: run ids are the milliseconds
    since the epoch times 1000 plus a sequence (``redpss.sched.runlog.RunIds``), and only grow."""
    return int(moment.timestamp() * 1000) * 1000


@dataclass(frozen=True)
class JobDef:
    """One row of ``REDSYS.ADM_JOBS``."""

    name: str
    schema: str
    kind: str  # SQL, CMD, LOAD
    action: str
    pool: str = "default"
    schedule_type: str = "NONE"  # INTERVAL, CRON, NONE
    interval_seconds: int | None = None
    cron_expr: str | None = None
    active: bool = True
    timeout_seconds: int | None = None
    max_parallel: int = 1
    misfire_policy: str = "RUN_ONCE"  # RUN_ONCE, SKIP
    description: str | None = None
    changed_at: datetime | None = None


@dataclass(frozen=True)
class WatcherDef:
    """One row of ``REDSYS.ADM_WATCHER``."""

    name: str
    schema: str
    kind: str  # FILE, SQL
    watch_text: str
    executor_job: str
    check_interval: int = 60
    active: bool = True
    description: str | None = None
    changed_at: datetime | None = None


@dataclass(frozen=True)
class DefinitionChanges:
    """What changed in the definitions after a stamp (:meth:`JobStore.definition_changes`):
    every changed job and watcher by name, None for one that is gone."""

    stamp: str
    jobs: dict[str, JobDef | None]
    watchers: dict[str, WatcherDef | None]


@dataclass(frozen=True)
class RunUpdate:
    """A state change of one run, as sched's log writer records it.

    A job run goes to ``<schema>.ADM_JOB_LOG``; a watcher fire (``watcher`` set) to
    ``ADM_WATCHER_LOG``. Fields left None are not changed by an update of an existing row.
    """

    schema: str
    run_id: int
    name: str
    pool: str
    state: str
    queued_at: datetime
    watcher: bool = False
    started_at: datetime | None = None
    ended_at: datetime | None = None
    rows: int | None = None
    message: str | None = None
    host: str | None = None
    pid: int | None = None
    watch_key: str | None = None
    executor_run_id: int | None = None


@dataclass(frozen=True)
class RunRecord:
    """One row of a job or watcher log, as read back."""

    schema: str
    run_id: int
    name: str
    pool: str
    state: str
    queued_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    rows: int | None
    message: str | None
    host: str | None
    pid: int | None
    watch_key: str | None = None
    executor_run_id: int | None = None


@dataclass(frozen=True)
class ExecError:
    """One row of ``<schema>.ADM_WATCHER_EXEC_ERROR``."""

    schema: str
    watcher: str
    key: str
    count: int
    first_seen: datetime
    last_seen: datetime
    message: str | None


LATE_AFTER = 60.0
"""Seconds after its planned next run before a scheduled job without a run since is late."""
REASON_MESSAGE = 200
"""Characters of a run's message quoted in ALERT_REASON."""


@dataclass(frozen=True)
class JobStatus:
    """One row of ``STA_JOB_STATUS``: a job definition, its newest run, its next run, ALERT."""

    job: str
    schema: str
    active: bool
    last_run_id: int | None
    last_state: str | None
    last_queued_at: datetime | None
    last_started_at: datetime | None
    last_ended_at: datetime | None
    last_message: str | None
    last_seen_at: datetime | None
    next_run_at: datetime | None
    definition_error: str | None
    planned_at: datetime | None
    overdue_seconds: float | None
    alert: int
    alert_reason: str | None


def job_alert(
    *,
    active: bool,
    last_state: str | None,
    last_message: str | None,
    last_seen_at: datetime | None,
    next_run_at: datetime | None,
    definition_error: str | None,
    overdue_seconds: float | None,
) -> tuple[int, str | None]:
    """ALERT and ALERT_REASON of a job: the rule ``STA_JOB_STATUS`` computes in SQL.

    The first that holds: an inactive job is 0; a definition jmon refuses is 2; a last run
    FAILED or TIMEOUT is 2; a scheduled job with no run queued since its planned next run,
    more than :data:`LATE_AFTER` seconds after it, is 1 (late); a last run ABORTED or KILLED
    is 1; else 0. An empty text counts as none (Exasol stores '' as NULL).
    """
    if not active:
        return 0, None
    if definition_error:
        return 2, f"invalid definition: {definition_error}"
    quoted = f": {last_message[:REASON_MESSAGE]}" if last_message else ""
    if last_state in ("FAILED", "TIMEOUT"):
        return 2, f"last run {last_state}{quoted}"
    if (
        next_run_at is not None
        and overdue_seconds is not None
        and overdue_seconds > LATE_AFTER
        and (last_seen_at is None or last_seen_at < next_run_at)
    ):
        return 1, f"late: no run for {int(overdue_seconds)} s after it was due"
    if last_state in ("ABORTED", "KILLED"):
        return 1, f"last run {last_state}{quoted}"
    return 0, None


STATUS_RUN_COLUMNS = (
    "LAST_RUN_ID",
    "LAST_STATE",
    "LAST_QUEUED_AT",
    "LAST_STARTED_AT",
    "LAST_ENDED_AT",
    "LAST_MESSAGE",
    "LAST_SEEN_AT",
)
"""The columns of ``ADM_JOB_STATUS`` that sched keeps (jmon keeps the others)."""
StatusRun = tuple[
    int | None, str | None, datetime | None, datetime | None, datetime | None, str | None,
    datetime | None,
]  # fmt: skip


def next_status(old: StatusRun | None, updates: list[RunUpdate]) -> StatusRun:
    """A job's :data:`STATUS_RUN_COLUMNS` after ``updates`` (its job runs, in order).

    The newest run that is not SKIPPED is the last run (a newer run id replaces it; a change
    of the same run updates it, a field left None keeps its value); every run, SKIPPED ones
    too, moves LAST_SEEN_AT. Both backends use this, so they cannot disagree.
    """
    run_id, state, queued, started, ended, message, seen = old or (None,) * 7
    for u in updates:
        seen = u.queued_at if seen is None else max(seen, u.queued_at)
        if u.state == "SKIPPED":
            continue
        if run_id is None or u.run_id > run_id:
            run_id, state, queued, started, ended = (
                u.run_id, u.state, u.queued_at, u.started_at, u.ended_at,
            )  # fmt: skip
            message = u.message
        elif u.run_id == run_id:
            state, queued = u.state, u.queued_at
            started, ended = u.started_at or started, u.ended_at or ended
            message = u.message if u.message is not None else message
    return (run_id, state, queued, started, ended, message[:2000] if message else None, seen)


@dataclass(frozen=True)
class PoolSample:
    """One pool in ``ADM_JMON_LOAD``."""

    pool: str
    size: int
    busy: int
    queued: int
    runs: int


@dataclass(frozen=True)
class SqlResult:
    """What a SQL job's statement did: rows affected, and what it returned, for the job log."""

    rows: int
    message: str | None = None


class JobStore(abc.ABC):
    """Definitions and logs of jobs and watchers."""

    # -- definitions -----------------------------------------------------------------------

    @abc.abstractmethod
    def jobs(self, kind: str | None = None) -> list[JobDef]:
        """Every job definition (``ALL_ADM_JOBS``; of the kind ``kind`` only, e.g. ``LOAD``),
        sorted by name."""

    @abc.abstractmethod
    def watchers(self) -> list[WatcherDef]:
        """Every watcher definition (``ALL_ADM_WATCHER``), sorted by name."""

    @abc.abstractmethod
    def definitions_stamp(self) -> str:
        """A cheap value that changes whenever a job or watcher definition changes."""

    def definition_changes(self, since: str) -> DefinitionChanges | None:
        """The definitions changed after stamp ``since`` (O(changes)), with the stamp they
        bring; None when the backend cannot say, and the caller reads everything again."""
        return None

    @abc.abstractmethod
    def apply_definitions(self, jobs: list[JobDef], watchers: list[WatcherDef]) -> None:
        """Insert or update the given definitions in one transaction (others stay)."""

    @abc.abstractmethod
    def set_active(self, kind: str, name: str, active: bool) -> bool:
        """Set ACTIVE of job or watcher (``kind`` "job"/"watcher"); False if it does not exist."""

    @abc.abstractmethod
    def delete_definition(self, kind: str, name: str) -> bool:
        """Delete a job or watcher definition; False if it did not exist."""

    # -- run logs --------------------------------------------------------------------------

    @abc.abstractmethod
    def record_runs(self, updates: list[RunUpdate]) -> None:
        """Write state changes of runs (insert or update by RUN_ID), grouped per schema."""

    @abc.abstractmethod
    def runs(
        self,
        *,
        schema: str | None = None,
        name: str | None = None,
        states: tuple[str, ...] | None = None,
        watcher: bool = False,
        limit: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[RunRecord]:
        """Newest runs first, over one or all target schemas, filtered by name, states and
        the time they were queued (``since`` <= QUEUED_AT < ``until``)."""

    @abc.abstractmethod
    def last_runs(self) -> dict[str, RunRecord]:
        """The newest run of every job, by job name (over all schemas)."""

    @abc.abstractmethod
    def runs_by_hour(self, since: datetime) -> dict[tuple[datetime, str], int]:
        """How many job runs queued at or after ``since`` each (hour of QUEUED_AT, STATE) has,
        over all schemas: counted by the database, so that a chart costs one query and not a
        read of every run of its day (bench/year.py)."""

    @abc.abstractmethod
    def rows_by_hour(self, since: datetime) -> dict[tuple[datetime, str], int]:
        """Sum of the rows of job runs queued at or after ``since`` (those with rows), per
        (hour of their end — ENDED_AT, else STARTED_AT, else QUEUED_AT —, job name)."""

    @abc.abstractmethod
    def ended_runs(
        self, since: datetime, per_job: int, top: int | None = None
    ) -> dict[str, tuple[int, list[EndedRun]]]:
        """Job runs queued at or after ``since`` that started and ended, by job name over all
        schemas: how many there are, and the newest ``per_job`` of them (by RUN_ID, newest
        first); only the ``top`` jobs with the most (ties: by name), or all. The database
        cuts each job's list, so that the duration chart of a day does not read every run of
        it (the heartbeat's 8 640; bench/year.py)."""

    @abc.abstractmethod
    def job_names(self, kind: str | None = None) -> list[str]:
        """The names of the jobs (of the kind ``kind``, e.g. ``LOAD``), sorted."""

    @abc.abstractmethod
    def abort_unfinished(self, message: str) -> int:
        """Mark every QUEUED or RUNNING run ABORTED with ``message``; return how many."""

    @abc.abstractmethod
    def clear_logs(self) -> int:
        """Delete every run log, executor error, log message and JMON sample (after a clone
        from another instance); return how many rows went."""

    # -- watcher executor errors ----------------------------------------------------------

    @abc.abstractmethod
    def record_exec_error(self, schema: str, watcher: str, key: str, message: str) -> int:
        """Count a failed executor run of ``watcher`` for ``key``; return the new count."""

    @abc.abstractmethod
    def exec_errors(self, watcher: str | None = None) -> list[ExecError]:
        """Executor errors (``we_list_error``), over all schemas."""

    @abc.abstractmethod
    def reset_exec_errors(self, watcher: str | None = None, key: str | None = None) -> int:
        """Clear executor errors (``we_reset_error``); return how many rows were cleared."""

    # -- SQL jobs and SQL watchers ---------------------------------------------------------

    @abc.abstractmethod
    def run_sql(
        self,
        schema: str,
        statement: str,
        *,
        timeout: float | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> int:
        """Run a job's statement in ``schema``; return the rows affected (or -1).

        ``cancel``: polled while the statement runs; when it answers True the statement is
        interrupted (``redctl kill``) and a DictionaryError raised.
        """

    def run_sql_job(
        self,
        schema: str,
        statement: str,
        *,
        timeout: float | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> SqlResult:
        """Like :meth:`run_sql`, plus what the statement returned (the result of an Exasol
        ``EXECUTE SCRIPT``) as the message of the job log; this default knows the rows only."""
        return SqlResult(self.run_sql(schema, statement, timeout=timeout, cancel=cancel))

    @abc.abstractmethod
    def query_value(self, schema: str, query: str, *, timeout: float | None = None) -> str:
        """Run a watcher's query in ``schema``; return its result as one comparable text."""

    # -- job status (STA_JOB_STATUS) ---------------------------------------------------------

    @abc.abstractmethod
    def record_job_status(self, updates: list[RunUpdate]) -> None:
        """Keep ``ADM_JOB_STATUS`` up with these job run changes (watcher rows are ignored):
        the newest run that is not SKIPPED is a job's last run; every run is a sign of life."""

    @abc.abstractmethod
    def record_job_plan(
        self,
        plan: dict[str, tuple[datetime | None, str | None]],
        at: datetime,
        *,
        complete: bool = False,
    ) -> None:
        """jmon's view of jobs: per job its next run (None: not scheduled) and why its
        definition is refused (None: it is not). ``complete``: ``plan`` names every job jmon
        knows; the others get NULL for both (jmon writes everything at its start, then only
        what changed)."""

    @abc.abstractmethod
    def job_status(self, now: datetime | None = None) -> list[JobStatus]:
        """``STA_JOB_STATUS`` sorted by job; with ``now``, overdue times are measured then."""

    @abc.abstractmethod
    def job_lines(self, limit: int | None = None, offset: int = 0) -> list[JobLine]:
        """The jobs sorted by name with their status, ``limit`` of them (None: all) from
        ``offset``: one query and one tuple per job (10 000 definitions listed through
        :meth:`jobs` and :meth:`job_status` took 0.3-0.4 s; bench/year.py)."""

    # -- JMON statistics -------------------------------------------------------------------

    @abc.abstractmethod
    def write_jmon_sample(
        self,
        at: datetime,
        pools: list[PoolSample],
        jobs: list[tuple[str, datetime | None, datetime | None, str | None]],
    ) -> None:
        """Write one ``ADM_JMON_LOAD`` row per pool and one ``ADM_JMON_JOBLOG`` row per job
        (job name, next run, last run, last state)."""
