"""Rows of the dictionary's tables as the interface's objects — one reading for both backends.

Each backend selects the columns listed here, in this order, and hands the fetched tuples to
the converters with its own timestamp parser (SQLite stores ISO text with an offset, Exasol
returns ``TIMESTAMP`` text in UTC). Numbers may come back as ``int``, ``float`` or decimal
text (Exasol's DECIMAL); Exasol returns ``''`` as NULL, so the text columns whose value may
be empty are read back as ``''`` where the interface wants text.

``"STATE"`` is written quoted: it is a reserved word of Exasol, and SQLite takes the quotes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from redpss.dictionary.jobs import JobDef, RunRecord, WatcherDef
from redpss.dictionary.landing import LedgerEntry
from redpss.dictionary.loaders import Loader, LoaderColumn

__all__ = [
    "COLUMN_COLUMNS",
    "JOB_COLUMNS",
    "LEDGER_COLUMNS",
    "LOADER_COLUMNS",
    "LOG_COLUMNS",
    "WATCHER_COLUMNS",
    "TimestampParser",
    "as_int",
    "column_from",
    "job_from",
    "ledger_from",
    "loader_from",
    "loader_values",
    "log_columns",
    "log_table",
    "opt_int",
    "run_from",
    "watcher_from",
]

TimestampParser = Callable[[Any], datetime | None]

JOB_COLUMNS = (
    "JOB_NAME, SCHEMA_NAME, JOB_KIND, ACTION_TEXT, POOL_NAME, SCHEDULE_TYPE, INTERVAL_SECONDS, "
    "CRON_EXPR, ACTIVE, TIMEOUT_SECONDS, MAX_PARALLEL, MISFIRE_POLICY, DESCRIPTION, CHANGED_AT"
)
WATCHER_COLUMNS = (
    "WATCHER_NAME, SCHEMA_NAME, WATCHER_KIND, WATCH_TEXT, EXECUTOR_JOB, "
    "CHECK_INTERVAL_SECONDS, ACTIVE, DESCRIPTION, CHANGED_AT"
)
LOG_COLUMNS = (
    'RUN_ID, {name}, POOL_NAME, "STATE", QUEUED_AT, STARTED_AT, ENDED_AT, ROW_COUNT, MESSAGE, '
    "HOST, PID"
)
"""The columns of ADM_JOB_LOG / ADM_WATCHER_LOG; ``{name}`` is JOB_NAME or WATCHER_NAME."""
LOADER_COLUMNS = (
    "LOADER_NAME, FILE_PATTERN, SCHEMA_NAME, TABLE_NAME, FILE_FORMAT, FILE_ENCODING, "
    "COLUMN_SEPARATOR, QUOTE_CHAR, HEADER, NULL_STRING, DATE_FORMAT, TIMESTAMP_FORMAT, "
    "FIXED_WIDTH, MARKER, DUPLICATE_POLICY, ACTIVE, DESCRIPTION, LOAD_METHOD"
)
COLUMN_COLUMNS = (
    "LOADER_NAME, COL_POS, COL_NAME, COL_DATA_TYPE, COL_SOURCE, COL_SOURCE_POS, COL_FORMAT, "
    "COL_FBV_START, COL_FBV_SIZE"
)
LEDGER_COLUMNS = (
    "CLAIM_ID, CONTENT_SHA256, FILE_NAME, FILE_SIZE, TARGET, LOADER_NAME, RUN_ID, LOAD_STATUS, "
    "ROW_COUNT, LOADED_AT"
)


def as_int(value: object) -> int:
    """A whole number as fetched (int, float, or decimal text) as int."""
    if isinstance(value, int):
        return value
    text = str(value)
    return int(float(text)) if "." in text or "e" in text.lower() else int(text)


def opt_int(value: object) -> int | None:
    """Like :func:`as_int`; None stays None."""
    return None if value is None else as_int(value)


def log_table(watcher: bool) -> tuple[str, str]:
    """The run-log table and its name column."""
    return ("ADM_WATCHER_LOG", "WATCHER_NAME") if watcher else ("ADM_JOB_LOG", "JOB_NAME")


def log_columns(watcher: bool) -> str:
    """The columns :func:`run_from` reads, for jobs or watchers."""
    cols = LOG_COLUMNS.format(name=log_table(watcher)[1])
    return cols + (", WATCH_KEY, EXECUTOR_RUN_ID" if watcher else "")


def job_from(r: Sequence[Any], ts: TimestampParser) -> JobDef:
    """A row of :data:`JOB_COLUMNS`."""
    return JobDef(
        name=r[0], schema=r[1], kind=r[2], action=r[3], pool=r[4], schedule_type=r[5],
        interval_seconds=opt_int(r[6]), cron_expr=r[7], active=bool(r[8]),
        timeout_seconds=opt_int(r[9]), max_parallel=as_int(r[10]), misfire_policy=r[11],
        description=r[12], changed_at=ts(r[13]),
    )  # fmt: skip


def watcher_from(r: Sequence[Any], ts: TimestampParser) -> WatcherDef:
    """A row of :data:`WATCHER_COLUMNS`."""
    return WatcherDef(
        name=r[0], schema=r[1], kind=r[2], watch_text=r[3], executor_job=r[4],
        check_interval=as_int(r[5]), active=bool(r[6]), description=r[7], changed_at=ts(r[8]),
    )  # fmt: skip


def run_from(schema: str, r: Sequence[Any], watcher: bool, ts: TimestampParser) -> RunRecord:
    """A row of :func:`log_columns` of ``schema``."""
    queued = ts(r[4])
    assert queued is not None  # QUEUED_AT is NOT NULL
    return RunRecord(
        schema=schema, run_id=as_int(r[0]), name=r[1], pool=r[2], state=r[3], queued_at=queued,
        started_at=ts(r[5]), ended_at=ts(r[6]), rows=opt_int(r[7]), message=r[8], host=r[9],
        pid=opt_int(r[10]), watch_key=r[11] if watcher else None,
        executor_run_id=opt_int(r[12]) if watcher else None,
    )  # fmt: skip


def loader_values(loader: Loader) -> list[object]:
    """The values of :data:`LOADER_COLUMNS` for ``loader``."""
    return [
        loader.name, loader.pattern, loader.schema, loader.table, loader.format,
        loader.encoding, loader.delimiter, loader.quote, bool(loader.header), loader.null_string,
        loader.date_format, loader.timestamp_format, bool(loader.fixed_width), loader.marker,
        loader.duplicates, bool(loader.active), loader.description, loader.method,
    ]  # fmt: skip


def loader_from(row: Sequence[Any], columns: list[LoaderColumn]) -> Loader:
    """A row of :data:`LOADER_COLUMNS` with its column mapping."""
    (name, pattern, schema, table, fmt, enc, sep, quote, header, null, dfmt, tfmt, fixed,
     marker, dup, active, desc, method) = row  # fmt: skip
    return Loader(
        name=name, pattern=pattern, schema=schema, table=table, columns=tuple(columns),
        format=fmt, encoding=enc, delimiter=sep, quote=quote or None, header=bool(header),
        null_string=null or "", date_format=dfmt, timestamp_format=tfmt or "",
        fixed_width=bool(fixed), marker=marker, duplicates=dup, active=bool(active),
        description=desc, method=method or "TRANSPORT",
    )  # fmt: skip


def column_from(r: Sequence[Any]) -> LoaderColumn:
    """A row of :data:`COLUMN_COLUMNS`."""
    return LoaderColumn(r[2], r[3], r[4], opt_int(r[5]), r[6], opt_int(r[7]), opt_int(r[8]))


def ledger_from(row: Sequence[Any], ts: TimestampParser) -> LedgerEntry:
    """A row of :data:`LEDGER_COLUMNS`."""
    claim, sha, name, size, target, loader, run_id, status, rows, loaded_at = row
    return LedgerEntry(
        claim_id=claim, content_sha256=sha, file_name=name, file_size=as_int(size),
        target=target, loader=loader, run_id=as_int(run_id), status=status,
        row_count=as_int(rows), loaded_at=ts(loaded_at),
    )  # fmt: skip


def check_not_empty(table: str, values: dict[str, object]) -> None:
    """DictionaryError naming ``TABLE.COLUMN`` for ``''`` in a NOT NULL text column of the
    model (one without ``''`` as its default). Exasol stores ``''`` as NULL, which NOT NULL
    refuses; SQLite would keep it: both backends refuse it alike, before writing anything."""
    from redpss.dictionary.model import DICTIONARY
    from redpss.dictionary.objects import parse_type
    from redpss.errors import DictionaryError

    columns = {c.name: c for c in DICTIONARY.table(table).columns}
    for name, value in values.items():
        column = columns[name]
        text = parse_type(column.type).base == "VARCHAR"
        if value == "" and text and not column.nullable and column.default != "''":
            raise DictionaryError(
                f"{table}.{name} must not be empty (Exasol stores '' as NULL; the column is "
                "NOT NULL)"
            )


def check_definitions(jobs: Sequence[JobDef], watchers: Sequence[WatcherDef]) -> None:
    """:func:`check_not_empty` for the text columns of job and watcher definitions."""
    for j in jobs:
        check_not_empty("ADM_JOBS", {
            "JOB_NAME": j.name, "SCHEMA_NAME": j.schema, "JOB_KIND": j.kind,
            "ACTION_TEXT": j.action, "POOL_NAME": j.pool, "SCHEDULE_TYPE": j.schedule_type,
            "MISFIRE_POLICY": j.misfire_policy,
        })  # fmt: skip
    for w in watchers:
        check_not_empty("ADM_WATCHER", {
            "WATCHER_NAME": w.name, "SCHEMA_NAME": w.schema, "WATCHER_KIND": w.kind,
            "WATCH_TEXT": w.watch_text, "EXECUTOR_JOB": w.executor_job,
        })  # fmt: skip


def check_loader(loader: Loader) -> None:
    """:func:`check_not_empty` for the text columns of a loader and its column mapping."""
    check_not_empty("ADM_LOADER", {
        "LOADER_NAME": loader.name, "FILE_PATTERN": loader.pattern, "SCHEMA_NAME": loader.schema,
        "TABLE_NAME": loader.table, "FILE_ENCODING": loader.encoding,
        "COLUMN_SEPARATOR": loader.delimiter, "NULL_STRING": loader.null_string,
        "DATE_FORMAT": loader.date_format, "TIMESTAMP_FORMAT": loader.timestamp_format,
    })  # fmt: skip
    for c in loader.columns:
        check_not_empty("ADM_LOADER_COLUMN", {"COL_NAME": c.name, "COL_DATA_TYPE": c.type})
