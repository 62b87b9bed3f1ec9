"""Tests of redpss.dictionary: the model, migrations, role status and the SQLite backend."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from redpss.dictionary import (
    SCHEMA_VERSION,
    Dictionary,
    RoleStart,
    RoleStatus,
    base,
    open_dictionary,
)
from redpss.dictionary.model import DICTIONARY, MIGRATIONS, TABLES
from redpss.dictionary.objects import (
    Column,
    Migration,
    Model,
    Table,
    parse_type,
)
from redpss.dictionary.sqlite import SqliteDictionary, to_db
from redpss.errors import ConfigError, DictionaryError, MigrationError
from redpss.health import Verdict, judge
from redpss.instance import Instance

pytestmark = pytest.mark.unit


def _query(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


def _execute(path: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(sql, params)


def _objects(path: Path) -> set[str]:
    rows = _query(path, "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
    return {r[0] for r in rows}


def _redsys(d: Dictionary) -> Path:
    assert isinstance(d, SqliteDictionary)
    return d.db_dir / "REDSYS.db"


# -- open_dictionary -----------------------------------------------------------------------


def test_open_sqlite_returns_the_sqlite_backend(tmp_path: Path) -> None:
    with open_dictionary("sqlite", db_dir=tmp_path, busy_timeout=3.0) as d:
        assert isinstance(d, SqliteDictionary)
        assert d.busy_timeout == 3.0


def test_open_exasol_without_settings_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(DictionaryError, match="exa_connection"):
        open_dictionary("exasol", db_dir=tmp_path)


def test_open_unknown_kind_names_it(tmp_path: Path) -> None:
    with pytest.raises(DictionaryError, match="'oracle'"):
        open_dictionary("oracle", db_dir=tmp_path)


# -- the model -----------------------------------------------------------------------------


def test_migrations_create_every_object() -> None:
    assert SCHEMA_VERSION == DICTIONARY.version == len(MIGRATIONS)
    created = [name for m in MIGRATIONS for name in (*m.redsys, *m.target)]
    assert set(created) == set(DICTIONARY.by_name)
    assert len(created) == len(set(created))
    for table in TABLES:
        for column in table.columns:
            parse_type(column.type)
            assert column.comment or column.values or column.default, (table.name, column.name)


def test_model_rejects_bad_migrations() -> None:
    with pytest.raises(ValueError, match="in order"):
        Model(TABLES, (), (Migration(2, "x"),))
    with pytest.raises(ValueError, match="unknown NOPE"):
        Model(TABLES, (), (Migration(1, "x", redsys=("NOPE",)),))
    added = Column("LATE", "VARCHAR(1)", nullable=False, since=2)
    table = dataclasses.replace(TABLES[1], columns=(*TABLES[1].columns, added))
    with pytest.raises(ValueError, match="LATE is added by migration 2"):
        Model((table,), (), (Migration(1, "x"), Migration(2, "y")))
    with pytest.raises(ValueError, match="unknown generic"):
        parse_type("TEXT")


# -- init, upgrade, schemas ----------------------------------------------------------------


def test_version_is_0_and_creates_nothing_before_init(tmp_path: Path) -> None:
    with open_dictionary("sqlite", db_dir=tmp_path / "db") as d:
        assert d.version() == 0
        assert d.schemas() == []
        with pytest.raises(DictionaryError, match="redctl db init"):
            d.pss_status()
    assert not (tmp_path / "db").exists()


def test_upgrade_before_init_raises(tmp_path: Path) -> None:
    with (
        open_dictionary("sqlite", db_dir=tmp_path) as d,
        pytest.raises(MigrationError, match="run redctl db init"),
    ):
        d.upgrade()


def test_init_creates_redsys_objects_in_wal_mode_and_is_idempotent(dic: Dictionary) -> None:
    path = _redsys(dic)
    assert dic.init() == SCHEMA_VERSION
    assert dic.version() == SCHEMA_VERSION
    assert _objects(path) == {n for m in MIGRATIONS for n in m.redsys}
    assert _query(path, "PRAGMA journal_mode") == [("wal",)]
    history = _query(path, "SELECT SCHEMA_NAME, VERSION FROM ADM_VERSION_HISTORY")
    assert history == [("REDSYS", v) for v in range(1, SCHEMA_VERSION + 1)]
    assert dic.upgrade() == []


def test_ensure_schema_creates_target_objects(dic: Dictionary) -> None:
    dic.ensure_schema("DWH")
    dic.ensure_schema("DWH")
    dic.ensure_schema("STAGE_2")
    assert dic.schemas() == ["DWH", "STAGE_2"]
    assert isinstance(dic, SqliteDictionary)
    assert _objects(dic.db_dir / "DWH.db") == {
        *(n for m in MIGRATIONS for n in m.target),
        "ADM_VERSION_HISTORY",
    }
    assert dic.schema_version("DWH") == SCHEMA_VERSION
    assert dic.schema_version("NOPE") == 0


@pytest.mark.parametrize("name", ["dwh", "REDSYS", "1ABC", "A-B", "A B", "", "A" * 129])
def test_bad_schema_names_are_rejected(dic: Dictionary, name: str) -> None:
    with pytest.raises(DictionaryError, match="invalid target schema name"):
        dic.ensure_schema(name)


def test_schema_name_of_128_characters_is_fine(dic: Dictionary) -> None:
    dic.ensure_schema("A" * 128)
    assert dic.schemas() == ["A" * 128]


NEXT = len(MIGRATIONS) + 1


def _model_v2() -> Model:
    """The next version: a new column on ADM_JOBS and LOG_MESSAGES, and a new table."""
    extra = Table("ADM_EXTRA", "REDSYS", "test", (Column("X", "VARCHAR(10)", comment="x"),))
    tables = [
        dataclasses.replace(t, columns=(*t.columns, Column("NOTE", "VARCHAR(100)", since=NEXT)))
        if t.name in ("ADM_JOBS", "LOG_MESSAGES")
        else t
        for t in TABLES
    ]
    migration = Migration(NEXT, "notes", redsys=("ADM_EXTRA",))
    return Model((*tables, extra), DICTIONARY.views, (*MIGRATIONS, migration))


def _columns(path: Path, table: str) -> list[str]:
    return [r[1] for r in _query(path, f"PRAGMA table_info({table})")]


def test_upgrade_applies_new_columns_and_tables_everywhere(tmp_path: Path) -> None:
    with SqliteDictionary(tmp_path) as old:
        old.init()
        old.ensure_schema("DWH")
    with SqliteDictionary(tmp_path, model=_model_v2()) as new:
        assert new.upgrade() == [f"REDSYS: version {NEXT}: notes", f"DWH: version {NEXT}: notes"]
        assert new.upgrade() == []
        assert new.version() == NEXT
        assert "NOTE" in _columns(tmp_path / "REDSYS.db", "ADM_JOBS")
        assert "NOTE" in _columns(tmp_path / "DWH.db", "LOG_MESSAGES")
        assert "ADM_EXTRA" in _objects(tmp_path / "REDSYS.db")
        # a schema created at version 2 gets the same shape in one step
        new.ensure_schema("FRESH")
        assert _columns(tmp_path / "FRESH.db", "LOG_MESSAGES") == _columns(
            tmp_path / "DWH.db", "LOG_MESSAGES"
        )
    with SqliteDictionary(tmp_path) as old, pytest.raises(MigrationError, match="newer"):
        old.init()


def test_failed_migration_applies_nothing(tmp_path: Path) -> None:
    with SqliteDictionary(tmp_path) as old:
        old.init()
    bad = _model_v2()
    tables = tuple(
        dataclasses.replace(t, columns=(*t.columns, Column("BAD (", "VARCHAR(1)", since=NEXT)))
        if t.name == "ADM_WATCHER"
        else t
        for t in bad.tables
    )
    with (
        SqliteDictionary(tmp_path, model=Model(tables, bad.views, bad.migrations)) as new,
        pytest.raises(MigrationError, match="nothing applied"),
    ):
        new.upgrade()
    assert _objects(tmp_path / "REDSYS.db") == {n for m in MIGRATIONS for n in m.redsys}
    assert "NOTE" not in _columns(tmp_path / "REDSYS.db", "ADM_JOBS")


# -- role status ---------------------------------------------------------------------------


def _register(d: Dictionary, role: str, pid: int, interval: float = 5.0) -> RoleStart:
    return d.register_role(role, pid=pid, host="h1", version="0.1.0", heartbeat_interval=interval)


def test_register_fresh_role(dic: Dictionary) -> None:
    assert _register(dic, "sched", 100) == RoleStart(previous_pid=None, unclean=False, restarts=0)
    (status,) = dic.pss_status()
    assert (status.role, status.state, status.pid, status.host) == ("sched", "RUNNING", 100, "h1")
    assert status.version == "0.1.0"
    assert status.started_at is not None and status.started_at.tzinfo is not None
    assert (status.alert, status.alert_reason) == (0, None)


def test_register_after_unclean_exit_counts_a_restart(dic: Dictionary) -> None:
    _register(dic, "sched", 100)
    start = _register(dic, "sched", 200)
    assert start == RoleStart(previous_pid=100, unclean=True, restarts=1)
    (status,) = dic.pss_status()
    assert status.pid == 200 and status.restarts == 1
    assert status.last_exit is not None
    assert status.last_exit.startswith("pid 100 exited without stopping (last heartbeat 20")
    assert status.alert == 1
    assert status.alert_reason == f"restarted 1 times; last: {status.last_exit}"


def test_register_after_clean_stop_is_no_restart(dic: Dictionary) -> None:
    _register(dic, "sched", 100)
    dic.role_stopped("sched", pid=100, exit_info="stopped by SIGTERM")
    (status,) = dic.pss_status()
    assert (status.state, status.alert) == ("STOPPED", 2)
    assert status.alert_reason == "state STOPPED: stopped by SIGTERM"
    assert _register(dic, "sched", 200) == RoleStart(previous_pid=100, unclean=False, restarts=0)
    assert dic.pss_status()[0].alert == 0


def test_reregister_same_pid_is_no_restart(dic: Dictionary) -> None:
    _register(dic, "sched", 100)
    started = dic.pss_status()[0].started_at
    assert _register(dic, "sched", 100) == RoleStart(100, False, 0)
    assert dic.pss_status()[0].started_at == started


def test_a_new_process_with_the_same_pid_is_a_restart(dic: Dictionary) -> None:
    """In a container every role is pid 1: a restarted one started after the row was written."""
    _register(dic, "sched", 1)
    old = dic.pss_status()[0].started_at
    assert old is not None
    this_process = base.PROCESS_STARTED
    base.PROCESS_STARTED = old + timedelta(seconds=1)  # as seen by the next process
    try:
        start = _register(dic, "sched", 1)
    finally:
        base.PROCESS_STARTED = this_process
    assert start == RoleStart(previous_pid=1, unclean=True, restarts=1)
    status = dic.pss_status()[0]
    assert status.restarts == 1 and status.started_at is not None and status.started_at > old


def test_heartbeat_only_from_the_owner(dic: Dictionary) -> None:
    _register(dic, "sched", 100)
    before = dic.pss_status()[0].heartbeat_at
    assert dic.heartbeat("sched", pid=999) is False
    assert dic.pss_status()[0].heartbeat_at == before
    assert dic.heartbeat("sched", pid=100, state="SUSPENDED", info="by operator") is True
    (status,) = dic.pss_status()
    assert status.heartbeat_at is not None and before is not None
    assert status.heartbeat_at >= before
    assert (status.state, status.alert, status.alert_reason) == (
        "SUSPENDED",
        1,
        "suspended: by operator",
    )
    dic.role_stopped("sched", pid=999)
    assert dic.pss_status()[0].state == "SUSPENDED"


def test_heartbeat_without_registration_creates_the_row(dic: Dictionary) -> None:
    assert dic.heartbeat("dbls", pid=7) is True
    (status,) = dic.pss_status()
    assert (status.role, status.pid, status.state, status.restarts) == ("dbls", 7, "RUNNING", 0)


def test_heartbeat_rejects_unknown_state(dic: Dictionary) -> None:
    with pytest.raises(DictionaryError, match="'DANCING'"):
        dic.heartbeat("dbls", pid=7, state="DANCING")


def test_reset_status_forgets_all_roles(dic: Dictionary) -> None:
    _register(dic, "sched", 1)
    _register(dic, "jmon", 2)
    assert [s.role for s in dic.pss_status()] == ["jmon", "sched"]
    dic.reset_status()
    assert dic.pss_status() == []


NOW = datetime(2030, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)

ALERT_CASES = [
    # state, age (s, whole ms), interval, restarts, last_exit, info, problems, expected alert
    ("RUNNING", 4.0, 10.0, 0, None, None, None, 0),
    ("STARTING", 0.5, 10.0, 0, None, None, None, 0),
    ("RUNNING", 20.5, 10.0, 0, None, None, None, 1),
    ("RUNNING", 31.25, 10.0, 0, None, None, None, 2),
    ("RUNNING", 7.6, 2.5, 0, None, None, None, 2),
    ("RUNNING", None, 10.0, 0, None, None, None, 0),
    ("STOPPED", 1.0, 10.0, 0, "stopped", None, None, 2),
    ("FAILED", 1.0, 10.0, 0, None, None, None, 2),
    ("EXITED", 100.0, 10.0, 3, "exit 1", None, None, 2),
    ("RUNNING", 1.0, 10.0, 2, "pid 5 exited", None, None, 1),
    ("RUNNING", 1.0, 10.0, 1, None, None, None, 1),
    ("RUNNING", 25.0, 10.0, 1, "pid 5 exited", None, None, 1),
    ("SUSPENDED", 1.0, 10.0, 0, None, "by operator", None, 1),
    ("SUSPENDED", 1.0, 10.0, 0, None, None, None, 1),
    ("SUSPENDED", 45.0, 10.0, 0, None, None, None, 2),
    ("RUNNING", 1.0, 10.0, 0, None, None, "serve loop is not running", 1),
    ("RUNNING", 25.0, 10.0, 2, "pid 5 exited", None, "relay refused login: 535", 1),
    ("SUSPENDED", 1.0, 10.0, 0, None, None, "disk full: log/DB", 1),
    ("RUNNING", 45.0, 10.0, 0, None, None, "serve loop is not running", 2),
    ("STOPPED", 1.0, 10.0, 0, "stopped", None, "serve loop is not running", 2),
]


def _set_role(path: Path, role: str, case: tuple[Any, ...], now: datetime) -> None:
    state, age, interval, restarts, last_exit, info, problems, _ = case
    beat = None if age is None else to_db(now - timedelta(seconds=age))
    _execute(
        path,
        "INSERT INTO ADM_PSS_STATUS (ROLE, STATE, PID, HOST, STARTED_AT, HEARTBEAT_AT, "
        "HEARTBEAT_INTERVAL, RESTARTS, LAST_EXIT, VERSION, INFO, PROBLEMS) "
        "VALUES (?, ?, 1, 'h', ?, ?, ?, ?, ?, '0.1.0', ?, ?)",
        (role, state, to_db(now), beat, interval, restarts, last_exit, info, problems),
    )


def verdict_of(case: tuple[Any, ...]) -> Verdict:
    """What the Python rule says of a row of ALERT_CASES (its expected ALERT left aside)."""
    state, age, interval, restarts, last_exit, info, problems = case[:7]
    return judge(
        state=state,
        heartbeat_age=age,
        heartbeat_interval=interval,
        restarts=restarts,
        last_exit=last_exit,
        info=info,
        problems=problems,
    )


def assert_row_follows_the_rule(status: RoleStatus, case: tuple[Any, ...]) -> None:
    """``status``, read back from STA_PSS_STATUS, is what the Python rule says of ``case``."""
    age, problems, expected = case[1], case[6], case[7]
    assert status.heartbeat_age == (None if age is None else pytest.approx(age, abs=1e-3))
    reference = verdict_of(case)
    assert reference.alert == expected
    assert (status.alert, status.alert_reason) == (reference.alert, reference.reason)
    assert (status.problems, status.healthy) == (problems, reference.healthy)


@pytest.mark.parametrize("case", ALERT_CASES, ids=[f"{c[0]}-{c[1]}-{c[3]}" for c in ALERT_CASES])
def test_sql_alert_matches_the_python_rule(dic: Dictionary, case: tuple[Any, ...]) -> None:
    _set_role(_redsys(dic), "r", case, NOW)
    (status,) = dic.pss_status(now=NOW)
    assert_row_follows_the_rule(status, case)


def test_view_and_method_agree(dic: Dictionary) -> None:
    now = datetime.now(UTC)
    for i, case in enumerate(ALERT_CASES):
        _set_role(_redsys(dic), f"role{i:02}", case, now)
    from_view = dic.pss_status()
    from_method = dic.pss_status(now=datetime.now(UTC))
    assert len(from_view) == len(ALERT_CASES)
    for view_row, method_row, case in zip(from_view, from_method, ALERT_CASES, strict=True):
        assert view_row.alert == method_row.alert == case[-1], view_row
        assert view_row.alert_reason == method_row.alert_reason
    raw = _query(_redsys(dic), "SELECT ROLE, ALERT, ALERT_REASON FROM STA_PSS_STATUS ORDER BY 1")
    assert raw == [(s.role, s.alert, s.alert_reason) for s in from_view]


def test_naive_datetimes_are_refused(dic: Dictionary) -> None:
    with pytest.raises(ValueError, match="naive"):
        dic.pss_status(now=datetime(2030, 1, 1))


# -- log messages --------------------------------------------------------------------------


def test_all_log_messages_spans_schemas_newest_first(dic: Dictionary) -> None:
    dic.ensure_schema("A")
    dic.ensure_schema("B")
    base = datetime(2030, 1, 1, tzinfo=UTC)
    for i in range(5):
        schema = "A" if i % 2 else "B"
        ts = base + timedelta(minutes=i)
        dic.log_message(schema, level="ERROR", message=f"m{i}", source="job1", ts=ts)
    messages = dic.all_log_messages(limit=3)
    assert [(m.message, m.schema) for m in messages] == [("m4", "B"), ("m3", "A"), ("m2", "B")]
    assert messages[0].log_ts == base + timedelta(minutes=4)
    assert messages[0].source == "job1" and messages[0].level == "ERROR"
    assert len(dic.all_log_messages()) == 5


def test_log_message_checks_level_and_schema(dic: Dictionary) -> None:
    with pytest.raises(DictionaryError, match="'INFO'"):
        dic.log_message("A", level="INFO", message="x")
    with pytest.raises(DictionaryError, match="target schema MISSING does not exist"):
        dic.log_message("MISSING", level="ALERT", message="x")


def test_sqlite_errors_are_translated(dic: Dictionary) -> None:
    _execute(_redsys(dic), "DROP VIEW STA_PSS_STATUS")
    with pytest.raises(DictionaryError, match="no such table") as info:
        dic.pss_status()
    assert isinstance(info.value.__cause__, sqlite3.Error)


def test_config_opens_the_exasol_backend_without_connecting(
    make_instance: Callable[..., Instance],
) -> None:
    from redpss.dictionary import open_config_dictionary
    from redpss.dictionary.exasol import ExasolDictionary

    inst = make_instance(
        "exa1",
        dictionary="exasol",
        exa_connection="exa1..3:8563",
        exa_password="pw",
        exa_certificate="ca.pem",
        exa_reconnect_timeout="12",
    )
    (inst.etc / "ca.pem").write_text("not checked before a connection\n")
    config = inst.load_config()
    with open_config_dictionary(config, db_dir=inst.db_dir, etc_dir=inst.etc) as d:
        assert isinstance(d, ExasolDictionary)
        assert d.settings.dsn == "exa1..3:8563" and d.settings.password == "pw"
        assert d.settings.certificate == str(inst.etc / "ca.pem")  # relative to etc/
        assert d.settings.reconnect_timeout == 12
        assert d.session.reconnects == 0  # nothing opened yet: the database may be away
    with open_config_dictionary(
        make_instance("sql1").load_config(), db_dir=inst.db_dir, etc_dir=inst.etc
    ) as d:
        assert isinstance(d, SqliteDictionary)


def test_a_missing_ca_file_refuses_the_config(make_instance: Callable[..., Instance]) -> None:
    inst = make_instance(
        "exa2",
        dictionary="exasol",
        exa_connection="e:1",
        exa_password="p",
        exa_certificate="no.pem",
    )
    with pytest.raises(ConfigError, match=r"line \d+: \[DEFAULT\] exa_certificate .*no\.pem"):
        inst.load_config()
