"""Jobs and watchers in SQLite: definitions (REDSYS), run logs and executor errors (per schema)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from redpss.dictionary.columns import YEAR_SINCE
from redpss.dictionary.jobs import (
    DefinitionChanges,
    JobDef,
    JobStore,
    PoolSample,
    RunRecord,
    RunUpdate,
    WatcherDef,
)
from redpss.dictionary.rows import (
    JOB_COLUMNS,
    LOG_COLUMNS,
    WATCHER_COLUMNS,
    check_definitions,
    job_from,
    run_from,
    watcher_from,
)
from redpss.dictionary.sqlite.changes import read_changes, read_stamp
from redpss.dictionary.sqlite.charts import SqliteCharts
from redpss.dictionary.sqlite.core import _utcnow, from_db, to_db
from redpss.dictionary.sqlite.execerrors import SqliteExecErrors
from redpss.errors import DictionaryError

_REGISTRY_LOCK = threading.Lock()
_CLONED_LOGS = ("ADM_JOB_LOG", "ADM_WATCHER_LOG", "ADM_WATCHER_EXEC_ERROR", "LOG_MESSAGES")


_LAST_RUNS_SQL = """WITH RECURSIVE NAMES(N) AS (
    SELECT MIN(JOB_NAME) FROM ADM_JOB_LOG
    UNION ALL
    SELECT (SELECT MIN(JOB_NAME) FROM ADM_JOB_LOG WHERE JOB_NAME > N) FROM NAMES
    WHERE N IS NOT NULL
)
SELECT {cols} FROM ADM_JOB_LOG WHERE RUN_ID IN (
    SELECT (SELECT MAX(RUN_ID) FROM ADM_JOB_LOG WHERE JOB_NAME = N) FROM NAMES
    WHERE N IS NOT NULL
)"""


def _opt_dt(value: datetime | None) -> str | None:
    return None if value is None else to_db(value)


class SqliteJobs(SqliteExecErrors, SqliteCharts, JobStore):
    """The jobs area of the SQLite dictionary."""

    # -- definitions -----------------------------------------------------------------------

    def jobs(self, kind: str | None = None) -> list[JobDef]:
        """Every job definition (of ``kind``), sorted by name."""
        where, args = ("", ()) if kind is None else ("WHERE JOB_KIND = ? ", (kind,))
        with self._connect(self._redsys) as conn:
            rows = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM ADM_JOBS {where}ORDER BY JOB_NAME", args
            ).fetchall()
        return [job_from(r, from_db) for r in rows]

    def watchers(self) -> list[WatcherDef]:
        """Every watcher definition, sorted by name."""
        with self._connect(self._redsys) as conn:
            rows = conn.execute(
                f"SELECT {WATCHER_COLUMNS} FROM ADM_WATCHER ORDER BY WATCHER_NAME"
            ).fetchall()
        return [watcher_from(r, from_db) for r in rows]

    def definitions_stamp(self) -> str:
        """The newest id of the change log (:mod:`~redpss.dictionary.sqlite.changes`); on a
        dictionary older than the log, a hash over every definition row."""
        with self._connect(self._redsys, keep=True) as conn:  # jmon's look every few seconds
            stamp = read_stamp(conn, YEAR_SINCE)
            if stamp is not None:
                return stamp
        digest = hashlib.sha256()
        with self._connect(self._redsys) as conn:
            for table in ("ADM_JOBS", "ADM_WATCHER"):
                for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1"):
                    digest.update(repr(row).encode())
                digest.update(b"|")
        return digest.hexdigest()

    def definition_changes(self, since: str) -> DefinitionChanges | None:
        """The jobs and watchers changed after stamp ``since``, from the change log."""
        with self._connect(self._redsys) as conn:
            found = read_changes(conn, YEAR_SINCE, since, JOB_COLUMNS, WATCHER_COLUMNS)
        if found is None:
            return None
        stamp, job_rows, watcher_rows, names = found
        jobs: dict[str, JobDef | None] = {n: None for k, n in names if k == "JOB"}
        watchers: dict[str, WatcherDef | None] = {n: None for k, n in names if k == "WATCHER"}
        jobs.update((j.name, j) for j in (job_from(r, from_db) for r in job_rows))
        watchers.update((w.name, w) for w in (watcher_from(r, from_db) for r in watcher_rows))
        return DefinitionChanges(stamp, jobs, watchers)

    def apply_definitions(self, jobs: list[JobDef], watchers: list[WatcherDef]) -> None:
        """Upsert jobs and watchers in one transaction."""
        check_definitions(jobs, watchers)
        now = to_db(_utcnow())
        with self._write(self._redsys) as conn:
            for j in jobs:
                conn.execute(
                    f"INSERT INTO ADM_JOBS ({JOB_COLUMNS}, CREATED_AT) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (JOB_NAME) DO UPDATE SET SCHEMA_NAME = excluded.SCHEMA_NAME, "
                    "JOB_KIND = excluded.JOB_KIND, ACTION_TEXT = excluded.ACTION_TEXT, "
                    "POOL_NAME = excluded.POOL_NAME, SCHEDULE_TYPE = excluded.SCHEDULE_TYPE, "
                    "INTERVAL_SECONDS = excluded.INTERVAL_SECONDS, "
                    "CRON_EXPR = excluded.CRON_EXPR, ACTIVE = excluded.ACTIVE, "
                    "TIMEOUT_SECONDS = excluded.TIMEOUT_SECONDS, "
                    "MAX_PARALLEL = excluded.MAX_PARALLEL, "
                    "MISFIRE_POLICY = excluded.MISFIRE_POLICY, "
                    "DESCRIPTION = excluded.DESCRIPTION, CHANGED_AT = excluded.CHANGED_AT",
                    (
                        j.name, j.schema, j.kind, j.action, j.pool, j.schedule_type,
                        j.interval_seconds, j.cron_expr, int(j.active), j.timeout_seconds,
                        j.max_parallel, j.misfire_policy, j.description, now, now,
                    ),
                )  # fmt: skip
            for w in watchers:
                conn.execute(
                    f"INSERT INTO ADM_WATCHER ({WATCHER_COLUMNS}, CREATED_AT) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (WATCHER_NAME) DO UPDATE SET "
                    "SCHEMA_NAME = excluded.SCHEMA_NAME, WATCHER_KIND = excluded.WATCHER_KIND, "
                    "WATCH_TEXT = excluded.WATCH_TEXT, EXECUTOR_JOB = excluded.EXECUTOR_JOB, "
                    "CHECK_INTERVAL_SECONDS = excluded.CHECK_INTERVAL_SECONDS, "
                    "ACTIVE = excluded.ACTIVE, DESCRIPTION = excluded.DESCRIPTION, "
                    "CHANGED_AT = excluded.CHANGED_AT",
                    (
                        w.name, w.schema, w.kind, w.watch_text, w.executor_job,
                        w.check_interval, int(w.active), w.description, now, now,
                    ),
                )  # fmt: skip

    def set_active(self, kind: str, name: str, active: bool) -> bool:
        """Set ACTIVE of a job or watcher; False when it does not exist."""
        table, key = _definition_table(kind)
        with self._write(self._redsys) as conn:
            cur = conn.execute(
                f"UPDATE {table} SET ACTIVE = ?, CHANGED_AT = ? WHERE {key} = ?",
                (int(active), to_db(_utcnow()), name),
            )
            return bool(cur.rowcount)

    def delete_definition(self, kind: str, name: str) -> bool:
        """Delete a job or watcher definition; False when it did not exist."""
        table, key = _definition_table(kind)
        with self._write(self._redsys) as conn:
            return bool(conn.execute(f"DELETE FROM {table} WHERE {key} = ?", (name,)).rowcount)

    # -- run logs --------------------------------------------------------------------------

    def record_runs(self, updates: list[RunUpdate]) -> None:
        """Insert or update runs by RUN_ID, one transaction per schema file."""
        by_schema: dict[str, list[RunUpdate]] = defaultdict(list)
        for update in updates:
            by_schema[update.schema].append(update)
        for schema, items in by_schema.items():
            path = self.ensure_ready(schema)
            with self._write(path) as conn:
                for u in items:
                    _upsert_run(conn, u)

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
        """Newest runs first, over one or all target schemas.

        Each query walks one index from its newest end (version 7): (name, RUN_ID) for a job,
        (STATE, RUN_ID) for a state — one query per state, merged, so that several states
        need no sort of all their runs —, QUEUED_AT for a time range alone.
        """
        table, col = ("ADM_WATCHER_LOG", "WATCHER_NAME") if watcher else ("ADM_JOB_LOG", "JOB_NAME")
        cols = LOG_COLUMNS.format(name=col) + (", WATCH_KEY, EXECUTOR_RUN_ID" if watcher else "")
        where, args = ["1 = 1"], []  # type: list[str], list[Any]
        if name is not None:
            where.append(f"{col} = ?")
            args.append(name)
        if since is not None:
            where.append("QUEUED_AT >= ?")
            args.append(to_db(since))
        if until is not None:
            where.append("QUEUED_AT < ?")
            args.append(to_db(until))
        filters: list[tuple[str, tuple[Any, ...]]] = [
            (f"{' AND '.join(where)} AND STATE = ?", (*args, state)) for state in states or ()
        ] or [(" AND ".join(where), tuple(args))]
        found: list[RunRecord] = []
        for s in [schema] if schema else self.schemas():
            if not self._schema_path(s).exists():
                continue
            with self._connect(self._schema_path(s)) as conn:
                for condition, values in filters:
                    rows = conn.execute(
                        f"SELECT {cols} FROM {table} WHERE {condition} "
                        "ORDER BY RUN_ID DESC LIMIT ?",
                        (*values, limit),
                    ).fetchall()
                    found.extend(run_from(s, r, watcher, from_db) for r in rows)
        found.sort(key=lambda r: r.run_id, reverse=True)
        return found[:limit]

    def last_runs(self) -> dict[str, RunRecord]:
        """The newest run of every job (RUN_IDs grow with time), by job name.

        One step per job, not per run: the names are walked along the index (JOB_NAME,
        RUN_ID) one after the other (a loose index scan), each taking its largest RUN_ID.
        """
        newest: dict[str, RunRecord] = {}
        cols = LOG_COLUMNS.format(name="JOB_NAME")
        for s in self.schemas():
            with self._connect(self._schema_path(s)) as conn:
                if self._file_version(conn, s) < YEAR_SINCE:
                    sql = (
                        f"SELECT {cols} FROM ADM_JOB_LOG WHERE RUN_ID IN "
                        "(SELECT MAX(RUN_ID) FROM ADM_JOB_LOG GROUP BY JOB_NAME)"
                    )
                else:
                    sql = _LAST_RUNS_SQL.format(cols=cols)
                rows = conn.execute(sql).fetchall()
            for r in rows:
                rec = run_from(s, r, False, from_db)
                if rec.name not in newest or newest[rec.name].run_id < rec.run_id:
                    newest[rec.name] = rec
        return newest

    def abort_unfinished(self, message: str) -> int:
        """Mark QUEUED/RUNNING runs ABORTED in every schema; return how many."""
        now = to_db(_utcnow())
        count = 0
        for s in self.schemas():
            with self._write(self._schema_path(s)) as conn:
                for table in ("ADM_JOB_LOG", "ADM_WATCHER_LOG"):
                    count += conn.execute(
                        f"UPDATE {table} SET STATE = 'ABORTED', ENDED_AT = ?, "
                        "MESSAGE = COALESCE(MESSAGE || '; ', '') || ? "
                        "WHERE STATE IN ('QUEUED', 'RUNNING')",
                        (now, message),
                    ).rowcount
        return count

    def clear_logs(self) -> int:
        """Empty the logs of every schema and the JMON samples; return the rows deleted."""
        count = 0
        for s in self.schemas():
            with self._write(self._schema_path(s)) as conn:
                for table in _CLONED_LOGS:
                    count += conn.execute(f"DELETE FROM {table}").rowcount
        with self._write(self._redsys) as conn:
            for table in ("ADM_JMON_LOAD", "ADM_JMON_JOBLOG"):
                count += conn.execute(f"DELETE FROM {table}").rowcount
        return count

    # -- SQL jobs and watchers -------------------------------------------------------------

    def run_sql(
        self,
        schema: str,
        statement: str,
        *,
        timeout: float | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> int:
        """Run a job's statement(s) in the schema's file; TimeoutError past ``timeout``.

        Each worker thread keeps its connection per schema file open (jobs run often; opening
        costs more than a small statement); :meth:`close` closes them all.
        """
        conn = self._job_connection(schema)
        deadline = None if timeout is None else time.monotonic() + timeout
        _limit(conn, deadline, cancel)
        before = conn.total_changes
        try:
            conn.executescript(statement)
        except sqlite3.OperationalError as exc:
            if cancel is not None and cancel() and "interrupt" in str(exc):
                raise DictionaryError(
                    f"{schema}: statement interrupted: the run was killed"
                ) from exc
            raise _timeout_or(exc, deadline, timeout) from exc
        except sqlite3.Error as exc:
            raise DictionaryError(f"{schema}: {exc}") from exc
        finally:
            if conn.in_transaction:  # a script that left a transaction open: not ours to keep
                conn.rollback()
        return conn.total_changes - before

    def _job_connection(self, schema: str) -> sqlite3.Connection:
        local: Any = self.__dict__.setdefault("_job_local", threading.local())
        conns: dict[str, sqlite3.Connection] | None = getattr(local, "conns", None)
        if conns is None:
            conns = local.conns = {}
        conn = conns.get(schema)
        if conn is None:
            path = self.ensure_ready(schema)
            try:
                conn = sqlite3.connect(
                    path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
                )
            except sqlite3.Error as exc:
                raise DictionaryError(f"cannot open {path}: {exc}") from exc
            conns[schema] = conn
            with _REGISTRY_LOCK:
                self.__dict__.setdefault("_job_conns", []).append(conn)
        return conn

    def close(self) -> None:
        """Close the connections that job runs kept open."""
        with _REGISTRY_LOCK:
            conns = self.__dict__.pop("_job_conns", [])
        self.__dict__.pop("_job_local", None)
        for conn in conns:
            conn.close()
        super().close()

    def query_value(self, schema: str, query: str, *, timeout: float | None = None) -> str:
        """Run a watcher's query; one value as text, else a hash of the whole result."""
        path = self.ensure_ready(schema)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._connect(path) as conn:
            _limit(conn, deadline)
            try:
                rows = conn.execute(query).fetchall()
            except sqlite3.OperationalError as exc:
                raise _timeout_or(exc, deadline, timeout) from exc
        if len(rows) == 1 and len(rows[0]) == 1:
            return str(rows[0][0])
        text = json.dumps(rows, default=str)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]

    # -- statistics ------------------------------------------------------------------------

    def write_jmon_sample(
        self,
        at: datetime,
        pools: list[PoolSample],
        jobs: list[tuple[str, datetime | None, datetime | None, str | None]],
    ) -> None:
        """One ADM_JMON_LOAD row per pool and one ADM_JMON_JOBLOG row per job."""
        stamp = to_db(at)
        with self._write(self._redsys) as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO ADM_JMON_LOAD (SAMPLE_AT, POOL_NAME, POOL_SIZE, BUSY, "
                "QUEUED, RUNS_IN_PERIOD) VALUES (?, ?, ?, ?, ?, ?)",
                [(stamp, p.pool, p.size, p.busy, p.queued, p.runs) for p in pools],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO ADM_JMON_JOBLOG (SAMPLE_AT, JOB_NAME, NEXT_RUN_AT, "
                "LAST_RUN_AT, LAST_STATE) VALUES (?, ?, ?, ?, ?)",
                [(stamp, n, _opt_dt(nxt), _opt_dt(last), st) for n, nxt, last, st in jobs],
            )


def _definition_table(kind: str) -> tuple[str, str]:
    if kind == "job":
        return "ADM_JOBS", "JOB_NAME"
    if kind == "watcher":
        return "ADM_WATCHER", "WATCHER_NAME"
    raise DictionaryError(f"unknown definition kind {kind!r}; expected job or watcher")


def _upsert_run(conn: sqlite3.Connection, u: RunUpdate) -> None:
    table, col = ("ADM_WATCHER_LOG", "WATCHER_NAME") if u.watcher else ("ADM_JOB_LOG", "JOB_NAME")
    extra_cols, extra_vals = "", ()  # type: tuple[str, tuple[Any, ...]]
    extra_set = ""
    if u.watcher:
        extra_cols = ", WATCH_KEY, EXECUTOR_RUN_ID"
        extra_vals = (u.watch_key, u.executor_run_id)
        extra_set = (
            ", WATCH_KEY = COALESCE(excluded.WATCH_KEY, WATCH_KEY), "
            "EXECUTOR_RUN_ID = COALESCE(excluded.EXECUTOR_RUN_ID, EXECUTOR_RUN_ID)"
        )
    values: tuple[Any, ...] = (
        u.run_id, u.name, u.pool, u.state, to_db(u.queued_at), _opt_dt(u.started_at),
        _opt_dt(u.ended_at), u.rows, u.message, u.host, u.pid, *extra_vals,
    )  # fmt: skip
    marks = ", ".join("?" for _ in values)
    conn.execute(
        f"INSERT INTO {table} ({LOG_COLUMNS.format(name=col)}{extra_cols}) VALUES ({marks}) "
        "ON CONFLICT (RUN_ID) DO UPDATE SET STATE = excluded.STATE, "
        "STARTED_AT = COALESCE(excluded.STARTED_AT, STARTED_AT), "
        "ENDED_AT = COALESCE(excluded.ENDED_AT, ENDED_AT), "
        "ROW_COUNT = COALESCE(excluded.ROW_COUNT, ROW_COUNT), "
        "MESSAGE = COALESCE(excluded.MESSAGE, MESSAGE), "
        "HOST = COALESCE(excluded.HOST, HOST), PID = COALESCE(excluded.PID, PID)" + extra_set,
        values,
    )


def _limit(
    conn: sqlite3.Connection, deadline: float | None, cancel: Callable[[], bool] | None = None
) -> None:
    """Interrupt the statements of ``conn`` past ``deadline`` or once ``cancel()`` is true."""
    if deadline is None and cancel is None:
        conn.set_progress_handler(None, 0)
        return

    def check() -> int:
        if deadline is not None and time.monotonic() > deadline:
            return 1
        return 1 if cancel is not None and cancel() else 0

    conn.set_progress_handler(check, 10_000)


def _timeout_or(
    exc: sqlite3.OperationalError, deadline: float | None, timeout: float | None
) -> Exception:
    if deadline is not None and "interrupt" in str(exc) and time.monotonic() > deadline:
        return TimeoutError(f"statement interrupted after its timeout of {timeout} s")
    return DictionaryError(str(exc))
