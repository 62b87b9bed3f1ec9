"""Role status (``ADM_PSS_STATUS`` / ``STA_PSS_STATUS``) and ``LOG_MESSAGES`` in SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redpss.dictionary import base
from redpss.dictionary.base import RUNNING, STOPPED, LogMessage, RoleStart, RoleStatus
from redpss.dictionary.columns import PROBLEMS_SINCE, REDSYS, ROLE_STATES
from redpss.dictionary.sqlite.core import (
    DEFAULT_HEARTBEAT_INTERVAL,
    SqliteCore,
    _utcnow,
    from_db,
    to_db,
)
from redpss.dictionary.sqlite.ddl import status_select
from redpss.errors import DictionaryError


class SqliteStatus(SqliteCore):
    """Heartbeats of the roles and the ERROR/ALERT lines of the database."""

    _problems_column = False

    # -- role status -------------------------------------------------------------------------

    def register_role(
        self, role: str, *, pid: int, host: str, version: str, heartbeat_interval: float
    ) -> RoleStart:
        """Record that ``pid`` now runs ``role``; count an unclean exit of its predecessor."""
        now = to_db(_utcnow())
        with self._write(self._redsys) as conn:
            row = conn.execute(
                "SELECT PID, STATE, HEARTBEAT_AT, RESTARTS, LAST_EXIT, STARTED_AT "
                "FROM ADM_PSS_STATUS WHERE ROLE = ?",
                (role,),
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO ADM_PSS_STATUS (ROLE, STATE, PID, HOST, STARTED_AT, "
                    "HEARTBEAT_AT, HEARTBEAT_INTERVAL, RESTARTS, VERSION) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                    (role, RUNNING, pid, host, now, now, heartbeat_interval, version),
                )
                return RoleStart(previous_pid=None, unclean=False, restarts=0)
            old_pid, old_state, old_beat, restarts, last_exit, started = row
            same = base.same_process(old_pid, pid, from_db(started))
            unclean = old_state != STOPPED and not same
            if unclean:
                restarts += 1
                beat = from_db(old_beat)
                when = beat.isoformat(timespec="seconds") if beat else "never"
                last_exit = f"pid {old_pid} exited without stopping (last heartbeat {when})"
            conn.execute(
                "UPDATE ADM_PSS_STATUS SET STATE = ?, PID = ?, HOST = ?, STARTED_AT = ?, "
                "HEARTBEAT_AT = ?, HEARTBEAT_INTERVAL = ?, RESTARTS = ?, LAST_EXIT = ?, "
                "VERSION = ?, INFO = NULL WHERE ROLE = ?",
                (
                    RUNNING,
                    pid,
                    host,
                    started if same else now,
                    now,
                    heartbeat_interval,
                    restarts,
                    last_exit,
                    version,
                    role,
                ),
            )
            if self._has_problems(conn):  # the new process has said nothing yet
                conn.execute("UPDATE ADM_PSS_STATUS SET PROBLEMS = NULL WHERE ROLE = ?", (role,))
        return RoleStart(previous_pid=old_pid, unclean=unclean, restarts=restarts)

    def heartbeat(
        self,
        role: str,
        *,
        pid: int,
        state: str = RUNNING,
        info: str | None = None,
        problems: str | None = None,
    ) -> bool:
        """Refresh ``role``'s heartbeat if ``pid`` owns the row; create the row if none."""
        if state not in ROLE_STATES:
            raise DictionaryError(f"unknown role state {state!r}; expected one of {ROLE_STATES}")
        now = to_db(_utcnow())
        with self._write(self._redsys, keep=True) as conn:
            # a dictionary not yet upgraded to PROBLEMS_SINCE has no PROBLEMS column
            if self._has_problems(conn):
                info_set, info_cols, info_marks = "INFO = ?, PROBLEMS = ?", "INFO, PROBLEMS", "?, ?"
                infos: tuple[str | None, ...] = (info, problems)
            else:
                info_set, info_cols, info_marks, infos = "INFO = ?", "INFO", "?", (info,)
            cur = conn.execute(
                f"UPDATE ADM_PSS_STATUS SET HEARTBEAT_AT = ?, STATE = ?, {info_set} "
                "WHERE ROLE = ? AND PID = ?",
                (now, state, *infos, role, pid),
            )
            if cur.rowcount:
                return True
            cur = conn.execute(
                "INSERT INTO ADM_PSS_STATUS (ROLE, STATE, PID, STARTED_AT, HEARTBEAT_AT, "
                f"HEARTBEAT_INTERVAL, RESTARTS, {info_cols}) "
                f"VALUES (?, ?, ?, ?, ?, ?, 0, {info_marks}) ON CONFLICT (ROLE) DO NOTHING",
                (role, state, pid, now, now, DEFAULT_HEARTBEAT_INTERVAL, *infos),
            )
            return bool(cur.rowcount)

    def _has_problems(self, conn: sqlite3.Connection) -> bool:
        """Whether ADM_PSS_STATUS has the PROBLEMS column (PROBLEMS_SINCE); remembered once seen."""
        if not self._problems_column:
            self._problems_column = self._file_version(conn, REDSYS) >= PROBLEMS_SINCE
        return self._problems_column

    def role_stopped(self, role: str, *, pid: int, exit_info: str = "stopped") -> None:
        """Mark ``role`` STOPPED with LAST_EXIT ``exit_info`` if process ``pid`` owns it."""
        with self._write(self._redsys) as conn:
            conn.execute(
                "UPDATE ADM_PSS_STATUS SET STATE = ?, LAST_EXIT = ? WHERE ROLE = ? AND PID = ?",
                (STOPPED, exit_info, role, pid),
            )

    def reset_status(self) -> None:
        """Delete every role's status row."""
        with self._write(self._redsys) as conn:
            conn.execute("DELETE FROM ADM_PSS_STATUS")

    def identity_stamp(self, instance: str) -> str | None:
        """The identity stamp of ``instance``; None when it has none."""
        with self._connect(self._redsys) as conn:
            row = conn.execute(
                "SELECT STAMP FROM ADM_PSS_IDENTITY WHERE INSTANCE_NAME = ?", (instance,)
            ).fetchone()
        return None if row is None else str(row[0])

    def write_identity_stamp(self, instance: str, stamp: str, *, host: str, version: str) -> None:
        """Replace the identity stamp of ``instance``."""
        with self._write(self._redsys) as conn:
            conn.execute("DELETE FROM ADM_PSS_IDENTITY WHERE INSTANCE_NAME = ?", (instance,))
            conn.execute(
                "INSERT INTO ADM_PSS_IDENTITY (INSTANCE_NAME, STAMP, STAMPED_AT, HOST, "
                "REDPSS_VERSION) VALUES (?, ?, ?, ?, ?)",
                (instance, stamp, to_db(_utcnow()), host, version),
            )

    def pss_status(self, now: datetime | None = None) -> list[RoleStatus]:
        """Return ``STA_PSS_STATUS`` sorted by role; with ``now``, ages are measured then."""
        with self._connect(self._redsys) as conn:
            if now is None:
                cur = conn.execute("SELECT * FROM STA_PSS_STATUS ORDER BY ROLE")
            else:
                sql = status_select(self.model, self._file_version(conn, REDSYS), "?")
                cur = conn.execute(f"{sql} ORDER BY ROLE", (to_db(now),))
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return [_role_status(dict(zip(names, row, strict=True))) for row in rows]

    # -- log messages ------------------------------------------------------------------------

    def log_message(
        self,
        schema: str,
        *,
        level: str,
        message: str,
        source: str | None = None,
        ts: datetime | None = None,
    ) -> int:
        """Append a line to ``schema.LOG_MESSAGES``; return its MESSAGE_ID."""
        base.check_log_level(level)
        with self._write(self._schema_path(schema)) as conn:
            cur = conn.execute(
                "INSERT INTO LOG_MESSAGES (LOG_TS, SCHEMA_NAME, MSG_LEVEL, SOURCE, MESSAGE) "
                "VALUES (?, ?, ?, ?, ?)",
                (to_db(ts or _utcnow()), schema, level, source, message),
            )
            return int(cur.lastrowid or 0)

    def all_log_messages(
        self,
        limit: int = 100,
        *,
        schema: str | None = None,
        levels: tuple[str, ...] | None = None,
        since: datetime | None = None,
    ) -> list[LogMessage]:
        """Return the newest ``limit`` lines over all target schemas, newest first (one query
        per schema file: SQLite views cannot span files; docs/dictionary.md)."""
        where, params = log_filter(levels, since)
        found: list[LogMessage] = []
        for name in self.schemas() if schema is None else [schema.upper()]:
            path = self._schema_path(name)
            if not path.exists():
                continue
            with self._connect(path) as conn:
                rows = conn.execute(
                    "SELECT MESSAGE_ID, LOG_TS, SCHEMA_NAME, MSG_LEVEL, SOURCE, MESSAGE "
                    f"FROM LOG_MESSAGES{where} ORDER BY LOG_TS DESC, MESSAGE_ID DESC LIMIT ?",
                    (*params, limit),
                ).fetchall()
            found.extend(_log_message(row) for row in rows)
        found.sort(key=lambda m: (m.log_ts, m.schema, m.message_id), reverse=True)
        return found[:limit]


def log_filter(
    levels: tuple[str, ...] | None, since: datetime | None
) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause (with its leading space, or "") and parameters of a LOG_MESSAGES read."""
    terms: list[str] = []
    params: list[Any] = []
    if levels:
        for level in levels:
            base.check_log_level(level)
        terms.append(f"MSG_LEVEL IN ({', '.join('?' for _ in levels)})")
        params.extend(levels)
    if since is not None:
        terms.append("LOG_TS >= ?")
        params.append(to_db(since))
    return (" WHERE " + " AND ".join(terms) if terms else ""), tuple(params)


def _role_status(row: dict[str, Any]) -> RoleStatus:
    return RoleStatus(
        role=row["ROLE"],
        state=row["STATE"],
        pid=row["PID"],
        host=row["HOST"],
        started_at=from_db(row["STARTED_AT"]),
        heartbeat_at=from_db(row["HEARTBEAT_AT"]),
        heartbeat_interval=float(row["HEARTBEAT_INTERVAL"]),
        restarts=int(row["RESTARTS"]),
        last_exit=row["LAST_EXIT"],
        version=row["VERSION"],
        info=row["INFO"],
        heartbeat_age=row["HEARTBEAT_AGE"],
        alert=int(row["ALERT"]),
        alert_reason=row["ALERT_REASON"],
        problems=row.get("PROBLEMS"),
    )


def _log_message(row: Sequence[Any]) -> LogMessage:
    message_id, log_ts, schema, level, source, message = row
    ts = from_db(log_ts)
    assert ts is not None  # LOG_TS is NOT NULL
    return LogMessage(int(message_id), ts, schema, level, source, message)
