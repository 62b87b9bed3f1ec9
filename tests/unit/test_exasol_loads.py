"""Loads on the Exasol backend, on the emulated database (tests/unit/exasol_emulator.py).

One transaction for rows and ledger row; never run twice once the rows were read (they are a
one-shot iterator: a second run would archive the file without its rows); the reader's own
errors and the database's refusals are the file's fault, a lost connection is not. Plus the
values as the CSV transport needs them and the IMPORT from cfisrv as a statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pyexasol
import pytest
from pyexasol.exceptions import ExaImportError

from redpss.dictionary import Dictionary
from redpss.dictionary.exasol.csvload import cfi_import_sql, csv_value
from redpss.dictionary.exasol.dialect import NEWEST, Dialect
from redpss.dictionary.landing import DUPLICATE, LOADED, LedgerEntry, LoadOutcome
from redpss.dictionary.loaders import parse_loader
from redpss.errors import DictionaryError, FileRejected
from tests.unit.exasol_emulator import EmulatedConnection, EmulatedDatabase
from tests.unit.test_exasol_sql import check_parses

pytestmark = pytest.mark.unit

OLD = Dialect.of("7.1.30")

LOADER = parse_loader(
    "sales",
    {
        "pattern": "^sales",
        "target": "DWH.SALES",
        "columns": [
            {"name": "ID", "type": "DECIMAL(18,0)"},
            {"name": "AMOUNT", "type": "DECIMAL(10,2)"},
            {"name": "DAY", "type": "DATE"},
            {"name": "TS", "type": "TIMESTAMP"},
            {"name": "OK", "type": "BOOLEAN"},
            {"name": "NAME", "type": "VARCHAR(20)"},
        ],
    },
)
# what the readers produce: ints, decimal text (maybe with an exponent), ISO dates, timestamps
# with or without an offset, booleans as 0/1, None
ROWS = [
    (1, "12.50", "2030-01-02", "2030-01-02 10:00:00+01:00", 1, "anna"),
    (2, "1E+1", None, "2030-01-02 10:00:00.5", 0, None),
]


def _entry(claim: str = "C1") -> LedgerEntry:
    return LedgerEntry(claim, "ab" * 32, f"{claim}.csv", 99, "DWH.SALES", "sales", 7)


class OneShot:
    """The rows of a file: can be read once, counts how many rows were taken."""

    def __init__(self, rows: Sequence[Sequence[object]], fail_after: int | None = None) -> None:
        self.rows, self.fail_after = rows, fail_after
        self.taken = 0
        self.iterated = 0

    def __iter__(self) -> Iterator[Sequence[object]]:
        self.iterated += 1
        if self.iterated > 1:
            return
        for row in self.rows:
            if self.fail_after is not None and self.taken == self.fail_after:
                raise FileRejected("column ID: 'x' is not a number", line=3)
            self.taken += 1
            yield row


@pytest.fixture
def ready(exa_dic: Dictionary) -> Dictionary:
    exa_dic.ensure_target_table(LOADER)
    return exa_dic


def _table(db: EmulatedDatabase) -> list[tuple[Any, ...]]:
    return db.query('SELECT ID, AMOUNT, "DAY", TS, OK, NAME FROM DWH.SALES ORDER BY ID')


def _import_failing(
    monkeypatch: pytest.MonkeyPatch, error: Any, *, take: int = 1, drop: bool = False
) -> list[int]:
    """pyexasol's import as it fails: some rows read, then ExaImportError around ``error``."""
    calls: list[int] = []

    def fail(self: EmulatedConnection, src: Iterable[Any], table: Any, **kwargs: Any) -> None:
        calls.append(1)
        try:
            for n, _row in enumerate(src, start=1):
                if n >= take:
                    break
        except Exception as exc:  # the reader's error, as pyexasol's callback thread meets it
            raise ExaImportError(self, (exc,)) from exc
        if drop:
            self.close()
        raise ExaImportError(self, (error(self),))

    monkeypatch.setattr(EmulatedConnection, "import_from_iterable", fail)
    return calls


def test_rows_and_ledger_commit_together_with_exasol_values(
    ready: Dictionary, exa_db: EmulatedDatabase
) -> None:
    rows = OneShot(ROWS)
    assert ready.load_rows(LOADER, rows, entry=_entry()) == LoadOutcome(LOADED, 2)
    assert _table(exa_db) == [
        (1, "12.50", "2030-01-02", "2030-01-02 09:00:00.000000", True, "anna"),  # offset: UTC
        (2, "10.00", None, "2030-01-02 10:00:00.500000", False, None),
    ]
    found = ready.find_claim("C1")
    assert found is not None and (found.status, found.row_count) == (LOADED, 2)
    assert ready.find_content("ab" * 32, "DWH.SALES") == found
    assert rows.iterated == 1


def test_duplicate_policies(ready: Dictionary) -> None:
    ready.load_rows(LOADER, OneShot(ROWS), entry=_entry("C1"))
    again = ready.load_rows(LOADER, OneShot(ROWS), entry=_entry("C2"))
    assert (again.status, again.rows) == (DUPLICATE, 0)
    assert again.previous is not None and again.previous.claim_id == "C1"
    assert [(e.claim_id, e.status) for e in ready.load_ledger()] == [
        ("C2", DUPLICATE),
        ("C1", LOADED),
    ]
    strict = parse_loader("s", {"pattern": "x", "target": "DWH.SALES", "duplicates": "error",
                                "columns": [{"name": "ID", "type": "DECIMAL(18,0)"}]})  # fmt: skip
    assert ready.load_rows(strict, OneShot([]), entry=_entry("C3")).status == DUPLICATE
    assert ready.find_claim("C3") is None  # policy ERROR records nothing
    assert ready.target_row_count("DWH", "SALES") == 2


def test_connection_lost_before_commit_is_not_loaded_again_in_the_session(
    ready: Dictionary, exa_db: EmulatedDatabase
) -> None:
    rows = OneShot(ROWS)
    exa_db.fail(r"^COMMIT")
    with pytest.raises(DictionaryError, match="nothing was committed, the file is loaded again"):
        ready.load_rows(LOADER, rows, entry=_entry())
    assert rows.iterated == 1 and rows.taken == 2
    assert ready.target_row_count("DWH", "SALES") == 0 and ready.find_claim("C1") is None
    # the file comes back later: a new claim, new rows
    assert ready.load_rows(LOADER, OneShot(ROWS), entry=_entry("C9")).rows == 2


def test_connection_lost_after_commit_finds_its_ledger_row(
    ready: Dictionary, exa_db: EmulatedDatabase
) -> None:
    exa_db.fail(r"^COMMIT", after=True)
    assert ready.load_rows(LOADER, OneShot(ROWS), entry=_entry()) == LoadOutcome(LOADED, 2)
    assert ready.target_row_count("DWH", "SALES") == 2


def test_connection_lost_during_the_import_is_a_dictionary_error(
    ready: Dictionary, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lost(conn: Any) -> Exception:
        return pyexasol.ExaCommunicationError(conn, "connection lost")

    calls = _import_failing(monkeypatch, lost, drop=True)
    with pytest.raises(DictionaryError, match="nothing was committed: connection lost"):
        ready.load_rows(LOADER, OneShot(ROWS), entry=_entry())
    assert calls == [1]  # once: no retry with the rows half read
    monkeypatch.undo()
    assert ready.target_row_count("DWH", "SALES") == 0 and ready.find_claim("C1") is None


def test_the_readers_error_and_refused_values_are_the_files_fault(
    ready: Dictionary, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unused(conn: Any) -> Exception:
        return AssertionError("not reached")

    _import_failing(monkeypatch, unused, take=5)
    with pytest.raises(FileRejected, match="is not a number") as err:
        ready.load_rows(LOADER, OneShot(ROWS, fail_after=1), entry=_entry())
    assert err.value.line == 3

    def refused(conn: Any) -> Exception:
        text = "ETL-3050: [Column=1 Row=2] [Transformation of value='x' failed]"
        return pyexasol.ExaQueryError(conn, "IMPORT INTO", "42636", text)

    _import_failing(monkeypatch, refused)
    with pytest.raises(FileRejected, match="the database refused a value: ETL-3050"):
        ready.load_rows(LOADER, OneShot(ROWS), entry=_entry())
    monkeypatch.undo()
    assert ready.target_row_count("DWH", "SALES") == 0


def test_a_value_the_transport_cannot_take_is_rejected(ready: Dictionary) -> None:
    bad = [(1, "1", "2030-01-02", "not a time", 1, "x")]
    with pytest.raises(FileRejected, match="row 1: Invalid isoformat string"):
        ready.load_rows(LOADER, OneShot(bad), entry=_entry())
    assert ready.find_claim("C1") is None


@pytest.mark.parametrize(
    ("kind", "value", "sent"),
    [
        ("DECIMAL(10,2)", "1.5E+3", "1500"),
        ("DECIMAL(18,0)", 7, 7),
        ("DOUBLE", 1.5, 1.5),
        ("DATE", "2030-01-02", "2030-01-02"),
        ("TIMESTAMP", "2030-01-02 00:30:00-01:00", "2030-01-02 01:30:00.000000"),
        ("TIMESTAMP", "2030-01-02T03:04:05", "2030-01-02 03:04:05.000000"),
        ("BOOLEAN", 1, "TRUE"),
        ("BOOLEAN", 0, "FALSE"),
        ("VARCHAR(5)", "a,b", "a,b"),
    ],
)
def test_csv_values(kind: str, value: object, sent: object) -> None:
    assert csv_value(kind, NEWEST)(value) == sent


def test_csv_timestamps_keep_what_the_database_keeps() -> None:
    """Before 8.32 a TIMESTAMP holds milliseconds: the rest is cut, never rounded up."""
    moment = "2030-01-02 03:04:05.999999"
    assert csv_value("TIMESTAMP", NEWEST)(moment) == "2030-01-02 03:04:05.999999"
    assert csv_value("TIMESTAMP", OLD)(moment) == "2030-01-02 03:04:05.999"


def test_non_finite_doubles_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        csv_value("DOUBLE", NEWEST)(float("nan"))


def test_the_import_from_cfisrv_is_a_valid_statement() -> None:
    loader = parse_loader(
        "big",
        {"pattern": "x", "target": "DWH.BIG", "delimiter": ";", "null": "NA", "columns": [
            {"name": "ID", "type": "DECIMAL(18,0)"}, {"name": "DAY", "type": "DATE"},
            {"name": "NAME", "type": "VARCHAR(20)"}]},
    )  # fmt: skip
    sql = cfi_import_sql(
        loader, url="ftp://cfihost:2121/work/", user="redcfi", password="pa'ss",
        file_name="L1.big.csv", dialect=NEWEST, positions=[1, 3, 2],
    )  # fmt: skip
    check_parses(sql)
    assert sql == (
        'IMPORT INTO "DWH"."BIG" ("ID", "DAY", "NAME") FROM CSV AT \'ftp://cfihost:2121/work/\' '
        "USER 'redcfi' IDENTIFIED BY 'pa''ss' FILE 'L1.big.csv' (1, 3 FORMAT='YYYY-MM-DD', 2) "
        "ENCODING = 'UTF-8' COLUMN SEPARATOR = ';' COLUMN DELIMITER = '\"' SKIP = 1 NULL = 'NA'"
    )
    with pytest.raises(ValueError, match="BOOLEAN"):
        cfi_import_sql(
            parse_loader("b", {"pattern": "x", "target": "DWH.B",
                               "columns": [{"name": "F", "type": "BOOLEAN"}]}),
            url="ftp://h/", user="u", password="p", file_name="f", dialect=NEWEST,
        )  # fmt: skip


def test_a_refused_certificate_is_no_database_away(
    ready: Dictionary, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ETL-5106 naming a certificate (an Exasol that verifies file connections and a transport
    without its pin) cannot heal by retrying: FileRejected with the reason, not DictionaryError
    (which requeues the file at every run); ETL-5106 of a dropped peer still is."""

    def certificate(conn: Any) -> Exception:
        text = (
            "ETL-5106: Following error occured while reading data from external connection "
            "[https://10.0.0.9:8653/000.csv failed. [SSL certificate problem: self-signed "
            "certificate],[60]]"
        )
        return pyexasol.ExaQueryError(conn, "IMPORT INTO", "42636", text)

    _import_failing(monkeypatch, certificate)
    with pytest.raises(FileRejected, match="refused the TLS certificate of pyexasol's HTTP"):
        ready.load_rows(LOADER, OneShot(ROWS), entry=_entry())

    def peer(conn: Any) -> Exception:
        text = (
            "ETL-5106: [... failed after 200009 bytes. [Failure when receiving data from the peer]]"
        )
        return pyexasol.ExaQueryError(conn, "IMPORT INTO", "42636", text)

    _import_failing(monkeypatch, peer)
    with pytest.raises(DictionaryError, match="nothing was committed"):
        ready.load_rows(LOADER, OneShot(ROWS), entry=_entry("C2"))
