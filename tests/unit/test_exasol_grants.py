"""A dictionary user without the DBA role runs everything it installs (emulated privileges).

The emulated database logs the backend in as REDSYS with exactly the system privileges the
documentation tells a DBA to grant (``ddl.DICTIONARY_USER_PRIVILEGES``); the whole unit tier
runs so. Here: what that user installs it can use (its scripts read their CONNECTION only with
``ACCESS``), a second user reads the STA_ views and nothing else, and a privilege missing from
the list is noticed (tests/unit/exasol_emulator_privs.py says what is emulated).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pyexasol
import pytest

from redpss.config import Config, load_config
from redpss.dictionary import Dictionary
from redpss.dictionary import scripts as dbs
from redpss.dictionary.exasol.ddl import DICTIONARY_USER_PRIVILEGES, dictionary_user_grants
from redpss.dictionary.loaders import parse_loader
from redpss.errors import DictionaryError
from redpss.instance import Instance
from tests.unit.exasol_emulator import EmulatedConnection, EmulatedDatabase

pytestmark = pytest.mark.unit

READER = "ANALYST"


@pytest.fixture
def config(
    make_instance: Callable[..., Instance], redhome: Path, monkeypatch: pytest.MonkeyPatch
) -> Config:
    monkeypatch.setenv("REDHOME", str(redhome))
    inst = make_instance("tst1", db_scripts_host="10.0.0.5")
    return load_config(inst.conf_path)


@pytest.fixture
def reader(exa_db: EmulatedDatabase) -> Iterator[EmulatedConnection]:
    """A second user, who may log in and nothing more (PUBLIC's grants apply)."""
    exa_db.privileges.add_user(READER, "CREATE SESSION")
    conn = exa_db.connect(SimpleNamespace(user=READER))
    yield conn
    conn.close()


def _call_every_script(conn: EmulatedConnection) -> None:
    for script in dbs.SCRIPTS:
        args = ", ".join("NULL" for _ in script.params)
        conn.execute(f"SELECT REDSYS.{script.name}({args}) FROM DUAL")


def test_the_dictionary_user_is_no_dba(exa_db: EmulatedDatabase) -> None:
    user = exa_db.privileges.users["REDSYS"]
    assert not user.dba and user.system == set(DICTIONARY_USER_PRIVILEGES)
    assert dictionary_user_grants("redsys")[0] == 'GRANT CREATE SESSION TO "redsys"'


def test_the_dictionary_user_runs_the_scripts_it_installed(
    exa_dic: Dictionary, exa_db: EmulatedDatabase, config: Config
) -> None:
    """Without ACCESS on the CONNECTION (granted only to --grant-to names before), every call
    by the installing user failed: "insufficient privileges for using connection"."""
    exa_dic.install_scripts(dbs.db_script_statements(config, "tst1"))
    owner = exa_db.connect(SimpleNamespace(user="REDSYS"))
    try:
        _call_every_script(owner)  # raises ExaQueryError 42500 without ACCESS
    finally:
        owner.close()


def test_another_user_reads_the_status_views_and_calls_scripts_only_when_granted(
    exa_dic: Dictionary, exa_db: EmulatedDatabase, config: Config, reader: EmulatedConnection
) -> None:
    exa_dic.register_role("sched", pid=1, host="h", version="1", heartbeat_interval=5)
    assert reader.execute("SELECT ROLE FROM REDSYS.STA_PSS_STATUS").fetchall() == [("sched",)]
    with pytest.raises(pyexasol.ExaQueryError, match=r"SELECT on REDSYS\.ADM_PSS_STATUS") as info:
        reader.execute("SELECT ROLE FROM REDSYS.ADM_PSS_STATUS")
    assert info.value.code == "42500"
    exa_dic.install_scripts(dbs.db_script_statements(config, "tst1"))
    with pytest.raises(pyexasol.ExaQueryError, match=r"EXECUTE on REDSYS\.SEND_MAIL"):
        reader.execute("SELECT REDSYS.SEND_MAIL(NULL, NULL, NULL) FROM DUAL")
    exa_dic.install_scripts(dbs.db_script_statements(config, "tst1", grant_to=[READER]))
    _call_every_script(reader)


def test_a_script_without_access_on_its_connection_is_refused(
    exa_db: EmulatedDatabase, exa_dic: Dictionary, config: Config
) -> None:
    """The emulator's rule itself: EXECUTE alone does not let a script read the secret."""
    statements = [s for s in dbs.db_script_statements(config, "tst1") if "ACCESS" not in s]
    exa_dic.install_scripts(statements)
    owner = exa_db.connect(SimpleNamespace(user="REDSYS"))
    try:
        with pytest.raises(pyexasol.ExaQueryError, match="for using connection REDPSS_TST1"):
            owner.execute("SELECT REDSYS.REDPSS_PING() FROM DUAL")
    finally:
        owner.close()


def test_a_privilege_missing_from_the_list_is_noticed(
    exa_db: EmulatedDatabase, exa_dic: Dictionary
) -> None:
    exa_db.privileges.users["REDSYS"].system.discard("IMPORT")
    loader = parse_loader(
        "l", {"pattern": "^l", "target": "DWH.T", "columns": [{"name": "A", "type": "DATE"}]}
    )
    exa_dic.ensure_target_table(loader)
    from redpss.dictionary.landing import LedgerEntry

    entry = LedgerEntry("C1", "ab" * 32, "l.csv", 1, "DWH.T", "l", 1)
    with pytest.raises(DictionaryError, match="insufficient privileges: IMPORT"):
        exa_dic.load_rows(loader, iter([("2030-01-01",)]), entry=entry)
