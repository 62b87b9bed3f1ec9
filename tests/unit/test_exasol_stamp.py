"""The Exasol definitions stamp against a user's plain SQL (emulated database, not Exasol).

Exasol has no triggers: the stamp is a hash of every row computed by the database, so that a
change by plain SQL — also one that leaves CHANGED_AT alone, or a delete and an insert between
two looks — moves it; a row deleted and written again as it was does not (nothing to reload).
docs/dictionary.md ("Exasol backend", "Jobs and watchers") says why no cheaper stamp is used.
"""

from __future__ import annotations

from redpss.dictionary import Dictionary
from tests.unit.exasol_emulator import EmulatedDatabase

JOB = (
    "INSERT INTO REDSYS.ADM_JOBS (JOB_NAME, SCHEMA_NAME, JOB_KIND, ACTION_TEXT, POOL_NAME, "
    "SCHEDULE_TYPE, ACTIVE, MAX_PARALLEL, MISFIRE_POLICY, CREATED_AT, CHANGED_AT) "
    "VALUES ('{name}', 'DWH', 'SQL', 'SELECT 1', 'default', 'NONE', TRUE, 1, 'RUN_ONCE', "
    "TIMESTAMP '2026-01-01 00:00:00', TIMESTAMP '2026-01-01 00:00:00')"
)


def test_plain_sql_moves_the_stamp_even_leaving_changed_at_alone(
    exa_db: EmulatedDatabase, exa_dic: Dictionary
) -> None:
    empty = exa_dic.definitions_stamp()
    exa_db.query(JOB.format(name="J1"))
    one = exa_dic.definitions_stamp()
    exa_db.query("UPDATE REDSYS.ADM_JOBS SET ACTION_TEXT = 'SELECT 2'")  # CHANGED_AT kept
    two = exa_dic.definitions_stamp()
    exa_db.query("UPDATE REDSYS.ADM_JOBS SET JOB_NAME = 'J2'")  # a rename
    renamed = exa_dic.definitions_stamp()
    exa_db.query("DELETE FROM REDSYS.ADM_JOBS")
    exa_db.query(JOB.format(name="J1"))  # gone and back as it was, between two looks
    again = exa_dic.definitions_stamp()
    assert len({empty, one, two, renamed}) == 4
    assert again == one
    assert [j.name for j in exa_dic.jobs()] == ["J1"]
    # no change log on Exasol: after a change the caller reads every definition again
    assert exa_dic.definition_changes(one) is None
