"""Watcher executor errors in SQLite (ADM_WATCHER_EXEC_ERROR of each schema file).

A part of the jobs area of its own: the counts that block a watcher's key until
``we_reset_error``, written by sched and read by redctl and REST.
"""

from __future__ import annotations

from redpss.dictionary.jobs import ExecError
from redpss.dictionary.rows import check_not_empty
from redpss.dictionary.sqlite.core import SqliteCore, _utcnow, from_db, to_db

__all__ = ["SqliteExecErrors"]


class SqliteExecErrors(SqliteCore):
    """Executor errors of the watchers, per schema file."""

    def record_exec_error(self, schema: str, watcher: str, key: str, message: str) -> int:
        """Count a failed executor run; return the new count."""
        check_not_empty("ADM_WATCHER_EXEC_ERROR", {"WATCHER_NAME": watcher, "WATCH_KEY": key})
        path = self.ensure_ready(schema)
        now = to_db(_utcnow())
        with self._write(path) as conn:
            conn.execute(
                "INSERT INTO ADM_WATCHER_EXEC_ERROR (WATCHER_NAME, WATCH_KEY, ERROR_COUNT, "
                "FIRST_SEEN, LAST_SEEN, LAST_MESSAGE) VALUES (?, ?, 1, ?, ?, ?) "
                "ON CONFLICT (WATCHER_NAME, WATCH_KEY) DO UPDATE SET "
                "ERROR_COUNT = ERROR_COUNT + 1, LAST_SEEN = excluded.LAST_SEEN, "
                "LAST_MESSAGE = excluded.LAST_MESSAGE",
                (watcher, key, now, now, message),
            )
            row = conn.execute(
                "SELECT ERROR_COUNT FROM ADM_WATCHER_EXEC_ERROR "
                "WHERE WATCHER_NAME = ? AND WATCH_KEY = ?",
                (watcher, key),
            ).fetchone()
        return int(row[0])

    def exec_errors(self, watcher: str | None = None) -> list[ExecError]:
        """Executor errors over all schemas, newest first."""
        found: list[ExecError] = []
        for s in self.schemas():
            with self._connect(self._schema_path(s)) as conn:
                rows = conn.execute(
                    "SELECT WATCHER_NAME, WATCH_KEY, ERROR_COUNT, FIRST_SEEN, LAST_SEEN, "
                    "LAST_MESSAGE FROM ADM_WATCHER_EXEC_ERROR "
                    "WHERE ? IS NULL OR WATCHER_NAME = ?",
                    (watcher, watcher),
                ).fetchall()
            for r in rows:
                first, last = from_db(r[3]), from_db(r[4])
                assert first is not None and last is not None
                found.append(ExecError(s, r[0], r[1], int(r[2]), first, last, r[5]))
        found.sort(key=lambda e: e.last_seen, reverse=True)
        return found

    def reset_exec_errors(self, watcher: str | None = None, key: str | None = None) -> int:
        """Delete executor errors (all, of a watcher, or of one key); return how many."""
        count = 0
        for s in self.schemas():
            with self._write(self._schema_path(s)) as conn:
                count += conn.execute(
                    "DELETE FROM ADM_WATCHER_EXEC_ERROR WHERE (? IS NULL OR WATCHER_NAME = ?) "
                    "AND (? IS NULL OR WATCH_KEY = ?)",
                    (watcher, watcher, key, key),
                ).rowcount
        return count
