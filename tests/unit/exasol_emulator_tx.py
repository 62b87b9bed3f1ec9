"""Transactions of the emulated Exasol (:mod:`tests.unit.exasol_emulator`): table locks.

Exasol's rules (its knowledge base, "Transaction System" and "WAIT FOR COMMIT on SELECT
statement"): isolation is SERIALIZABLE, "object locking is based on table level"; readers
never wait for writers (multi-version: a reader sees the last committed copy); a second writer
of a table waits until the first one's transaction ends (WAIT FOR COMMIT) and then goes on when
it had not read that table before ("write/write conflict"), or is rolled back when it had
("read/write conflict": the two reads cannot be put in an order). The same holds when the other
writer committed after this transaction began without it having waited.

Emulated so: :class:`TableLocks` hands out one write lock per ``SCHEMA.TABLE`` (plus
``<CATALOG>`` for DDL and the catalog tables the emulator keeps, which DuckDB cannot change
concurrently); a connection remembers what its transaction read and locked and ends both with
the transaction. Not emulated: the three-transaction WAIT FOR COMMIT of a reader (its example
1), system tables taking read locks, lock wait beyond :data:`LOCK_WAIT` (a rollback here).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import duckdb
import pyexasol

from tests.unit import exasol_emulator_sql as sql

if TYPE_CHECKING:
    from tests.unit.exasol_emulator import EmulatedDatabase

__all__ = ["CATALOG", "CONFLICT", "CONSTRAINT", "LOCK_WAIT", "OTHER", "TableLocks", "Transactions"]

CONFLICT, CONSTRAINT, OTHER = "40001", "27001", "42000"

CATALOG = "<CATALOG>"
LOCK_WAIT = 10.0


class TableLocks:
    """One write lock per table, owned by a connection (its number) until its transaction ends."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.owners: dict[str, int] = {}
        self.waits = 0
        """How many times a writer had to wait (for the tests)."""

    def acquire(self, owner: int, table: str, timeout: float = LOCK_WAIT) -> bool:
        """Take ``table``'s write lock for ``owner``; True when it had to wait for another
        transaction first. TimeoutError past ``timeout``."""
        deadline = time.monotonic() + timeout
        waited = False
        with self._cond:
            while self.owners.get(table, owner) != owner:
                if not waited:
                    waited = True
                    self.waits += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{table} stayed locked for {timeout:g} s (WAIT FOR COMMIT)")
                self._cond.wait(left)
            self.owners[table] = owner
        return waited

    def release(self, owner: int) -> None:
        """End of ``owner``'s transaction: its locks go."""
        with self._cond:
            for table in [t for t, o in self.owners.items() if o == owner]:
                del self.owners[table]
            self._cond.notify_all()

    def held_by(self, owner: int) -> set[str]:
        """The tables ``owner`` holds."""
        with self._cond:
            return {t for t, o in self.owners.items() if o == owner}


class Transactions:
    """The transaction half of :class:`~tests.unit.exasol_emulator.EmulatedConnection`: BEGIN,
    COMMIT/ROLLBACK, table locks, statement-level failure (module doc)."""

    db: EmulatedDatabase
    number: int
    cursor: duckdb.DuckDBPyConnection
    _in_tx: bool
    _began_after: int
    _written: set[str]
    _read: set[str]
    _replay: list[tuple[str, Sequence[object] | None]]

    def _begin(self) -> None:
        if not self._in_tx:
            self.cursor.execute("BEGIN TRANSACTION")
            self._in_tx = True
            self._began_after = self.db.commits

    def _lock(self, table: str, query: str) -> None:
        """The write lock of ``table`` for this transaction: wait for another writer's end (WAIT
        FOR COMMIT); a read/write conflict rolls this transaction back (40001)."""
        self._begin()
        try:
            waited = self.db.locks.acquire(self.number, table, LOCK_WAIT)
        except TimeoutError as exc:
            self._end("ROLLBACK")
            raise self._error(query, CONFLICT, f"transaction rolled back: {exc}") from None
        newer = self.db.last_write.get(table, 0) > self._began_after
        if table in self._read and (waited or newer):
            self._end("ROLLBACK")
            raise self._error(
                query, CONFLICT, f"read/write conflict on {table}: transaction rolled back"
            )

    def _end(self, what: str) -> None:
        written, self._written = self._written, set()
        self._read, self._replay = set(), []
        try:
            if self._in_tx:
                self._in_tx = False
                self.cursor.execute(what)
                if what == "COMMIT" and written:
                    with self.db._lock:
                        self.db.commits += 1
                        self.db.last_write.update(dict.fromkeys(written, self.db.commits))
        except duckdb.Error as exc:
            raise self._translate_error(what, exc) from exc
        finally:
            self._release()

    def _release(self) -> None:
        self.db.locks.release(self.number)

    def _error(self, query: str, code: str, message: str) -> pyexasol.ExaQueryError:
        return pyexasol.ExaQueryError(self, query, code, f"emulated: {message}")

    def _translate_error(self, query: str, exc: duckdb.Error) -> pyexasol.ExaQueryError:
        text = str(exc)
        if isinstance(exc, duckdb.TransactionException):
            return self._error(query, CONFLICT, f"transaction collision: {text}")
        if isinstance(exc, duckdb.ConstraintException):
            code = CONSTRAINT
            if "CHECK constraint" in text and sql.LENGTH_CHECK in text:
                text = f"data exception - string data, right truncation: {text}"
            return self._error(query, code, text)
        return self._error(query, OTHER, text)

    def _run(
        self, statement: str, params: Sequence[object] | None = None, *, write: bool = True
    ) -> duckdb.DuckDBPyConnection:
        self._begin()
        try:
            cursor = self.cursor.execute(statement, params)
        except duckdb.Error as exc:
            error = self._translate_error(statement, exc)
            if error.code == CONFLICT:
                self._end("ROLLBACK")  # a collision rolls back the whole transaction
            else:
                self._statement_failed()
            raise error from exc
        if write:
            self._replay.append((statement, params))
        return cursor

    def _statement_failed(self) -> None:
        """Exasol fails the statement, not the transaction; DuckDB aborts the transaction: so
        it is begun again and its earlier writes are replayed (an IDENTITY may skip numbers).
        A replay that fails rolls the transaction back, as a collision would."""
        writes = list(self._replay)
        try:
            self.cursor.execute("ROLLBACK")
            self.cursor.execute("BEGIN TRANSACTION")
            for statement, params in writes:
                self.cursor.execute(statement, params)
        except duckdb.Error:
            self._in_tx = True
            self._end("ROLLBACK")

    def _collision(self, exc: pyexasol.ExaQueryError, target: str | None) -> Exception:
        """A duplicate key of a row committed after this transaction began is Exasol's
        transaction collision (serializable isolation), not a constraint violation."""
        duplicate = exc.code == CONSTRAINT and "Duplicate key" in str(exc.message)
        if not duplicate or self.db.last_write.get(target or "", 0) <= self._began_after:
            return exc
        return self._error(exc.query, CONFLICT, f"transaction collision on {target}")
