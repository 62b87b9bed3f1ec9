"""Reconnect with backoff, retry on conflicts, session settings, one connection per thread —
against a fake connection that drops (the real database is the exasol tier's)."""

from __future__ import annotations

import os
import ssl
import threading
from typing import Any, ClassVar

import pyexasol
import pytest

from redpss.dictionary.exasol.session import COMMIT_SQL, ExaSettings, Session, Tx
from redpss.errors import DictionaryError

pytestmark = pytest.mark.unit

SETTINGS = ExaSettings(dsn="exa1:8563", user="REDSYS", password="pw", reconnect_timeout=10.0)


class FakeStatement:
    def __init__(self, rows: list[tuple[Any, ...]], count: int) -> None:
        self._rows, self._count = rows, count

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    def rowcount(self) -> int:
        return self._count


class FakeDatabase:
    """What the fake connections talk to: a log of statements, and failures on demand."""

    def __init__(self) -> None:
        self.log: list[tuple[int, str]] = []  # (connection number, sql)
        self.connects = 0
        self.down_for = 0  # refuse this many connects
        self.fail_on: dict[str, list[BaseException]] = {}  # sql prefix -> errors to raise
        self.closed: list[tuple[int, bool]] = []
        self.rollbacks = 0
        self.release = "8.32.0"

    def connect(self, settings: ExaSettings) -> FakeConnection:
        if self.down_for:
            self.down_for -= 1
            raise pyexasol.ExaConnectionFailedError(_Dummy(), "connection refused")
        self.connects += 1
        return FakeConnection(self, self.connects)


class _Dummy:
    options: ClassVar[dict[str, object]] = {
        "dsn": "exa1:8563",
        "user": "REDSYS",
        "verbose_error": False,
    }


class FakeConnection:
    def __init__(self, db: FakeDatabase, number: int) -> None:
        self.db, self.number = db, number
        self.login_info: dict[str, Any] = {"releaseVersion": db.release}

    def execute(self, query: str) -> FakeStatement:
        for prefix, errors in self.db.fail_on.items():
            if query.startswith(prefix) and errors:
                raise errors.pop(0)
        self.db.log.append((self.number, query))
        return FakeStatement([(self.number,)], 1)

    def execute_sql_script(self, script: str) -> list[FakeStatement]:
        raise AssertionError("the session tests send no scripts")

    def commit(self) -> None:
        self.db.log.append((self.number, COMMIT_SQL))

    def rollback(self) -> None:
        self.db.rollbacks += 1

    def close(self, disconnect: bool = True) -> None:
        self.db.closed.append((self.number, disconnect))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def _session(db: FakeDatabase, clock: Clock, settings: ExaSettings = SETTINGS) -> Session:
    return Session(settings, connect=db.connect, sleep=clock.sleep, clock=clock)


def _broken() -> pyexasol.ExaCommunicationError:
    return pyexasol.ExaCommunicationError(_Dummy(), "Connection to remote host was lost")


def test_a_dropped_connection_is_replaced_and_the_unit_runs_again() -> None:
    db, clock = FakeDatabase(), Clock()
    session = _session(db, clock)
    db.fail_on["INSERT"] = [_broken()]
    runs: list[int] = []

    def unit(tx: Tx) -> int:
        runs.append(1)
        return tx.execute("INSERT INTO REDSYS.X VALUES ({v})", v=1)

    assert session.transaction(unit, what="test insert") == 1
    assert len(runs) == 2 and session.reconnects == 1 and clock.sleeps == [0.25]
    assert db.closed == [(1, False)]  # the broken one, without a disconnect request
    second = [sql for n, sql in db.log if n == 2]
    # the new connection got the session settings again before the unit ran
    assert second[0] == "ALTER SESSION SET TIME_ZONE = 'UTC'"
    assert second[-2:] == ["INSERT INTO REDSYS.X VALUES (1)", COMMIT_SQL]
    assert not [sql for n, sql in db.log if n == 1 and sql.startswith("INSERT")]


def test_the_database_away_too_long_is_a_clear_error_after_backoff() -> None:
    db, clock = FakeDatabase(), Clock()
    db.down_for = 1000
    settings = ExaSettings(dsn="exa1:8563", user="REDSYS", password="pw", reconnect_timeout=30)
    session = _session(db, clock, settings)
    with pytest.raises(DictionaryError) as err:
        session.transaction(lambda tx: tx.value("SELECT 1 FROM DUAL"), what="heartbeat of sched")
    text = str(err.value)
    assert "heartbeat of sched" in text and "exa1:8563" in text
    assert "exa_reconnect_timeout" in text and "connection refused" in text
    assert clock.sleeps[:6] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0]
    assert set(clock.sleeps[5:]) == {5.0}  # capped
    assert 25 <= sum(clock.sleeps) <= 30


def test_the_database_back_within_the_timeout_is_used() -> None:
    db, clock = FakeDatabase(), Clock()
    db.down_for = 3
    session = _session(db, clock)
    assert session.transaction(lambda tx: tx.value("SELECT 1 FROM DUAL"), what="q") == 1
    assert clock.sleeps == [0.25, 0.5, 1.0]


def test_a_transaction_conflict_is_rolled_back_and_retried_on_the_same_connection() -> None:
    db, clock = FakeDatabase(), Clock()
    conflict = pyexasol.ExaQueryError(_Dummy(), "MERGE …", "40001", "GlobalTransactionRollback")
    db.fail_on["MERGE"] = [conflict]
    session = _session(db, clock)
    session.transaction(lambda tx: tx.execute("MERGE INTO REDSYS.X"), what="upsert")
    assert db.rollbacks == 1 and db.connects == 1 and session.reconnects == 0


def test_a_query_error_is_not_retried_and_names_the_work() -> None:
    db, clock = FakeDatabase(), Clock()
    bad = pyexasol.ExaQueryError(_Dummy(), "SELECT", "42000", "object X not found")
    db.fail_on["SELECT"] = [bad]
    session = _session(db, clock)
    with pytest.raises(DictionaryError, match=r"reading X: object X not found \(SQLSTATE 42000\)"):
        session.transaction(lambda tx: tx.rows("SELECT * FROM X"), what="reading X")
    assert db.rollbacks == 1 and clock.sleeps == []
    assert [s for _, s in db.log].count(COMMIT_SQL) == 1  # the session setup's, not the unit's


def test_wrong_credentials_are_not_retried() -> None:
    clock = Clock()

    def refuse(settings: ExaSettings) -> FakeConnection:
        raise pyexasol.ExaAuthError(_Dummy(), "08004", "user REDSYS: wrong password")

    session = Session(SETTINGS, connect=refuse, sleep=clock.sleep, clock=clock)
    with pytest.raises(DictionaryError, match="wrong password"):
        session.transaction(lambda tx: 1, what="login")
    assert clock.sleeps == []


def test_one_connection_per_thread_and_close_closes_all() -> None:
    db, clock = FakeDatabase(), Clock()
    session = _session(db, clock)
    seen: list[int] = []

    def work() -> None:
        seen.append(session.transaction(lambda tx: tx.value("SELECT 1 FROM DUAL"), what="q"))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    work()
    work()
    assert sorted(seen) == [1, 2, 3, 4, 4]  # the main thread reuses its connection
    session.close()
    assert sorted(n for n, _ in db.closed) == [1, 2, 3, 4]


def test_certificate_settings() -> None:
    fp = "ab" * 32
    kw = ExaSettings(dsn="exa1:8563", user="u", password="p", certificate=fp).connect_kwargs()
    assert kw["dsn"] == f"exa1/{fp.upper()}:8563" and kw["websocket_sslopt"] is None
    kw = ExaSettings(dsn="e:1", user="u", password="p", certificate="nocertcheck").connect_kwargs()
    assert kw["websocket_sslopt"] == {"cert_reqs": ssl.CERT_NONE}
    kw = ExaSettings(dsn="e:1", user="u", password="p", certificate="/ca.pem").connect_kwargs()
    assert kw["websocket_sslopt"] == {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": "/ca.pem"}
    kw = ExaSettings(dsn="e:1", user="u", password="p").connect_kwargs()
    assert kw["websocket_sslopt"] is None  # pyexasol then verifies against the system CAs
    assert kw["encryption"] is True and kw["autocommit"] is False


def test_pyexasol_telemetry_is_off() -> None:
    assert os.environ.get("EXASOL_TELEMETRY_DISABLE")


def test_pyexasol_is_pinned_to_what_the_backend_needs() -> None:
    """2.3 brought ``execute_sql_script`` (SQL jobs of several statements; changelog 2.3.0,
    #348); 1.0 the ``PUBLIC KEY`` of its HTTP transport in IMPORT on Exasol 8.32+ (changelog
    1.0.0, #194), without which every load fails there once certificates are verified."""
    import importlib.metadata
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement
    from packaging.version import Version

    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    (line,) = [d for d in dependencies if Requirement(d).name == "pyexasol"]
    pin = Requirement(line).specifier
    assert set(map(str, pin)) == {">=2.3", "<4"}
    assert Version(importlib.metadata.version("pyexasol")) in pin
    assert callable(getattr(pyexasol.ExaConnection, "execute_sql_script", None))


@pytest.mark.parametrize("code", ["40001", "40002", "40005", "40011", "40017", "40019"])
def test_every_rolled_back_transaction_is_run_again(code: str) -> None:
    """Exasol's knowledge base ("Clients and Fail Safety"): after these the transaction was
    rolled back (collision, or a reconnect after a failure): the unit runs again."""
    db, clock = FakeDatabase(), Clock()
    db.fail_on["MERGE"] = [pyexasol.ExaQueryError(_Dummy(), "MERGE …", code, "rolled back")]
    session = _session(db, clock)
    session.transaction(lambda tx: tx.execute("MERGE INTO REDSYS.X"), what="upsert")
    assert db.rollbacks == 1 and session.reconnects == 0


@pytest.mark.parametrize("code", ["40004", "40009", "40018", "40020", "08001"])
def test_a_failed_reconnect_opens_a_new_connection(code: str) -> None:
    db, clock = FakeDatabase(), Clock()
    db.fail_on["MERGE"] = [pyexasol.ExaQueryError(_Dummy(), "MERGE …", code, "reconnect failed")]
    session = _session(db, clock)
    session.transaction(lambda tx: tx.execute("MERGE INTO REDSYS.X"), what="upsert")
    assert db.connects == 2 and session.reconnects == 1


def test_ctrl_c_during_a_connect_stays_a_keyboard_interrupt() -> None:
    clock = Clock()

    def interrupted(settings: ExaSettings) -> FakeConnection:
        raise KeyboardInterrupt

    session = Session(SETTINGS, connect=interrupted, sleep=clock.sleep, clock=clock)
    with pytest.raises(KeyboardInterrupt):
        session.transaction(lambda tx: None, what="heartbeat")
    with pytest.raises(KeyboardInterrupt), session.dedicated(what="export"):
        pass
