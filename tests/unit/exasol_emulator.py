"""An emulated Exasol for the unit tests: the Exasol backend's statements run on DuckDB.

**This is not Exasol.** There is no Exasol database on the development and CI machines, so
without this module the backend's Python code would only ever be parsed. Here each statement
the backend sends is parsed with sqlglot's Exasol dialect, rewritten on the syntax tree where
Exasol and DuckDB differ, and executed on one shared in-memory DuckDB database. It catches
Python-level mistakes (tuple unpacking, placeholder names, the types of fetched values) and
logic mistakes of the backend. Whether the SQL does the same on a real Exasol is the exasol
tier's question (``tests/exasol``, ``make test-exasol``).

:class:`EmulatedDatabase` is the database; its :meth:`~EmulatedDatabase.connect` is the
``connect`` factory of :class:`~redpss.dictionary.exasol.session.Session` and returns an
:class:`EmulatedConnection` (the Connection protocol of that module, plus
``import_from_iterable``): one DuckDB cursor per connection, autocommit off, every statement
inside a transaction that ``COMMIT``/``ROLLBACK`` (statements or methods) ends.

Emulated, with the Exasol rule each time:

- ``''`` is NULL: every empty string literal becomes NULL before the statement runs, an empty
  field of an import is NULL, and ``||``/``CONCAT`` skip NULLs (``'a' || NULL`` is ``'a'``)
  and give NULL where the result is empty.
- Fetched values come as pyexasol returns them without a fetch mapper: TIMESTAMP as text in
  the session's ``NLS_TIMESTAMP_FORMAT`` (Exasol's default ``…HH24:MI:SS.FF6`` until the
  session sets another), DATE as ``YYYY-MM-DD`` text, DECIMAL with scale 0 as int, DECIMAL with
  a scale as text (the strictest reading), DOUBLE as float, BOOLEAN as bool.
- A version (``release``, default 8.32.0, told at login as ``releaseVersion``): before 8.32
  ``TIMESTAMP(p)`` is a syntax error (changelog 13409) and a timestamp literal with more than
  three fractional digits is refused (unverified there: the backend must not send one).
- Column types: ``TIMESTAMP`` without precision keeps milliseconds (``TIMESTAMP(3)``),
  ``TIMESTAMP(6)`` microseconds; ``VARCHAR(n)`` refuses longer strings; ``IDENTITY`` is a
  sequence default; ``SYS.EXA_ALL_COLUMNS`` reports the declared Exasol types.
- ``ORDER BY``: NULL is the largest value (last ascending, first descending), as Exasol's
  "NULL HIGH" default order (Teiid's Exasol translator documents it; sqlglot's Exasol dialect
  says "nulls are last": unverified which holds, so the backend names NULLS FIRST/LAST wherever
  a sort key can be NULL).
- The clock (``clock``, settable by a test) is read per statement: ``SYSTIMESTAMP`` is its time
  in ``DBTIMEZONE``, ``CURRENT_TIMESTAMP`` in the session's zone, ``POSIX_TIME()`` its seconds
  since 1970 UTC; ``CONVERT_TZ`` takes an ambiguous local time (the hour repeated in autumn) as
  standard time without a fourth argument, and honours ``AMBIGUOUS ST|DST|NULLIFY|REJECT``.
  ``TO_CHAR`` of a DOUBLE without a format model fails (its text on Exasol is unverified).
- ``DUAL``; ``SYS.EXA_ALL_SCHEMAS|TABLES|VIEWS|COLUMNS|OBJECTS|SCRIPTS`` (a subset of their
  columns, over DuckDB's catalog).
- ``DBTIMEZONE`` is ``EUROPE/BERLIN`` unless told otherwise (so a missing conversion shows);
  ``SECONDS_BETWEEN``/``MINUTES_BETWEEN``/``HOURS_BETWEEN`` are fractional.
- ``ALTER SESSION SET`` is accepted and recorded (``session`` of the connection, ``settings``
  of the database: e.g. every ``QUERY_TIMEOUT`` set); ``CREATE SCRIPT`` stores the text
  (``SYS.EXA_ALL_SCRIPTS``), ``CREATE CONNECTION`` the address (no secret).
- Users and privileges (``exasol_emulator_privs``): the backend logs in as REDSYS with exactly
  the documented privileges; ``GRANT`` is checked and recorded; a script call checks
  ``EXECUTE`` and ``ACCESS`` on its connection and returns NULL (the script does not run).
- Transactions (``exasol_emulator_tx``): table-level write locks (a second writer waits: WAIT
  FOR COMMIT; a read/write conflict rolls back with ``40001``), a duplicate key of a row
  committed after the transaction began is ``40001`` too, readers never wait; a failing
  statement fails alone, the transaction goes on (its writes are replayed in DuckDB).
- Errors are ``pyexasol.ExaQueryError`` with an SQLSTATE: ``40001`` a collision, ``27001`` a
  constraint, ``42500`` insufficient privileges, ``42000`` anything else; ``ExaRuntimeError``
  after ``close``. :meth:`EmulatedDatabase.hook` runs a test's action before or after a
  matching statement; :meth:`EmulatedDatabase.fail` drops the connection there.
- A reserved word of Exasol as an unquoted identifier is a syntax error (``TOLERATED_RESERVED``).
- ``MERGE`` runs as it is; ``OPEN SCHEMA`` sets the default schema; ``execute_sql_script``
  splits a script as pyexasol does.
- ``import_from_iterable`` is an ``IMPORT … FROM CSV`` (``exasol_emulator_import``: ``FORMAT``,
  ``ETL-3050``) failing as pyexasol does; ``IMPORT … FROM CSV AT 'ftp://…'`` reads a registered
  folder with the certificate rules of the version (``exasol_emulator_files``).
- :meth:`EmulatedDatabase.save` and ``copy_of``: a database starts as a copy of a saved one.

Not emulated: quoted lower-case identifiers (DuckDB folds case); ``EXPORT``; running scripts;
``QUERY_TIMEOUT`` (recorded, not enforced); ``''`` produced by a function stays ``''``;
timestamps keep at most microseconds.
"""

from __future__ import annotations

import pickle
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import duckdb
import pyexasol
from pyexasol._sql_splitter import split_sql_script
from pyexasol.exceptions import ExaImportError
from sqlglot.errors import SqlglotError

from tests.unit import exasol_emulator_sql as sql
from tests.unit.exasol_emulator_files import IMPORT_FILE_RE, FileServer, import_file
from tests.unit.exasol_emulator_import import import_rows
from tests.unit.exasol_emulator_privs import DBA, Denied, Privileges
from tests.unit.exasol_emulator_statement import EmulatedStatement
from tests.unit.exasol_emulator_tx import (
    CATALOG,
    OTHER,
    TableLocks,
    Transactions,
)

__all__ = ["EmulatedConnection", "EmulatedDatabase", "EmulatedStatement"]

T = TypeVar("T")

DENIED = "42500"
DEFAULT_TIMESTAMP_FORMAT = "YYYY-MM-DD HH24:MI:SS.FF6"
"""Exasol's default NLS_TIMESTAMP_FORMAT (changelog 13409: "remains unchanged")."""
DEFAULT_RELEASE = "8.32.0"
"""The version an emulated database answers as unless told otherwise (the first with
``TIMESTAMP(p)``); ``release="7.1.30"`` emulates the older SQL."""
TOLERATED_RESERVED: frozenset[str] = frozenset()
"""Reserved words taken as unquoted identifiers all the same: none, as on Exasol (the backend
quotes the model's reserved column names, STATE and SOURCE)."""


@dataclass
class Hook:
    """What :meth:`EmulatedDatabase.hook` runs at a matching statement."""

    pattern: re.Pattern[str]
    action: Callable[[EmulatedConnection], None]
    after: bool
    times: int


class EmulatedDatabase:
    """One in-memory DuckDB database with the Exasol objects the backend expects."""

    def __init__(
        self,
        *,
        db_timezone: str = "EUROPE/BERLIN",
        copy_of: Path | None = None,
        tolerated: frozenset[str] = TOLERATED_RESERVED,
        release: str = DEFAULT_RELEASE,
    ) -> None:
        """An empty database, or with ``copy_of`` a copy of what :meth:`save` wrote there;
        ``tolerated``: reserved words taken as unquoted identifiers all the same; ``release``:
        the Exasol version it answers as (login ``releaseVersion``; the SQL it takes)."""
        self.db_timezone = db_timezone
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        """The database's clock (aware); a test sets it to any moment, e.g. the repeated hour."""
        self.release = release
        major, minor = (int(p) for p in release.split(".")[:2])
        self.version = (major, minor)
        self.tolerated = tolerated
        self.duck = duckdb.connect(":memory:")
        if copy_of is None:
            for statement in sql.setup_statements():
                self.duck.execute(statement)
        else:
            self.duck.execute(f"ATTACH '{copy_of}' AS saved (READ_ONLY)")
            self.duck.execute("COPY FROM DATABASE saved TO memory")
            self.duck.execute("DETACH saved")
        self.file_servers: dict[str, FileServer] = {}
        """Servers an ``IMPORT … FROM CSV AT '<url>'`` reads from, by URL prefix."""
        self.privileges = Privileges()
        """Users, owners and grants (tests/unit/exasol_emulator_privs.py)."""
        if copy_of is not None:
            self.privileges = pickle.loads(_privileges_file(copy_of).read_bytes())
        self.statements: list[tuple[int, str]] = []
        """Every statement received, with the number of the connection that sent it."""
        self.settings: list[tuple[int, str, str]] = []
        """Every ``ALTER SESSION SET``: (connection number, NAME, value text)."""
        self.connects = 0
        self._hooks: list[Hook] = []
        self.commits = 0
        self.last_write: dict[str, int] = {}
        """The commit that last wrote each ``SCHEMA.TABLE`` (for transaction collisions)."""
        self.locks = TableLocks()
        """Table-level write locks (tests/unit/exasol_emulator_tx.py)."""
        self._lock = threading.Lock()
        self._open: list[EmulatedConnection] = []

    def connect(self, settings: object = None) -> EmulatedConnection:
        """A new connection as ``settings.user`` (without settings: SYS, the DBA): the
        ``connect`` argument of ``Session``. ExaAuthError for a user who may not log in."""
        try:
            user = self.privileges.login(str(getattr(settings, "user", None) or DBA))
        except Denied as exc:
            raise pyexasol.ExaAuthError(_Options(), "08004", str(exc)) from None
        with self._lock:
            self.connects += 1
            conn = EmulatedConnection(self, self.connects, user)
            self._open.append(conn)
        return conn

    def hook(
        self,
        pattern: str,
        action: Callable[[EmulatedConnection], None],
        *,
        after: bool = False,
        times: int = 1,
    ) -> None:
        """Call ``action(conn)`` at the next ``times`` statements matching ``pattern`` (a
        regex searched in the statement text), before they run or, with ``after``, once they
        ran; an exception of ``action`` is what the statement raises."""
        with self._lock:
            self._hooks.append(Hook(re.compile(pattern, re.I), action, after, times))

    def fail(self, pattern: str, *, after: bool = False) -> None:
        """The connection drops (``ExaCommunicationError``) at the next matching statement;
        ``after``: once it ran, so that the client never learns that it did."""

        def drop(conn: EmulatedConnection) -> None:
            conn.close()
            raise pyexasol.ExaCommunicationError(conn, "emulated: connection lost")

        self.hook(pattern, drop, after=after)

    def _run_hooks(self, conn: EmulatedConnection, query: str, after: bool) -> None:
        with self._lock:
            found = [h for h in self._hooks if h.after == after and h.pattern.search(query)]
            for hook in found:
                hook.times -= 1
                if not hook.times:
                    self._hooks.remove(hook)
        for hook in found:
            hook.action(conn)

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        """Run Exasol SQL on a connection of its own and commit (for test set-up and checks)."""
        conn = self.connect()
        try:
            rows = conn.execute(statement).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()

    def save(self, path: Path) -> None:
        """Write the committed state to a DuckDB file (a template for ``copy_of``)."""
        self.duck.execute(f"ATTACH '{path}' AS saved")
        self.duck.execute("COPY FROM DATABASE memory TO saved")
        self.duck.execute("DETACH saved")
        _privileges_file(path).write_bytes(pickle.dumps(self.privileges))

    def close(self) -> None:
        """Close every connection and the database."""
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            conn.close()
        self.duck.close()


def _privileges_file(path: Path) -> Path:
    return path.with_name(path.name + ".privileges")


class _Options:
    """What pyexasol's errors read from a connection that never opened."""

    options: ClassVar[dict[str, object]] = {"dsn": "emulated", "user": "", "verbose_error": False}


class EmulatedConnection(Transactions):
    """The Connection protocol of the Exasol session, on a DuckDB cursor."""

    def __init__(self, db: EmulatedDatabase, number: int, user: str = DBA) -> None:
        self.db, self.number, self.user = db, number, user
        self.cursor = db.duck.cursor()
        self.options = {"dsn": "emulated", "user": user, "verbose_error": False}
        self.login_info: dict[str, Any] = {"releaseVersion": db.release}
        self.session: dict[str, str] = {"TIME_ZONE": db.db_timezone}
        self.session["NLS_TIMESTAMP_FORMAT"] = DEFAULT_TIMESTAMP_FORMAT
        self.is_closed = False
        self._in_tx = False
        self._began_after = 0  # the database's commits before this transaction began
        self._written: set[str] = set()
        self._read: set[str] = set()  # tables this transaction read
        self._replay: list[tuple[str, Sequence[object] | None]] = []  # its writes, in order

    def __repr__(self) -> str:
        return f"EmulatedConnection(#{self.number})"

    # what pyexasol's ExaError needs to print itself
    def session_id(self) -> str:
        return str(self.number)

    def current_schema(self) -> str:
        return self.session.get("CURRENT_SCHEMA", "")

    # -- the protocol ------------------------------------------------------------------------

    def execute(self, query: str) -> EmulatedStatement:
        """Run one Exasol statement in the connection's transaction."""
        self._check_open()
        self.db._run_hooks(self, query, after=False)
        with self.db._lock:
            self.db.statements.append((self.number, query))
        result = self._execute(query)
        self.db._run_hooks(self, query, after=True)
        return result

    def execute_sql_script(self, script: str) -> list[EmulatedStatement]:
        """Split ``script`` as pyexasol does and run its statements one by one."""
        return [self.execute(statement) for statement in split_sql_script(script)]

    def commit(self) -> None:
        """End the transaction, keeping its work."""
        self._check_open()
        self._end("COMMIT")

    def rollback(self) -> None:
        """End the transaction, discarding its work."""
        self._check_open()
        self._end("ROLLBACK")

    def close(self, disconnect: bool = True) -> None:
        """Roll back what is open and close; idempotent."""
        if self.is_closed:
            return
        self.is_closed = True
        try:
            if self._in_tx:
                self.cursor.execute("ROLLBACK")
        except duckdb.Error:
            pass  # the database may be closed already
        finally:
            self._in_tx = False
            self._release()
            self.cursor.close()

    def import_from_iterable(
        self,
        src: Iterable[Sequence[object]],
        table: str | tuple[str, str],
        import_params: dict[str, Any] | None = None,
    ) -> None:
        """``IMPORT INTO table FROM CSV`` of ``src`` (tests/unit/exasol_emulator_import.py);
        any failure, the database's or the iterator's, is pyexasol's ExaImportError around it."""
        self._check_open()
        with self.db._lock:
            self.db.statements.append((self.number, f"IMPORT INTO {table} (emulated)"))
        schema, name = table if isinstance(table, tuple) else (self.current_schema(), table)
        privileges = self.db.privileges
        try:
            self._allowed("IMPORT", lambda: privileges.require_system(self.user, "IMPORT"))
            self._allowed(
                "IMPORT", lambda: privileges.require_object(self.user, "INSERT", schema, name)
            )
            self._lock(f"{schema.upper()}.{name.upper()}", "IMPORT")
        except pyexasol.ExaQueryError as exc:
            raise ExaImportError(self, (exc,)) from exc
        try:
            import_rows(self, src, table, import_params)
        except (Exception, KeyboardInterrupt) as exc:
            raise ExaImportError(self, (exc,)) from exc

    # -- inside ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.is_closed:
            raise pyexasol.ExaRuntimeError(self, "Exasol connection was closed")

    def _special(self, query: str) -> EmulatedStatement | None:
        """Statements that are no SQL for sqlglot (or not for DuckDB): None for the others."""
        if m := sql.TX_RE.match(query):
            self._end(m.group(1).upper())
        elif m := sql.SESSION_RE.match(query):
            self._alter_session(m.group(1).upper(), m.group(2))
        elif m := sql.OPEN_SCHEMA_RE.match(query):
            name = m.group(1).strip('"').upper()
            self._run(f"SET schema = '{name}'", write=False)
            self._run(f"SET search_path = '{name},main'", write=False)
            self.session["CURRENT_SCHEMA"] = name
        elif m := IMPORT_FILE_RE.match(query):
            return self._import_file(query, m)
        elif sql.REFUSED_RE.match(query):
            raise self._error(query, OTHER, "not emulated (see tests/unit/exasol_emulator.py)")
        elif m := sql.CONNECTION_RE.match(query):
            created = m[1]
            self._allowed(query, lambda: self.db.privileges.created_connection(self.user, created))
            self._lock(CATALOG, query)
            self._run(sql.STORE_CONNECTION, [m.group(1), m.group(2).replace("''", "'")])
        elif m := sql.SCRIPT_RE.match(query):
            schema = m.group(2) or self.current_schema()
            privileges = self.db.privileges
            self._allowed(query, lambda: privileges.require_create(self.user, "SCRIPT", schema))
            self._lock(CATALOG, query)
            self._run(sql.STORE_SCRIPT, (schema, m.group(3), (m.group(1) or "LUA").upper(), query))
            privileges.created_script(self.user, schema, m.group(3), query)
        elif sql.GRANT_RE.match(query):
            if not self._allowed(query, lambda: self.db.privileges.grant(self.user, query)):
                raise self._error(query, OTHER, "this GRANT is not emulated")
        else:
            return None
        return EmulatedStatement([], 0)

    def _import_file(self, query: str, m: re.Match[str]) -> EmulatedStatement:
        """``IMPORT … FROM CSV AT`` a file server (tests/unit/exasol_emulator_files.py)."""
        schema, table = (n.strip('"').upper() for n in (m["schema"], m["table"]))
        privileges = self.db.privileges
        self._allowed(query, lambda: privileges.require_system(self.user, "IMPORT"))
        self._allowed(query, lambda: privileges.require_object(self.user, "INSERT", schema, table))
        self._lock(f"{schema}.{table}", query)
        return EmulatedStatement([], import_file(self, query, m))

    def _allowed(self, query: str, check: Callable[[], T]) -> T:
        """``check()``; its Denied is Exasol's insufficient privileges error (42500)."""
        try:
            return check()
        except Denied as exc:
            raise self._error(query, DENIED, str(exc)) from None

    def _execute(self, query: str) -> EmulatedStatement:
        special = self._special(query)
        if special is not None:
            return special
        try:
            context = sql.Context(
                self.db.db_timezone, self.session["TIME_ZONE"], self.db.version, self.db.tolerated
            )
            done = sql.translate(query, context)
        except (SqlglotError, ValueError) as exc:
            raise self._error(query, OTHER, f"cannot emulate: {exc}") from exc
        after = done.after
        if done.creates and self._run(sql.TABLE_EXISTS, done.creates, write=False).fetchone():
            after = ()
        write = self._prepare(query, done)
        for extra in done.before:
            self._run(extra)
        try:
            cursor = self._run(done.statement, write=write)
        except pyexasol.ExaQueryError as exc:
            raise self._collision(exc, done.target) from exc.__cause__
        if done.target:
            self._written.add(done.target)
        if done.access.create and done.access.create[0] == "SCHEMA":
            self.db.privileges.created_schema(self.user, done.access.create[1])
        if done.kind == "dml":
            count = cursor.fetchall()
            result = EmulatedStatement([], int(count[0][0]) if count else 0)
        elif done.kind == "query":
            rows = [tuple(self._value(v) for v in r) for r in cursor.fetchall()]
            result = EmulatedStatement(rows, len(rows), rows_back=True)
        else:
            result = EmulatedStatement([], 0)
        for extra in after:
            self._run(extra)
        return result

    def _prepare(self, query: str, done: sql.Translation) -> bool:
        """Privileges, reads, write locks and the clock of one statement; whether it writes."""
        self._allowed(
            query, lambda: self.db.privileges.check(self.user, done.access, self.current_schema())
        )
        current = self.current_schema()
        self._read.update(
            f"{schema or current}.{name}" for schema, name in done.access.reads if schema or current
        )
        if done.kind == "other":
            self._lock(CATALOG, query)  # DDL: DuckDB changes its catalog one at a time
        for _privilege, schema, name in done.access.writes:
            self._lock(f"{schema or current}.{name}", query)
        if done.clock or done.kind != "other":  # a view may read the clock too
            now = self.db.clock().astimezone(UTC).replace(tzinfo=None)
            self._run(
                f"SET VARIABLE {sql.CLOCK_VARIABLE} = TIMESTAMP '{now.isoformat()}'", write=False
            )
        return done.kind != "query"

    def _alter_session(self, name: str, value: str) -> None:
        text = value.strip()
        if text.startswith("'") and text.endswith("'"):
            text = text[1:-1].replace("''", "'")
        self.session[name] = text
        with self.db._lock:
            self.db.settings.append((self.number, name, text))

    def _column_types(self, schema: str, table: str) -> tuple[dict[str, str], dict[str, str]]:
        """The Exasol and the DuckDB types of the columns of a table, by upper-case name."""
        rows = self._run(sql.COLUMN_TYPES, [schema.upper(), table.upper()], write=False)
        found = rows.fetchall()
        if not found:
            raise self._error(f"IMPORT INTO {schema}.{table}", OTHER, "object not found")
        return {r[0]: r[1] for r in found}, {r[0]: r[2] for r in found}

    def _value(self, value: object) -> object:
        if isinstance(value, datetime):
            return sql.format_timestamp(value, self.session["NLS_TIMESTAMP_FORMAT"])
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return int(value) if value.as_tuple().exponent == 0 else str(value)
        return value
