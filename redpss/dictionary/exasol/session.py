"""Connections to Exasol: one per thread, explicit transactions, reconnect with backoff.

pyexasol does not reconnect. :meth:`Session.transaction` does: a unit of work runs in one
transaction on the calling thread's connection and is committed at its end. When the
connection breaks (``ExaCommunicationError``, a closed connection, a refused connect) the
connection is dropped, and after a backoff (0.25 s doubling up to 5 s) a new one is opened,
its session settings applied again, and the *whole unit* runs again — until
``exa_reconnect_timeout`` is used up; then DictionaryError says the database is away, and the
role keeps its work (the run-log writer keeps its batch, dbls its queue, the loader leaves the
file in ``work/``) to try again later. A transaction the database rolled back (SQLSTATE 40001,
a collision of Exasol's serializable isolation, and the other "transaction was rolled back"
states of :data:`ROLLED_BACK_SQLSTATES`) is rolled back and retried the same way; the states of
a failed reconnect (:data:`RECONNECT_SQLSTATES`) count as a broken connection.

A unit may run twice when the connection broke after the database committed it but before
the answer arrived. The units are written for that: upserts are MERGEs, a load checks the
ledger first (the ledger row is in the load's transaction), and a duplicate log line is the
worst case.

Telemetry of pyexasol is switched off (``EXASOL_TELEMETRY_DISABLE``) before it is imported.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from redpss.dictionary.exasol.dialect import Dialect
from redpss.dictionary.exasol.sqltext import TIMESTAMP_FORMAT, literal, literals, render
from redpss.errors import DictionaryError

if TYPE_CHECKING:
    from redpss.config import Config

__all__ = ["Connection", "ExaSettings", "Session", "Tx"]

log = logging.getLogger(__name__)

# before pyexasol is first imported anywhere in this process
os.environ.setdefault("EXASOL_TELEMETRY_DISABLE", "1")

T = TypeVar("T")

ROLLED_BACK_SQLSTATES = frozenset(
    {"40001", "40002", "40003", "40005", "40007", "40008", "40010", "40011", "40017", "40019"}
)
"""The transaction was rolled back (a collision, or the driver reconnected after a failure):
run the unit again. Exasol's knowledge base, "Clients and Fail Safety"."""
RECONNECT_SQLSTATES = frozenset({"40004", "40009", "40018", "40020", "08001"})
"""The reconnect failed or the connection is lost (same article): open a new connection."""
FIRST_DELAY = 0.25
MAX_DELAY = 5.0
_FINGERPRINT_RE = re.compile(r"[0-9A-Fa-f]{64}")

SESSION_TIME_ZONE_SQL = "ALTER SESSION SET TIME_ZONE = 'UTC'"
SESSION_TIMESTAMP_FORMAT_SQL = "ALTER SESSION SET NLS_TIMESTAMP_FORMAT = {fmt}"
SESSION_QUERY_TIMEOUT_SQL = "ALTER SESSION SET QUERY_TIMEOUT = {seconds!r}"
COMMIT_SQL = "COMMIT"


class Statement(Protocol):
    """What pyexasol's ``ExaStatement`` offers that we use."""

    def fetchall(self) -> list[tuple[Any, ...]]: ...

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]: ...

    def rowcount(self) -> int: ...


class Connection(Protocol):
    """What pyexasol's ``ExaConnection`` offers that we use (a fake in the unit tests)."""

    login_info: dict[str, Any]
    """The login answer; ``releaseVersion`` is the database's version."""

    def execute(self, query: str) -> Statement: ...

    def execute_sql_script(self, script: str) -> Sequence[Statement]: ...

    def commit(self) -> Any: ...

    def rollback(self) -> Any: ...

    def close(self, disconnect: bool = True) -> Any: ...


@dataclass(frozen=True)
class ExaSettings:
    """How to reach the database: from ``[DEFAULT] exa_*`` of red_params.conf."""

    dsn: str
    user: str
    password: str = field(repr=False)
    certificate: str = ""
    connect_timeout: float = 10.0
    reconnect_timeout: float = 30.0
    schema: str = ""

    @classmethod
    def from_config(cls, config: Config, etc_dir: Path) -> ExaSettings:
        """The settings of ``config``'s ``[DEFAULT]`` section; a CA file is relative to etc/."""
        d = config.default
        cert = d.exa_certificate
        if cert and cert != "nocertcheck" and not _FINGERPRINT_RE.fullmatch(cert):
            cert = str(etc_dir / cert) if not Path(cert).is_absolute() else cert
        return cls(
            dsn=d.exa_connection,
            user=d.exa_username,
            password=d.exa_password.reveal(),
            certificate=cert,
            connect_timeout=d.exa_connect_timeout,
            reconnect_timeout=d.exa_reconnect_timeout,
        )

    def connect_kwargs(self) -> dict[str, Any]:
        """The arguments of ``pyexasol.connect`` (certificate rule of red_params.conf)."""
        import ssl

        dsn = self.dsn
        sslopt: dict[str, Any] | None = None
        if self.certificate == "nocertcheck":
            sslopt = {"cert_reqs": ssl.CERT_NONE}
        elif _FINGERPRINT_RE.fullmatch(self.certificate):
            host, sep, port = dsn.rpartition(":")
            dsn = f"{host}/{self.certificate.upper()}{sep}{port}" if sep else dsn
        elif self.certificate:
            sslopt = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": self.certificate}
        return {
            "dsn": dsn,
            "user": self.user,
            "password": self.password,
            "schema": self.schema,
            "autocommit": False,
            "encryption": True,
            "websocket_sslopt": sslopt,
            "connection_timeout": self.connect_timeout,
            "socket_timeout": max(self.connect_timeout, 30.0),
            "compression": True,
            "client_name": "redpss",
            # identifiers pyexasol writes itself (IMPORT's table and columns) are quoted as
            # given: a loader's column may be a reserved word of Exasol (DAY, VALUE, LEVEL …)
            "quote_ident": True,
        }


def pyexasol_connect(settings: ExaSettings) -> Connection:
    """Open a pyexasol connection (telemetry off: see the top of this module)."""
    import pyexasol

    conn: Connection = pyexasol.connect(**settings.connect_kwargs())
    return conn


def _classify(exc: BaseException) -> str | None:
    """``"broken"`` (reconnect), ``"conflict"`` (roll back and retry) or None (give up)."""
    try:
        import pyexasol
    except ImportError:  # pragma: no cover - pyexasol is a dependency
        return None
    if isinstance(exc, pyexasol.ExaAuthError | pyexasol.ExaConnectionDsnError):
        return None
    if isinstance(exc, pyexasol.ExaQueryError):
        code = str(exc.code)
        if code in RECONNECT_SQLSTATES:
            return "broken"
        return "conflict" if code in ROLLED_BACK_SQLSTATES else None
    if isinstance(
        exc,
        pyexasol.ExaCommunicationError | pyexasol.ExaConnectionError | pyexasol.ExaRuntimeError,
    ):
        return "broken"
    if isinstance(exc, ConnectionError | TimeoutError):
        return "broken"
    return None


def error_text(exc: BaseException) -> str:
    """The message of a pyexasol error (its ``str`` needs a live connection) or any error."""
    message = getattr(exc, "message", None)
    code = getattr(exc, "code", None)
    text = str(message) if message is not None else str(exc) or type(exc).__name__
    return f"{text} (SQLSTATE {code})" if code else text


def dialect_of(conn: Connection, dsn: str) -> Dialect:
    """The dialect of the database ``conn`` logged in to (its ``releaseVersion``)."""
    info = getattr(conn, "login_info", None) or {}
    return Dialect.of(str(info.get("releaseVersion") or ""), dsn=f"the database at {dsn}")


class Tx:
    """One transaction on one connection: what a unit of work is given."""

    def __init__(self, conn: Connection, dialect: Dialect) -> None:
        self.conn = conn
        self.dialect = dialect

    def render(self, template: str, /, **params: object) -> str:
        """``template`` filled for this database (timestamps with its fractional digits)."""
        return render(template, params, fraction_digits=self.dialect.fraction_digits)

    def literal(self, value: object) -> str:
        """``value`` as a literal for this database."""
        return literal(value, self.dialect.fraction_digits)

    def literals(self, values: Sequence[object]) -> str:
        """A comma-separated list of literals for this database."""
        return literals(values, self.dialect.fraction_digits)

    def execute(self, template: str, /, **params: object) -> int:
        """Run a statement; return the rows it affected."""
        return int(self.conn.execute(self.render(template, **params)).rowcount())

    def statement(self, sql: str) -> int:
        """Run generated SQL text as it is (DDL from the model: no placeholders)."""
        return int(self.conn.execute(sql).rowcount())

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run generated query text as it is; return its rows."""
        return [tuple(r) for r in self.conn.execute(sql).fetchall()]

    def rows(self, template: str, /, **params: object) -> list[tuple[Any, ...]]:
        """Run a query; return its rows."""
        return [tuple(r) for r in self.conn.execute(self.render(template, **params)).fetchall()]

    def value(self, template: str, /, **params: object) -> Any:
        """The first column of the first row (None when there is no row)."""
        found = self.rows(template, **params)
        return found[0][0] if found else None


class Session:
    """Thread-local connections with session settings, transactions with retry."""

    def __init__(
        self,
        settings: ExaSettings,
        *,
        connect: Callable[[ExaSettings], Connection] = pyexasol_connect,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._connect = connect
        self._sleep = sleep
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[Connection] = []
        self._dialect: Dialect | None = None
        self.reconnects = 0
        """How many times a broken connection was replaced (for status INFO and tests)."""

    def __repr__(self) -> str:
        return f"Session(dsn={self.settings.dsn!r}, user={self.settings.user!r})"

    # -- connections -------------------------------------------------------------------------

    def connection(self) -> Connection:
        """The calling thread's connection, opened (and set up) when it has none."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open_connection()
            self._local.conn = conn
        return conn

    def _open_connection(self) -> Connection:
        """A new connection, its version known (7.1 or newer, or refused) and set up."""
        conn = self._connect(self.settings)
        try:
            dialect = dialect_of(conn, self.settings.dsn)
            for statement in self.setup_statements():
                conn.execute(statement)
            conn.commit()
        except BaseException:
            _quietly(conn.close)
            raise
        with self._lock:
            self._open.append(conn)
            self._dialect = dialect
        return conn

    @contextmanager
    def dedicated(self, *, what: str) -> Iterator[Connection]:
        """A connection of its own for one long read (an export), not retried: the thread's
        units may commit meanwhile without ending its result set, and its read transaction
        ends with it (rolled back, the connection closed) — an open read transaction keeps
        read locks that make other sessions WAIT FOR COMMIT (Exasol's knowledge base)."""
        try:
            conn = self._open_connection()
        except BaseException as exc:
            if _is_pyexasol_error(exc):
                raise self._error(what, exc) from exc
            raise
        try:
            yield conn
        except BaseException as exc:
            if _is_pyexasol_error(exc):
                raise self._error(what, exc) from exc
            raise
        finally:
            _quietly(conn.rollback)
            with self._lock:
                if conn in self._open:
                    self._open.remove(conn)
            _quietly(conn.close)

    @property
    def dialect(self) -> Dialect:
        """The SQL of the database's version, as its last new connection said (a connection is
        opened to ask, when none was yet)."""
        if self._dialect is None:
            self.transaction(lambda tx: None, what="reading the database version")
        assert self._dialect is not None
        return self._dialect

    @staticmethod
    def setup_statements() -> list[str]:
        """What every new connection runs first (again after a reconnect)."""
        return [
            SESSION_TIME_ZONE_SQL,
            render(SESSION_TIMESTAMP_FORMAT_SQL, fmt=TIMESTAMP_FORMAT),
            render(SESSION_QUERY_TIMEOUT_SQL, seconds=0),
        ]

    def dialect_now(self) -> Dialect:
        """The dialect learnt from the connection just opened (inside a unit)."""
        assert self._dialect is not None, "no connection has been opened yet"
        return self._dialect

    def drop(self) -> None:
        """Forget (and close) the calling thread's connection."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._open:
                    self._open.remove(conn)
            _quietly(lambda: conn.close(disconnect=False))

    def close(self) -> None:
        """Close every connection this session opened (any thread); idempotent."""
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            _quietly(conn.close)
        self._local = threading.local()

    # -- units of work -----------------------------------------------------------------------

    def transaction(self, unit: Callable[[Tx], T], *, what: str) -> T:
        """Run ``unit`` in one transaction and commit; retry it as the module doc says.

        ``what`` names the work in errors ("heartbeat of sched", "load of a.csv").
        """
        deadline = self._clock() + self.settings.reconnect_timeout
        delay = FIRST_DELAY
        while True:
            try:
                conn = self.connection()
            except Exception as exc:  # not BaseException: Ctrl-C stays a KeyboardInterrupt
                if _classify(exc) != "broken":
                    raise self._error(what, exc) from exc
                delay = self._backoff(what, exc, deadline, delay)
                continue
            try:
                result = unit(Tx(conn, self.dialect_now()))
                conn.execute(COMMIT_SQL)
                return result
            except BaseException as exc:
                kind = _classify(exc)
                if kind == "broken":
                    self.drop()
                    self.reconnects += 1
                else:
                    _quietly(conn.rollback)
                if kind is None:
                    if isinstance(exc, DictionaryError | TimeoutError | ValueError | KeyError):
                        raise
                    if _is_pyexasol_error(exc):
                        raise self._error(what, exc) from exc
                    raise
                delay = self._backoff(what, exc, deadline, delay)

    def _backoff(self, what: str, exc: BaseException, deadline: float, delay: float) -> float:
        now = self._clock()
        if now + delay > deadline:
            raise DictionaryError(
                f"{what}: the Exasol database at {self.settings.dsn} did not answer for "
                f"{self.settings.reconnect_timeout:g} s (exa_reconnect_timeout): "
                f"{error_text(exc)}"
            ) from exc
        log.warning("%s: %s; trying again in %.2f s", what, error_text(exc), delay)
        self._sleep(delay)
        return min(delay * 2, MAX_DELAY)

    def _error(self, what: str, exc: BaseException) -> DictionaryError:
        return DictionaryError(f"{what}: {error_text(exc)}")

    @contextmanager
    def raw(self, *, what: str) -> Iterator[Connection]:
        """The thread's connection for one call that is not a unit (no retry), e.g. a job's
        own statement: errors become DictionaryError, a broken connection is dropped."""
        conn = self.connection()
        try:
            yield conn
        except BaseException as exc:
            if _classify(exc) == "broken":
                self.drop()
            else:
                _quietly(conn.rollback)
            if _is_pyexasol_error(exc):
                raise self._error(what, exc) from exc
            raise


def _is_pyexasol_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("pyexasol")


def _quietly(call: Callable[[], object]) -> None:
    try:
        call()
    except Exception as exc:  # closing a broken connection may fail: nothing to do about it
        log.debug("ignored while closing: %s", error_text(exc))
