"""Exasol DDL generated from the dictionary model (:mod:`redpss.dictionary.model`).

The model's generic types map one to one, except ``TIMESTAMP``: the DDL is written for the
database's version (:class:`~redpss.dictionary.exasol.dialect.Dialect`): ``TIMESTAMP(6)``
(microseconds, as the SQLite backend keeps them) from Exasol 8.32, plain ``TIMESTAMP``
(milliseconds) on 7.1 and 8.0 to 8.31, where ``TIMESTAMP(p)`` is a syntax error. What Exasol does
not have is left out and checked elsewhere, as docs/dictionary.md says:

- no CHECK constraints: the allowed values of a column (``Column.values``) are checked by the
  writers in Python before a row is written, and by jmon when it reads definitions;
- no UNIQUE constraints and no indexes (Exasol builds its own): the uniqueness of a loader's
  column names is checked by the loader definition;
- ``''`` is NULL: a column whose default is ``''`` is nullable here, and is read back as ``''``.

Primary keys are declared (Exasol enforces them). Identity columns are ``IDENTITY``.
"""

from __future__ import annotations

from redpss.dictionary.base import DOWN_STATES, SUSPENDED
from redpss.dictionary.columns import REDSYS
from redpss.dictionary.exasol.dialect import Dialect
from redpss.dictionary.exasol.sqltext import ident, literals
from redpss.dictionary.objects import Column, Model, Scope, Table, View, parse_type

__all__ = [
    "DICTIONARY_USER_PRIVILEGES",
    "add_column_ddl",
    "column_type",
    "dictionary_user_grants",
    "epoch_seconds",
    "grants",
    "migration_statements",
    "seconds_since",
    "status_select",
    "table_ddl",
    "view_ddl",
]

MAX_VARCHAR = 2_000_000


def column_type(generic_type: str, dialect: Dialect) -> str:
    """The Exasol type of a generic model type on the database of ``dialect``."""
    generic = parse_type(generic_type)
    if generic.base == "VARCHAR":
        return f"VARCHAR({min(generic.size or MAX_VARCHAR, MAX_VARCHAR)})"
    if generic.base == "DECIMAL":
        return f"DECIMAL({generic.size or 18},{generic.scale or 0})"
    if generic.base == "TIMESTAMP":
        return dialect.timestamp_type
    return generic.base  # DOUBLE, BOOLEAN


def empty_is_null(column: Column) -> bool:
    """True when the model's default is ``''``, which Exasol stores as NULL."""
    return column.default == "''"


def _column_ddl(column: Column, dialect: Dialect) -> str:
    parts = [ident(column.name), column_type(column.type, dialect)]
    if column.identity:
        parts.append("IDENTITY")
    elif column.default is not None and not empty_is_null(column):
        parts.append(f"DEFAULT {column.default}")
    if not column.nullable and not empty_is_null(column):
        parts.append("NOT NULL")
    return " ".join(parts)


def table_ddl(table: Table, schema: str, version: int, dialect: Dialect) -> str:
    """``CREATE TABLE IF NOT EXISTS`` of ``table`` in ``schema`` as of ``version``."""
    lines = [_column_ddl(c, dialect) for c in table.columns_at(version)]
    if table.primary_key:
        lines.append(f"PRIMARY KEY ({', '.join(map(ident, table.primary_key))})")
    body = ",\n    ".join(lines)
    return f"CREATE TABLE IF NOT EXISTS {schema}.{table.name} (\n    {body}\n)"


def add_column_ddl(table: Table, schema: str, column: Column, dialect: Dialect) -> str:
    """``ALTER TABLE … ADD COLUMN`` for a column a later migration adds."""
    return f"ALTER TABLE {schema}.{table.name} ADD COLUMN {_column_ddl(column, dialect)}"


# "Now" in every STA_ view is POSIX_TIME(): the current moment in seconds since 1970-01-01
# UTC, the same in every session and time zone. SYSTIMESTAMP is local time in DBTIMEZONE; in
# the hour repeated when daylight saving time ends it names two moments, and no fourth argument
# of CONVERT_TZ can tell which (AMBIGUOUS ST misreads the first pass by an hour, DST the second,
# NULLIFY gives no age, REJECT fails): every role would show a false ALERT 2 for an hour.
# A stored UTC timestamp becomes seconds by plain arithmetic (no zone involved).
NOW_EPOCH = "POSIX_TIME()"
EPOCH = "TIMESTAMP '1970-01-01 00:00:00'"


def epoch_seconds(timestamp_sql: str) -> str:
    """Seconds since 1970-01-01 of a UTC TIMESTAMP expression (no time zone involved)."""
    return f"SECONDS_BETWEEN({timestamp_sql}, {EPOCH})"


def seconds_since(timestamp_sql: str, now_epoch: str = NOW_EPOCH) -> str:
    """The age in seconds (DOUBLE, ms) of a UTC TIMESTAMP expression, DST-safe: the building
    block of every age in an STA_ view (``now_epoch``: a fixed moment in tests)."""
    return f"ROUND(CAST({now_epoch} - {epoch_seconds(timestamp_sql)} AS DOUBLE), 3)"


def whole_seconds_text(seconds_sql: str) -> str:
    """``17`` for 17.8 seconds: the text of a DOUBLE without a format model is not something
    to rely on (exponent? trailing ``.0``?), the text of a DECIMAL with scale 0 is digits."""
    return f"TO_CHAR(CAST(FLOOR({seconds_sql}) AS DECIMAL(18,0)))"


# STA_PSS_STATUS: the ALERT rule of redpss.health.judge in Exasol SQL (the PROBLEMS lines from
# version 3, when the column came). HEARTBEAT_AT is UTC; its
# age is measured as above, so the view answers the same in every session time zone and across
# DST changes. In Exasol '' is NULL and 'a' || NULL is 'a': the reasons are built with CASE,
# not with COALESCE over a concatenation.
_STATUS_SELECT = """SELECT {columns},
    HEARTBEAT_AGE,
    CASE
        WHEN "STATE" IN ({down}) THEN 2
        WHEN HEARTBEAT_AGE > 3 * HEARTBEAT_INTERVAL THEN 2{problems_alert}
        WHEN HEARTBEAT_AGE > 2 * HEARTBEAT_INTERVAL THEN 1
        WHEN RESTARTS > 0 THEN 1
        WHEN "STATE" = '{suspended}' THEN 1
        ELSE 0
    END AS ALERT,
    CASE
        WHEN "STATE" IN ({down}) THEN 'state ' || "STATE"
            || CASE WHEN LAST_EXIT IS NULL THEN '' ELSE ': ' || LAST_EXIT END
        WHEN HEARTBEAT_AGE > 3 * HEARTBEAT_INTERVAL
            THEN 'no heartbeat for ' || {age_text} || ' s'{problems_reason}
        WHEN HEARTBEAT_AGE > 2 * HEARTBEAT_INTERVAL
            THEN 'heartbeat late (' || {age_text} || ' s)'
        WHEN RESTARTS > 0
            THEN 'restarted ' || TO_CHAR(RESTARTS) || ' times; last: '
                || CASE WHEN LAST_EXIT IS NULL THEN 'unknown' ELSE LAST_EXIT END
        WHEN "STATE" = '{suspended}'
            THEN 'suspended' || CASE WHEN INFO IS NULL THEN '' ELSE ': ' || INFO END
    END AS ALERT_REASON
FROM (
    SELECT S.*, {age} AS HEARTBEAT_AGE
    FROM {schema}.{base} S
)"""


def status_select(model: Model, version: int, now_epoch: str = NOW_EPOCH) -> str:
    """The SELECT of ``STA_PSS_STATUS``; ``now_epoch`` is an SQL expression of the current
    moment in seconds since 1970-01-01 UTC (``epoch_seconds`` of a literal in tests)."""
    base = model.table("ADM_PSS_STATUS")
    columns = base.columns_at(version)
    problems = any(c.name == "PROBLEMS" for c in columns)
    return _STATUS_SELECT.format(
        columns=", ".join(ident(c.name) for c in columns),
        problems_alert="\n        WHEN PROBLEMS IS NOT NULL THEN 1" if problems else "",
        problems_reason="\n        WHEN PROBLEMS IS NOT NULL THEN PROBLEMS" if problems else "",
        down=literals(DOWN_STATES),
        suspended=SUSPENDED,
        age=seconds_since("HEARTBEAT_AT", now_epoch),
        age_text=whole_seconds_text("HEARTBEAT_AGE"),
        schema=REDSYS,
        base=base.name,
    )


# STA_JOB_STATUS: the rule of redpss.dictionary.jobs.job_alert in Exasol SQL (helper S). Ages
# as for STA_PSS_STATUS (UTC, DST-safe); '' is NULL, so the reasons are built with CASE.
_JOB_STATUS_SELECT = """SELECT {columns},
    CASE
        WHEN NOT "ACTIVE" THEN 0
        WHEN DEFINITION_ERROR IS NOT NULL THEN 2
        WHEN LAST_STATE IN ('FAILED', 'TIMEOUT') THEN 2
        WHEN {late} THEN 1
        WHEN LAST_STATE IN ('ABORTED', 'KILLED') THEN 1
        ELSE 0
    END AS ALERT,
    CASE
        WHEN NOT "ACTIVE" THEN NULL
        WHEN DEFINITION_ERROR IS NOT NULL THEN 'invalid definition: ' || DEFINITION_ERROR
        WHEN LAST_STATE IN ('FAILED', 'TIMEOUT') THEN {last_run}
        WHEN {late}
            THEN 'late: no run for ' || {overdue_text} || ' s after it was due'
        WHEN LAST_STATE IN ('ABORTED', 'KILLED') THEN {last_run}
    END AS ALERT_REASON
FROM (
    SELECT J.JOB_NAME, {status_columns}, J.SCHEMA_NAME, J."ACTIVE",
        {overdue} AS OVERDUE_SECONDS
    FROM {schema}.ADM_JOBS J LEFT JOIN {schema}.ADM_JOB_STATUS S ON S.JOB_NAME = J.JOB_NAME
)"""
JOB_STATUS_COLUMNS = (
    "JOB_NAME", "LAST_RUN_ID", "LAST_STATE", "LAST_QUEUED_AT", "LAST_STARTED_AT",
    "LAST_ENDED_AT", "LAST_MESSAGE", "LAST_SEEN_AT", "NEXT_RUN_AT", "DEFINITION_ERROR",
    "PLANNED_AT", "SCHEMA_NAME", "ACTIVE", "OVERDUE_SECONDS",
)  # fmt: skip


def job_status_select(now_epoch: str = NOW_EPOCH) -> str:
    """The SELECT of ``STA_JOB_STATUS`` (columns :data:`JOB_STATUS_COLUMNS`, ALERT,
    ALERT_REASON); ``now_epoch`` as for :func:`status_select`."""
    from redpss.dictionary.jobs import LATE_AFTER, REASON_MESSAGE

    late = (
        f"NEXT_RUN_AT IS NOT NULL AND OVERDUE_SECONDS > {LATE_AFTER} "
        "AND (LAST_SEEN_AT IS NULL OR LAST_SEEN_AT < NEXT_RUN_AT)"
    )
    last_run = (
        "'last run ' || LAST_STATE || CASE WHEN LAST_MESSAGE IS NULL THEN '' "
        f"ELSE ': ' || SUBSTR(LAST_MESSAGE, 1, {REASON_MESSAGE}) END"
    )
    return _JOB_STATUS_SELECT.format(
        columns=", ".join(ident(c) for c in JOB_STATUS_COLUMNS),
        status_columns=", ".join(f"S.{ident(c)}" for c in JOB_STATUS_COLUMNS[1:11]),
        late=late,
        last_run=last_run,
        overdue=seconds_since("S.NEXT_RUN_AT", now_epoch),
        overdue_text=whole_seconds_text("OVERDUE_SECONDS"),
        schema=REDSYS,
    )


def view_ddl(view: View, model: Model, version: int, schema: str = REDSYS) -> str:
    """``CREATE OR REPLACE VIEW`` of ``view`` as of ``version``."""
    if view.name == "STA_PSS_STATUS":
        select = status_select(model, version)
    elif view.name == "STA_JOB_STATUS":
        select = job_status_select()
    elif view.extra:
        raise ValueError(f"the Exasol backend does not know how to compute {view.name}")
    else:
        select = f"SELECT * FROM {schema}.{view.base}"
    return f"CREATE OR REPLACE VIEW {schema}.{view.name} AS\n{select}"


DICTIONARY_USER_PRIVILEGES = (
    "CREATE SESSION",
    "CREATE SCHEMA",
    "CREATE TABLE",
    "CREATE VIEW",
    "CREATE SCRIPT",
    "CREATE CONNECTION",
    "IMPORT",
)
"""The system privileges of the dictionary user (``exa_username``), who needs no DBA role: it
creates REDSYS and the target schemas (and so owns them and everything in them), the
database-side scripts and their CONNECTION, and loads with ``IMPORT``. Loading into a table of
a schema it does not own needs ``INSERT`` on that table besides (the DBA's grant)."""


def dictionary_user_grants(user: str) -> list[str]:
    """What a DBA runs once to let ``user`` be the dictionary user (docs/dictionary.md)."""
    return [f"GRANT {privilege} TO {ident(user)}" for privilege in DICTIONARY_USER_PRIVILEGES]


def grants(view: View, schema: str = REDSYS) -> list[str]:
    """The status views (``STA_*``) are readable by everyone, as in RED."""
    if view.name.startswith("STA_"):
        return [f"GRANT SELECT ON {schema}.{view.name} TO PUBLIC"]
    return []


def migration_statements(
    model: Model, version: int, schema: str, scope: Scope, dialect: Dialect
) -> list[str]:
    """The DDL of migration ``version`` for ``schema`` (REDSYS or a target schema) on the
    database of ``dialect``."""
    statements: list[str] = []
    created: dict[str, int] = {}
    for earlier in model.migrations[:version]:
        for name in earlier.redsys if scope == REDSYS else earlier.target:
            created.setdefault(name, earlier.version)
    for name, since in created.items():
        obj = model.by_name[name]
        if not isinstance(obj, Table):
            continue
        if since == version:
            statements.append(table_ddl(obj, schema, version, dialect))
            continue
        statements.extend(
            add_column_ddl(obj, schema, c, dialect) for c in obj.columns if c.since == version
        )
    for name in created:
        obj = model.by_name[name]
        if isinstance(obj, View):
            statements.append(view_ddl(obj, model, version, schema))
            statements.extend(grants(obj, schema))
    return statements
