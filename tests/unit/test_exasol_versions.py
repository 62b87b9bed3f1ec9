"""The Exasol backend on each kind of Exasol version it supports (emulated; not Exasol).

7.1 and 8.0 to 8.31 know ``TIMESTAMP`` only (milliseconds; ``TIMESTAMP(p)`` is a syntax error),
8.32 and newer ``TIMESTAMP(6)`` (changelog 13409); releases after 8.34 are numbered 2025.1 ….
The same scenario runs on each: the dictionary is created, written and read back; before 8.32
every timestamp comes back cut to milliseconds. Below 7.1 nothing is created.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from redpss.dictionary.exasol.core import ExasolCore
from redpss.dictionary.exasol.dialect import DbVersion, Dialect
from redpss.dictionary.exasol.sqltext import to_db
from redpss.dictionary.jobs import RunUpdate
from redpss.dictionary.landing import LOADED, LedgerEntry, LoadOutcome
from redpss.dictionary.loaders import parse_loader
from redpss.errors import DictionaryError
from tests.unit.exasol_emulator import EmulatedDatabase
from tests.unit.exasol_support import emulated_dictionary

pytestmark = pytest.mark.unit

RELEASES = ("7.1.30", "8.31.0", "8.32.0", "2025.1.3")
MOMENT = datetime(2030, 1, 2, 3, 4, 5, 987654, tzinfo=UTC)
LOADER = parse_loader(
    "ts",
    {
        "pattern": "^ts",
        "target": "DWH.TS",
        "columns": [{"name": "ID", "type": "DECIMAL(9,0)"}, {"name": "AT", "type": "TIMESTAMP"}],
    },
)


def _kept(release: str) -> datetime:
    """MOMENT as the database keeps it: cut to milliseconds before 8.32."""
    if Dialect.of(release).fraction_digits == 3:
        return MOMENT.replace(microsecond=987000)
    return MOMENT


@pytest.fixture(params=RELEASES)
def release(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def versioned(release: str) -> Iterator[tuple[EmulatedDatabase, ExasolCore]]:
    db = EmulatedDatabase(release=release)
    dictionary = emulated_dictionary(db)
    try:
        yield db, dictionary
    finally:
        dictionary.close()
        db.close()


def test_versions_are_ordered_across_the_renumbering() -> None:
    assert DbVersion.parse("2025.1.0") > DbVersion.parse("8.34.1") > DbVersion.parse("8.32.0")
    assert DbVersion.parse("8.31.9") < DbVersion.parse("8.32.0")
    assert str(DbVersion.parse("7.1.30")) == "7.1.30"
    with pytest.raises(ValueError, match="not an Exasol release"):
        DbVersion.parse("latest")


def test_the_dictionary_is_created_and_used_on_each_version(
    versioned: tuple[EmulatedDatabase, ExasolCore], release: str
) -> None:
    db, dictionary = versioned
    assert dictionary.database() == f"Exasol {release} at emulated:8563"
    dictionary.init()
    kind = "TIMESTAMP(6)" if DbVersion.parse(release) >= DbVersion(8, 32) else "TIMESTAMP"
    types = db.query(
        "SELECT DISTINCT COLUMN_TYPE FROM SYS.EXA_ALL_COLUMNS WHERE COLUMN_SCHEMA = 'REDSYS' "
        "AND COLUMN_NAME IN ('APPLIED_AT', 'HEARTBEAT_AT', 'CREATED_AT')"
    )
    assert types == [(kind,)]

    dictionary.record_runs(
        [RunUpdate("DWH", 1, "job", "default", "OK", MOMENT, started_at=MOMENT, ended_at=MOMENT)]
    )
    (run,) = dictionary.runs(schema="DWH")
    assert run.queued_at == run.started_at == run.ended_at == _kept(release)

    dictionary.ensure_target_table(LOADER)
    entry = LedgerEntry("C1", "ab" * 32, "ts1.csv", 10, "DWH.TS", "ts", 1)
    outcome = dictionary.load_rows(LOADER, iter([(1, MOMENT.isoformat())]), entry=entry)
    assert outcome == LoadOutcome(LOADED, 1)
    assert db.query("SELECT COLUMN_TYPE FROM SYS.EXA_ALL_COLUMNS WHERE COLUMN_NAME = 'AT'") == [
        (kind,)
    ]
    (stored,) = db.query('SELECT CAST("AT" AS VARCHAR(40)) FROM DWH.TS')[0]
    assert datetime.fromisoformat(stored).replace(tzinfo=UTC) == _kept(release)

    dictionary.register_role("sched", pid=7, host="h", version="1", heartbeat_interval=5)
    (status,) = dictionary.pss_status()
    assert status.role == "sched" and status.alert == 0


def test_an_exasol_older_than_7_1_is_refused_before_anything_is_created() -> None:
    db = EmulatedDatabase(release="7.0.18")
    dictionary = emulated_dictionary(db)
    try:
        with pytest.raises(DictionaryError, match=r"Exasol 7\.0\.18; redpss needs Exasol 7\.1"):
            dictionary.init()
        assert db.query("SELECT COUNT(*) FROM SYS.EXA_ALL_SCHEMAS") == [(0,)]
    finally:
        dictionary.close()
        db.close()


_VERSIONS = st.tuples(st.integers(0, 2030), st.integers(0, 99), st.integers(0, 99)).map(
    lambda v: ".".join(map(str, v))
)


@given(_VERSIONS, _VERSIONS)
def test_versions_order_as_packaging_orders_them(a: str, b: str) -> None:
    """The reference: PEP 440 ordering of plain release numbers (pyexasol compares the
    database's release with packaging.version too)."""
    assert (DbVersion.parse(a) < DbVersion.parse(b)) == (Version(a) < Version(b))
    assert (DbVersion.parse(a) == DbVersion.parse(b)) == (Version(a) == Version(b))


@given(st.datetimes(timezones=st.just(UTC)))
def test_milliseconds_are_cut_never_rounded_up(moment: datetime) -> None:
    """Before 8.32 a value keeps milliseconds: cut, so no stored time lies in the future of
    the real one (a heartbeat never looks younger than it is); from 8.32 nothing is lost."""
    kept = datetime.fromisoformat(to_db(moment, 3)).replace(tzinfo=UTC)
    assert kept <= moment and (moment - kept).total_seconds() < 0.001
    assert datetime.fromisoformat(to_db(moment, 6)).replace(tzinfo=UTC) == moment
