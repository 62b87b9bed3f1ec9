"""The change log of the definitions in SQLite: triggers write it, jmon and sched read it.

Every insert, update and delete of a row of ``ADM_JOBS`` or ``ADM_WATCHER`` — by redpss or by a
user's plain SQL — adds a row to ``ADM_DEFINITION_LOG`` in the same transaction (SQLite's
row triggers; a ``DELETE`` without ``WHERE`` fires them too, SQLite skips its truncate
optimisation on a table with triggers). A reader's stamp is the newest ``CHANGE_ID``: one
look at the end of an index, whatever the number of definitions, where the hash over every
row it replaces cost about 5 ms per 1 000 definitions per look. After a change the reader
fetches the rows of the names logged since its stamp, in the same read transaction.

``CHANGE_ID`` is an ``INTEGER PRIMARY KEY`` (the next id is the largest plus one): the purge
keeps the newest row, so an id is never given twice; a reader whose stamp is older than the
oldest row kept, or that comes from another file (the stamp carries when the log was
created), reads everything again.
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = [
    "DEFINITION_LOG",
    "MAX_CHANGES",
    "definition_log_triggers",
    "read_changes",
    "read_stamp",
]

DEFINITION_LOG = "ADM_DEFINITION_LOG"
MAX_CHANGES = 1000
"""More changed names than this since a stamp: reading everything is cheaper."""

# the text of to_db(): ISO 8601 UTC with microseconds and offset (SQLite has milliseconds)
_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000+00:00'"
_TABLES = (("ADM_JOBS", "JOB_NAME", "JOB"), ("ADM_WATCHER", "WATCHER_NAME", "WATCHER"))
_INSERT = f"INSERT INTO {DEFINITION_LOG} (DEFINITION_KIND, DEFINITION_NAME, CHANGED_AT)"


def definition_log_triggers() -> list[str]:
    """The triggers that write the change log (``IF NOT EXISTS``: safe to run again)."""
    statements = []
    for table, key, kind in _TABLES:
        prefix = f"CREATE TRIGGER IF NOT EXISTS {table}_LOG"
        statements += [
            f"{prefix}_INSERT AFTER INSERT ON {table} BEGIN "
            f"{_INSERT} VALUES ('{kind}', NEW.{key}, {_NOW}); END",
            # a rename logs both names: the old one is gone, the new one is there
            f"{prefix}_UPDATE AFTER UPDATE ON {table} BEGIN "
            f"{_INSERT} SELECT '{kind}', NEW.{key}, {_NOW} "
            f"UNION SELECT '{kind}', OLD.{key}, {_NOW}; END",
            f"{prefix}_DELETE AFTER DELETE ON {table} BEGIN "
            f"{_INSERT} VALUES ('{kind}', OLD.{key}, {_NOW}); END",
        ]
    return statements


def _origin(conn: sqlite3.Connection, version: int) -> str | None:
    row = conn.execute(
        "SELECT APPLIED_AT FROM ADM_VERSION_HISTORY WHERE SCHEMA_NAME = 'REDSYS' AND VERSION = ?",
        (version,),
    ).fetchone()
    return None if row is None else str(row[0])


def read_stamp(conn: sqlite3.Connection, version: int) -> str | None:
    """``log:<when the log was made>:<newest change id>``; None when the dictionary has no
    change log yet (older than ``version``)."""
    origin = _origin(conn, version)
    if origin is None:
        return None
    newest = conn.execute(f"SELECT MAX(CHANGE_ID) FROM {DEFINITION_LOG}").fetchone()[0]
    return f"log:{origin}:{newest or 0}"


def read_changes(
    conn: sqlite3.Connection, version: int, since: str, job_columns: str, watcher_columns: str
) -> tuple[str, list[Any], list[Any], set[tuple[str, str]]] | None:
    """What changed after stamp ``since``, read in one transaction of ``conn``: the new stamp,
    the rows of the changed jobs and watchers that exist now, and every changed (kind, name).
    None when the log cannot say (another log, a gap, too many changes)."""
    conn.execute("BEGIN")  # one snapshot: the stamp and the rows agree
    try:
        stamp = read_stamp(conn, version)
        if stamp is None:
            return None
        head, _, since_id = since.rpartition(":")
        now_head, _, newest = stamp.rpartition(":")
        if head != now_head or not since_id.isdigit() or int(since_id) > int(newest):
            return None
        after = int(since_id)
        if after == int(newest):
            return stamp, [], [], set()
        oldest = conn.execute(f"SELECT MIN(CHANGE_ID) FROM {DEFINITION_LOG}").fetchone()[0]
        if oldest is None or oldest > after + 1:
            return None  # purged past the stamp
        names = {
            (str(kind), str(name))
            for kind, name in conn.execute(
                f"SELECT DISTINCT DEFINITION_KIND, DEFINITION_NAME FROM {DEFINITION_LOG} "
                "WHERE CHANGE_ID > ? LIMIT ?",
                (after, MAX_CHANGES + 1),
            )
        }
        if len(names) > MAX_CHANGES:
            return None
        changed = (
            f"(SELECT DEFINITION_NAME FROM {DEFINITION_LOG} WHERE CHANGE_ID > ? "
            "AND DEFINITION_KIND = ?)"
        )
        jobs = conn.execute(
            f"SELECT {job_columns} FROM ADM_JOBS WHERE JOB_NAME IN {changed}", (after, "JOB")
        ).fetchall()
        watchers = conn.execute(
            f"SELECT {watcher_columns} FROM ADM_WATCHER WHERE WATCHER_NAME IN {changed}",
            (after, "WATCHER"),
        ).fetchall()
        return stamp, jobs, watchers, names
    finally:
        conn.execute("COMMIT")
