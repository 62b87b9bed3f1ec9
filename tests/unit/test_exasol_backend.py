"""The Exasol dictionary backend executed on the emulated database (not on Exasol).

The backend-neutral tests of ``test_dictionary`` run here once more against the Exasol
backend; what they cannot do (they open SQLite files) is done below with Exasol SQL. The
emulation and its limits: ``tests/unit/exasol_emulator.py``. A real Exasol: ``tests/exasol``.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pyexasol
import pytest
import sqlglot

from redpss.config import load_config
from redpss.dictionary import SCHEMA_VERSION, Dictionary
from redpss.dictionary.exasol.sqltext import literal, render
from redpss.dictionary.jobs import RunUpdate
from redpss.dictionary.model import DICTIONARY, MIGRATIONS, TABLES
from redpss.dictionary.objects import Column, Model
from redpss.dictionary.scripts import SCRIPTS, db_script_statements
from redpss.errors import DictionaryError, MigrationError
from redpss.instance import Instance
from tests.unit import test_dictionary as shared
from tests.unit import test_exasol_sql as statements
from tests.unit.exasol_emulator import TOLERATED_RESERVED, EmulatedConnection, EmulatedDatabase
from tests.unit.exasol_emulator_sql import reserved_word
from tests.unit.exasol_support import emulated_dictionary

T = TypeVar("T")

pytestmark = pytest.mark.unit

SQLITE_ONLY = {
    "test_init_creates_redsys_objects_in_wal_mode_and_is_idempotent": "reads the SQLite file",
    "test_ensure_schema_creates_target_objects": "reads the SQLite files",
    "test_sql_alert_matches_the_python_rule": "writes the SQLite file (Exasol version below)",
    "test_view_and_method_agree": "writes the SQLite file (Exasol version below)",
    "test_sqlite_errors_are_translated": "sqlite3 errors",
}
"""Tests of ``test_dictionary`` taking ``dic`` that do not run here, and why."""

DIFFERENCES: dict[str, str] = {}
"""Shared tests the Exasol backend fails today (strict xfail: a fix makes them fail here)."""


def _shared_tests() -> Iterator[Any]:
    for name, test in sorted(vars(shared).items()):
        if not name.startswith("test_") or name in SQLITE_ONLY:
            continue
        if "dic" not in inspect.signature(test).parameters:
            continue
        marks = [m for m in getattr(test, "pytestmark", []) if m.name == "parametrize"]
        known = (
            [pytest.mark.xfail(strict=True, reason=DIFFERENCES[name])]
            if name in DIFFERENCES
            else []
        )
        if not marks:
            yield pytest.param(test, {}, id=name, marks=known)
            continue
        (mark,) = marks
        for value in mark.args[1]:
            yield pytest.param(test, {mark.args[0]: value}, id=f"{name}[{value!r}]", marks=known)


@pytest.mark.parametrize(("test", "kwargs"), list(_shared_tests()))
def test_shared_dictionary_behaviour(
    exa_dic: Dictionary, test: Callable[..., None], kwargs: dict[str, Any]
) -> None:
    test(exa_dic, **kwargs)


def test_every_shared_test_takes_only_dic_and_its_parameters() -> None:
    for name, test in vars(shared).items():
        params = set(inspect.signature(test).parameters) if name.startswith("test_") else set()
        if "dic" in params and name not in SQLITE_ONLY:
            marks = [m for m in getattr(test, "pytestmark", []) if m.name == "parametrize"]
            assert params - {"dic"} == {m.args[0] for m in marks}, name


# -- what the SQLite-only tests check, with Exasol SQL -----------------------------------------


def _objects(db: EmulatedDatabase, schema: str) -> set[str]:
    rows = db.query(
        f"SELECT OBJECT_NAME FROM SYS.EXA_ALL_OBJECTS WHERE ROOT_NAME = {literal(schema)}"
    )
    return {r[0] for r in rows}


def test_init_creates_the_redsys_objects_once(empty_exa_db: EmulatedDatabase) -> None:
    with emulated_dictionary(empty_exa_db) as d:
        assert d.version() == 0 and d.schemas() == []
        assert d.init() == SCHEMA_VERSION
        assert d.init() == SCHEMA_VERSION and d.upgrade() == []
    assert _objects(empty_exa_db, "REDSYS") == {n for m in MIGRATIONS for n in m.redsys}
    history = empty_exa_db.query("SELECT SCHEMA_NAME, VERSION FROM REDSYS.ADM_VERSION_HISTORY")
    assert sorted(history) == [("REDSYS", v) for v in range(1, SCHEMA_VERSION + 1)]


def test_ensure_schema_creates_the_target_objects(
    exa_dic: Dictionary, exa_db: EmulatedDatabase
) -> None:
    exa_dic.ensure_schema("DWH")
    exa_dic.ensure_schema("DWH")
    assert _objects(exa_db, "DWH") == {n for m in MIGRATIONS for n in m.target}
    assert exa_dic.schemas() == ["DWH"]


def test_status_before_init_raises_a_dictionary_error(empty_exa_db: EmulatedDatabase) -> None:
    with emulated_dictionary(empty_exa_db) as d, pytest.raises(DictionaryError):
        d.pss_status()


def test_reading_before_init_says_run_redctl_db_init(empty_exa_db: EmulatedDatabase) -> None:
    with emulated_dictionary(empty_exa_db) as d:
        for read in (d.pss_status, d.jobs, d.watchers):
            with pytest.raises(DictionaryError, match="run redctl db init"):
                read()


def _set_role(db: EmulatedDatabase, role: str, case: tuple[Any, ...], now: datetime) -> None:
    state, age, interval, restarts, last_exit, info, problems, _ = case
    beat = None if age is None else now - timedelta(seconds=age)
    values = (
        role,
        state,
        1,
        "h",
        now,
        beat,
        interval,
        restarts,
        last_exit,
        "0.1.0",
        info,
        problems,
    )
    db.query(
        'INSERT INTO REDSYS.ADM_PSS_STATUS (ROLE, "STATE", PID, HOST, STARTED_AT, HEARTBEAT_AT, '
        "HEARTBEAT_INTERVAL, RESTARTS, LAST_EXIT, VERSION, INFO, PROBLEMS) "
        f"VALUES ({', '.join(literal(v) for v in values)})"
    )


@pytest.mark.parametrize("case", shared.ALERT_CASES, ids=[str(c[:4]) for c in shared.ALERT_CASES])
def test_sql_alert_matches_the_python_rule(
    exa_dic: Dictionary, exa_db: EmulatedDatabase, case: tuple[Any, ...]
) -> None:
    _set_role(exa_db, "r", case, shared.NOW)
    (status,) = exa_dic.pss_status(now=shared.NOW)
    shared.assert_row_follows_the_rule(status, case)


@pytest.mark.parametrize("session_zone", ["UTC", "EUROPE/BERLIN", "AMERICA/NEW_YORK"])
def test_no_false_alert_in_the_hour_repeated_when_dst_ends(
    exa_dic: Dictionary, exa_db: EmulatedDatabase, session_zone: str
) -> None:
    """DBTIMEZONE EUROPE/BERLIN, 2024-10-27: 02:00-03:00 local happens twice. A role that beat
    a second ago is fine in both passes, in any reader's session time zone (STA_ views are
    read by everyone: PUBLIC)."""
    first_pass = datetime(2024, 10, 27, 0, 30, tzinfo=UTC)  # 02:30 CEST
    for moment in (first_pass, first_pass + timedelta(hours=1)):  # then 02:30 CET
        exa_db.query("DELETE FROM REDSYS.ADM_PSS_STATUS")
        _set_role(exa_db, "sched", ("RUNNING", 1.0, 5.0, 0, None, None, None, 0), moment)
        exa_db.clock = lambda moment=moment: moment  # type: ignore[misc]
        reader = exa_db.connect()
        try:
            reader.execute(f"ALTER SESSION SET TIME_ZONE = '{session_zone}'")
            rows = reader.execute(
                "SELECT HEARTBEAT_AGE, ALERT, ALERT_REASON FROM REDSYS.STA_PSS_STATUS"
            ).fetchall()
        finally:
            reader.close()
        assert rows == [(1.0, 0, None)], (moment, rows)
        (status,) = exa_dic.pss_status()
        assert (status.heartbeat_age, status.alert) == (1.0, 0)


def test_view_and_method_agree_in_utc(exa_dic: Dictionary, exa_db: EmulatedDatabase) -> None:
    # the database clock is not UTC (EUROPE/BERLIN): the view must convert it
    now = datetime.now(UTC)
    for i, case in enumerate(shared.ALERT_CASES):
        _set_role(exa_db, f"role{i:02}", case, now)
    from_view = exa_dic.pss_status()
    from_method = exa_dic.pss_status(now=datetime.now(UTC))
    assert len(from_view) == len(shared.ALERT_CASES)
    for view_row, method_row, case in zip(from_view, from_method, shared.ALERT_CASES, strict=True):
        assert view_row.alert == method_row.alert == case[-1], view_row
        assert view_row.alert_reason == method_row.alert_reason
    raw = exa_db.query("SELECT ROLE, ALERT, ALERT_REASON FROM REDSYS.STA_PSS_STATUS ORDER BY 1")
    assert raw == [(s.role, s.alert, s.alert_reason) for s in from_view]


# -- migrations ------------------------------------------------------------------------------


def test_upgrade_applies_new_columns_and_tables_everywhere(exa_db: EmulatedDatabase) -> None:
    with emulated_dictionary(exa_db) as old:
        old.init()
        old.ensure_schema("DWH")
    with emulated_dictionary(exa_db, model=shared._model_v2()) as new:
        assert new.upgrade() == [
            f"REDSYS: version {shared.NEXT}: notes",
            f"DWH: version {shared.NEXT}: notes",
        ]
        assert new.upgrade() == [] and new.version() == shared.NEXT
        new.ensure_schema("FRESH")
    columns = exa_db.query(
        "SELECT COLUMN_SCHEMA, COLUMN_TABLE FROM SYS.EXA_ALL_COLUMNS "
        "WHERE COLUMN_NAME = 'NOTE' AND COLUMN_OBJECT_TYPE = 'TABLE'"
    )
    assert sorted(columns) == [
        ("DWH", "LOG_MESSAGES"),
        ("FRESH", "LOG_MESSAGES"),
        ("REDSYS", "ADM_JOBS"),
    ]
    assert "ADM_EXTRA" in _objects(exa_db, "REDSYS")
    with emulated_dictionary(exa_db) as old, pytest.raises(MigrationError, match="newer"):
        old.init()


def _broken_model() -> Model:
    """Migration 1 with a DDL statement in the middle that the database refuses."""
    bad = Column("POOL_NAME", "VARCHAR(1)")  # twice in one table
    tables = tuple(
        dataclasses.replace(t, columns=(*t.columns, bad)) if t.name == "ADM_JMON_LOAD" else t
        for t in TABLES
    )
    return Model(tables, DICTIONARY.views, MIGRATIONS)


def test_failed_migration_leaves_nothing(empty_exa_db: EmulatedDatabase) -> None:
    with (
        emulated_dictionary(empty_exa_db, model=_broken_model()) as d,
        pytest.raises(MigrationError, match="nothing applied"),
    ):
        d.init()
    assert _objects(empty_exa_db, "REDSYS") == set()
    assert empty_exa_db.query("SELECT SCHEMA_NAME FROM SYS.EXA_ALL_SCHEMAS") == []
    with emulated_dictionary(empty_exa_db) as d:
        assert d.version() == 0
        assert d.init() == SCHEMA_VERSION


def test_failed_upgrade_keeps_the_old_version(exa_db: EmulatedDatabase) -> None:
    with emulated_dictionary(exa_db) as old:
        old.init()
    v2 = shared._model_v2()
    bad = Column("WATCHER_NAME", "VARCHAR(1)", since=shared.NEXT)  # the table has it
    tables = tuple(
        dataclasses.replace(t, columns=(*t.columns, bad)) if t.name == "ADM_WATCHER" else t
        for t in v2.tables
    )
    with (
        emulated_dictionary(exa_db, model=Model(tables, v2.views, v2.migrations)) as new,
        pytest.raises(MigrationError, match="nothing applied"),
    ):
        new.upgrade()
    assert "ADM_EXTRA" not in _objects(exa_db, "REDSYS")
    with emulated_dictionary(exa_db) as d:
        assert d.version() == SCHEMA_VERSION


def _meet_at(pattern: str, db: EmulatedDatabase, parties: int) -> None:
    """The first statement matching ``pattern`` of ``parties`` connections waits until all
    of them got there."""
    barrier = threading.Barrier(parties, timeout=10)

    def wait(conn: EmulatedConnection) -> None:
        barrier.wait()

    db.hook(pattern, wait, times=parties)


def _in_threads(*calls: Callable[[], T]) -> list[T]:
    """Run ``calls`` in threads at once; their results in order (the first exception raised)."""
    results: list[T | BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a call did not end within 30 s"
    done: list[T] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        done.append(result)  # type: ignore[arg-type]  # None only for a call still running
    return done


def test_two_sessions_migrating_at_once_end_at_the_same_version(
    empty_exa_db: EmulatedDatabase,
) -> None:
    _meet_at(r"^CREATE SCHEMA IF NOT EXISTS", empty_exa_db, 2)
    with emulated_dictionary(empty_exa_db) as a, emulated_dictionary(empty_exa_db) as b:
        assert _in_threads(a.init, b.init) == [SCHEMA_VERSION, SCHEMA_VERSION]
        assert a.version() == b.version() == SCHEMA_VERSION
    history = empty_exa_db.query("SELECT SCHEMA_NAME, VERSION FROM REDSYS.ADM_VERSION_HISTORY")
    assert sorted(history) == [("REDSYS", v) for v in range(1, SCHEMA_VERSION + 1)]


def test_two_new_roles_heartbeat_at_once(exa_dic: Dictionary, exa_db: EmulatedDatabase) -> None:
    _meet_at(r"^UPDATE REDSYS.ADM_PSS_STATUS SET HEARTBEAT_AT", exa_db, 2)
    beats = _in_threads(
        lambda: exa_dic.heartbeat("dbls", pid=1), lambda: exa_dic.heartbeat("dbls", pid=2)
    )
    assert sorted(beats) == [False, True]
    (status,) = exa_dic.pss_status()
    assert (status.role, status.pid) == ("dbls", 1 + beats.index(True))


def test_install_scripts_creates_the_scripts_and_the_connection(
    exa_dic: Dictionary, exa_db: EmulatedDatabase, make_instance: Callable[..., Instance]
) -> None:
    inst = make_instance("tst1", db_scripts_host="10.0.0.5")
    statements = db_script_statements(load_config(inst.conf_path), "tst1", grant_to=["APP"])
    assert exa_dic.install_scripts(statements) == len(statements)
    assert exa_dic.install_scripts(statements) == len(statements)  # CREATE OR REPLACE
    scripts = exa_db.query("SELECT SCRIPT_SCHEMA, SCRIPT_NAME FROM SYS.EXA_ALL_SCRIPTS")
    assert sorted(scripts) == sorted(("REDSYS", s.name) for s in SCRIPTS)
    ((name, address),) = exa_db.query(
        "SELECT CONNECTION_NAME, CONNECTION_STRING FROM SYS.EXA_DBA_CONNECTIONS"
    )
    assert name == "REDPSS_TST1" and "10.0.0.5" in address


# -- a connection lost in the middle of a unit ----------------------------------------------


def test_a_unit_cut_off_before_commit_runs_again_on_a_new_connection(
    exa_dic: Dictionary, exa_db: EmulatedDatabase
) -> None:
    exa_dic.heartbeat("dbls", pid=7)
    exa_db.fail(r"^UPDATE REDSYS\.ADM_PSS_STATUS SET HEARTBEAT_AT")
    assert exa_dic.heartbeat("dbls", pid=7, info="again") is True
    (status,) = exa_dic.pss_status()
    assert (status.pid, status.info) == (7, "again")
    reconnected = max(n for n, _ in exa_db.statements)
    assert (reconnected, "TIME_ZONE", "UTC") in exa_db.settings


def test_a_unit_whose_commit_answer_is_lost_runs_twice(
    exa_dic: Dictionary, exa_db: EmulatedDatabase
) -> None:
    exa_dic.ensure_schema("DWH")
    exa_db.fail(r"^COMMIT", after=True)
    exa_dic.log_message("DWH", level="ERROR", message="once")
    # the documented worst case: the database committed, the retry logs the line again
    assert [m.message for m in exa_dic.all_log_messages()] == ["once", "once"]
    exa_db.fail(r"^COMMIT", after=True)
    start = exa_dic.register_role("sched", pid=100, host="h", version="1", heartbeat_interval=5)
    assert start.unclean is False and start.restarts == 0
    assert exa_dic.pss_status()[0].restarts == 0


# -- SQL jobs: QUERY_TIMEOUT around the job's statement ------------------------------------


def _timeouts(db: EmulatedDatabase) -> list[str]:
    return [value for _, name, value in db.settings if name == "QUERY_TIMEOUT"]


def test_a_sql_job_runs_under_its_query_timeout(
    exa_dic: Dictionary, exa_db: EmulatedDatabase
) -> None:
    exa_dic.run_sql("DWH", "CREATE TABLE T (A DECIMAL(9,0))")
    before = len(_timeouts(exa_db))
    assert exa_dic.run_sql("DWH", "INSERT INTO T VALUES (1)", timeout=2.5) == 1
    assert _timeouts(exa_db)[before:] == ["3", "0"]
    with pytest.raises(DictionaryError):
        exa_dic.run_sql("DWH", "INSERT INTO NOPE VALUES (1)", timeout=1)
    assert _timeouts(exa_db)[-1] == "0"
    assert exa_dic.query_value("DWH", "SELECT COUNT(*) FROM T", timeout=4) == "1"
    assert _timeouts(exa_db)[-2:] == ["4", "0"]


def test_a_statement_past_its_timeout_is_a_timeout_error(
    exa_dic: Dictionary, exa_db: EmulatedDatabase
) -> None:
    exa_dic.run_sql("DWH", "CREATE TABLE T (A DECIMAL(9,0))")

    def too_slow(conn: EmulatedConnection) -> None:
        raise pyexasol.ExaQueryTimeoutError(conn, "", "R0001", "Query terminated (timeout)")

    exa_db.hook(r"^INSERT INTO T", too_slow)
    with pytest.raises(TimeoutError, match="timeout of 1"):
        exa_dic.run_sql("DWH", "INSERT INTO T VALUES (1)", timeout=1)
    exa_db.hook(r"^SELECT COUNT", too_slow)
    with pytest.raises(TimeoutError):
        exa_dic.query_value("DWH", "SELECT COUNT(*) FROM T", timeout=1)
    assert exa_dic.query_value("DWH", "SELECT COUNT(*) FROM T") == "0"
    assert _timeouts(exa_db)[-1] == "0"


def test_a_sql_job_that_returns_rows_has_them_in_its_message(exa_dic: Dictionary) -> None:
    result = exa_dic.run_sql_job("DWH", "SELECT 1 AS A, NULL AS B FROM DUAL")
    assert (result.rows, result.message) == (0, "result: 1, NULL")
    exa_dic.run_sql("DWH", "CREATE TABLE T (A DECIMAL(9,0))")
    values = ", ".join(f"({i})" for i in range(25))
    many = exa_dic.run_sql_job("DWH", f"INSERT INTO T VALUES {values}; SELECT A FROM T ORDER BY A")
    assert many.rows == 25
    assert many.message == "result: " + "; ".join(str(i) for i in range(20)) + " …"


def test_no_statement_uses_a_reserved_word_unquoted() -> None:
    db = EmulatedDatabase(tolerated=frozenset())
    try:
        with emulated_dictionary(db) as d:
            d.init()
            d.ensure_schema("DWH")
            d.heartbeat("sched", pid=1)
            assert d.pss_status()[0].state == "RUNNING"
            d.log_message("DWH", level="ERROR", message="x", source="job")
            assert d.all_log_messages()[0].source == "job"
            d.record_runs([RunUpdate("DWH", 1, "j", "default", "QUEUED", shared.NOW)])
            assert d.abort_unfinished("stop") == 1 and d.runs()[0].state == "ABORTED"
    finally:
        db.close()


_STATEMENTS = [
    (name, render(template, statements.SAMPLES)) for name, template in statements._templates()
] + statements._ddl()


@pytest.mark.parametrize(("name", "sql"), _STATEMENTS, ids=lambda v: str(v)[:40])
def test_no_statement_text_uses_another_reserved_word_unquoted(name: str, sql: str) -> None:
    # the statements of test_exasol_sql, executed or not: only the known offenders so far
    try:
        tree = sqlglot.parse_one(sql, read="exasol")
    except sqlglot.errors.ParseError:
        return  # IMPORT: sqlglot cannot parse it (test_exasol_sql checks its shape)
    assert reserved_word(tree, TOLERATED_RESERVED) is None, name


def test_a_transaction_collision_is_retried(exa_dic: Dictionary, exa_db: EmulatedDatabase) -> None:
    # both read "no row", both insert: the second collides with the first's commit, is rolled
    # back and retried, and then finds the first as a predecessor that did not stop
    _meet_at(r"^INSERT INTO REDSYS.ADM_PSS_STATUS", exa_db, 2)
    starts = _in_threads(
        lambda: exa_dic.register_role("jmon", pid=1, host="h", version="1", heartbeat_interval=5),
        lambda: exa_dic.register_role("jmon", pid=2, host="h", version="1", heartbeat_interval=5),
    )
    first, second = sorted(starts, key=lambda s: s.restarts)
    assert (first.previous_pid, first.unclean) == (None, False)
    assert second.unclean and second.restarts == 1 and second.previous_pid in (1, 2)
    (status,) = exa_dic.pss_status()
    assert status.restarts == 1 and status.pid != second.previous_pid
