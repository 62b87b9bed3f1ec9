"""Jobs and watchers on Exasol: definitions (REDSYS), run logs and executor errors (per schema).

Upserts are MERGEs (Exasol has no ``ON CONFLICT``); the allowed values of a column, which the
SQLite backend keeps as CHECK constraints, are checked here before a row is written
(:func:`check_allowed`), with the same DictionaryError. SQL jobs and SQL watchers run in
:mod:`~redpss.dictionary.exasol.runsql`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from redpss.dictionary.base import check_schema_name
from redpss.dictionary.exasol.charts import ExasolCharts
from redpss.dictionary.exasol.core import utcnow
from redpss.dictionary.exasol.runsql import ExasolSqlJobs
from redpss.dictionary.exasol.session import (
    Tx,
)
from redpss.dictionary.exasol.sqltext import from_db, literal, literals, render
from redpss.dictionary.jobs import (
    RUN_ID_SLACK,
    ExecError,
    JobDef,
    JobStore,
    PoolSample,
    RunRecord,
    RunUpdate,
    WatcherDef,
    run_id_floor,
)
from redpss.dictionary.objects import Model
from redpss.dictionary.rows import (
    JOB_COLUMNS,
    WATCHER_COLUMNS,
    as_int,
    check_definitions,
    check_not_empty,
    job_from,
    log_columns,
    log_table,
    run_from,
    watcher_from,
)
from redpss.errors import DictionaryError

__all__ = ["ExasolJobs", "check_allowed"]

_CLONED_LOGS = ("ADM_JOB_LOG", "ADM_WATCHER_LOG", "ADM_WATCHER_EXEC_ERROR", "LOG_MESSAGES")

JOBS_SQL = "SELECT {columns!r} FROM REDSYS.ADM_JOBS WHERE {where!r} ORDER BY JOB_NAME"
WATCHERS_SQL = "SELECT {columns!r} FROM REDSYS.ADM_WATCHER ORDER BY WATCHER_NAME"
# Every column of every row, hashed in the database: one short row crosses the network, and
# any insert, update (even by plain SQL that leaves CHANGED_AT alone) or delete changes it.
STAMP_SQL = (
    "SELECT COUNT(*), HASH_MD5(GROUP_CONCAT(HASH_MD5({row_text!r}) ORDER BY {key!q} "
    "SEPARATOR ',')) FROM REDSYS.{table!q}"
)
MERGE_JOB_SQL = (
    "MERGE INTO REDSYS.ADM_JOBS T USING (SELECT {name} AS JOB_NAME FROM DUAL) S "
    "ON T.JOB_NAME = S.JOB_NAME "
    "WHEN MATCHED THEN UPDATE SET SCHEMA_NAME = {schema}, JOB_KIND = {kind}, "
    "ACTION_TEXT = {action}, POOL_NAME = {pool}, SCHEDULE_TYPE = {schedule_type}, "
    "INTERVAL_SECONDS = {interval_seconds}, CRON_EXPR = {cron_expr}, ACTIVE = {active}, "
    "TIMEOUT_SECONDS = {timeout_seconds}, MAX_PARALLEL = {max_parallel}, "
    "MISFIRE_POLICY = {misfire_policy}, DESCRIPTION = {description}, CHANGED_AT = {now} "
    "WHEN NOT MATCHED THEN INSERT ({columns!r}, CREATED_AT) VALUES ({name}, {schema}, {kind}, "
    "{action}, {pool}, {schedule_type}, {interval_seconds}, {cron_expr}, {active}, "
    "{timeout_seconds}, {max_parallel}, {misfire_policy}, {description}, {now}, {now})"
)
MERGE_WATCHER_SQL = (
    "MERGE INTO REDSYS.ADM_WATCHER T USING (SELECT {name} AS WATCHER_NAME FROM DUAL) S "
    "ON T.WATCHER_NAME = S.WATCHER_NAME "
    "WHEN MATCHED THEN UPDATE SET SCHEMA_NAME = {schema}, WATCHER_KIND = {kind}, "
    "WATCH_TEXT = {watch_text}, EXECUTOR_JOB = {executor_job}, "
    "CHECK_INTERVAL_SECONDS = {check_interval}, ACTIVE = {active}, "
    "DESCRIPTION = {description}, CHANGED_AT = {now} "
    "WHEN NOT MATCHED THEN INSERT ({columns!r}, CREATED_AT) VALUES ({name}, {schema}, {kind}, "
    "{watch_text}, {executor_job}, {check_interval}, {active}, {description}, {now}, {now})"
)
SET_ACTIVE_SQL = (
    "UPDATE REDSYS.{table!q} SET ACTIVE = {active}, CHANGED_AT = {now} WHERE {key!q} = {name}"
)
DELETE_DEFINITION_SQL = "DELETE FROM REDSYS.{table!q} WHERE {key!q} = {name}"
# COALESCE keeps what an update leaves None (RunUpdate's rule), as the SQLite upsert does.
MERGE_RUN_SQL = (
    "MERGE INTO {schema!q}.{table!q} T USING (SELECT {run_id} AS RUN_ID FROM DUAL) S "
    "ON T.RUN_ID = S.RUN_ID "
    'WHEN MATCHED THEN UPDATE SET "STATE" = {state}, '
    "STARTED_AT = COALESCE({started}, T.STARTED_AT), ENDED_AT = COALESCE({ended}, T.ENDED_AT), "
    "ROW_COUNT = COALESCE({row_count}, T.ROW_COUNT), MESSAGE = COALESCE({message}, T.MESSAGE), "
    "HOST = COALESCE({host}, T.HOST), PID = COALESCE({pid}, T.PID){extra_set!r} "
    "WHEN NOT MATCHED THEN INSERT ({columns!r}) VALUES ({run_id}, {name}, {pool}, {state}, "
    "{queued}, {started}, {ended}, {row_count}, {message}, {host}, {pid}{extra_values!r})"
)
_WATCHER_SET = (
    ", WATCH_KEY = COALESCE({watch_key}, T.WATCH_KEY), "
    "EXECUTOR_RUN_ID = COALESCE({executor_run_id}, T.EXECUTOR_RUN_ID)"
)
RUNS_SQL = (
    "SELECT {columns!r} FROM {schema!q}.{table!q} WHERE {where!r} "
    "ORDER BY RUN_ID DESC LIMIT {limit}"
)
BY_HOUR_SQL = (
    "SELECT {hour!r}, {key!r}, {value!r} FROM {schema!q}.ADM_JOB_LOG WHERE {where!r} "
    "GROUP BY {hour!r}, {key!r}"
)
LAST_RUNS_SQL = (
    "SELECT {columns!r} FROM {schema!q}.ADM_JOB_LOG WHERE RUN_ID IN "
    "(SELECT MAX(RUN_ID) FROM {schema!q}.ADM_JOB_LOG GROUP BY JOB_NAME)"
)
# Exasol: 'a' || NULL is 'a', so the separator is added only to an existing message.
ABORT_SQL = (
    "UPDATE {schema!q}.{table!q} SET \"STATE\" = 'ABORTED', ENDED_AT = {now}, "
    "MESSAGE = CASE WHEN MESSAGE IS NULL THEN {message} ELSE MESSAGE || '; ' || {message} END "
    "WHERE \"STATE\" IN ('QUEUED', 'RUNNING')"
)
DELETE_ALL_SQL = "DELETE FROM {schema!q}.{table!q}"
MERGE_EXEC_ERROR_SQL = (
    "MERGE INTO {schema!q}.ADM_WATCHER_EXEC_ERROR T "
    "USING (SELECT {watcher} AS WATCHER_NAME, {key} AS WATCH_KEY FROM DUAL) S "
    "ON T.WATCHER_NAME = S.WATCHER_NAME AND T.WATCH_KEY = S.WATCH_KEY "
    "WHEN MATCHED THEN UPDATE SET ERROR_COUNT = T.ERROR_COUNT + 1, LAST_SEEN = {now}, "
    "LAST_MESSAGE = {message} "
    "WHEN NOT MATCHED THEN INSERT (WATCHER_NAME, WATCH_KEY, ERROR_COUNT, FIRST_SEEN, LAST_SEEN, "
    "LAST_MESSAGE) VALUES ({watcher}, {key}, 1, {now}, {now}, {message})"
)
EXEC_ERROR_COUNT_SQL = (
    "SELECT ERROR_COUNT FROM {schema!q}.ADM_WATCHER_EXEC_ERROR "
    "WHERE WATCHER_NAME = {watcher} AND WATCH_KEY = {key}"
)
EXEC_ERRORS_SQL = (
    "SELECT WATCHER_NAME, WATCH_KEY, ERROR_COUNT, FIRST_SEEN, LAST_SEEN, LAST_MESSAGE "
    "FROM {schema!q}.ADM_WATCHER_EXEC_ERROR WHERE {watcher} IS NULL OR WATCHER_NAME = {watcher}"
)
RESET_EXEC_ERRORS_SQL = (
    "DELETE FROM {schema!q}.ADM_WATCHER_EXEC_ERROR "
    "WHERE ({watcher} IS NULL OR WATCHER_NAME = {watcher}) AND ({key} IS NULL OR WATCH_KEY = {key})"
)
DELETE_JMON_SQL = "DELETE FROM REDSYS.{table!q} WHERE SAMPLE_AT = {at} AND {key!q} IN ({names!r})"
INSERT_JMON_LOAD_SQL = (
    "INSERT INTO REDSYS.ADM_JMON_LOAD (SAMPLE_AT, POOL_NAME, POOL_SIZE, BUSY, QUEUED, "
    "RUNS_IN_PERIOD) VALUES {rows!r}"
)
INSERT_JMON_JOBLOG_SQL = (
    "INSERT INTO REDSYS.ADM_JMON_JOBLOG (SAMPLE_AT, JOB_NAME, NEXT_RUN_AT, LAST_RUN_AT, "
    "LAST_STATE) VALUES {rows!r}"
)


def check_allowed(model: Model, table: str, values: Mapping[str, object]) -> None:
    """DictionaryError when a value is not among its column's allowed values (the CHECK
    constraints of the SQLite backend; Exasol has none)."""
    columns = {c.name: c for c in model.table(table).columns}
    for name, value in values.items():
        allowed = columns[name].values
        if allowed and value is not None and value not in allowed:
            raise DictionaryError(
                f"{table}.{name} = {value!r} is not allowed; expected one of {allowed}"
            )


def _definition_table(kind: str) -> tuple[str, str]:
    if kind == "job":
        return "ADM_JOBS", "JOB_NAME"
    if kind == "watcher":
        return "ADM_WATCHER", "WATCHER_NAME"
    raise DictionaryError(f"unknown definition kind {kind!r}; expected job or watcher")


def _row_text(model: Model, table: str) -> str:
    """Every column of ``table`` as one text per row (NULL and '' as a marker), for hashing."""
    parts = [
        f"COALESCE(HASH_MD5(CAST({c.name} AS VARCHAR(2000000))), '-')"
        for c in model.table(table).columns
    ]
    return " || ".join(parts)


class ExasolJobs(ExasolSqlJobs, ExasolCharts, JobStore):
    """The jobs area of the Exasol dictionary."""

    # -- definitions -----------------------------------------------------------------------

    def jobs(self, kind: str | None = None) -> list[JobDef]:
        """Every job definition (of ``kind``), sorted by name."""
        where = "1 = 1" if kind is None else f"JOB_KIND = {literal(kind)}"
        rows = self.tx(
            lambda tx: tx.rows(JOBS_SQL, columns=JOB_COLUMNS, where=where), what="reading jobs"
        )
        return [job_from(r, from_db) for r in rows]

    def watchers(self) -> list[WatcherDef]:
        """Every watcher definition, sorted by name."""
        rows = self.tx(
            lambda tx: tx.rows(WATCHERS_SQL, columns=WATCHER_COLUMNS), what="reading watchers"
        )
        return [watcher_from(r, from_db) for r in rows]

    def definitions_stamp(self) -> str:
        """Row count and a hash of every row of both tables, computed by the database."""

        def unit(tx: Tx) -> str:
            parts = []
            for table, key in (("ADM_JOBS", "JOB_NAME"), ("ADM_WATCHER", "WATCHER_NAME")):
                text = _row_text(self.model, table)
                count, digest = tx.rows(STAMP_SQL, row_text=text, key=key, table=table)[0]
                parts.append(f"{as_int(count)}:{digest or ''}")
            return "|".join(parts)

        return self.tx(unit, what="reading the definitions stamp")

    def apply_definitions(self, jobs: list[JobDef], watchers: list[WatcherDef]) -> None:
        """Upsert jobs and watchers in one transaction (MERGE by name)."""
        check_definitions(jobs, watchers)
        for j in jobs:
            check_allowed(self.model, "ADM_JOBS", {
                "JOB_KIND": j.kind, "POOL_NAME": j.pool, "SCHEDULE_TYPE": j.schedule_type,
                "MISFIRE_POLICY": j.misfire_policy,
            })  # fmt: skip
        for w in watchers:
            check_allowed(self.model, "ADM_WATCHER", {"WATCHER_KIND": w.kind})
        now = utcnow()

        def unit(tx: Tx) -> None:
            for j in jobs:
                tx.execute(
                    MERGE_JOB_SQL, columns=JOB_COLUMNS, name=j.name, schema=j.schema, kind=j.kind,
                    action=j.action, pool=j.pool, schedule_type=j.schedule_type,
                    interval_seconds=j.interval_seconds, cron_expr=j.cron_expr,
                    active=bool(j.active), timeout_seconds=j.timeout_seconds,
                    max_parallel=j.max_parallel, misfire_policy=j.misfire_policy,
                    description=j.description, now=now,
                )  # fmt: skip
            for w in watchers:
                tx.execute(
                    MERGE_WATCHER_SQL, columns=WATCHER_COLUMNS, name=w.name, schema=w.schema,
                    kind=w.kind, watch_text=w.watch_text, executor_job=w.executor_job,
                    check_interval=w.check_interval, active=bool(w.active),
                    description=w.description, now=now,
                )  # fmt: skip

        self.tx(unit, what="applying definitions")

    def set_active(self, kind: str, name: str, active: bool) -> bool:
        """Set ACTIVE of a job or watcher; False when it does not exist."""
        table, key = _definition_table(kind)
        params = {"table": table, "key": key, "name": name, "active": bool(active)}
        params["now"] = utcnow()
        count = self.tx(lambda tx: tx.execute(SET_ACTIVE_SQL, **params), what=f"setting {name}")
        return bool(count)

    def delete_definition(self, kind: str, name: str) -> bool:
        """Delete a job or watcher definition; False when it did not exist."""
        table, key = _definition_table(kind)
        count = self.tx(
            lambda tx: tx.execute(DELETE_DEFINITION_SQL, table=table, key=key, name=name),
            what=f"deleting {kind} {name}",
        )
        return bool(count)

    # -- run logs --------------------------------------------------------------------------

    def record_runs(self, updates: list[RunUpdate]) -> None:
        """Insert or update runs by RUN_ID (MERGE), all in one transaction."""
        for u in updates:
            check_allowed(
                self.model, log_table(u.watcher)[0], {"STATE": u.state, "POOL_NAME": u.pool}
            )
        for schema in {u.schema for u in updates}:
            self.ensure_ready(schema)

        def unit(tx: Tx) -> None:
            for u in updates:
                extra_set = extra_values = ""
                if u.watcher:
                    extra_set = render(
                        _WATCHER_SET, watch_key=u.watch_key, executor_run_id=u.executor_run_id
                    )
                    extra_values = ", " + literals([u.watch_key, u.executor_run_id])
                tx.execute(
                    MERGE_RUN_SQL, schema=u.schema, table=log_table(u.watcher)[0],
                    columns=log_columns(u.watcher), run_id=u.run_id, name=u.name, pool=u.pool,
                    state=u.state, queued=u.queued_at, started=u.started_at, ended=u.ended_at,
                    row_count=u.rows, message=u.message, host=u.host, pid=u.pid,
                    extra_set=extra_set, extra_values=extra_values,
                )  # fmt: skip

        self.tx(unit, what="recording runs")

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

        A time range is also written as a lower bound of RUN_ID (:func:`run_id_floor`, a day
        early): Exasol keeps an index on RUN_ID (every run is written by a MERGE on it) and
        can read the range from it instead of scanning QUEUED_AT of the whole log.
        """
        table, col = log_table(watcher)
        where = ["1 = 1"]
        if name is not None:
            where.append(f"{col} = {literal(name)}")
        if states:
            where.append(f'"STATE" IN ({literals(states)})')
        if since is not None:
            where.append(f"RUN_ID >= {run_id_floor(since - RUN_ID_SLACK)}")
        schemas = self.schemas()
        if schema is not None:
            schemas = [schema] if check_schema_name(schema) in schemas else []

        def unit(tx: Tx) -> list[RunRecord]:
            timed = list(where)
            if since is not None:
                timed.append(f"QUEUED_AT >= {tx.literal(since)}")
            if until is not None:
                timed.append(f"QUEUED_AT < {tx.literal(until)}")
            found: list[RunRecord] = []
            for s in schemas:
                rows = tx.rows(
                    RUNS_SQL, columns=log_columns(watcher), schema=s, table=table,
                    where=" AND ".join(timed), limit=int(limit),
                )  # fmt: skip
                found.extend(run_from(s, r, watcher, from_db) for r in rows)
            return found

        found = self.tx(unit, what="reading runs")
        found.sort(key=lambda r: r.run_id, reverse=True)
        return found[:limit]

    def runs_by_hour(self, since: datetime) -> dict[tuple[datetime, str], int]:
        """Counted by Exasol (DATE_TRUNC to the hour), the range also as a RUN_ID floor."""
        return self._by_hour('"STATE"', "QUEUED_AT", "COUNT(*)", since)

    def rows_by_hour(self, since: datetime) -> dict[tuple[datetime, str], int]:
        """Summed by Exasol (see :meth:`runs_by_hour`)."""
        return self._by_hour(
            "JOB_NAME", "COALESCE(ENDED_AT, STARTED_AT, QUEUED_AT)", "SUM(ROW_COUNT)", since,
            rows=True,
        )  # fmt: skip

    def _by_hour(
        self, key: str, at: str, value: str, since: datetime, *, rows: bool = False
    ) -> dict[tuple[datetime, str], int]:
        schemas = self.schemas()
        hour = f"DATE_TRUNC('hour', {at})"

        def unit(tx: Tx) -> dict[tuple[datetime, str], int]:
            where = (
                f"RUN_ID >= {run_id_floor(since - RUN_ID_SLACK)} "
                f"AND QUEUED_AT >= {tx.literal(since)}" + (" AND ROW_COUNT <> 0" if rows else "")
            )
            found: dict[tuple[datetime, str], int] = {}
            for s in schemas:
                for h, k, n in tx.rows(
                    BY_HOUR_SQL, hour=hour, key=key, value=value, schema=s, where=where
                ):
                    slot = from_db(h)
                    assert slot is not None  # QUEUED_AT is NOT NULL
                    found[slot, str(k)] = found.get((slot, str(k)), 0) + int(n)
            return found

        return self.tx(unit, what="counting runs per hour")

    def last_runs(self) -> dict[str, RunRecord]:
        """The newest run of every job (RUN_IDs grow with time), by job name."""
        schemas = self.schemas()

        def unit(tx: Tx) -> list[RunRecord]:
            cols = log_columns(False)
            return [
                run_from(s, r, False, from_db)
                for s in schemas
                for r in tx.rows(LAST_RUNS_SQL, columns=cols, schema=s)
            ]

        newest: dict[str, RunRecord] = {}
        for rec in self.tx(unit, what="reading the last runs"):
            if rec.name not in newest or newest[rec.name].run_id < rec.run_id:
                newest[rec.name] = rec
        return newest

    def abort_unfinished(self, message: str) -> int:
        """Mark QUEUED/RUNNING runs ABORTED in every schema; return how many."""
        schemas, now = self.schemas(), utcnow()

        def unit(tx: Tx) -> int:
            return sum(
                tx.execute(ABORT_SQL, schema=s, table=t, now=now, message=message or None)
                for s in schemas
                for t in ("ADM_JOB_LOG", "ADM_WATCHER_LOG")
            )

        return self.tx(unit, what="aborting unfinished runs")

    def clear_logs(self) -> int:
        """Empty the logs of every schema and the JMON samples; return the rows deleted."""
        targets = [(s, t) for s in self.schemas() for t in _CLONED_LOGS]
        targets += [("REDSYS", "ADM_JMON_LOAD"), ("REDSYS", "ADM_JMON_JOBLOG")]

        def unit(tx: Tx) -> int:
            return sum(tx.execute(DELETE_ALL_SQL, schema=s, table=t) for s, t in targets)

        return self.tx(unit, what="clearing the logs")

    # -- watcher executor errors ----------------------------------------------------------

    def record_exec_error(self, schema: str, watcher: str, key: str, message: str) -> int:
        """Count a failed executor run; return the new count."""
        check_not_empty("ADM_WATCHER_EXEC_ERROR", {"WATCHER_NAME": watcher, "WATCH_KEY": key})
        self.ensure_ready(schema)
        params = {"schema": schema, "watcher": watcher, "key": key}

        def unit(tx: Tx) -> int:
            tx.execute(MERGE_EXEC_ERROR_SQL, now=utcnow(), message=message or None, **params)
            return as_int(tx.value(EXEC_ERROR_COUNT_SQL, **params))

        return self.tx(unit, what=f"counting an executor error of {watcher}")

    def exec_errors(self, watcher: str | None = None) -> list[ExecError]:
        """Executor errors over all schemas, newest first."""
        schemas = self.schemas()

        def unit(tx: Tx) -> list[ExecError]:
            found = []
            for s in schemas:
                for r in tx.rows(EXEC_ERRORS_SQL, schema=s, watcher=watcher):
                    first, last = from_db(r[3]), from_db(r[4])
                    assert first is not None and last is not None
                    found.append(ExecError(s, r[0], r[1], as_int(r[2]), first, last, r[5]))
            return found

        found = self.tx(unit, what="reading executor errors")
        found.sort(key=lambda e: e.last_seen, reverse=True)
        return found

    def reset_exec_errors(self, watcher: str | None = None, key: str | None = None) -> int:
        """Delete executor errors (all, of a watcher, or of one key); return how many."""
        schemas = self.schemas()

        def unit(tx: Tx) -> int:
            return sum(
                tx.execute(RESET_EXEC_ERRORS_SQL, schema=s, watcher=watcher, key=key)
                for s in schemas
            )

        return self.tx(unit, what="resetting executor errors")

    # -- statistics ------------------------------------------------------------------------

    def write_jmon_sample(
        self,
        at: datetime,
        pools: list[PoolSample],
        jobs: list[tuple[str, datetime | None, datetime | None, str | None]],
    ) -> None:
        """One ADM_JMON_LOAD row per pool and one ADM_JMON_JOBLOG row per job (replacing a
        row of the same sample time and name, as the SQLite backend does)."""
        for p in pools:
            check_allowed(self.model, "ADM_JMON_LOAD", {"POOL_NAME": p.pool})
        for job in jobs:
            check_allowed(self.model, "ADM_JMON_JOBLOG", {"LAST_STATE": job[3]})
        load = [(at, p.pool, p.size, p.busy, p.queued, p.runs) for p in pools]

        def unit(tx: Tx) -> None:
            for table, key, rows, insert in (
                ("ADM_JMON_LOAD", "POOL_NAME", load, INSERT_JMON_LOAD_SQL),
                ("ADM_JMON_JOBLOG", "JOB_NAME", [(at, *j) for j in jobs], INSERT_JMON_JOBLOG_SQL),
            ):
                if not rows:
                    continue
                names = literals([r[1] for r in rows])
                tx.execute(DELETE_JMON_SQL, table=table, key=key, at=at, names=names)
                tx.execute(insert, rows=", ".join(f"({tx.literals(r)})" for r in rows))

        self.tx(unit, what="writing a JMON sample")
