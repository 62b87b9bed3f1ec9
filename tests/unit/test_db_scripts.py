"""The SQL of the database-side scripts; ``redctl db scripts`` and ``db init --with-scripts``.

Running the scripts' Lua against the real roles is tests/integration/test_db_scripts.py.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from redpss.cli import redctl
from redpss.config import Config, load_config
from redpss.dictionary import open_dictionary
from redpss.dictionary import scripts as dbs
from redpss.errors import ConfigError, RedpssError
from redpss.instance import Instance

MakeInstance = Callable[..., Instance]


@pytest.fixture
def inst(make_instance: MakeInstance, redhome: Path, monkeypatch: pytest.MonkeyPatch) -> Instance:
    monkeypatch.setenv("REDHOME", str(redhome))
    return make_instance("tst1", db_scripts_host="10.0.0.5")


@pytest.fixture
def config(inst: Instance) -> Config:
    return load_config(inst.conf_path)


def creates(statements: list[str]) -> list[str]:
    return [
        s.split("(", 1)[0]
        for s in statements
        if s.startswith("CREATE") and " SCRIPT " in s.split("\n", 1)[0]
    ]


def test_the_statements_in_order(config: Config) -> None:
    statements = dbs.db_script_statements(config, "tst1")
    assert statements[0] == "CREATE SCHEMA IF NOT EXISTS REDSYS"
    assert statements[1].startswith("CREATE OR REPLACE CONNECTION REDPSS_TST1 TO '")
    assert creates(statements) == [
        "CREATE OR REPLACE LUA SCALAR SCRIPT REDSYS.SEND_MAIL",
        "CREATE OR REPLACE LUA SCALAR SCRIPT REDSYS.LOG_MESSAGE",
        "CREATE OR REPLACE LUA SET SCRIPT REDSYS.LOG_BUFFER",
        "CREATE OR REPLACE LUA SCALAR SCRIPT REDSYS.RUN_COMMAND",
        "CREATE OR REPLACE LUA SCALAR SCRIPT REDSYS.SEND_FILE",
        "CREATE OR REPLACE LUA SCALAR SCRIPT REDSYS.REDPSS_PING",
    ]
    # no grants unless asked, but ACCESS for the dictionary user (it runs the SQL jobs)
    access = [s for s in statements if s.startswith("GRANT")]
    assert access == [
        f"GRANT ACCESS ON CONNECTION REDPSS_TST1 FOR SCRIPT REDSYS.{s.name} TO REDSYS"
        for s in dbs.SCRIPTS
    ]
    assert len(statements) == 2 + 2 * len(dbs.SCRIPTS)
    mail = statements[2]
    assert mail.split("\n")[:2] == [
        "CREATE OR REPLACE LUA SCALAR SCRIPT REDSYS.SEND_MAIL(mail_to VARCHAR(20000), "
        "mail_subject VARCHAR(2000), mail_body VARCHAR(2000000))",
        "RETURNS VARCHAR(200) AS",
    ]
    assert 'local REDPSS_CONNECTION = "REDPSS_TST1"' in mail
    assert "function run(ctx)" in mail and "local redpss = (function()" in mail


def test_the_connection_address_is_host_and_ports(config: Config) -> None:
    s = config.redsys
    assert json.loads(dbs.connection_address(config)) == {
        "host": "10.0.0.5",
        "dbls_port": s.dbls_port,
        "sendmail_port": s.sendmail_port,
        "jexec_port": s.jexec_port,
        "sendfile_port": s.sendfile_port,
        "jexec_timeout": s.jexec_timeout,
    }


def test_the_secret_is_in_the_connection_statement_only(config: Config) -> None:
    secret = config.redsys.pss_secret.reveal()
    assert len(secret) >= 16
    statements = dbs.db_script_statements(config, "tst1", grant_to=["app"])
    holding = [s for s in statements if secret in s]
    assert holding == [statements[1]]
    assert statements[1].endswith(f"USER 'redpss' IDENTIFIED BY '{secret}'")

    masked = dbs.db_script_statements(config, "tst1", grant_to=["app"], mask_secret=True)
    assert not any(secret in s for s in masked)
    assert masked[1].endswith("IDENTIFIED BY '********'")
    assert masked[2:] == statements[2:]


def test_quotes_in_the_secret_are_escaped(make_instance: MakeInstance) -> None:
    inst = make_instance("tst1")
    (inst.etc / "secret").write_text("it's 'quoted'\n")
    config = load_config(inst.conf_path)
    connection = dbs.db_script_statements(config, "tst1")[1]
    assert connection.endswith("IDENTIFIED BY 'it''s ''quoted'''")


def test_grants_per_script(config: Config) -> None:
    statements = dbs.db_script_statements(config, "tst1", grant_to=["app_role", "Bob"])
    grants = [s for s in statements if s.startswith("GRANT")]
    assert len(grants) == (1 + 2 * 2) * len(dbs.SCRIPTS)  # ACCESS for REDSYS too
    assert "GRANT EXECUTE ON REDSYS.SEND_MAIL TO APP_ROLE" in grants
    assert "GRANT ACCESS ON CONNECTION REDPSS_TST1 FOR SCRIPT REDSYS.SEND_MAIL TO BOB" in grants
    with pytest.raises(ValueError, match="not a user or role name"):
        dbs.db_script_statements(config, "tst1", grant_to=["x; DROP SCHEMA REDSYS"])


def test_the_host_defaults_to_where_the_services_listen(make_instance: MakeInstance) -> None:
    everywhere = {f"{s}_host": "0.0.0.0" for s in ("dbls", "jexec", "sendmail", "sendfile")}
    config = load_config(make_instance("tst1", **everywhere).conf_path)
    assert json.loads(dbs.connection_address(config))["host"] == "127.0.0.1"
    split = load_config(make_instance("tst2", dbls_host="10.1.1.1").conf_path)
    with pytest.raises(ConfigError, match="set db_scripts_host"):
        dbs.db_script_statements(split, "tst2")


def test_script_file_terminators(config: Config) -> None:
    statements = dbs.db_script_statements(config, "tst1", grant_to=["app"])
    text = dbs.script_file(statements)
    assert text.count("\n/\n") == len(dbs.SCRIPTS)
    assert "CREATE SCHEMA IF NOT EXISTS REDSYS;\n" in text
    assert "GRANT EXECUTE ON REDSYS.SEND_MAIL TO APP;\n" in text
    for statement in statements:
        # a line holding only "/" ends a script in EXAplus: none may be inside one
        assert "/" not in statement.split("\n")


def lua_bodies(config: Config) -> list[tuple[str, str]]:
    out = []
    for sql in dbs.db_script_statements(config, "tst1"):
        head, _, rest = sql.partition(" AS\n")
        if head.startswith("CREATE") and " SCRIPT " in head:
            out.append((head.split("(")[0].rsplit(".", 1)[1], rest))
    return out


@pytest.mark.parametrize("luac", ["luac5.1", "luac5.4"])
def test_every_script_is_valid_lua(luac: str, config: Config, tmp_path: Path) -> None:
    if shutil.which(luac) is None:
        pytest.skip(f"{luac} is not installed (make sysdeps)")
    bodies = lua_bodies(config)
    assert len(bodies) == len(dbs.SCRIPTS)
    for name, body in bodies:
        path = tmp_path / f"{name}.lua"
        path.write_text(body)
        proc = subprocess.run([luac, "-p", str(path)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"


def test_sqlglot_parses_what_it_knows(config: Config) -> None:
    statements = dbs.db_script_statements(config, "tst1", grant_to=["app"])
    # CREATE … SCRIPT is beyond sqlglot's Exasol dialect (it tokenizes the Lua text and
    # fails): their heads are checked by test_the_statements_in_order, their Lua by luac
    plain = [s for s in statements if " SCRIPT " not in s.split("\n", 1)[0] or s[0] == "G"]
    assert len(plain) == len(statements) - len(dbs.SCRIPTS)
    for sql in plain:
        tree = sqlglot.parse_one(sql, read="exasol")
        if sql.startswith(("CREATE SCHEMA", "GRANT EXECUTE")):
            assert not isinstance(tree, exp.Command), sql
        else:
            # CONNECTION and ACCESS ON CONNECTION: kept as commands by sqlglot
            assert isinstance(tree, exp.Command), sql
    for example in (
        "SELECT REDSYS.SEND_MAIL('ops@example.com', 'load done', 'rows: 12')",
        "SELECT REDSYS.LOG_BUFFER('STAGE', lvl, 'LOAD_SALES', msg) FROM STAGE.LOAD_LOG",
        "SELECT REDSYS.RUN_COMMAND('export.sh', '[\"SALES\"]', 600)",
        "SELECT JSON_VALUE(REDSYS.REDPSS_PING(), '$.dbls')",
    ):
        assert isinstance(sqlglot.parse_one(example, read="exasol"), exp.Select)


# ----------------------------------------------------------------------------------- the CLI


def test_redctl_db_scripts_prints_them_masked(
    inst: Instance, config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    assert redctl.main(["--instance", "tst1", "db", "scripts", "--grant-to", "app"]) == 0
    out = capsys.readouterr().out
    assert out == dbs.script_file(
        dbs.db_script_statements(config, "tst1", grant_to=["app"], mask_secret=True)
    )
    assert config.redsys.pss_secret.reveal() not in out


def test_redctl_db_scripts_output_file_with_secret(
    inst: Instance, config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "redsys_scripts.sql"
    target.write_text("old")
    target.chmod(0o644)
    argv = ["--instance", "tst1", "db", "scripts", "--output", str(target), "--show-secret"]
    assert redctl.main(argv) == 0
    assert f"written to {target}" in capsys.readouterr().out
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    text = target.read_text()
    assert f"IDENTIFIED BY '{config.redsys.pss_secret.reveal()}';" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["db", "upgrade", "--with-scripts"], "--with-scripts goes with db init"),
        (["db", "init", "--show-secret"], "--output and --show-secret go with db scripts"),
        (["db", "export", "--output", "x.sql"], "--output and --show-secret go with db scripts"),
        (["db", "init", "--grant-to", "app"], "--grant-to goes with db scripts or db init"),
        (["db", "scripts", "x.sql"], "db scripts writes to --output FILE"),
        (["db", "scripts", "--grant-to", "a b"], "--grant-to: 'a b' is not a user or role name"),
    ],
)
def test_redctl_db_scripts_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        redctl.main(["--instance", "tst1", *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_db_init_with_scripts_on_the_embedded_dictionary(
    inst: Instance, capsys: pytest.CaptureFixture[str]
) -> None:
    assert redctl.main(["--instance", "tst1", "db", "init", "--with-scripts"]) == 1
    captured = capsys.readouterr()
    assert "schema version" in captured.out  # the dictionary itself was set up
    assert "cannot hold database scripts" in captured.err
    assert "redctl db scripts prints them" in captured.err
    with open_dictionary("sqlite", db_dir=inst.db_dir) as dictionary:
        assert dictionary.version() > 0


def test_an_install_without_the_lua_files_says_so(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dbs, "LUA_DIR", tmp_path / "lua")
    with pytest.raises(RedpssError, match="installed without its Lua files"):
        dbs.db_script_statements(config, "tst1")
