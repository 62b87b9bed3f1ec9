"""The embedded dictionary: SQLite, one database file per schema.

``<db_dir>/REDSYS.db`` holds the REDSYS objects, ``<db_dir>/<SCHEMA>.db`` those of a target
schema. Every file is in WAL mode, so readers never wait for writers; every write runs in a
``BEGIN IMMEDIATE`` transaction, so a writer takes the write lock up front and waits for it
with the busy timeout instead of failing half-way with "database is locked".

Connections are opened and closed per call. That costs well under a millisecond, is safe
across threads and across ``fork``, and leaves no connection to leak; the callers (heartbeats
every few seconds, the CLI, log writes) are far from needing a pool.

Every file carries its own ``ADM_VERSION_HISTORY`` (a file is migrated on its own); on Exasol
there is one, in REDSYS, keyed by schema. This is the only module with SQLite SQL in it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redpss import __version__
from redpss.dictionary.base import (
    DOWN_STATES,
    RUNNING,
    STOPPED,
    SUSPENDED,
    Dictionary,
    LogMessage,
    RoleStart,
    RoleStatus,
)
from redpss.dictionary.model import (
    DICTIONARY,
    LOG_LEVELS,
    REDSYS,
    ROLE_STATES,
    Column,
    Migration,
    Model,
    Scope,
    Table,
    View,
    parse_type,
)
from redpss.errors import DictionaryError, MigrationError

SCHEMA_NAME_RE = re.compile(r"[A-Z][A-Z0-9_]{0,127}")
DEFAULT_HEARTBEAT_INTERVAL = 5.0
"""HEARTBEAT_INTERVAL of a row created by a heartbeat without a registration."""

_VERSION_TABLE = "ADM_VERSION_HISTORY"

# -- DDL from the model -----------------------------------------------------------------------


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
    for cols in table.indexes:
        index = f"{table.name}_{'_'.join(cols)}_IX"
        statements.append(f"CREATE INDEX IF NOT EXISTS {index} ON {table.name} ({', '.join(cols)})")
    return statements


# STA_PSS_STATUS: the ALERT rule of base.compute_alert, in SQL. ``{now}`` is ``'now'`` in the
# view and a bound parameter when the caller asks for another time.
_STATUS_SQL = """SELECT {columns},
    HEARTBEAT_AGE,
    CASE
        WHEN STATE IN ({down}) THEN 2
        WHEN HEARTBEAT_AGE > 3 * HEARTBEAT_INTERVAL THEN 2
        WHEN HEARTBEAT_AGE > 2 * HEARTBEAT_INTERVAL THEN 1
        WHEN RESTARTS > 0 THEN 1
        WHEN STATE = '{suspended}' THEN 1
        ELSE 0
    END AS ALERT,
    CASE
        WHEN STATE IN ({down}) THEN 'state ' || STATE || COALESCE(': ' || LAST_EXIT, '')
        WHEN HEARTBEAT_AGE > 3 * HEARTBEAT_INTERVAL
            THEN 'no heartbeat for ' || CAST(HEARTBEAT_AGE AS INTEGER) || ' s'
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


def view_ddl(view: View, model: Model, version: int) -> str:
    """Return the ``CREATE VIEW`` statement of ``view`` as of ``version``."""
    if view.name == "STA_PSS_STATUS":
        return f"CREATE VIEW {view.name} AS\n{_status_select(model, version, 'now')}"
    if view.extra:
        raise MigrationError(f"the SQLite backend does not know how to compute {view.name}")
    return f"CREATE VIEW {view.name} AS SELECT * FROM {view.base}"


def _status_select(model: Model, version: int, now: str) -> str:
    base = model.table("ADM_PSS_STATUS")
    return _STATUS_SQL.format(
        columns=", ".join(c.name for c in base.columns_at(version)),
        down=", ".join(f"'{s}'" for s in DOWN_STATES),
        suspended=SUSPENDED,
        now="'now'" if now == "now" else "?",
        base=base.name,
    )


# -- values ----------------------------------------------------------------------------------


def to_db(value: datetime) -> str:
    """Format an aware datetime as stored: ISO 8601 UTC, microseconds, ``+00:00``."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the dictionary stores UTC only")
    return value.astimezone(UTC).isoformat(sep=" ", timespec="microseconds")


def from_db(value: str | None) -> datetime | None:
    """Parse a stored timestamp back into an aware UTC datetime."""
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def check_schema_name(schema: str) -> str:
    """Return ``schema`` if it is a valid target schema name, else raise DictionaryError."""
    if not SCHEMA_NAME_RE.fullmatch(schema) or schema == REDSYS:
        raise DictionaryError(
            f"invalid target schema name {schema!r}: expected an upper-case identifier "
            "[A-Z][A-Z0-9_]{0,127} other than REDSYS"
        )
    return schema


# -- the backend -----------------------------------------------------------------------------


class SqliteDictionary(Dictionary):
    """The dictionary in SQLite files under ``db_dir`` (see the module docstring)."""

    def __init__(
        self, db_dir: Path, *, busy_timeout: float = 10.0, model: Model = DICTIONARY
    ) -> None:
        self.db_dir = Path(db_dir)
        self.busy_timeout = busy_timeout
        self.model = model
        self._redsys = self.db_dir / f"{REDSYS}.db"

    def __repr__(self) -> str:
        return f"SqliteDictionary(db_dir={str(self.db_dir)!r})"

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def _connect(self, path: Path, *, create: bool = False) -> Iterator[sqlite3.Connection]:
        """Yield an autocommit connection to ``path``; translate sqlite3 errors."""
        if not create and not path.exists():
            what = "the dictionary" if path == self._redsys else f"target schema {path.stem}"
            raise DictionaryError(f"{what} does not exist in {self.db_dir}; run redctl db init")
        try:
            if create:
                self.db_dir.mkdir(parents=True, exist_ok=True)
            uri = f"{path.resolve().as_uri()}?mode={'rwc' if create else 'rw'}"
            conn = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise DictionaryError(f"cannot open {path}: {exc}") from exc
        with closing(conn):
            try:
                conn.execute("PRAGMA synchronous = NORMAL")
                yield conn
            except sqlite3.Error as exc:
                raise DictionaryError(f"{path.name}: {exc}") from exc

    @contextmanager
    def _write(self, path: Path, *, create: bool = False) -> Iterator[sqlite3.Connection]:
        """Yield a connection inside ``BEGIN IMMEDIATE``; commit on success, else roll back."""
        with self._connect(path, create=create) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # some errors end the transaction themselves
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- migrations --------------------------------------------------------------------------

    def _file_version(self, conn: sqlite3.Connection, schema: str) -> int:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (_VERSION_TABLE,)
        ).fetchone()
        if found is None:
            return 0
        row = conn.execute(
            f"SELECT MAX(VERSION) FROM {_VERSION_TABLE} WHERE SCHEMA_NAME = ?", (schema,)
        ).fetchone()
        return int(row[0] or 0)

    def _migrate(self, path: Path, schema: str, scope: Scope) -> list[str]:
        """Bring one file to the model's version in one transaction; return what was done."""
        with self._connect(path, create=True) as conn:
            # WAL is a property of the file; switching needs a moment of exclusive access.
            conn.execute("PRAGMA journal_mode = WAL")
        try:
            return self._migrate_file(path, schema, scope)
        except MigrationError:
            raise
        except DictionaryError as exc:
            raise MigrationError(f"migrating {schema} failed, nothing applied: {exc}") from exc

    def _migrate_file(self, path: Path, schema: str, scope: Scope) -> list[str]:
        done: list[str] = []
        with self._write(path, create=True) as conn:
            for statement in table_ddl(self.model.table(_VERSION_TABLE), 1):
                conn.execute(statement)
            current = self._file_version(conn, schema)
            if current > self.model.version:
                raise MigrationError(
                    f"{schema} is at dictionary version {current}, newer than this redpss "
                    f"({self.model.version}); upgrade redpss"
                )
            for migration in self.model.migrations[current:]:
                self._apply(conn, migration, scope)
                conn.execute(
                    f"INSERT INTO {_VERSION_TABLE} "
                    "(SCHEMA_NAME, VERSION, DESCRIPTION, APPLIED_AT, APPLIED_BY) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        schema,
                        migration.version,
                        migration.description,
                        to_db(_utcnow()),
                        __version__,
                    ),
                )
                done.append(f"{schema}: version {migration.version}: {migration.description}")
        return done

    def _apply(self, conn: sqlite3.Connection, migration: Migration, scope: Scope) -> None:
        created: dict[str, int] = {}
        for earlier in self.model.migrations[: migration.version]:
            for name in earlier.redsys if scope == REDSYS else earlier.target:
                created.setdefault(name, earlier.version)
        for name, since in created.items():
            obj = self.model.by_name[name]
            if not isinstance(obj, Table):
                continue
            if since == migration.version:
                for statement in table_ddl(obj, migration.version):
                    conn.execute(statement)
                continue
            for column in obj.columns:
                if column.since == migration.version:
                    conn.execute(f"ALTER TABLE {obj.name} ADD COLUMN {_column_ddl(column)}")
        for name in created:
            obj = self.model.by_name[name]
            if isinstance(obj, View):
                conn.execute(f"DROP VIEW IF EXISTS {obj.name}")
                conn.execute(view_ddl(obj, self.model, migration.version))

    def init(self) -> int:
        """Create or migrate REDSYS to the newest version; idempotent; return the version."""
        self._migrate(self._redsys, REDSYS, "REDSYS")
        return self.version()

    def upgrade(self) -> list[str]:
        """Apply pending migrations to REDSYS and every target schema; return what ran."""
        if self.version() == 0:
            raise MigrationError(
                f"the dictionary in {self.db_dir} is not initialised; run redctl db init"
            )
        done = self._migrate(self._redsys, REDSYS, "REDSYS")
        for schema in self.schemas():
            done.extend(self._migrate(self._schema_path(schema), schema, "TARGET"))
        return done

    def version(self) -> int:
        """Return the REDSYS dictionary version; 0 when it is not initialised."""
        if not self._redsys.exists():
            return 0
        with self._connect(self._redsys) as conn:
            return self._file_version(conn, REDSYS)

    def schema_version(self, schema: str) -> int:
        """Return the dictionary version of target schema ``schema`` (0: it does not exist)."""
        path = self._schema_path(schema)
        if not path.exists():
            return 0
        with self._connect(path) as conn:
            return self._file_version(conn, schema)

    def ensure_schema(self, schema: str) -> None:
        """Create or migrate the objects of target schema ``schema``."""
        self._migrate(self._schema_path(schema), schema, "TARGET")

    def schemas(self) -> list[str]:
        """Return the target schemas that exist (one file each), sorted."""
        if not self.db_dir.is_dir():
            return []
        names = (p.stem for p in self.db_dir.glob("*.db") if p.is_file())
        return sorted(n for n in names if SCHEMA_NAME_RE.fullmatch(n) and n != REDSYS)

    def _schema_path(self, schema: str) -> Path:
        return self.db_dir / f"{check_schema_name(schema)}.db"

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
            unclean = old_state != STOPPED and old_pid != pid
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
                    started if old_pid == pid else now,
                    now,
                    heartbeat_interval,
                    restarts,
                    last_exit,
                    version,
                    role,
                ),
            )
        return RoleStart(previous_pid=old_pid, unclean=unclean, restarts=restarts)

    def heartbeat(
        self, role: str, *, pid: int, state: str = RUNNING, info: str | None = None
    ) -> bool:
        """Refresh ``role``'s heartbeat if ``pid`` owns the row; create the row if none."""
        if state not in ROLE_STATES:
            raise DictionaryError(f"unknown role state {state!r}; expected one of {ROLE_STATES}")
        now = to_db(_utcnow())
        with self._write(self._redsys) as conn:
            cur = conn.execute(
                "UPDATE ADM_PSS_STATUS SET HEARTBEAT_AT = ?, STATE = ?, INFO = ? "
                "WHERE ROLE = ? AND PID = ?",
                (now, state, info, role, pid),
            )
            if cur.rowcount:
                return True
            cur = conn.execute(
                "INSERT INTO ADM_PSS_STATUS (ROLE, STATE, PID, STARTED_AT, HEARTBEAT_AT, "
                "HEARTBEAT_INTERVAL, RESTARTS, INFO) VALUES (?, ?, ?, ?, ?, ?, 0, ?) "
                "ON CONFLICT (ROLE) DO NOTHING",
                (role, state, pid, now, now, DEFAULT_HEARTBEAT_INTERVAL, info),
            )
            return bool(cur.rowcount)

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

    def pss_status(self, now: datetime | None = None) -> list[RoleStatus]:
        """Return ``STA_PSS_STATUS`` sorted by role; with ``now``, ages are measured then."""
        with self._connect(self._redsys) as conn:
            if now is None:
                cur = conn.execute("SELECT * FROM STA_PSS_STATUS ORDER BY ROLE")
            else:
                sql = _status_select(self.model, self._file_version(conn, REDSYS), "?")
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
        if level not in LOG_LEVELS:
            raise DictionaryError(f"unknown log level {level!r}; expected one of {LOG_LEVELS}")
        with self._write(self._schema_path(schema)) as conn:
            cur = conn.execute(
                "INSERT INTO LOG_MESSAGES (LOG_TS, SCHEMA_NAME, MSG_LEVEL, SOURCE, MESSAGE) "
                "VALUES (?, ?, ?, ?, ?)",
                (to_db(ts or _utcnow()), schema, level, source, message),
            )
            return int(cur.lastrowid or 0)

    def all_log_messages(self, limit: int = 100) -> list[LogMessage]:
        """Return the newest ``limit`` lines over all target schemas, newest first."""
        found: list[LogMessage] = []
        for schema in self.schemas():
            with self._connect(self._schema_path(schema)) as conn:
                rows = conn.execute(
                    "SELECT MESSAGE_ID, LOG_TS, SCHEMA_NAME, MSG_LEVEL, SOURCE, MESSAGE "
                    "FROM LOG_MESSAGES ORDER BY LOG_TS DESC, MESSAGE_ID DESC LIMIT ?",
                    (limit,),
                ).fetchall()
            found.extend(_log_message(row) for row in rows)
        found.sort(key=lambda m: (m.log_ts, m.schema, m.message_id), reverse=True)
        return found[:limit]

    def close(self) -> None:
        """Nothing to release: connections live for one call only."""


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
    )


def _log_message(row: Sequence[Any]) -> LogMessage:
    message_id, log_ts, schema, level, source, message = row
    ts = from_db(log_ts)
    assert ts is not None  # LOG_TS is NOT NULL
    return LogMessage(int(message_id), ts, schema, level, source, message)
