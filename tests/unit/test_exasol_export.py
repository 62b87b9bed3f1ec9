"""The export area of the Exasol backend, on the emulated database: names looked up in
``SYS.EXA_ALL_*`` and quoted as found, filters as literals, batches from one SELECT."""

from __future__ import annotations

from typing import Any

import pytest

from redpss.dictionary import Dictionary
from redpss.dictionary.exasol.export import exasol_kind
from redpss.dictionary.export import ExportColumn
from redpss.errors import DictionaryError
from tests.unit.exasol_emulator import EmulatedDatabase, EmulatedStatement

pytestmark = pytest.mark.unit


@pytest.fixture
def stage(exa_dic: Dictionary, exa_db: EmulatedDatabase, monkeypatch: pytest.MonkeyPatch) -> Any:
    def fetchmany(self: EmulatedStatement, size: int) -> list[tuple[Any, ...]]:
        rows = self.fetchall()  # the emulator fetches all; pyexasol fetches in chunks
        self._rows, self._next = rows[size:], 0
        return rows[:size]

    if not hasattr(EmulatedStatement, "fetchmany"):
        monkeypatch.setattr(EmulatedStatement, "fetchmany", fetchmany, raising=False)
    exa_dic.ensure_schema("STAGE")
    exa_db.query('CREATE TABLE STAGE."ODD NAME" (A DECIMAL(9,0), "B C" VARCHAR(9), E BOOLEAN, '
                 "F DECIMAL(9,2), G TIMESTAMP(6))")  # fmt: skip
    values = ", ".join(
        f"({i}, 't{i}', {'TRUE' if i % 2 else 'FALSE'}, {i}.25, NULL)" for i in range(25)
    )
    exa_db.query(f'INSERT INTO STAGE."ODD NAME" VALUES {values}')
    exa_db.query("CREATE TABLE STAGE.EMPTY (X DOUBLE)")
    return exa_dic


def test_rows_come_in_batches_with_real_names(stage: Dictionary) -> None:
    batches = list(stage.export_rows("STAGE", "odd name", batch_size=10))
    assert [len(rows) for _, rows in batches] == [10, 10, 5]
    assert batches[0][0] == ["A", "B C", "E", "F", "G"]
    assert batches[0][1][1] == (1, "t1", True, 1.25, None)  # DECIMAL with scale: a float
    assert list(stage.export_rows("STAGE", "EMPTY")) == [(["X"], [])]
    picked = list(stage.export_rows("STAGE", "ODD NAME", columns=["b c", "a"], where={"A": 3}))
    assert picked == [(["B C", "A"], [("t3", 3)])]
    nulls = list(stage.export_rows("STAGE", "ODD NAME", where={"A": None}))
    assert nulls == [(["A", "B C", "E", "F", "G"], [])]
    assert "ODD NAME" in stage.export_objects("STAGE")
    assert stage.export_columns("STAGE", "ODD NAME") == [
        ExportColumn("A", "INTEGER"), ExportColumn("B C", "VARCHAR"),
        ExportColumn("E", "BOOLEAN"), ExportColumn("F", "DOUBLE"), ExportColumn("G", "VARCHAR"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"object_name": "x; DROP TABLE EMPTY"}, "does not exist"),
        ({"object_name": "EMPTY", "columns": ["X", "Y"]}, "column 'Y' does not exist"),
        ({"object_name": "EMPTY", "where": {"1=1 OR X": 1}}, "filter column"),
        ({"object_name": "EMPTY", "batch_size": 0}, "batch_size"),
    ],
)
def test_names_are_looked_up_never_interpolated(
    stage: Dictionary, kwargs: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        list(stage.export_rows("STAGE", **kwargs))


def test_schemas_are_checked(stage: Dictionary) -> None:
    with pytest.raises(ValueError, match="target schema 'NOPE' does not exist"):
        stage.export_objects("NOPE")
    with pytest.raises(DictionaryError, match="invalid target schema name"):
        stage.export_objects("no pe")


@pytest.mark.parametrize(
    ("declared", "kind"),
    [
        ("DECIMAL(18,0)", "INTEGER"), ("DECIMAL(10,2)", "DOUBLE"), ("DOUBLE", "DOUBLE"),
        ("BOOLEAN", "BOOLEAN"), ("VARCHAR(20) UTF8", "VARCHAR"), ("DATE", "VARCHAR"),
        ("TIMESTAMP(6)", "VARCHAR"), ("HASHTYPE(16 BYTE)", "VARCHAR"),
    ],
)  # fmt: skip
def test_exasol_types_map_to_kinds(declared: str, kind: str) -> None:
    assert exasol_kind(declared) == kind


def _open_transactions(db: EmulatedDatabase) -> list[object]:
    return [c for c in db._open if not c.is_closed and c._in_tx]


def test_an_export_leaves_no_read_transaction_open(
    stage: Dictionary, exa_db: EmulatedDatabase
) -> None:
    """An open read transaction keeps its read locks until it ends: other sessions may then
    WAIT FOR COMMIT (Exasol's knowledge base). The export reads on a connection of its own,
    rolled back and closed when the rows are out, or when the export is abandoned."""
    assert len(list(stage.export_rows("STAGE", "odd name", batch_size=10))) == 3
    assert _open_transactions(exa_db) == []
    abandoned = stage.export_rows("STAGE", "odd name", batch_size=10)
    next(abandoned)
    stage.heartbeat("sendfile", pid=1)  # a unit of the same thread commits meanwhile
    _names, rows = next(abandoned)  # the result set goes on
    assert len(rows) == 10
    abandoned.close()  # type: ignore[attr-defined]  # a generator
    assert _open_transactions(exa_db) == []


def test_the_object_listing_reads_one_system_table_per_query(
    stage: Dictionary, exa_db: EmulatedDatabase
) -> None:
    """A query over two system tables read-locks every object of both; one table filtered
    on one column locks that schema's objects only (knowledge base, "Filter on system tables
    and transaction conflicts")."""
    assert stage.export_objects("STAGE")[:2] == ["ADM_JOB_LOG", "ADM_LOAD_LOG"]
    listing = [q for _, q in exa_db.statements if "EXA_ALL_TABLES" in q or "EXA_ALL_VIEWS" in q]
    assert listing and all("UNION" not in q.upper() for q in listing)
