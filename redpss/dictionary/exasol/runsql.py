"""SQL jobs and SQL watchers on Exasol: a job's statement runs once, a watcher's query.

A SQL job's statement runs once: the session's retry is for our own units, which are written
to be run twice; a job's statement is not. Before it, a retried unit opens the job's schema
and sets its ``QUERY_TIMEOUT`` (so a connection that broke while idle is replaced first); the
statement itself then runs on that connection without retry (:meth:`Session.raw`), in one
transaction, and the timeout is set back to 0. ``ExaQueryTimeoutError`` becomes TimeoutError,
as the SQLite backend's interrupted statement does.

A watcher's query is only read, so it runs as an ordinary unit (retried after a reconnect).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from redpss.dictionary.exasol.core import ExasolCore
from redpss.dictionary.exasol.session import (
    SESSION_QUERY_TIMEOUT_SQL,
    Connection,
    Tx,
    error_text,
)
from redpss.dictionary.exasol.sqltext import render
from redpss.dictionary.jobs import SqlResult

__all__ = ["ExasolSqlJobs"]

log = logging.getLogger(__name__)

_MESSAGE_LIMIT = 2000
_RESULT_ROWS = 20

OPEN_SCHEMA_SQL = "OPEN SCHEMA {schema!q}"


class _QueryTimeout(Exception):
    """Raised inside a unit (the session would take a TimeoutError for a broken connection)."""


def _timeout_seconds(timeout: float | None) -> int:
    return 0 if timeout is None else max(1, math.ceil(timeout))


def _result_text(rows: list[tuple[Any, ...]], more: bool) -> str:
    """A returned result (an EXECUTE SCRIPT's table) as one bounded line for the job log."""
    text = "; ".join(", ".join("NULL" if v is None else str(v) for v in row) for row in rows)
    text = f"result: {text}" + (" …" if more else "")
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


class ExasolSqlJobs(ExasolCore):
    """Statements of SQL jobs and queries of SQL watchers, in the job's schema."""

    def _prepare(self, schema: str, timeout: float | None) -> None:
        """Open ``schema`` and set the query timeout on this thread's connection (retried)."""
        self.ensure_ready(schema)

        def unit(tx: Tx) -> None:
            tx.execute(OPEN_SCHEMA_SQL, schema=schema)
            if timeout is not None:
                tx.execute(SESSION_QUERY_TIMEOUT_SQL, seconds=_timeout_seconds(timeout))

        self.tx(unit, what=f"preparing a statement in {schema}")

    def _reset_timeout(self, conn: Connection) -> None:
        try:
            conn.execute(render(SESSION_QUERY_TIMEOUT_SQL, seconds=0))
        except Exception as exc:  # a new connection starts with QUERY_TIMEOUT = 0: use one
            log.warning("cannot reset QUERY_TIMEOUT (%s): the connection is replaced", exc)
            self.session.drop()

    def run_sql(
        self,
        schema: str,
        statement: str,
        *,
        timeout: float | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> int:
        """Run a job's statement(s) in ``schema``; return the rows affected."""
        return self.run_sql_job(schema, statement, timeout=timeout, cancel=cancel).rows

    def run_sql_job(
        self,
        schema: str,
        statement: str,
        *,
        timeout: float | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> SqlResult:
        """Run a job's statement(s) once, in one transaction; TimeoutError past ``timeout``.

        Rows affected are summed over the statements; a statement that returns rows (an
        ``EXECUTE SCRIPT`` whose script exits with a table) has them in the message.
        """
        import pyexasol

        self._prepare(schema, timeout)
        timed_out: BaseException | None = None
        rows, results = 0, []
        stmts: Sequence[Any]
        with self.session.raw(what=f"SQL job in {schema}") as conn, _aborting(conn, cancel):
            try:
                # pyexasol >= 2.3 splits the text into statements as EXAplus does (``;``, a
                # script body ended by a line holding ``/``); each runs on its own
                stmts = conn.execute_sql_script(statement)
                for stmt in stmts:
                    if getattr(stmt, "result_type", None) == "resultSet":
                        fetched = [tuple(r) for r in stmt.fetchmany(_RESULT_ROWS + 1)]
                        more = len(fetched) > _RESULT_ROWS
                        results.append(_result_text(fetched[:_RESULT_ROWS], more))
                    else:
                        rows += max(int(stmt.rowcount()), 0)
                conn.commit()
            except pyexasol.ExaQueryTimeoutError as exc:
                timed_out = exc
                conn.rollback()
            finally:
                if timeout is not None:
                    self._reset_timeout(conn)
        if timed_out is not None:
            raise TimeoutError(
                f"statement stopped after its timeout of {timeout} s: {error_text(timed_out)}"
            ) from timed_out
        return SqlResult(rows, "; ".join(results) or None)

    def query_value(self, schema: str, query: str, *, timeout: float | None = None) -> str:
        """Run a watcher's query; one value as text, else a hash of the whole result."""
        import pyexasol

        self.ensure_ready(schema)

        def unit(tx: Tx) -> list[tuple[Any, ...]]:
            tx.execute(OPEN_SCHEMA_SQL, schema=schema)
            if timeout is None:
                return tx.query(query)
            tx.execute(SESSION_QUERY_TIMEOUT_SQL, seconds=_timeout_seconds(timeout))
            try:
                return tx.query(query)
            except pyexasol.ExaQueryTimeoutError as exc:
                raise _QueryTimeout(error_text(exc)) from exc
            finally:
                self._reset_timeout(tx.conn)

        try:
            rows = self.tx(unit, what=f"watcher query in {schema}")
        except _QueryTimeout as exc:
            raise TimeoutError(f"query stopped after its timeout of {timeout} s: {exc}") from exc
        if len(rows) == 1 and len(rows[0]) == 1:
            return str(rows[0][0])
        text = json.dumps(rows, default=str)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]


@contextlib.contextmanager
def _aborting(conn: Any, cancel: Callable[[], bool] | None) -> Iterator[None]:
    """While the block runs, abort ``conn``'s query once ``cancel()`` is true (``redctl
    kill``): pyexasol's ``abort_query`` may be called from another thread. Not verified
    against a real database here (docs/dictionary.md)."""
    if cancel is None:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            if cancel():
                with contextlib.suppress(Exception):  # the statement may be ending anyway
                    conn.abort_query()
                return

    thread = threading.Thread(target=watch, name="sql-kill", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
