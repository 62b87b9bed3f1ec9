"""What a look at the definitions can rely on, on a real Exasol (issue 20: O(changes) looks).

Exasol has no triggers, so SQLite's change log (``ADM_DEFINITION_LOG``) cannot be kept for a
user's plain SQL; ``definitions_stamp`` hashes every row in the database instead (O(definitions)
of the database's CPU per look). An O(1) look would need a value the database itself moves with
every committed change of a table. ``EXA_ALL_OBJECTS.LAST_COMMIT`` is documented only as "last
time the object was changed in the DB": these tests are the experiment that says whether every
kind of plain-SQL change moves it (docs/dictionary.md, "Exasol backend", "Jobs and watchers"
says what the backend would do with it). Until they have passed on the supported versions, the
backend does not rely on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.exasol.conftest import ExasolDb

_JOB = (
    "INSERT INTO REDSYS.ADM_JOBS (JOB_NAME, SCHEMA_NAME, JOB_KIND, ACTION_TEXT, POOL_NAME, "
    "SCHEDULE_TYPE, ACTIVE, MAX_PARALLEL, MISFIRE_POLICY, CREATED_AT, CHANGED_AT) "
    "VALUES ('{name}', 'DWH', 'SQL', 'SELECT 1', 'default', 'NONE', TRUE, 1, 'RUN_ONCE', "
    "TIMESTAMP '2026-01-01 00:00:00', TIMESTAMP '2026-01-01 00:00:00')"
)
_LAST_COMMIT = (
    "SELECT LAST_COMMIT FROM SYS.EXA_ALL_OBJECTS "
    "WHERE ROOT_NAME = 'REDSYS' AND OBJECT_NAME = 'ADM_JOBS' AND OBJECT_TYPE = 'TABLE'"
)


def _last_commit(conn: Any) -> Any:
    rows = conn.execute(_LAST_COMMIT).fetchall()
    assert len(rows) == 1, rows
    return rows[0][0]


def _next_second(conn: Any) -> None:
    """Wait (polling the database's clock, with a deadline) until its second has turned."""
    clock = "SELECT FLOOR(POSIX_TIME()) FROM DUAL"
    start = conn.execute(clock).fetchall()[0][0]
    deadline = time.monotonic() + 10
    while conn.execute(clock).fetchall()[0][0] <= start:
        assert time.monotonic() < deadline, "the database's clock did not move"


def test_the_hash_stamp_moves_with_plain_sql_that_leaves_changed_at_alone(
    clean_db: ExasolDb,
) -> None:
    """What the backend relies on today, as a user's SQL would change a definition."""
    with clean_db.dictionary() as dic:
        dic.init()
        empty = dic.definitions_stamp()
        conn = clean_db.connect(as_dictionary_user=True)
        try:
            conn.execute(_JOB.format(name="J1"))
            one = dic.definitions_stamp()
            conn.execute("UPDATE REDSYS.ADM_JOBS SET ACTION_TEXT = 'SELECT 2'")  # CHANGED_AT kept
            two = dic.definitions_stamp()
            conn.execute("DELETE FROM REDSYS.ADM_JOBS")
            conn.execute(_JOB.format(name="J1"))  # the same row again
            again = dic.definitions_stamp()
        finally:
            conn.close()
        assert len({empty, one, two}) == 3
        assert again == one  # the same content: the same stamp (nothing to reload)


def test_last_commit_moves_with_every_committed_change_of_a_table(clean_db: ExasolDb) -> None:
    """The experiment: INSERT, UPDATE leaving CHANGED_AT, MERGE, DELETE and TRUNCATE by the
    dictionary user each move LAST_COMMIT of REDSYS.ADM_JOBS; a SELECT does not."""
    with clean_db.dictionary() as dic:
        dic.init()
    conn = clean_db.connect(as_dictionary_user=True)
    try:
        changes: list[tuple[str, Callable[[], object]]] = [
            ("insert", lambda: conn.execute(_JOB.format(name="J1"))),
            ("update", lambda: conn.execute("UPDATE REDSYS.ADM_JOBS SET ACTION_TEXT = 'x'")),
            (
                "merge",
                lambda: conn.execute(
                    "MERGE INTO REDSYS.ADM_JOBS T USING (SELECT 'J1' AS N FROM DUAL) S "
                    "ON T.JOB_NAME = S.N WHEN MATCHED THEN UPDATE SET ACTIVE = FALSE"
                ),
            ),
            ("delete", lambda: conn.execute("DELETE FROM REDSYS.ADM_JOBS")),
            ("insert again", lambda: conn.execute(_JOB.format(name="J2"))),
            ("truncate", lambda: conn.execute("TRUNCATE TABLE REDSYS.ADM_JOBS")),
        ]
        before = _last_commit(conn)
        conn.execute("SELECT COUNT(*) FROM REDSYS.ADM_JOBS").fetchall()
        assert _last_commit(conn) == before  # a read is no change
        for what, change in changes:
            _next_second(conn)  # LAST_COMMIT is a timestamp: each change in a second of its own
            change()
            after = _last_commit(conn)
            assert after is not None and after != before, what
            before = after
    finally:
        conn.close()
