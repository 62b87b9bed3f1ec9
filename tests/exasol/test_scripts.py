"""The database calls the stack: Lua UDFs installed by ``redctl db init --with-scripts`` reach
dbls and sendmail of a running instance, and Exasol reads a file from cfisrv with
``IMPORT … FROM CSV AT 'ftp://…'`` (explicit TLS)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from redpss.dictionary.loaders import parse_loader
from redpss.instance import Instance
from redpss.landing import run_load, zone_of
from tests.conftest import MakeRelay, run_cli, wait_for
from tests.exasol.conftest import ExasolDb
from tests.smtp_relay import Relay


@pytest.fixture
def relay(make_relay: MakeRelay) -> Relay:
    return make_relay()


@pytest.fixture
def scripted(exa_instance: Instance, relay: Relay) -> Iterator[Instance]:
    inst = exa_instance
    text = inst.conf_path.read_text()
    for key, value in {
        "sendmail_smtp_host": "127.0.0.1",
        "sendmail_smtp_port": str(relay.port),
        "sendmail_smtp_encr": "PLAIN",
    }.items():
        text = "\n".join(
            f"{key} = {value}" if line.split("=")[0].strip() == key else line
            for line in text.splitlines()
        )
    inst.conf_path.write_text(text + "\n")
    init = run_cli("redctl", "db", "init", "--with-scripts", inst=inst)
    assert init.returncode == 0, init.stdout + init.stderr
    started = run_cli("redctl", "start", inst=inst, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield inst
    finally:
        run_cli("redctl", "stop", inst=inst, timeout=180)


def _value(db: ExasolDb, query: str) -> object:
    """``query`` as the dictionary user (no DBA): its SQL jobs call the scripts it installed."""
    conn = db.connect(as_dictionary_user=True)
    try:
        return conn.execute(query).fetchval()
    finally:
        conn.close()


def test_lua_scripts_call_dbls_and_sendmail(
    scripted: Instance, clean_db: ExasolDb, relay: Relay
) -> None:
    assert _value(clean_db, "SELECT REDSYS.REDPSS_PING()") is not None
    _value(
        clean_db,
        "SELECT REDSYS.LOG_MESSAGE('DWH', 'ERROR', 'EXA_TEST', 'logged from Exasol')",
    )
    wait_for(
        lambda: _value(
            clean_db, "SELECT COUNT(*) FROM DWH.LOG_MESSAGES WHERE MESSAGE = 'logged from Exasol'"
        ),
        timeout=60,
        what="the UDF's ERROR line in DWH.LOG_MESSAGES",
    )
    _value(clean_db, "SELECT REDSYS.SEND_MAIL('ops@example.com', 'from Exasol', 'hello')")
    wait_for(lambda: relay.inbox.mails, timeout=60, what="the UDF's mail at the relay")


def test_exasol_imports_a_file_from_cfisrv(scripted: Instance, clean_db: ExasolDb) -> None:
    """``method = "import"``: the database reads the claimed file from cfisrv over ``ftp://``
    (cfisrv speaks explicit TLS; ``ftps://`` would be implicit TLS), with ``PUBLIC KEY`` of
    cfisrv's self-signed certificate from Exasol 8.32 (verified by default from 2025.1)."""
    inst = scripted
    config = inst.load_config()
    loader = parse_loader(
        "cities",
        {"pattern": "^cities", "target": "DWH.CITIES", "method": "import",
         "columns": [{"name": "ID", "type": "DECIMAL(9,0)"},
                     {"name": "NAME", "type": "VARCHAR(20)", "source": "city"}]},
    )  # fmt: skip
    zone = zone_of(inst, config)
    (zone.input / "cities_1.csv").write_text("city,ID\nBonn,1\nUlm,2\n")
    with clean_db.dictionary() as dic:
        dic.upsert_loader(loader)
        quiet = dataclasses.replace(config.redsys, sched_file_quiet_period=0.0)
        result = run_load(
            instance=inst, config=dataclasses.replace(config, redsys=quiet), dictionary=dic,
            loader="cities", key=None, run_id=1, schema="DWH",
        )  # fmt: skip
        assert (result.files, result.rows, result.errors) == (1, 2, 0), result.message
        assert dic.target_row_count("DWH", "CITIES") == 2
