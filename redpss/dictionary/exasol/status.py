"""Role status (``ADM_PSS_STATUS`` / ``STA_PSS_STATUS``) and ``LOG_MESSAGES`` on Exasol."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from redpss.dictionary import base
from redpss.dictionary.base import (
    RUNNING,
    STOPPED,
    LogMessage,
    RoleStart,
    RoleStatus,
    check_schema_name,
)
from redpss.dictionary.columns import PROBLEMS_SINCE, ROLE_STATES
from redpss.dictionary.exasol.core import ExasolCore, utcnow
from redpss.dictionary.exasol.ddl import epoch_seconds, status_select
from redpss.dictionary.exasol.session import Tx
from redpss.dictionary.exasol.sqltext import from_db, literal
from redpss.dictionary.rows import as_int, opt_int
from redpss.errors import DictionaryError

DEFAULT_HEARTBEAT_INTERVAL = 5.0

_STATUS_COLUMNS = (
    'ROLE, "STATE", PID, HOST, STARTED_AT, HEARTBEAT_AT, HEARTBEAT_INTERVAL, RESTARTS, '
    "LAST_EXIT, VERSION, INFO, HEARTBEAT_AGE, ALERT, ALERT_REASON"
)
_PROBLEMS_COLUMN = ", PROBLEMS"  # from dictionary version PROBLEMS_SINCE

ROLE_ROW_SQL = (
    'SELECT PID, "STATE", HEARTBEAT_AT, RESTARTS, LAST_EXIT, STARTED_AT '
    "FROM REDSYS.ADM_PSS_STATUS WHERE ROLE = {role}"
)
ROLE_INSERT_SQL = (
    'INSERT INTO REDSYS.ADM_PSS_STATUS (ROLE, "STATE", PID, HOST, STARTED_AT, HEARTBEAT_AT, '
    "HEARTBEAT_INTERVAL, RESTARTS, VERSION) "
    "VALUES ({role}, {state}, {pid}, {host}, {now}, {now}, {interval}, 0, {version})"
)
ROLE_REGISTER_SQL = (
    'UPDATE REDSYS.ADM_PSS_STATUS SET "STATE" = {state}, PID = {pid}, HOST = {host}, '
    "STARTED_AT = {started}, HEARTBEAT_AT = {now}, HEARTBEAT_INTERVAL = {interval}, "
    "RESTARTS = {restarts}, LAST_EXIT = {last_exit}, VERSION = {version}, INFO = NULL "
    "WHERE ROLE = {role}"
)
HEARTBEAT_SQL = (
    'UPDATE REDSYS.ADM_PSS_STATUS SET HEARTBEAT_AT = {now}, "STATE" = {state}, INFO = {info} '
    "WHERE ROLE = {role} AND PID = {pid}"
)
HEARTBEAT_PROBLEMS_SQL = (
    'UPDATE REDSYS.ADM_PSS_STATUS SET HEARTBEAT_AT = {now}, "STATE" = {state}, INFO = {info}, '
    "PROBLEMS = {problems} WHERE ROLE = {role} AND PID = {pid}"
)
ROLE_PROBLEMS_RESET_SQL = "UPDATE REDSYS.ADM_PSS_STATUS SET PROBLEMS = NULL WHERE ROLE = {role}"
HEARTBEAT_NEW_ROW_SQL = (
    "MERGE INTO REDSYS.ADM_PSS_STATUS T USING (SELECT {role} AS ROLE FROM DUAL) S "
    'ON T.ROLE = S.ROLE WHEN NOT MATCHED THEN INSERT (ROLE, "STATE", PID, STARTED_AT, '
    "HEARTBEAT_AT, HEARTBEAT_INTERVAL, RESTARTS, INFO) "
    "VALUES ({role}, {state}, {pid}, {now}, {now}, {interval}, 0, {info})"
)
ROLE_STOPPED_SQL = (
    'UPDATE REDSYS.ADM_PSS_STATUS SET "STATE" = {state}, LAST_EXIT = {exit_info} '
    "WHERE ROLE = {role} AND PID = {pid}"
)
RESET_STATUS_SQL = "DELETE FROM REDSYS.ADM_PSS_STATUS"
IDENTITY_SQL = "SELECT STAMP FROM REDSYS.ADM_PSS_IDENTITY WHERE INSTANCE_NAME = {instance}"
IDENTITY_DELETE_SQL = "DELETE FROM REDSYS.ADM_PSS_IDENTITY WHERE INSTANCE_NAME = {instance}"
IDENTITY_INSERT_SQL = (
    "INSERT INTO REDSYS.ADM_PSS_IDENTITY (INSTANCE_NAME, STAMP, STAMPED_AT, HOST, "
    "REDPSS_VERSION) VALUES ({instance}, {stamp}, {now}, {host}, {version})"
)
PSS_STATUS_SQL = "SELECT {columns!r} FROM REDSYS.STA_PSS_STATUS ORDER BY ROLE"
PSS_STATUS_AT_SQL = "SELECT {columns!r} FROM ({select!r}) ORDER BY ROLE"
LOG_INSERT_SQL = (
    'INSERT INTO {schema!q}.LOG_MESSAGES (LOG_TS, SCHEMA_NAME, MSG_LEVEL, "SOURCE", MESSAGE) '
    "VALUES ({ts}, {schema}, {level}, {source}, {message})"
)
LOG_LAST_ID_SQL = "SELECT MAX(MESSAGE_ID) FROM {schema!q}.LOG_MESSAGES"
LOG_NEWEST_SQL = (
    'SELECT MESSAGE_ID, LOG_TS, SCHEMA_NAME, MSG_LEVEL, "SOURCE", MESSAGE '
    "FROM {schema!q}.LOG_MESSAGES{filters!r} ORDER BY LOG_TS DESC, MESSAGE_ID DESC LIMIT {limit}"
)

EMPTY_MESSAGE = "(empty message)"
"""What an empty log line is stored as: Exasol's '' is NULL, and MESSAGE is NOT NULL."""


class ExasolStatus(ExasolCore):
    """Heartbeats of the roles and the ERROR/ALERT lines of the database."""

    def register_role(
        self, role: str, *, pid: int, host: str, version: str, heartbeat_interval: float
    ) -> RoleStart:
        """Record that ``pid`` now runs ``role``; count an unclean exit of its predecessor."""
        now = utcnow()

        def unit(tx: Tx) -> RoleStart:
            rows = tx.rows(ROLE_ROW_SQL, role=role)
            common = {"role": role, "pid": pid, "host": host, "now": now}
            common |= {"interval": float(heartbeat_interval), "version": version}
            if not rows:
                tx.execute(ROLE_INSERT_SQL, state=RUNNING, **common)
                return RoleStart(previous_pid=None, unclean=False, restarts=0)
            old_pid, old_state, old_beat, restarts, last_exit, started = rows[0]
            old_pid, restarts = opt_int(old_pid), as_int(restarts)
            same = base.same_process(old_pid, pid, from_db(started))
            unclean = old_state != STOPPED and not same
            if unclean:
                restarts += 1
                beat = from_db(old_beat)
                when = beat.isoformat(timespec="seconds") if beat else "never"
                last_exit = f"pid {old_pid} exited without stopping (last heartbeat {when})"
            tx.execute(
                ROLE_REGISTER_SQL,
                state=RUNNING,
                started=from_db(started) if same else now,
                restarts=restarts,
                last_exit=last_exit,
                **common,
            )
            if self._has_problems(tx):  # the new process has said nothing yet
                tx.execute(ROLE_PROBLEMS_RESET_SQL, role=role)
            return RoleStart(previous_pid=old_pid, unclean=unclean, restarts=restarts)

        return self.tx(unit, what=f"registering role {role}")

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
        params: dict[str, Any] = {"role": role, "pid": pid, "state": state, "info": info}
        params["now"] = utcnow()

        def unit(tx: Tx) -> bool:
            if self._has_problems(tx):
                if tx.execute(HEARTBEAT_PROBLEMS_SQL, problems=problems, **params):
                    return True
            elif tx.execute(HEARTBEAT_SQL, **params):
                return True
            return bool(
                tx.execute(HEARTBEAT_NEW_ROW_SQL, interval=DEFAULT_HEARTBEAT_INTERVAL, **params)
            )

        return self.tx(unit, what=f"heartbeat of {role}")

    _problems_column = False

    def _has_problems(self, tx: Tx) -> bool:
        """Whether ADM_PSS_STATUS has the PROBLEMS column (PROBLEMS_SINCE); remembered once seen."""
        if not self._problems_column:
            self._problems_column = self._version_in(tx, "REDSYS") >= PROBLEMS_SINCE
        return self._problems_column

    def role_stopped(self, role: str, *, pid: int, exit_info: str = "stopped") -> None:
        """Mark ``role`` STOPPED with LAST_EXIT ``exit_info`` if process ``pid`` owns it."""
        self.tx(
            lambda tx: tx.execute(
                ROLE_STOPPED_SQL, state=STOPPED, exit_info=exit_info, role=role, pid=pid
            ),
            what=f"stopping role {role}",
        )

    def reset_status(self) -> None:
        """Delete every role's status row."""
        self.tx(lambda tx: tx.execute(RESET_STATUS_SQL), what="resetting the role status")

    def identity_stamp(self, instance: str) -> str | None:
        """The identity stamp of ``instance``; None when it has none."""
        rows = self.tx(
            lambda tx: tx.rows(IDENTITY_SQL, instance=instance), what="reading the identity stamp"
        )
        return None if not rows else str(rows[0][0])

    def write_identity_stamp(self, instance: str, stamp: str, *, host: str, version: str) -> None:
        """Replace the identity stamp of ``instance``."""
        now = utcnow()

        def unit(tx: Tx) -> None:
            tx.execute(IDENTITY_DELETE_SQL, instance=instance)
            tx.execute(IDENTITY_INSERT_SQL, instance=instance, stamp=stamp, now=now, host=host,
                       version=version)  # fmt: skip

        self.tx(unit, what="writing the identity stamp")

    def pss_status(self, now: datetime | None = None) -> list[RoleStatus]:
        """Return ``STA_PSS_STATUS`` sorted by role; with ``now``, ages are measured then."""

        def unit(tx: Tx) -> list[tuple[Any, ...]]:
            columns = _STATUS_COLUMNS + (_PROBLEMS_COLUMN if self._has_problems(tx) else "")
            if now is None:
                return tx.rows(PSS_STATUS_SQL, columns=columns)
            moment = epoch_seconds(tx.literal(now))
            select = status_select(self.model, self._version_in(tx, "REDSYS"), moment)
            return tx.rows(PSS_STATUS_AT_SQL, columns=columns, select=select)

        return [_role_status(r) for r in self.tx(unit, what="reading STA_PSS_STATUS")]

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
        check_schema_name(schema)
        values: dict[str, object] = {"schema": schema, "level": level, "source": source or None}
        values |= {"message": message or EMPTY_MESSAGE, "ts": ts or utcnow()}

        def unit(tx: Tx) -> int:
            known = schema in self._ready or schema in self._existing
            if not known and not self._version_in(tx, schema):
                raise DictionaryError(
                    f"target schema {schema} does not exist in the database at "
                    f"{self.settings.dsn}; a role creates it before it first writes there"
                )
            tx.execute(LOG_INSERT_SQL, **values)
            self._existing.add(schema)
            # serializable isolation: the newest id this transaction sees is its own
            return as_int(tx.value(LOG_LAST_ID_SQL, schema=schema))

        return self.tx(unit, what=f"logging to {schema}.LOG_MESSAGES")

    def all_log_messages(
        self,
        limit: int = 100,
        *,
        schema: str | None = None,
        levels: tuple[str, ...] | None = None,
        since: datetime | None = None,
    ) -> list[LogMessage]:
        """Return the newest ``limit`` lines over all target schemas, newest first."""
        known = self.schemas()
        schemas = known if schema is None else [s for s in known if s == schema.upper()]
        filters = log_filter(levels, since)

        def unit(tx: Tx) -> list[LogMessage]:
            found: list[LogMessage] = []
            for name in schemas:
                rows = tx.rows(LOG_NEWEST_SQL, schema=name, limit=int(limit), filters=filters)
                found.extend(_log_message(r) for r in rows)
            return found

        found = self.tx(unit, what="reading LOG_MESSAGES")
        found.sort(key=lambda m: (m.log_ts, m.schema, m.message_id), reverse=True)
        return found[:limit]


def log_filter(levels: tuple[str, ...] | None, since: datetime | None) -> str:
    """The WHERE clause (with its leading space, or "") of a LOG_MESSAGES read: levels are
    checked against the known ones first, the time is a UTC TIMESTAMP literal."""
    terms: list[str] = []
    if levels:
        checked = [base.check_log_level(level) for level in levels]
        terms.append(f"MSG_LEVEL IN ({', '.join(literal(v) for v in checked)})")
    if since is not None:
        terms.append(f"LOG_TS >= {literal(since)}")
    return " WHERE " + " AND ".join(terms) if terms else ""


def _role_status(row: tuple[Any, ...]) -> RoleStatus:
    (role, state, pid, host, started, beat, interval, restarts, last_exit, version, info, age,
     alert, reason) = row[:14]  # fmt: skip
    problems = row[14] if len(row) > 14 else None
    return RoleStatus(
        role=role,
        state=state,
        pid=opt_int(pid),
        host=host,
        started_at=from_db(started),
        heartbeat_at=from_db(beat),
        heartbeat_interval=float(interval),
        restarts=as_int(restarts),
        last_exit=last_exit,
        version=version,
        info=info,
        heartbeat_age=None if age is None else float(age),
        alert=as_int(alert),
        alert_reason=reason,
        problems=problems,
    )


def _log_message(row: tuple[Any, ...]) -> LogMessage:
    message_id, log_ts, schema, level, source, message = row
    ts = from_db(log_ts)
    assert ts is not None  # LOG_TS is NOT NULL
    return LogMessage(as_int(message_id), ts, schema, level, source, message)
