"""The Exasol dictionary on a real database: init, upgrade, schemas, status and the STA_ views."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from redpss.dictionary import SCHEMA_VERSION
from redpss.dictionary.exasol.dialect import Dialect
from redpss.errors import DictionaryError
from redpss.health import judge
from tests.exasol.conftest import ExasolDb


def test_init_upgrade_and_schemas(clean_db: ExasolDb) -> None:
    with clean_db.dictionary() as dic:
        assert dic.version() == 0
        assert dic.init() == SCHEMA_VERSION
        assert dic.init() == SCHEMA_VERSION  # idempotent
        assert dic.upgrade() == []
        dic.ensure_schema("DWH")
        dic.ensure_schema("STAGE")
        assert dic.schemas() == ["DWH", "STAGE"]
    conn = clean_db.connect()
    try:
        tables = {
            (r[0], r[1])
            for r in conn.execute(
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM SYS.EXA_ALL_TABLES "
                "WHERE TABLE_SCHEMA IN ('REDSYS', 'DWH')"
            ).fetchall()
        }
        assert ("REDSYS", "ADM_JOBS") in tables and ("DWH", "LOG_MESSAGES") in tables
        assert ("DWH", "ADM_LOAD_LOG") in tables
    finally:
        conn.close()


def test_status_alert_matches_the_python_rule(clean_db: ExasolDb) -> None:
    with clean_db.dictionary() as dic:
        dic.init()
        dic.register_role("sched", pid=1, host="h", version="t", heartbeat_interval=5)
        dic.register_role("jmon", pid=2, host="h", version="t", heartbeat_interval=5)
        dic.role_stopped("jmon", pid=2, exit_info="stopped by operator")
        dic.register_role("dbls", pid=3, host="h", version="t", heartbeat_interval=5)
        dic.register_role("dbls", pid=4, host="h", version="t", heartbeat_interval=5)
        dic.register_role("cfisrv", pid=5, host="h", version="t", heartbeat_interval=5)
        dic.heartbeat("cfisrv", pid=5, problems="serve loop is not running")
        later = datetime.now(UTC) + timedelta(seconds=12)
        for row in dic.pss_status(later):
            expected = judge(
                state=row.state,
                heartbeat_age=row.heartbeat_age,
                heartbeat_interval=row.heartbeat_interval,
                restarts=row.restarts,
                last_exit=row.last_exit,
                info=row.info,
                problems=row.problems,
            )
            assert (row.alert, row.alert_reason) == (expected.alert, expected.reason), row
        by_role = {r.role: r for r in dic.pss_status()}
        assert by_role["jmon"].alert == 2 and by_role["dbls"].restarts == 1
        cfisrv = by_role["cfisrv"]
        assert (cfisrv.alert, cfisrv.alert_reason) == (1, "serve loop is not running")
        assert not cfisrv.healthy
        assert dic.log_message("DWH", level="ERROR", message="it's broken") >= 1
        assert dic.all_log_messages()[0].message == "it's broken"


def test_sta_views_are_granted_to_public(clean_db: ExasolDb) -> None:
    with clean_db.dictionary() as dic:
        dic.init()
        dic.register_role("sched", pid=1, host="h", version="t", heartbeat_interval=5)
    conn = clean_db.connect()
    try:
        conn.execute('CREATE USER REDPSS_READER IDENTIFIED BY "Reader_123"')
        conn.execute("GRANT CREATE SESSION TO REDPSS_READER")
    finally:
        conn.close()
    import pyexasol

    reader = pyexasol.connect(
        **(
            clean_db.settings().connect_kwargs()
            | {"user": "REDPSS_READER", "password": "Reader_123"}
        )
    )
    try:
        rows = reader.execute("SELECT ROLE, ALERT FROM REDSYS.STA_PSS_STATUS").fetchall()
        assert [tuple(r) for r in rows] == [("sched", 0)]
        with pytest.raises(pyexasol.ExaQueryError):
            reader.execute("SELECT * FROM REDSYS.ADM_JOBS")
    finally:
        reader.close()


def test_wrong_password_is_a_clear_error(clean_db: ExasolDb) -> None:
    from dataclasses import replace

    settings = replace(clean_db.settings(), password="wrong")
    with clean_db.dictionary(settings) as dic, pytest.raises(DictionaryError) as err:
        dic.version()
    assert "password" in str(err.value).lower() or "auth" in str(err.value).lower()


def test_the_dictionary_user_is_no_dba_and_the_ddl_fits_the_version(clean_db: ExasolDb) -> None:
    """The tier runs as REDPSS_DICT with the documented privileges only; TIMESTAMP(6) from
    8.32, TIMESTAMP (milliseconds) before (changelog 13409; 15378 shows it as TIMESTAMP(3))."""
    with clean_db.dictionary() as dic:
        database = dic.database()
        dic.init()
    assert database.startswith("Exasol ") and database.endswith(f" at {clean_db.dsn}")
    dialect = Dialect.of(database.split()[1])
    conn = clean_db.connect()
    try:
        dba = conn.execute(
            "SELECT COUNT(*) FROM EXA_DBA_ROLE_PRIVS WHERE GRANTEE = 'REDPSS_DICT' "
            "AND GRANTED_ROLE = 'DBA'"
        ).fetchval()
        kind = conn.execute(
            "SELECT COLUMN_TYPE FROM EXA_ALL_COLUMNS WHERE COLUMN_SCHEMA = 'REDSYS' "
            "AND COLUMN_TABLE = 'ADM_PSS_STATUS' AND COLUMN_NAME = 'HEARTBEAT_AT'"
        ).fetchval()
    finally:
        conn.close()
    assert dba == 0
    expected = {"TIMESTAMP", "TIMESTAMP(3)"} if dialect.fraction_digits == 3 else {"TIMESTAMP(6)"}
    assert kind in expected
