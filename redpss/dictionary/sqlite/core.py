"""The embedded dictionary's core: files, connections, migrations (the DDL they run is
:mod:`redpss.dictionary.sqlite.ddl`).

``<db_dir>/REDSYS.db`` holds the REDSYS objects, ``<db_dir>/<SCHEMA>.db`` those of a target
schema. Every file is in WAL mode, so readers never wait for writers; every write runs in a
``BEGIN IMMEDIATE`` transaction, so a writer takes the write lock up front and waits for it
with the busy timeout instead of failing half-way with "database is locked".

Connections are opened and closed per call. That costs well under a millisecond, is safe
across threads and across ``fork``, and leaves no connection to leak. The two calls an idle role
repeats every few seconds for its whole life — its heartbeat and jmon's look at the definitions
stamp — keep one connection per thread instead (``keep=True``): opening reads the schema, and the
last connection of a file to close checkpoints the WAL, which made an idle instance's heartbeats
its largest cost (~1 ms of CPU each on a busy host, 5 ms on a quiet one). A kept connection is
dropped on any error, when the file was replaced (another inode), in a forked child, and by
:meth:`SqliteCore.close`. A consequence: while an instance runs, another process cannot take the
file in exclusive locking mode (``PRAGMA locking_mode = EXCLUSIVE`` needs WAL's shared memory to
itself) — it gets "database is locked"; a plain write lock (``BEGIN EXCLUSIVE``) still stops the
heartbeats, which status then shows (``tests/faults/test_dictionary_locked.py``).

Every file carries its own ``ADM_VERSION_HISTORY`` (a file is migrated on its own); on Exasol
there is one, in REDSYS, keyed by schema.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from redpss import __version__
from redpss.dictionary.base import (
    SCHEMA_NAME_RE,
    Dictionary,
    check_schema_name,
)
from redpss.dictionary.columns import REDSYS
from redpss.dictionary.model import DICTIONARY
from redpss.dictionary.objects import (
    Migration,
    Model,
    Scope,
    Table,
    View,
)
from redpss.dictionary.sqlite.changes import DEFINITION_LOG, definition_log_triggers
from redpss.dictionary.sqlite.ddl import apply_table, table_ddl, view_ddl
from redpss.errors import DictionaryError, MigrationError

DEFAULT_HEARTBEAT_INTERVAL = 5.0
"""HEARTBEAT_INTERVAL of a row created by a heartbeat without a registration."""

_VERSION_TABLE = "ADM_VERSION_HISTORY"
_READY_LOCK = threading.Lock()
_WRITERS: dict[str, threading.RLock] = {}
_WRITERS_LOCK = threading.Lock()


def writer_lock(path: Path) -> threading.RLock:
    """The lock the writers of one database file in this process take before ``BEGIN``.

    SQLite's busy timeout makes a writer of another process wait for the write lock; writers
    within one process (the loader pool's threads, the run log writer) queue here instead, for
    as long as the writer before them needs — a load that reads a big file inside its
    transaction can hold the file longer than any timeout. No code holds two of these at once.
    """
    key = os.path.abspath(path)
    with _WRITERS_LOCK:
        lock = _WRITERS.get(key)
        if lock is None:
            lock = _WRITERS[key] = threading.RLock()
        return lock


class _KeptConnections:
    """The connections kept open per thread and file (see :meth:`SqliteCore._connect`).

    Threads come and go (a wire server answers each connection in a thread of its own): the
    connections of threads that have ended are closed whenever a thread opens a new one, so
    there are never more than one per live thread and file."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._pid = os.getpid()

    def _mine(self) -> dict[str, tuple[sqlite3.Connection, tuple[int, int]]]:
        if self._pid != os.getpid():  # a forked child: the parent's connections are not ours
            self._local, self._all, self._pid = threading.local(), [], os.getpid()
        found: dict[str, tuple[sqlite3.Connection, tuple[int, int]]] | None = getattr(
            self._local, "conns", None
        )
        if found is None:
            found = self._local.conns = {}
        return found

    @contextmanager
    def connection(
        self, path: Path, open_: Callable[[Path], sqlite3.Connection]
    ) -> Iterator[sqlite3.Connection]:
        """This thread's connection to ``path``: the kept one while the file is the same."""
        key = os.path.abspath(path)
        mine = self._mine()
        try:
            st = os.stat(key)
        except OSError as exc:
            raise DictionaryError(f"cannot open {path}: {exc}") from exc
        ident = (st.st_dev, st.st_ino)
        kept = mine.get(key)
        if kept is not None and kept[1] != ident:  # the file was replaced
            self.drop(path)
            kept = None
        if kept is None:
            conn = open_(path)
            try:
                conn.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.Error as exc:
                conn.close()
                raise DictionaryError(f"{path.name}: {exc}") from exc
            mine[key] = kept = (conn, ident)
            with self._lock:
                ended = [c for t, c in self._all if not t.is_alive()]
                self._all = [(t, c) for t, c in self._all if t.is_alive()]
                self._all.append((threading.current_thread(), conn))
            for old in ended:
                old.close()
        conn = kept[0]
        try:
            yield conn
        finally:
            with suppress(sqlite3.Error):  # dropped after an error: closed, nothing to do
                if conn.in_transaction:  # never keep a transaction open between calls
                    conn.execute("ROLLBACK")

    def drop(self, path: Path) -> None:
        """Close and forget this thread's connection to ``path`` (after an error)."""
        kept = self._mine().pop(os.path.abspath(path), None)
        if kept is not None:
            with self._lock:
                self._all = [(t, c) for t, c in self._all if c is not kept[0]]
            kept[0].close()

    def close(self) -> None:
        """Close every kept connection of every thread."""
        with self._lock:
            conns, self._all = [c for _, c in self._all], []
        self._local = threading.local()
        for conn in conns:
            with suppress(sqlite3.Error):
                conn.close()


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


# -- the backend -----------------------------------------------------------------------------


def _create_private(db_dir: Path, path: Path) -> None:
    """Make the folder (0750) and an empty database file (0640) unless they exist.

    SQLite would create the file with the umask's mode, usually readable by every user; its
    ``-wal`` and ``-shm`` files take the mode of the database file.
    """
    db_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640))


class SqliteCore(Dictionary):
    """Files, connections and migrations; the area mixins of this package build on it."""

    def __init__(
        self, db_dir: Path, *, busy_timeout: float = 10.0, model: Model = DICTIONARY
    ) -> None:
        self.db_dir = Path(db_dir)
        self.busy_timeout = busy_timeout
        self.model = model
        self._redsys = self.db_dir / f"{REDSYS}.db"
        self._idle_conns = _KeptConnections()

    def __repr__(self) -> str:
        return f"SqliteDictionary(db_dir={str(self.db_dir)!r})"

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def _connect(
        self, path: Path, *, create: bool = False, keep: bool = False
    ) -> Iterator[sqlite3.Connection]:
        """Yield an autocommit connection to ``path``; translate sqlite3 errors.

        ``keep``: this thread's kept connection to ``path`` (opened on first use), for the calls
        an idle role repeats (see the module docstring); it stays open after the call."""
        if not create and not path.exists():
            what = "the dictionary" if path == self._redsys else f"target schema {path.stem}"
            raise DictionaryError(f"{what} does not exist in {self.db_dir}; run redctl db init")
        if keep:
            with self._idle_conns.connection(path, self._open) as conn:
                try:
                    yield conn
                except sqlite3.Error as exc:
                    behind = self._behind(conn, path, exc)
                    self._idle_conns.drop(path)
                    raise DictionaryError(f"{path.name}: {exc}{behind}") from exc
            return
        conn = self._open(path, create=create)
        with closing(conn):
            try:
                conn.execute("PRAGMA synchronous = NORMAL")
                yield conn
            except sqlite3.Error as exc:
                raise DictionaryError(f"{path.name}: {exc}{self._behind(conn, path, exc)}") from exc

    def _open(self, path: Path, *, create: bool = False) -> sqlite3.Connection:
        """A new autocommit connection to ``path`` (created with ``create``)."""
        try:
            if create:
                _create_private(self.db_dir, path)
            uri = f"{path.resolve().as_uri()}?mode={'rwc' if create else 'rw'}"
            return sqlite3.connect(
                uri,
                uri=True,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except (sqlite3.Error, OSError) as exc:
            raise DictionaryError(f"cannot open {path}: {exc}") from exc

    def _behind(self, conn: sqlite3.Connection, path: Path, exc: sqlite3.Error) -> str:
        """For a table or column this redpss knows and the file lacks: the file's version
        against the model's, and the command that helps (``db upgrade``); else nothing."""
        if not str(exc).startswith(("no such table", "no such column", "table ")):
            return ""
        schema = REDSYS if path == self._redsys else path.stem
        try:
            have = self._file_version(conn, schema)
        except sqlite3.Error:
            return ""
        if have >= self.model.version:
            return ""
        return (
            f" (the dictionary is at version {have}, this redpss needs version "
            f"{self.model.version}: run redctl db upgrade)"
        )

    @contextmanager
    def _write(
        self, path: Path, *, create: bool = False, keep: bool = False
    ) -> Iterator[sqlite3.Connection]:
        """Yield a connection inside ``BEGIN IMMEDIATE``; commit on success, else roll back
        (``keep``: on this thread's kept connection, see :meth:`_connect`)."""
        with writer_lock(path), self._connect(path, create=create, keep=keep) as conn:
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
        """Bring one file to the model's version in one transaction; return what was done.

        A new file is built under a temporary name and linked into place complete, so no
        other process ever sees a schema file without its tables.
        """
        done: list[str] = []
        if not path.exists():
            done = self._create_file(path, schema, scope)
        with self._connect(path, create=True) as conn:
            # WAL is a property of the file; switching needs a moment of exclusive access.
            conn.execute("PRAGMA journal_mode = WAL")
        try:
            return done + self._migrate_file(path, schema, scope)
        except MigrationError:
            raise
        except DictionaryError as exc:
            raise MigrationError(f"migrating {schema} failed, nothing applied: {exc}") from exc

    def _create_file(self, path: Path, schema: str, scope: Scope) -> list[str]:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            with self._connect(tmp, create=True) as conn:  # before the first table: the purge
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # gives pages back in steps
            done = self._migrate_file(tmp, schema, scope)
            try:
                os.link(tmp, path)  # fails if another process was first: its file is as good
            except FileExistsError:
                return []
            return done
        except DictionaryError as exc:
            raise MigrationError(f"creating {schema} failed, nothing applied: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def ensure_ready(self, schema: str) -> Path:
        """The file of target schema ``schema``, created or migrated once per process."""
        path = self._schema_path(schema)
        ready: set[str] = self.__dict__.setdefault("_ready", set())
        if schema in ready:
            return path
        with _READY_LOCK:
            if schema not in ready:
                self.ensure_schema(schema)
                ready.add(schema)
        return path

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
        if migration.rebuild:  # a view naming a table being swapped would stop the RENAME
            for name in created:
                if isinstance(self.model.by_name[name], View):
                    conn.execute(f"DROP VIEW IF EXISTS {name}")
        for name, since in created.items():
            obj = self.model.by_name[name]
            if isinstance(obj, Table):
                apply_table(conn, obj, since, migration)
        for name in created:
            obj = self.model.by_name[name]
            if isinstance(obj, View):
                conn.execute(f"DROP VIEW IF EXISTS {obj.name}")
                conn.execute(view_ddl(obj, self.model, migration.version))
        if DEFINITION_LOG in created:  # (again) after every migration: a rebuild drops them
            for statement in definition_log_triggers():
                conn.execute(statement)

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

    def database(self) -> str:
        """``embedded SQLite 3.x in <db_dir>``."""
        return f"embedded SQLite {sqlite3.sqlite_version} in {self.db_dir}"

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

    def close(self) -> None:
        """Close the kept connections (every other connection lives for one call only)."""
        self._idle_conns.close()
