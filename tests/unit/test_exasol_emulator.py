"""The emulated Exasol keeps the Exasol rules its module doc promises (it is not Exasol)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pyexasol
import pytest
from pyexasol.exceptions import ExaImportError

from tests.unit.exasol_emulator import EmulatedConnection, EmulatedDatabase

pytestmark = pytest.mark.unit


@pytest.fixture
def conn(empty_exa_db: EmulatedDatabase) -> EmulatedConnection:
    c = empty_exa_db.connect()
    c.execute("CREATE SCHEMA S")
    c.execute(
        "CREATE TABLE S.T (ID DECIMAL(18,0) IDENTITY, NAME VARCHAR(5), AMOUNT DECIMAL(9,2), "
        "TS TIMESTAMP, TS6 TIMESTAMP(6), FLAG BOOLEAN, PRIMARY KEY (ID))"
    )
    c.commit()
    return c


def _one(c: EmulatedConnection, sql: str) -> object:
    ((value,),) = c.execute(sql).fetchall()
    return value


def test_empty_string_is_null_and_concatenation_skips_null(conn: EmulatedConnection) -> None:
    assert _one(conn, "SELECT '' IS NULL FROM DUAL") is True
    assert _one(conn, "SELECT 'a' || NULL || 'b' FROM DUAL") == "ab"
    assert _one(conn, "SELECT NULL || '' FROM DUAL") is None
    assert conn.execute("INSERT INTO S.T (NAME) VALUES ('')").rowcount() == 1
    assert _one(conn, "SELECT COUNT(*) FROM S.T WHERE NAME IS NULL") == 1


def test_fetched_values_are_what_pyexasol_returns(conn: EmulatedConnection) -> None:
    conn.execute(
        "INSERT INTO S.T (NAME, AMOUNT, TS, TS6, FLAG) VALUES ('x', 1.5, "
        "TIMESTAMP '2030-01-02 03:04:05.123456', TIMESTAMP '2030-01-02 03:04:05.123456', TRUE)"
    )
    select = "SELECT ID, AMOUNT, TS, TS6, FLAG, CAST(2 AS DOUBLE) FROM S.T"
    # Exasol's default format (FF6, changelog 13409) until the session sets one; TIMESTAMP
    # keeps milliseconds
    assert conn.execute(select).fetchall() == [
        (1, "1.50", "2030-01-02 03:04:05.123000", "2030-01-02 03:04:05.123456", True, 2.0)
    ]
    conn.execute("ALTER SESSION SET NLS_TIMESTAMP_FORMAT = 'YYYY-MM-DD HH24:MI:SS.FF3'")
    row = conn.execute(select).fetchall()[0]
    assert row[2:4] == ("2030-01-02 03:04:05.123", "2030-01-02 03:04:05.123")
    assert ("NLS_TIMESTAMP_FORMAT", "YYYY-MM-DD HH24:MI:SS.FF3") in [
        s[1:] for s in conn.db.settings
    ]


def test_time_functions(conn: EmulatedConnection) -> None:
    berlin = datetime.now(ZoneInfo("Europe/Berlin")).replace(tzinfo=None)
    systime = datetime.fromisoformat(str(_one(conn, "SELECT SYSTIMESTAMP FROM DUAL")))
    assert abs((systime - berlin).total_seconds()) < 60
    assert _one(conn, "SELECT DBTIMEZONE FROM DUAL") == "EUROPE/BERLIN"
    converted = _one(
        conn, "SELECT CONVERT_TZ(TIMESTAMP '2030-07-01 12:00:00', 'EUROPE/BERLIN', 'UTC') FROM DUAL"
    )
    assert converted == "2030-07-01 10:00:00.000000"
    between = "SELECT SECONDS_BETWEEN(TIMESTAMP '2030-01-01 00:00:01.5', "
    assert _one(conn, between + "TIMESTAMP '2030-01-01 00:00:00') FROM DUAL") == 1.5
    with pytest.raises(pyexasol.ExaQueryError, match="TO_CHAR of a DOUBLE"):
        conn.execute("SELECT TO_CHAR(FLOOR(CAST(4.7 AS DOUBLE))) FROM DUAL")
    conn.rollback()
    whole = "SELECT TO_CHAR(CAST(FLOOR(CAST(4.7 AS DOUBLE)) AS DECIMAL(18,0))) FROM DUAL"
    assert _one(conn, whole) == "4"


def test_the_clock_and_the_repeated_autumn_hour(
    empty_exa_db: EmulatedDatabase, conn: EmulatedConnection
) -> None:
    """SYSTIMESTAMP is local time in DBTIMEZONE: in the hour repeated when DST ends it cannot
    tell its two passes apart, and CONVERT_TZ to UTC (standard time assumed) is an hour off in
    the first; POSIX_TIME() is the moment itself (tests/unit/exasol_emulator_sql.py)."""
    first_pass = datetime(2024, 10, 27, 0, 30, tzinfo=UTC)  # 02:30 CEST in Berlin
    empty_exa_db.clock = lambda: first_pass
    assert _one(conn, "SELECT SYSTIMESTAMP FROM DUAL") == "2024-10-27 02:30:00.000000"
    as_utc = "SELECT CONVERT_TZ(SYSTIMESTAMP, DBTIMEZONE, 'UTC') FROM DUAL"
    assert _one(conn, as_utc) == "2024-10-27 01:30:00.000000"  # an hour ahead
    dst = (
        "SELECT CONVERT_TZ(SYSTIMESTAMP, DBTIMEZONE, 'UTC', 'INVALID SHIFT AMBIGUOUS DST') "
        "FROM DUAL"
    )
    assert _one(conn, dst) == "2024-10-27 00:30:00.000000"
    empty_exa_db.clock = lambda: first_pass + timedelta(hours=1)  # 02:30 CET, second pass
    assert _one(conn, dst) == "2024-10-27 00:30:00.000000"  # now DST is the wrong one
    assert _one(conn, "SELECT POSIX_TIME() FROM DUAL") == first_pass.timestamp() + 3600


def test_varchar_length_and_constraints_are_enforced(conn: EmulatedConnection) -> None:
    with pytest.raises(pyexasol.ExaQueryError, match="right truncation") as info:
        conn.execute("INSERT INTO S.T (NAME) VALUES ('toolong')")
    assert info.value.code == "27001"
    conn.rollback()
    conn.execute("INSERT INTO S.T (ID) VALUES (7)")
    with pytest.raises(pyexasol.ExaQueryError) as dup:
        conn.execute("INSERT INTO S.T (ID) VALUES (7)")
    assert dup.value.code == "27001"


def test_transactions_roll_back_and_isolate(
    empty_exa_db: EmulatedDatabase, conn: EmulatedConnection
) -> None:
    conn.execute("INSERT INTO S.T (NAME) VALUES ('a')")
    assert empty_exa_db.query("SELECT COUNT(*) FROM S.T") == [(0,)]
    conn.execute("ROLLBACK")
    conn.execute("INSERT INTO S.T (NAME) VALUES ('b')")
    conn.execute("COMMIT")
    assert empty_exa_db.query("SELECT NAME FROM S.T") == [("b",)]


def test_catalog_views_report_exasol_types(
    empty_exa_db: EmulatedDatabase, conn: EmulatedConnection
) -> None:
    rows = empty_exa_db.query(
        "SELECT COLUMN_NAME, COLUMN_TYPE, COLUMN_IDENTITY FROM SYS.EXA_ALL_COLUMNS "
        "WHERE COLUMN_SCHEMA = 'S' AND COLUMN_TABLE = 'T' ORDER BY COLUMN_ORDINAL_POSITION"
    )
    assert rows == [
        ("ID", "DECIMAL(18,0)", True),
        ("NAME", "VARCHAR(5) UTF8", False),
        ("AMOUNT", "DECIMAL(9,2)", False),
        ("TS", "TIMESTAMP", False),
        ("TS6", "TIMESTAMP(6)", False),
        ("FLAG", "BOOLEAN", False),
    ]
    assert empty_exa_db.query("SELECT TABLE_SCHEMA, TABLE_NAME FROM SYS.EXA_ALL_TABLES") == [
        ("S", "T")
    ]


def test_import_from_iterable_is_a_csv_import(
    empty_exa_db: EmulatedDatabase, conn: EmulatedConnection
) -> None:
    rows = [("a", 1.25, datetime(2030, 1, 2, 3, 4, 5, 6000), True), ("", None, None, False)]
    params = {"columns": ["NAME", "AMOUNT", "TS6", "FLAG"]}
    conn.execute("ALTER SESSION SET NLS_TIMESTAMP_FORMAT = 'YYYY-MM-DD HH24:MI:SS.FF6'")
    conn.import_from_iterable(rows, ("S", "T"), params)
    conn.commit()
    got = empty_exa_db.query("SELECT NAME, AMOUNT, TS6, FLAG FROM S.T ORDER BY ID")
    assert got == [("a", "1.25", "2030-01-02 03:04:05.006000", True), (None, None, None, False)]
    # str() of an aware datetime has an offset: not the session's format
    aware = [("b", 1, datetime.now(ZoneInfo("UTC")), True)]
    with pytest.raises(ExaImportError) as info:
        conn.import_from_iterable(aware, ("S", "T"), params)
    (error,) = info.value.exceptions
    assert "ETL-3050: [Column=3 Row=1] [Transformation of value=" in str(error)
    conn.rollback()
    columns = {"columns": ["AMOUNT", "NAME"], "csv_cols": ["2", "1"]}
    for bad, column in (([("1", "x")], 2), ([("toolong", "1")], 1)):
        with pytest.raises(ExaImportError, match="sub-exception") as info:
            conn.import_from_iterable(bad, ("S", "T"), columns)
        assert f"[Column={column} Row=1]" in str(info.value.exceptions[0])
        conn.rollback()
    conn.import_from_iterable([("b", "2")], ("S", "T"), columns)
    assert conn.execute("SELECT AMOUNT FROM S.T WHERE NAME = 'b'").fetchall() == [("2.00",)]


def test_reserved_words_are_identifiers_only_when_quoted(conn: EmulatedConnection) -> None:
    with pytest.raises(pyexasol.ExaQueryError, match=r'unexpected DAY.*"DAY"'):
        conn.execute("CREATE TABLE S.R (DAY DATE, N DECIMAL(9,0))")
    conn.rollback()
    conn.execute('CREATE TABLE S.R ("DAY" DATE, N DECIMAL(9,0))')
    conn.execute("INSERT INTO S.R VALUES (DATE '2030-01-02', 1)")
    assert _one(conn, 'SELECT "DAY" FROM S.R WHERE N = 1') == "2030-01-02"
    assert _one(conn, "SELECT CURRENT_DATE IS NOT NULL FROM DUAL") is True


def test_errors_scripts_and_faults(
    empty_exa_db: EmulatedDatabase, conn: EmulatedConnection
) -> None:
    with pytest.raises(pyexasol.ExaQueryError, match=r"not found|does not exist") as info:
        conn.execute("SELECT * FROM S.NOPE")
    assert info.value.code == "42000"
    conn.rollback()
    conn.execute("CREATE OR REPLACE LUA SCRIPT S.HELLO() AS return 1")
    conn.execute("GRANT EXECUTE ON S.HELLO TO PUBLIC")
    conn.commit()
    assert empty_exa_db.query("SELECT SCRIPT_NAME, SCRIPT_LANGUAGE FROM SYS.EXA_ALL_SCRIPTS") == [
        ("HELLO", "LUA")
    ]
    with pytest.raises(pyexasol.ExaQueryError, match="not emulated"):
        conn.execute("EXECUTE SCRIPT S.HELLO()")
    empty_exa_db.fail(r"^INSERT INTO S\.T", after=True)
    with pytest.raises(pyexasol.ExaCommunicationError):
        conn.execute("INSERT INTO S.T (NAME) VALUES ('lost')")
    with pytest.raises(pyexasol.ExaRuntimeError, match="closed"):
        conn.execute("SELECT 1 FROM DUAL")
    assert empty_exa_db.query("SELECT COUNT(*) FROM S.T") == [(0,)]


def test_null_is_the_largest_value_in_order_by(conn: EmulatedConnection) -> None:
    conn.execute("INSERT INTO S.T (NAME) VALUES ('b')")
    conn.execute("INSERT INTO S.T (NAME) VALUES (NULL)")
    conn.execute("INSERT INTO S.T (NAME) VALUES ('a')")
    desc = conn.execute("SELECT NAME FROM S.T ORDER BY NAME DESC").fetchall()
    asc = conn.execute("SELECT NAME FROM S.T ORDER BY NAME").fetchall()
    assert (desc, asc) == ([(None,), ("b",), ("a",)], [("a",), ("b",), (None,)])
    last = conn.execute("SELECT NAME FROM S.T ORDER BY NAME DESC NULLS LAST").fetchall()
    assert last == [("b",), ("a",), (None,)]


def test_a_failed_statement_fails_alone(
    empty_exa_db: EmulatedDatabase, conn: EmulatedConnection
) -> None:
    """Exasol aborts the statement, not the transaction: the earlier work commits."""
    conn.execute("INSERT INTO S.T (NAME) VALUES ('kept')")
    with pytest.raises(pyexasol.ExaQueryError, match="right truncation"):
        conn.execute("INSERT INTO S.T (NAME) VALUES ('toolong')")
    conn.execute("INSERT INTO S.T (NAME) VALUES ('also')")
    conn.commit()
    assert empty_exa_db.query("SELECT NAME FROM S.T ORDER BY ID") == [("kept",), ("also",)]


def test_a_second_writer_of_a_table_waits_for_commit(
    empty_exa_db: EmulatedDatabase, conn: EmulatedConnection
) -> None:
    """Table-level locks: a writer of another table goes on, a writer of the same table waits
    (WAIT FOR COMMIT) and then writes, having read nothing of it before."""
    conn.execute("CREATE TABLE S.U (A DECIMAL(9,0))")
    conn.commit()
    conn.execute("INSERT INTO S.T (NAME) VALUES ('one')")
    other = empty_exa_db.connect()
    try:
        other.execute("INSERT INTO S.U (A) VALUES (1)")  # another table: no wait
        assert empty_exa_db.locks.waits == 0
        done = threading.Event()

        def second_writer() -> None:
            other.execute("INSERT INTO S.T (NAME) VALUES ('two')")
            other.commit()
            done.set()

        worker = threading.Thread(target=second_writer)
        worker.start()
        assert not done.wait(0.3)  # held by conn's open transaction
        conn.commit()
        worker.join(timeout=10)
        assert done.is_set() and empty_exa_db.locks.waits == 1
    finally:
        other.close()
    assert empty_exa_db.query("SELECT NAME FROM S.T ORDER BY ID") == [("one",), ("two",)]


def test_two_transactions_that_read_a_table_cannot_both_write_it(
    empty_exa_db: EmulatedDatabase, conn: EmulatedConnection
) -> None:
    """Exasol's read/write conflict: one of them is rolled back (40001)."""
    other = empty_exa_db.connect()
    try:
        conn.execute("SELECT COUNT(*) FROM S.T")
        other.execute("SELECT COUNT(*) FROM S.T")
        conn.execute("INSERT INTO S.T (NAME) VALUES ('a')")
        conn.commit()
        with pytest.raises(pyexasol.ExaQueryError) as info:
            other.execute("INSERT INTO S.T (NAME) VALUES ('b')")
        assert info.value.code == "40001"
        other.execute("INSERT INTO S.T (NAME) VALUES ('b')")  # a new transaction may
        other.commit()
    finally:
        other.close()
    assert empty_exa_db.query("SELECT COUNT(*) FROM S.T") == [(2,)]
