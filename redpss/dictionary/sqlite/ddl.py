"""SQLite DDL from the dictionary model: tables, indexes, the computed views (the ALERT rules in
SQL), and what one migration does to one table.

Apart from the backend's files, connections and migration bookkeeping
(:mod:`redpss.dictionary.sqlite.core`) because this is the SQL that follows the model: a new
column type, a new computed view or a rebuilt constraint changes here, not there.
"""

from __future__ import annotations

import sqlite3

from redpss.dictionary.base import DOWN_STATES, SUSPENDED
from redpss.dictionary.objects import Column, Index, Migration, Model, Table, View, parse_type
from redpss.errors import MigrationError

__all__ = [
    "apply_table",
    "index_ddl",
    "job_status_select",
    "status_select",
    "table_ddl",
    "view_ddl",
]


def _sqlite_type(column: Column) -> str:
    generic = parse_type(column.type)
    if generic.base == "DECIMAL":
        return "INTEGER" if not generic.scale else "NUMERIC"
    return {"VARCHAR": "TEXT", "TIMESTAMP": "TEXT", "DOUBLE": "REAL", "BOOLEAN": "INTEGER"}[
        generic.base
    ]


def _literal(value: str) -> str:
    return {"TRUE": "1", "FALSE": "0"}.get(value.upper(), value)


def _column_ddl(column: Column, *, identity_pk: bool = False) -> str:
    parts = [column.name, _sqlite_type(column)]
    if identity_pk:
        parts.append("PRIMARY KEY")
    if not column.nullable:
        parts.append("NOT NULL")
    if column.default is not None:
        parts.append(f"DEFAULT {_literal(column.default)}")
    checks = [f"{column.name} IN ({', '.join(repr(v) for v in column.values)})"]
    if not column.values:
        checks = [f"{column.name} IN (0, 1)"] if column.type == "BOOLEAN" else []
    parts.extend(f"CHECK ({check})" for check in checks)
    return " ".join(parts)


def table_ddl(table: Table, version: int) -> list[str]:
    """Return the statements that create ``table`` (and its indexes) as of ``version``."""
    columns = table.columns_at(version)
    identity = [c.name for c in columns if c.identity]
    lines = [_column_ddl(c, identity_pk=c.name in identity) for c in columns]
    if table.primary_key and table.primary_key != tuple(identity):
        lines.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
    lines.extend(f"UNIQUE ({', '.join(cols)})" for cols in table.unique)
    body = ",\n    ".join(lines)
    statements = [f"CREATE TABLE IF NOT EXISTS {table.name} (\n    {body}\n)"]
    statements.extend(index_ddl(table, index) for index in table.indexes_at(version))
    return statements


def index_ddl(table: Table, index: Index) -> str:
    """The ``CREATE INDEX`` statement of one index of ``table``."""
    name = f"{table.name}_{'_'.join(index.columns)}_IX"
    return f"CREATE INDEX IF NOT EXISTS {name} ON {table.name} ({', '.join(index.columns)})"


# STA_PSS_STATUS: the ALERT rule of redpss.health.judge, in SQL. ``{now}`` is ``'now'`` in the
# view and a bound parameter when the caller asks for another time. ``{problems_alert}`` and
# ``{problems_reason}`` are empty before PROBLEMS_SINCE (no PROBLEMS column yet).
_STATUS_SQL = """SELECT {columns},
    HEARTBEAT_AGE,
    CASE
        WHEN STATE IN ({down}) THEN 2
        WHEN HEARTBEAT_AGE > 3 * HEARTBEAT_INTERVAL THEN 2{problems_alert}
        WHEN HEARTBEAT_AGE > 2 * HEARTBEAT_INTERVAL THEN 1
        WHEN RESTARTS > 0 THEN 1
        WHEN STATE = '{suspended}' THEN 1
        ELSE 0
    END AS ALERT,
    CASE
        WHEN STATE IN ({down}) THEN 'state ' || STATE || COALESCE(': ' || LAST_EXIT, '')
        WHEN HEARTBEAT_AGE > 3 * HEARTBEAT_INTERVAL
            THEN 'no heartbeat for ' || CAST(HEARTBEAT_AGE AS INTEGER) || ' s'{problems_reason}
        WHEN HEARTBEAT_AGE > 2 * HEARTBEAT_INTERVAL
            THEN 'heartbeat late (' || CAST(HEARTBEAT_AGE AS INTEGER) || ' s)'
        WHEN RESTARTS > 0
            THEN 'restarted ' || RESTARTS || ' times; last: ' || COALESCE(LAST_EXIT, 'unknown')
        WHEN STATE = '{suspended}' THEN 'suspended' || COALESCE(': ' || INFO, '')
    END AS ALERT_REASON
FROM (
    SELECT *, ROUND((julianday({now}) - julianday(HEARTBEAT_AT)) * 86400.0, 3) AS HEARTBEAT_AGE
    FROM {base}
)"""


def status_select(model: Model, version: int, now: str) -> str:
    """The SELECT of ``STA_PSS_STATUS`` at ``version``: ``now`` is ``'now'`` (view) or ``?``."""
    base = model.table("ADM_PSS_STATUS")
    columns = [c.name for c in base.columns_at(version)]
    problems = "PROBLEMS" in columns
    return _STATUS_SQL.format(
        columns=", ".join(columns),
        down=", ".join(f"'{s}'" for s in DOWN_STATES),
        suspended=SUSPENDED,
        now="'now'" if now == "now" else "?",
        base=base.name,
        problems_alert="\n        WHEN PROBLEMS IS NOT NULL THEN 1" if problems else "",
        problems_reason="\n        WHEN PROBLEMS IS NOT NULL THEN PROBLEMS" if problems else "",
    )


# STA_JOB_STATUS: the rule of redpss.dictionary.jobs.job_alert in SQL; timestamps are stored
# as one ISO text format (to_db), so they compare as text.
_JOB_STATUS_SQL = """SELECT JOB_NAME, LAST_RUN_ID, LAST_STATE, LAST_QUEUED_AT, LAST_STARTED_AT,
    LAST_ENDED_AT, LAST_MESSAGE, LAST_SEEN_AT, NEXT_RUN_AT, DEFINITION_ERROR, PLANNED_AT,
    SCHEMA_NAME, ACTIVE, OVERDUE_SECONDS,
    CASE
        WHEN ACTIVE = 0 THEN 0
        WHEN DEFINITION_ERROR IS NOT NULL AND DEFINITION_ERROR <> '' THEN 2
        WHEN LAST_STATE IN ('FAILED', 'TIMEOUT') THEN 2
        WHEN {late} THEN 1
        WHEN LAST_STATE IN ('ABORTED', 'KILLED') THEN 1
        ELSE 0
    END AS ALERT,
    CASE
        WHEN ACTIVE = 0 THEN NULL
        WHEN DEFINITION_ERROR IS NOT NULL AND DEFINITION_ERROR <> ''
            THEN 'invalid definition: ' || DEFINITION_ERROR
        WHEN LAST_STATE IN ('FAILED', 'TIMEOUT') THEN {last_run}
        WHEN {late}
            THEN 'late: no run for ' || CAST(OVERDUE_SECONDS AS INTEGER) || ' s after it was due'
        WHEN LAST_STATE IN ('ABORTED', 'KILLED') THEN {last_run}
    END AS ALERT_REASON
FROM (
    SELECT J.JOB_NAME, S.LAST_RUN_ID, S.LAST_STATE, S.LAST_QUEUED_AT, S.LAST_STARTED_AT,
        S.LAST_ENDED_AT, S.LAST_MESSAGE, S.LAST_SEEN_AT, S.NEXT_RUN_AT, S.DEFINITION_ERROR,
        S.PLANNED_AT, J.SCHEMA_NAME, J.ACTIVE,
        ROUND((julianday({now}) - julianday(S.NEXT_RUN_AT)) * 86400.0, 3) AS OVERDUE_SECONDS
    FROM ADM_JOBS J LEFT JOIN ADM_JOB_STATUS S ON S.JOB_NAME = J.JOB_NAME
)"""


def job_status_select(now: str) -> str:
    """The SELECT of ``STA_JOB_STATUS``; ``now`` is ``'now'`` (the view) or ``?``."""
    from redpss.dictionary.jobs import LATE_AFTER, REASON_MESSAGE

    late = (
        f"NEXT_RUN_AT IS NOT NULL AND OVERDUE_SECONDS > {LATE_AFTER} "
        "AND (LAST_SEEN_AT IS NULL OR LAST_SEEN_AT < NEXT_RUN_AT)"
    )
    last_run = (
        "'last run ' || LAST_STATE || CASE WHEN LAST_MESSAGE IS NULL OR LAST_MESSAGE = '' "
        f"THEN '' ELSE ': ' || substr(LAST_MESSAGE, 1, {REASON_MESSAGE}) END"
    )
    return _JOB_STATUS_SQL.format(
        late=late, last_run=last_run, now="'now'" if now == "now" else "?"
    )


def view_ddl(view: View, model: Model, version: int) -> str:
    """Return the ``CREATE VIEW`` statement of ``view`` as of ``version``."""
    if view.name == "STA_PSS_STATUS":
        return f"CREATE VIEW {view.name} AS\n{status_select(model, version, 'now')}"
    if view.name == "STA_JOB_STATUS":
        return f"CREATE VIEW {view.name} AS\n{job_status_select('now')}"
    if view.extra:
        raise MigrationError(f"the SQLite backend does not know how to compute {view.name}")
    return f"CREATE VIEW {view.name} AS SELECT * FROM {view.base}"


def apply_table(conn: sqlite3.Connection, table: Table, since: int, migration: Migration) -> None:
    """What ``migration`` does to ``table`` (created by migration ``since``)."""
    if since == migration.version:
        for statement in table_ddl(table, migration.version):
            conn.execute(statement)
        return
    for column in table.columns:
        if column.since == migration.version:
            conn.execute(f"ALTER TABLE {table.name} ADD COLUMN {_column_ddl(column)}")
    if table.name in migration.rebuild:
        _rebuild(conn, table, migration.version)
    for index in table.indexes_at(migration.version):
        if index.since == migration.version:
            conn.execute(index_ddl(table, index))


def _rebuild(conn: sqlite3.Connection, table: Table, version: int) -> None:
    """Build ``table`` anew as of ``version`` (its CHECK constraints with it), rows kept.

    SQLite cannot alter a constraint: the documented way is a new table, a copy, a drop and
    a rename, in the migration's transaction.
    """
    columns = ", ".join(c.name for c in table.columns_at(version))
    create, *indexes = table_ddl(table, version)
    new = f"{table.name}__REBUILD"
    conn.execute(
        create.replace(f"CREATE TABLE IF NOT EXISTS {table.name} ", f"CREATE TABLE {new} ", 1)
    )
    conn.execute(f"INSERT INTO {new} ({columns}) SELECT {columns} FROM {table.name}")
    conn.execute(f"DROP TABLE {table.name}")
    conn.execute(f"ALTER TABLE {new} RENAME TO {table.name}")
    for statement in indexes:
        conn.execute(statement)
