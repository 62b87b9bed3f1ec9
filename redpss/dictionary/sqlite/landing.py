"""The landing zone's area in SQLite: loaders, target tables, rows and the per-schema ledger.

A load is one ``BEGIN IMMEDIATE`` transaction on the target schema's file: duplicate check,
rows, ledger row (``ADM_LOAD_LOG``), commit with ``synchronous = FULL`` — the commit is on disk
before the caller moves the file to ``archive/``, so not even a power loss can leave a file
archived without its rows.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from redpss.dictionary.base import check_schema_name
from redpss.dictionary.landing import DUPLICATE, LOADED, LandingStore, LedgerEntry, LoadOutcome
from redpss.dictionary.loaders import Loader, LoaderColumn, parse_loader_type
from redpss.dictionary.rows import (
    COLUMN_COLUMNS,
    LEDGER_COLUMNS,
    LOADER_COLUMNS,
    check_loader,
    column_from,
    ledger_from,
    loader_from,
    loader_values,
)
from redpss.dictionary.sqlite.core import SqliteCore, _utcnow, from_db, to_db, writer_lock
from redpss.errors import DictionaryError

__all__ = ["SqliteLanding", "sqlite_column_type"]


class _Loading:
    """What a dictionary's loading threads keep: per thread the connections they hold (a run)
    and keep (between runs); and every kept one, for :meth:`SqliteLanding.close`."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.lock = threading.Lock()
        self.kept: list[sqlite3.Connection] = []

    def held(self) -> dict[Path, sqlite3.Connection]:
        found: dict[Path, sqlite3.Connection] | None = getattr(self.local, "held", None)
        if found is None:
            found = self.local.held = {}
        return found

    def mine(self) -> dict[Path, tuple[sqlite3.Connection, tuple[int, int]]]:
        found: dict[Path, tuple[sqlite3.Connection, tuple[int, int]]] | None = getattr(
            self.local, "kept", None
        )
        if found is None:
            found = self.local.kept = {}
        return found


def sqlite_column_type(generic: str) -> str:
    """The SQLite column type of a loader column type."""
    base, _size, scale = parse_loader_type(generic)
    if base == "DECIMAL":
        return "NUMERIC" if scale else "INTEGER"
    return {"DOUBLE": "REAL", "BOOLEAN": "INTEGER"}.get(base, "TEXT")


class SqliteLanding(SqliteCore, LandingStore):
    """Loader definitions in REDSYS; target tables and their ledger in the schema's file."""

    def _loading(self) -> _Loading:
        # made on first use (dict.setdefault is atomic): SqliteCore.__init__ is not ours
        state: _Loading = self.__dict__.setdefault("_loading_state", _Loading())
        return state

    # -- loader definitions ------------------------------------------------------------------

    def upsert_loader(self, loader: Loader) -> bool:
        """Create or replace ``loader`` and its column mapping in one transaction."""
        check_loader(loader)
        if loader.method == "IMPORT":  # the database would have to read the file: Exasol only
            raise DictionaryError(
                f"loader {loader.name}: method = import needs dictionary = exasol (the database "
                "reads the file from cfisrv); the embedded dictionary takes method = transport"
            )
        now = to_db(_utcnow())
        marks = ", ".join("?" * len(loader_values(loader)))
        with self._write(self._redsys) as conn:
            old = conn.execute(
                "SELECT CREATED_AT FROM ADM_LOADER WHERE LOADER_NAME = ?", (loader.name,)
            ).fetchone()
            conn.execute("DELETE FROM ADM_LOADER_COLUMN WHERE LOADER_NAME = ?", (loader.name,))
            conn.execute("DELETE FROM ADM_LOADER WHERE LOADER_NAME = ?", (loader.name,))
            conn.execute(
                f"INSERT INTO ADM_LOADER ({LOADER_COLUMNS}, CREATED_AT, CHANGED_AT) "
                f"VALUES ({marks}, ?, ?)",
                (*loader_values(loader), old[0] if old else now, now),
            )
            conn.executemany(
                f"INSERT INTO ADM_LOADER_COLUMN ({COLUMN_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        loader.name,
                        pos,
                        c.name,
                        c.type,
                        c.source,
                        c.source_pos,
                        c.format,
                        c.fbv_start,
                        c.fbv_size,
                    )
                    for pos, c in enumerate(loader.columns, start=1)
                ],
            )
        return old is None

    def _read_loaders(self, where: str, args: tuple[Any, ...]) -> list[Loader]:
        with self._connect(self._redsys) as conn:
            rows = conn.execute(
                f"SELECT {LOADER_COLUMNS} FROM ADM_LOADER {where} ORDER BY LOADER_NAME", args
            ).fetchall()
            cols: dict[str, list[LoaderColumn]] = {}
            for c in conn.execute(
                f"SELECT {COLUMN_COLUMNS} FROM ADM_LOADER_COLUMN ORDER BY LOADER_NAME, COL_POS"
            ):
                cols.setdefault(c[0], []).append(column_from(c))
        return [loader_from(r, cols.get(r[0], [])) for r in rows]

    def loader(self, name: str) -> Loader | None:
        """The loader called ``name``, or None."""
        found = self._read_loaders("WHERE LOADER_NAME = ?", (name,))
        return found[0] if found else None

    def loaders(self, *, active_only: bool = False) -> list[Loader]:
        """Every loader (or the active ones), sorted by name."""
        return self._read_loaders("WHERE ACTIVE = 1" if active_only else "", ())

    def delete_loader(self, name: str) -> bool:
        """Delete loader ``name`` and its columns; True when it existed."""
        with self._write(self._redsys) as conn:
            conn.execute("DELETE FROM ADM_LOADER_COLUMN WHERE LOADER_NAME = ?", (name,))
            return bool(
                conn.execute("DELETE FROM ADM_LOADER WHERE LOADER_NAME = ?", (name,)).rowcount
            )

    # -- target tables and rows --------------------------------------------------------------

    def ensure_target_table(self, loader: Loader) -> None:
        """Create the schema and ``loader.target`` when missing; check an existing table.

        The usual case — schema and table are there — is read on this thread's kept connection
        (see :meth:`load_session`), without a write transaction.
        """
        check_schema_name(loader.schema)
        path = self._schema_path(loader.schema)
        if path.exists():
            try:
                conn = self._kept(path)
                current = self._file_version(conn, loader.schema) == self.model.version
                rows = conn.execute(f"PRAGMA table_info({loader.table})").fetchall()
            except sqlite3.Error as exc:
                raise DictionaryError(f"{path.name}: {exc}") from exc
            if current and rows:
                self._check_columns(loader, [r[1].upper() for r in rows])
                return
        if self.schema_version(loader.schema) != self.model.version:
            self.ensure_schema(loader.schema)
        path = self._schema_path(loader.schema)
        with self._write(path) as conn:
            have = [r[1].upper() for r in conn.execute(f"PRAGMA table_info({loader.table})")]
            if have:
                self._check_columns(loader, have)
                return
            body = ", ".join(f"{c.name} {sqlite_column_type(c.type)}" for c in loader.columns)
            conn.execute(f"CREATE TABLE {loader.table} ({body})")

    @staticmethod
    def _check_columns(loader: Loader, have: list[str]) -> None:
        missing = [c.name for c in loader.columns if c.name not in have]
        if missing:
            raise DictionaryError(
                f"{loader.target} exists without column(s) {', '.join(missing)} "
                f"of loader {loader.name}"
            )

    def load_rows(
        self,
        loader: Loader,
        rows: Iterable[Sequence[object]],
        *,
        entry: LedgerEntry,
    ) -> LoadOutcome:
        """Rows and ledger row in one durable transaction on the schema's file."""
        path = self._schema_path(loader.schema)
        names = ", ".join(c.name for c in loader.columns)
        marks = ", ".join("?" * len(loader.columns))
        with self._durable_write(path) as conn:
            previous = None
            if loader.duplicates != "LOAD":
                found = conn.execute(
                    f"SELECT {LEDGER_COLUMNS} FROM ADM_LOAD_LOG WHERE CONTENT_SHA256 = ? "
                    "AND TARGET = ? AND LOAD_STATUS = ? ORDER BY LOADED_AT LIMIT 1",
                    (entry.content_sha256, entry.target, LOADED),
                ).fetchone()
                previous = ledger_from(found, from_db) if found else None
            if previous is not None:
                if loader.duplicates == "SKIP":
                    self._ledger_insert(conn, entry, DUPLICATE, 0)
                return LoadOutcome(DUPLICATE, 0, previous)
            try:
                count = conn.executemany(
                    f"INSERT INTO {loader.table} ({names}) VALUES ({marks})", rows
                ).rowcount
            except sqlite3.Error as exc:
                raise DictionaryError(f"inserting into {loader.target}: {exc}") from exc
            self._ledger_insert(conn, entry, LOADED, max(count, 0))
        return LoadOutcome(LOADED, max(count, 0))

    def _held(self) -> dict[Path, sqlite3.Connection]:
        return self._loading().held()

    @contextmanager
    def load_session(self, loader: Loader) -> Iterator[None]:
        """Load a run's files over this thread's kept connection to the schema's file.

        Opening a connection per file, and closing the last one — which checkpoints the WAL
        into the database file and syncs it — cost about 6 ms a file (measured: 65 files/s
        for small files); so a loading thread keeps its connection from run to run
        (:meth:`_kept`). Each load still commits durably on its own.
        """
        path = self._schema_path(loader.schema)
        held = self._held()
        if path in held:
            yield
            return
        held[path] = self._kept(path)
        try:
            yield
        finally:
            del held[path]

    def _kept(self, path: Path) -> sqlite3.Connection:
        """This thread's kept connection to ``path``, (re)opened when the file is a new one.

        The exception to "a connection lives for one call": the loader pool's threads keep one
        per schema file they load into. A file replaced meanwhile (another inode) gets a new
        connection, so nothing is written into a file that is gone; :meth:`close` closes them.
        """
        state = self._loading()
        kept = state.mine()
        try:
            st = path.stat()
        except OSError as exc:
            raise DictionaryError(f"target schema {path.stem}: {exc}") from exc
        found = kept.get(path)
        if found is not None and found[1] == (st.st_dev, st.st_ino):
            return found[0]
        if found is not None:
            kept.pop(path)
            with state.lock:
                state.kept.remove(found[0])
            found[0].close()
        try:
            uri = f"{path.resolve().as_uri()}?mode=rw"
            conn = sqlite3.connect(
                uri, uri=True, timeout=self.busy_timeout, isolation_level=None,
                check_same_thread=False,  # only this thread uses it; close() may come from another
            )  # fmt: skip
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise DictionaryError(f"cannot open {path}: {exc}") from exc
        kept[path] = (conn, (st.st_dev, st.st_ino))
        with state.lock:
            state.kept.append(conn)
        return conn

    def close(self) -> None:
        """Close the connections the loading threads kept (then whatever the others hold)."""
        state = self.__dict__.pop("_loading_state", None)
        if state is not None:
            with state.lock:
                conns, state.kept = state.kept, []
            for conn in conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        super().close()

    @contextmanager
    def _durable_write(self, path: Path) -> Iterator[sqlite3.Connection]:
        """Like ``_write``, but the commit is synced to disk (``synchronous = FULL``)."""
        conn = self._held().get(path)
        if conn is None:
            with writer_lock(path), self._connect(path) as conn, self._durable(conn):
                yield conn
            return
        try:
            with writer_lock(path), self._durable(conn):
                yield conn
        except sqlite3.Error as exc:
            raise DictionaryError(f"{path.name}: {exc}") from exc

    @staticmethod
    @contextmanager
    def _durable(conn: sqlite3.Connection) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` with ``synchronous = FULL``; roll back on error."""
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _ledger_insert(
        conn: sqlite3.Connection, entry: LedgerEntry, status: str, rows: int
    ) -> None:
        conn.execute(
            f"INSERT INTO ADM_LOAD_LOG ({LEDGER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.claim_id,
                entry.content_sha256,
                entry.file_name,
                entry.file_size,
                entry.target,
                entry.loader,
                entry.run_id,
                status,
                rows,
                to_db(_utcnow()),
            ),
        )

    def target_row_count(self, schema: str, table: str) -> int:
        """Rows in ``schema.table``; 0 when the schema or table does not exist."""
        path = self._schema_path(schema)
        if not path.exists():
            return 0
        with self._connect(path) as conn:
            if not conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone():
                return 0
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    # -- the ledger --------------------------------------------------------------------------

    def _ledger_query(
        self, where: str, args: tuple[Any, ...], limit: int | None
    ) -> list[LedgerEntry]:
        found: list[LedgerEntry] = []
        for schema in self.schemas():
            with self._connect(self._schema_path(schema)) as conn:
                if self._file_version(conn, schema) < 2:
                    continue
                sql = f"SELECT {LEDGER_COLUMNS} FROM ADM_LOAD_LOG {where} ORDER BY LOADED_AT DESC"
                if limit is not None:
                    sql += f" LIMIT {int(limit)}"
                found.extend(ledger_from(r, from_db) for r in conn.execute(sql, args))
        found.sort(key=lambda e: (e.loaded_at, e.claim_id), reverse=True)
        return found if limit is None else found[:limit]

    def find_claim(self, claim_id: str) -> LedgerEntry | None:
        """The ledger row of ``claim_id`` in any schema, or None."""
        found = self._ledger_query("WHERE CLAIM_ID = ?", (claim_id,), 1)
        return found[0] if found else None

    def find_content(self, content_sha256: str, target: str) -> LedgerEntry | None:
        """The first LOADED row of this content into ``target``, or None."""
        schema = target.partition(".")[0]
        if schema not in self.schemas():
            return None
        with self._connect(self._schema_path(schema)) as conn:
            row = conn.execute(
                f"SELECT {LEDGER_COLUMNS} FROM ADM_LOAD_LOG WHERE CONTENT_SHA256 = ? "
                "AND TARGET = ? AND LOAD_STATUS = ? ORDER BY LOADED_AT LIMIT 1",
                (content_sha256, target, LOADED),
            ).fetchone()
        return ledger_from(row, from_db) if row else None

    def load_ledger(self, limit: int | None = 100) -> list[LedgerEntry]:
        """``REDSYS.ADM_LOAD_LEDGER``: the union of every schema's ``ADM_LOAD_LOG``."""
        return self._ledger_query("", (), limit)
