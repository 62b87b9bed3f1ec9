"""The database calls the stack: Lua UDFs installed by ``redctl db init --with-scripts`` reach
dbls and sendmail of a running instance, and Exasol reads a file from cfisrv with
``IMPORT … FROM CSV AT 'ftp://…'`` (explicit TLS)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.instance import Instance
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
    conn = db.connect()
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
    inst = scripted
    config = inst.load_config()
    work: Path = inst.home / "data" / "work"
    (work / "import_me.csv").write_text("1,Bonn\n2,Ulm\n")
    password = config.redsys.cfi_password.reveal()
    conn = clean_db.connect()
    # ftp:// (not ftps://): cfisrv speaks explicit TLS (AUTH TLS) and requires it; Exasol then
    # encrypts the whole transfer. ftps:// would be implicit TLS, which cfisrv does not offer.
    try:
        conn.execute("CREATE SCHEMA IF NOT EXISTS DWH")
        conn.execute("CREATE TABLE DWH.CITIES (ID DECIMAL(9,0), NAME VARCHAR(20))")
        conn.execute(
            "IMPORT INTO DWH.CITIES FROM CSV AT "
            f"'ftp://{clean_db.gateway}:{config.redsys.cfi_port}/work/' "
            f"USER '{config.redsys.cfi_user}' IDENTIFIED BY '{password}' "
            "FILE 'import_me.csv' COLUMN SEPARATOR = ','"
        )
        assert conn.execute("SELECT COUNT(*) FROM DWH.CITIES").fetchval() == 2
    finally:
        conn.close()
