"""``method = "import"``: the database reads the claimed file itself from cfisrv (emulated).

The emulated database reads ``ftp://<db_scripts_host>:<cfi_port>/work/`` from the instance's
``data/work`` folder (tests/unit/exasol_emulator_files.py) with Exasol's certificate rules per
version: no verification before 8.32 (and no ``PUBLIC KEY`` clause), the pin verified when
given from 8.32, required from 2025.1 for a self-signed certificate. A certificate the database
refuses (``ETL-5106``) is not "the dictionary is away": the file goes to ``error/`` saying why,
instead of being requeued for ever.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pyexasol
import pytest

from redpss.dictionary.exasol.cfi import import_source, public_key_pin
from redpss.dictionary.exasol.core import ExasolCore
from redpss.dictionary.exasol.csvload import cfi_import_sql
from redpss.dictionary.exasol.dialect import Dialect
from redpss.dictionary.loaders import parse_loader
from redpss.errors import LoadError
from redpss.instance import Instance
from redpss.landing import run_load, zone_of
from redpss.roles.cfisrv import ensure_certificate
from tests.unit.exasol_emulator import EmulatedDatabase
from tests.unit.exasol_emulator_files import FileServer
from tests.unit.exasol_support import emulated_dictionary

pytestmark = pytest.mark.unit

LOADER = parse_loader(
    "sales",
    {
        "pattern": r"^sales",
        "target": "DWH.SALES",
        "method": "import",
        "delimiter": ";",
        "null": "NA",
        "columns": [
            {"name": "ID", "type": "DECIMAL(18,0)"},
            {"name": "DAY", "type": "DATE", "source": "day"},
            {"name": "NAME", "type": "VARCHAR(9)", "source": "who"},
        ],
    },
)
FILE = "who;ID;day\nanna;1;2030-01-02\nNA;2;NA\n"  # fields in another order than the columns


@pytest.fixture
def inst(make_instance: Callable[..., Instance]) -> Instance:
    made = make_instance("tst1", cfi_password="s3cret", db_scripts_host="10.0.0.5")
    ensure_certificate(made.etc / "ssl", "127.0.0.1")  # what cfisrv makes at its first start
    return made


def _database(release: str, inst: Instance, *, pin: str | None = None) -> EmulatedDatabase:
    db = EmulatedDatabase(release=release)
    config = inst.load_config()
    url = f"ftp://10.0.0.5:{config.redsys.cfi_port}/work/"
    real_pin = public_key_pin(inst.etc / "ssl" / "cfisrv.crt")
    db.file_servers[url] = FileServer(
        zone_of(inst, config).work, "redcfi", "s3cret", pin or real_pin
    )
    return db


@pytest.fixture
def loaded(inst: Instance, request: pytest.FixtureRequest) -> Iterator[tuple[Any, ...]]:
    db = _database(request.param, inst)
    dic = emulated_dictionary(db)
    dic.init()
    dic.upsert_loader(LOADER)
    try:
        yield inst, db, dic
    finally:
        dic.close()
        db.close()


def _run(inst: Instance, dic: ExasolCore) -> Any:
    config = inst.load_config()
    config = dataclasses.replace(
        config, redsys=dataclasses.replace(config.redsys, sched_file_quiet_period=0.0)
    )
    return run_load(
        instance=inst, config=config, dictionary=dic, loader="sales", key=None, run_id=7,
        schema="DWH",
    )  # fmt: skip


def test_the_statement_is_ftp_with_the_pin_from_8_32(inst: Instance) -> None:
    """``ftps://`` is implicit TLS in Exasol; cfisrv speaks explicit TLS: ``ftp://``."""
    source = import_source(inst.load_config(), inst.etc)
    assert source.url.startswith("ftp://10.0.0.5:") and source.url.endswith("/work/")
    assert source.public_key is not None and source.public_key.startswith("sha256//")

    def sql(release: str) -> str:
        return cfi_import_sql(
            LOADER, url=source.url, user="redcfi", password="x", file_name="f.csv",
            dialect=Dialect.of(release), public_key=source.public_key,
        )  # fmt: skip

    old, new = sql("8.31.0"), sql("8.32.0")
    assert "PUBLIC KEY" not in old
    assert f"IDENTIFIED BY 'x' PUBLIC KEY '{source.public_key}' FILE 'f.csv'" in new


@pytest.mark.parametrize("loaded", ["7.1.30", "8.32.0", "2025.1.3"], indirect=True)
def test_the_database_imports_the_claimed_file(loaded: tuple[Any, ...]) -> None:
    inst, db, dic = loaded
    zone = zone_of(inst, inst.load_config())
    (zone.input / "sales_1.csv").write_text(FILE)
    result = _run(inst, dic)
    assert (result.files, result.rows, result.errors) == (1, 2, 0)
    rows = db.query('SELECT ID, CAST("DAY" AS VARCHAR(10)), NAME FROM DWH.SALES ORDER BY ID')
    assert rows == [(1, "2030-01-02", "anna"), (2, None, None)]
    (entry,) = dic.load_ledger()
    assert (entry.file_name, entry.row_count) == ("sales_1.csv", 2)
    assert (zone.archive / "sales_1.csv").exists()
    imports = [q for _, q in db.statements if q.startswith("IMPORT")]
    assert imports and all(" AT 'ftp://10.0.0.5:" in q for q in imports)


def test_a_refused_certificate_sends_the_file_to_error_not_back_to_input(inst: Instance) -> None:
    """ETL-5106 with a certificate reason: before, every such failure was 'the dictionary is
    away' and the file went back to input/, to fail again at every run."""
    db = _database("2025.1.3", inst, pin="sha256//c29tZW9uZSBlbHNlJ3Mga2V5")  # another key
    dic = emulated_dictionary(db)
    try:
        dic.init()
        dic.upsert_loader(LOADER)
        zone = zone_of(inst, inst.load_config())
        (zone.input / "sales_1.csv").write_text(FILE)
        result = _run(inst, dic)
        assert result.errors == 1 and not (zone.input / "sales_1.csv").exists()
        reason = next(zone.error.glob("*.reason*"), None) or next(
            p for p in zone.error.iterdir() if p.name != "sales_1.csv"
        )
        text = reason.read_text()
        assert "refused the TLS certificate of cfisrv" in text and "ETL-5106" in text
        assert (zone.error / "sales_1.csv").read_text() == FILE
    finally:
        dic.close()
        db.close()


def test_a_lost_connection_imports_again_once_and_a_database_away_requeues(
    inst: Instance,
) -> None:
    """The file stays in work/ until the ledger row commits: an IMPORT whose connection broke
    after the database committed is not repeated (the unit finds its ledger row), and one that
    broke before runs again. A database that stays away leaves the file to the next run."""
    db = _database("8.32.0", inst)
    dic = emulated_dictionary(db)
    try:
        dic.init()
        dic.upsert_loader(LOADER)
        zone = zone_of(inst, inst.load_config())
        db.fail("IMPORT INTO")  # before
        db.fail("INSERT INTO .*ADM_LOAD_LOG", after=True)  # the ledger row, before the commit
        (zone.input / "sales_1.csv").write_text(FILE)
        assert _run(inst, dic).rows == 2
        assert db.query("SELECT COUNT(*) FROM DWH.SALES") == [(2,)]

        def away(conn: Any) -> None:
            raise pyexasol.ExaCommunicationError(conn, "emulated: the database is away")

        db.hook("IMPORT INTO", away, times=1000)
        other = FILE.replace("anna", "bert")  # not a duplicate of the first
        (zone.input / "sales_2.csv").write_text(other)
        with pytest.raises(LoadError, match="did not answer"):
            _run(inst, dic)
        assert (zone.input / "sales_2.csv").read_text() == other
    finally:
        dic.close()
        db.close()


def test_a_loader_the_database_cannot_read_as_we_would_is_refused() -> None:
    with pytest.raises(ValueError, match="key 'method' = \"import\": BOOLEAN columns"):
        parse_loader(
            "b",
            {"pattern": "x", "target": "DWH.B", "method": "import",
             "columns": [{"name": "F", "type": "BOOLEAN"}]},
        )  # fmt: skip


def test_the_embedded_dictionary_refuses_an_import_loader(dic: Any) -> None:
    """SQLite cannot read a file from cfisrv: the definition is refused when it is applied,
    not at every load (which would put the file back into input/ again and again)."""
    from redpss.errors import DictionaryError

    with pytest.raises(DictionaryError, match="method = import needs dictionary = exasol"):
        dic.upsert_loader(LOADER)
