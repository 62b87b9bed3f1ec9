"""``redctl`` with ``dictionary = exasol``, pyexasol's connect answered by the emulated database.

Everything from red_params.conf to the SQL runs as in production except the connection
(tests/unit/exasol_emulator.py: an emulation for the backend's logic, not Exasol). The fake
``pyexasol.connect`` takes only the arguments the real one does.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyexasol
import pytest

from redpss.cli import redctl
from redpss.dictionary import SCHEMA_VERSION
from redpss.dictionary.scripts import SCRIPTS
from redpss.instance import Instance, template_text
from tests.unit.exasol_emulator import EmulatedConnection, EmulatedDatabase

pytestmark = pytest.mark.unit

CONNECT_ARGS = set(inspect.signature(pyexasol.ExaConnection.__init__).parameters) - {"self"}


@pytest.fixture
def exa_instance(
    make_instance: Callable[..., Instance],
    empty_exa_db: EmulatedDatabase,
    monkeypatch: pytest.MonkeyPatch,
    redhome: Path,
) -> list[dict[str, Any]]:
    """Instance tst1 on the emulated Exasol; returns the arguments of every connect."""
    monkeypatch.setenv("REDHOME", str(redhome))
    monkeypatch.setenv("RED_EXA_PASSWORD", "s3cret")
    make_instance(
        "tst1",
        dictionary="exasol",
        exa_connection="exa1:8563",
        exa_password="env:RED_EXA_PASSWORD",
        exa_certificate="nocertcheck",
        db_scripts_host="10.0.0.5",
    )
    calls: list[dict[str, Any]] = []

    def connect(**kwargs: Any) -> EmulatedConnection:
        unknown = set(kwargs) - CONNECT_ARGS
        assert not unknown, f"pyexasol.connect does not take {unknown}"
        calls.append(kwargs)
        return empty_exa_db.connect(SimpleNamespace(user=kwargs["user"]))

    monkeypatch.setattr(pyexasol, "connect", connect)
    return calls


def test_db_init_with_scripts_and_upgrade(
    exa_instance: list[dict[str, Any]],
    empty_exa_db: EmulatedDatabase,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--instance", "tst1", "db"]
    assert redctl.main([*args, "init", "--with-scripts", "--grant-to", "APP"]) == 0
    out = capsys.readouterr().out
    assert f"schema version {SCHEMA_VERSION}" in out and "statements run" in out
    assert redctl.main([*args, "upgrade"]) == 0
    assert "up to date" in capsys.readouterr().out
    history = empty_exa_db.query("SELECT MAX(VERSION) FROM REDSYS.ADM_VERSION_HISTORY")
    assert history == [(SCHEMA_VERSION,)]
    scripts = empty_exa_db.query("SELECT SCRIPT_NAME FROM SYS.EXA_ALL_SCRIPTS")
    assert sorted(s for (s,) in scripts) == sorted(s.name for s in SCRIPTS)
    first = exa_instance[0]
    assert (first["dsn"], first["user"], first["password"]) == ("exa1:8563", "REDSYS", "s3cret")
    assert first["autocommit"] is False
    session = {(name, value) for _, name, value in empty_exa_db.settings}
    assert ("TIME_ZONE", "UTC") in session
    assert ("NLS_TIMESTAMP_FORMAT", "YYYY-MM-DD HH24:MI:SS.FF6") in session


def test_definitions_apply_and_export_round_trip(
    exa_instance: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert redctl.main(["--instance", "tst1", "db", "init"]) == 0
    definitions = tmp_path / "definitions.toml"
    definitions.write_text(template_text("definitions.example.toml"))
    assert redctl.main(["--instance", "tst1", "db", "apply", str(definitions)]) == 0
    capsys.readouterr()
    exported = tmp_path / "exported.toml"
    assert redctl.main(["--instance", "tst1", "db", "export", str(exported)]) == 0
    text = exported.read_text()
    for name in ("refresh_marts", "nightly_export", "load_sales", "sales_files", "new_batch"):
        assert name in text
    assert redctl.main(["--instance", "tst1", "db", "apply", str(exported)]) == 0


def test_version_and_status_read_the_exasol_dictionary(
    exa_instance: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert redctl.main(["--instance", "tst1", "db", "init"]) == 0
    assert redctl.main(["--instance", "tst1", "version"]) == 0
    assert "dictionary_installed" in capsys.readouterr().out
    assert redctl.main(["--instance", "tst1", "status"]) == 3
    assert "instance tst1: STOPPED" in capsys.readouterr().out


def _answer_with(monkeypatch: pytest.MonkeyPatch, db: EmulatedDatabase) -> None:
    monkeypatch.setattr(
        pyexasol, "connect", lambda **kwargs: db.connect(SimpleNamespace(user=kwargs["user"]))
    )


@pytest.mark.parametrize(
    ("release", "applied_at"), [("7.1.30", "TIMESTAMP"), ("8.32.0", "TIMESTAMP(6)")]
)
def test_db_init_states_the_exasol_version_and_writes_its_ddl(
    exa_instance: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    release: str,
    applied_at: str,
) -> None:
    """Before 8.32 TIMESTAMP(p) is a syntax error (changelog 13409): init uses TIMESTAMP."""
    db = EmulatedDatabase(release=release)
    _answer_with(monkeypatch, db)
    try:
        assert redctl.main(["--instance", "tst1", "db", "init"]) == 0
        out = capsys.readouterr().out
        assert f"dictionary of tst1 on Exasol {release} at exa1:8563: schema version" in out
        types = db.query(
            "SELECT COLUMN_TYPE FROM SYS.EXA_ALL_COLUMNS WHERE COLUMN_SCHEMA = 'REDSYS' "
            "AND COLUMN_TABLE = 'ADM_VERSION_HISTORY' AND COLUMN_NAME = 'APPLIED_AT'"
        )
        assert types == [(applied_at,)]
    finally:
        db.close()


def test_db_init_refuses_an_exasol_older_than_7_1(
    exa_instance: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = EmulatedDatabase(release="7.0.18")
    _answer_with(monkeypatch, db)
    try:
        assert redctl.main(["--instance", "tst1", "db", "init"]) != 0
        err = capsys.readouterr().err
        assert "runs Exasol 7.0.18; redpss needs Exasol 7.1 or newer" in err
        assert db.query("SELECT COUNT(*) FROM SYS.EXA_ALL_SCHEMAS") == [(0,)]
    finally:
        db.close()
