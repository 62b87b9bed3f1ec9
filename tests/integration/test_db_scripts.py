"""The database-side scripts of ``redctl db scripts`` run as Exasol would run them.

Each script's Lua text is taken from its CREATE statement and run by ``udf_harness.lua`` under
lua5.1 and lua5.4 (+ LuaSocket): Exasol's calling convention (ctx, null, decimal,
exa.get_connection with what the CREATE CONNECTION statement holds), no files, no modules but
socket. The services are the real roles on this host (reached through its non-loopback
address when it has one); the secret from the CONNECTION is checked either way.
No Exasol runs here: whether Exasol itself accepts the statements is not tested.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from redpss.dictionary import scripts as dbs
from redpss.roles.base import RoleContext
from tests.conftest import wait_for
from tests.integration.role_support import Stack, log_messages, outside_address
from tests.integration.sched_support import script
from tests.smtp_relay import Inbox

HARNESS = Path(__file__).with_name("udf_harness.lua")
SCRIPT_RE = re.compile(
    r"CREATE OR REPLACE LUA (SCALAR|SET) SCRIPT REDSYS\.(\w+)\((.*)\)\nRETURNS (.+?) AS\n(.*)",
    re.DOTALL,
)
CONNECTION_RE = re.compile(
    r"CREATE OR REPLACE CONNECTION (\w+) TO '((?:[^']|'')*)' "
    r"USER '((?:[^']|'')*)' IDENTIFIED BY '((?:[^']|'')*)'$"
)


@dataclass
class Udf:
    """One script as its CREATE statement declares it."""

    name: str
    kind: str
    params: list[tuple[str, str]]
    body: str


def parse_statements(statements: list[str]) -> tuple[dict[str, str], dict[str, Udf]]:
    """The CONNECTION (name, address, user, password) and the scripts, from the SQL text."""
    connection: dict[str, str] = {}
    udfs: dict[str, Udf] = {}
    for sql in statements:
        if m := CONNECTION_RE.match(sql):
            values = [v.replace("''", "'") for v in m.groups()]
            connection = dict(zip(("name", "address", "user", "password"), values, strict=True))
        elif m := SCRIPT_RE.match(sql):
            kind, name, params, _returns, body = m.groups()
            pairs = [tuple(p.split(" ", 1)) for p in params.split(", ") if p]
            udfs[name] = Udf(name, kind, [(p[0], p[1]) for p in pairs], body)
    return connection, udfs


@dataclass
class Scripts:
    ctx: RoleContext
    inbox: Inbox
    connection: dict[str, str]
    udfs: dict[str, Udf]
    tmp: Path
    lua: str
    through: str  # the address the scripts reach the roles at

    def call(
        self, name: str, *groups: list[list[Any]], password: str | None = None
    ) -> list[dict[str, Any]]:
        """Run script ``name`` over ``groups`` of rows; one {ok, result|error} per run(ctx)."""
        udf = self.udfs[name]
        body = self.tmp / f"{name}.lua"
        body.write_text(udf.body)
        connection = dict(self.connection)
        if password is not None:
            connection["password"] = password
        spec = {
            "name": name,
            "kind": udf.kind,
            "body": str(body),
            "params": [p for p, _ in udf.params],
            "decimal_params": [p for p, t in udf.params if t.startswith("DECIMAL")],
            "connection": connection,
            "groups": list(groups),
        }
        call = self.tmp / f"{name}.json"
        call.write_text(json.dumps(spec))
        lua_dir = Path(dbs.__file__).parent / "lua"
        proc = subprocess.run(
            [self.lua, str(HARNESS), str(call)],
            env={"LUA_PATH": f"{lua_dir}/?.lua;;", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.fixture(params=["lua5.1", "lua5.4"])
def stack(
    request: pytest.FixtureRequest, make_stack: Callable[..., Stack], tmp_path: Path
) -> Scripts:
    lua = request.param
    if shutil.which(lua) is None:
        pytest.skip(f"{lua} is not installed (make sysdeps)")
    through = outside_address() or "127.0.0.1"
    everywhere = {f"{s}_host": "0.0.0.0" for s in ("dbls", "jexec", "sendmail", "sendfile")}
    roles = make_stack(db_scripts_host=through, **everywhere)
    ctx = roles.ctx
    script(ctx.instance.home / "cmd" / "fails.sh", "echo broken >&2\nexit 3")
    connection, udfs = parse_statements(dbs.db_script_statements(ctx.config, ctx.instance.name))
    return Scripts(ctx, roles.relay.inbox, connection, udfs, tmp_path, lua, through)


def only(results: list[dict[str, Any]]) -> Any:
    assert len(results) == 1 and results[0]["ok"], results
    return results[0]["result"]


def test_the_connection_holds_host_ports_and_secret(stack: Scripts) -> None:
    cfg = stack.ctx.config.redsys
    address = json.loads(stack.connection["address"])
    assert address["host"] == stack.through
    assert address["dbls_port"] == cfg.dbls_port and address["jexec_port"] == cfg.jexec_port
    assert stack.connection["password"] == cfg.pss_secret.reveal()
    assert set(stack.udfs) == {s.name for s in dbs.SCRIPTS}
    assert json.loads(only(stack.call("REDPSS_PING", [[]]))) == {
        "dbls": "ok",
        "jexec": "ok",
        "sendmail": "ok",
        "sendfile": "ok",
    }


def test_send_mail_reaches_the_relay(stack: Scripts) -> None:
    subject = f"udf mail {stack.lua}"
    mail_id = only(
        stack.call("SEND_MAIL", [["ops@example.com; dev@example.com", subject, "rows: 12"]])
    )
    assert isinstance(mail_id, str) and mail_id
    wait_for(lambda: subject in stack.inbox.subjects, timeout=60, what="the mail at the relay")
    at = stack.inbox.subjects.index(subject)
    assert sorted(stack.inbox.rcpts[at]) == ["dev@example.com", "ops@example.com"]
    # a NULL subject is refused by sendmail, and that refusal is the SQL error
    [failed] = stack.call("SEND_MAIL", [["ops@example.com", None, None]])
    assert not failed["ok"] and "SEND_MAIL failed: bad_args" in failed["error"]


def test_log_message_and_log_buffer_reach_dbls(stack: Scripts) -> None:
    assert only(stack.call("LOG_MESSAGE", [["stage", "ERROR", "UDF_TEST", "no file"]])) == "1"
    rows: list[list[Any]] = [
        ["stage", "INFO", "UDF_BUF", "started"],
        ["stage", None, "UDF_BUF", "level NULL is INFO"],
        ["stage", "ALERT", "UDF_BUF", 'quote " newline \n umlaut ü'],
        ["stage", "INFO", "UDF_BUF", None],  # no text: skipped
        ["other", "INFO", "UDF_OTHER", "to another schema"],
    ]
    assert only(stack.call("LOG_BUFFER", rows)) == "4"
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    text = (stack.ctx.instance.log_dir / "DB" / "STAGE" / f"{day}.log").read_text()
    assert "ERROR UDF_TEST: no file" in text
    assert "INFO  UDF_BUF: level NULL is INFO" in text
    assert 'ALERT UDF_BUF: quote " newline \\n umlaut ü' in text
    other = (stack.ctx.instance.log_dir / "DB" / "OTHER" / f"{day}.log").read_text()
    assert other.rstrip().endswith("INFO  UDF_OTHER: to another schema")
    found = wait_for(
        lambda: (
            {(m.source, m.level) for m in log_messages(stack.ctx, 20)}
            >= {("UDF_TEST", "ERROR"), ("UDF_BUF", "ALERT")}
        ),
        timeout=30,
        what="the ERROR and ALERT lines in LOG_MESSAGES",
    )
    assert found
    [bad] = stack.call("LOG_MESSAGE", [["no-such schema", "ERROR", "X", "x"]])
    assert not bad["ok"] and "LOG_MESSAGE failed: bad_args" in bad["error"]


def test_run_command_runs_a_cmd_script_through_jexec(stack: Scripts) -> None:
    ran, no_args, failing, missing = stack.call(
        "RUN_COMMAND",
        [
            ["hello.sh", '["a b", "$(id)"]', 30],
            ["hello.sh", None, None],
            ["fails.sh", "[]", 30],
            ["nope.sh", None, None],
        ],
    )
    result = json.loads(ran["result"])
    assert (result["exit_code"], result["stdout"], result["timed_out"]) == (
        0,
        "[a b][$(id)]",
        False,
    )
    assert json.loads(no_args["result"])["stdout"] == "[]"
    broken = json.loads(failing["result"])
    assert (broken["exit_code"], broken["stderr"]) == (3, "broken\n")
    assert not missing["ok"] and "RUN_COMMAND failed: not_found" in missing["error"]
    [bad_args] = stack.call("RUN_COMMAND", [["hello.sh", "not json", None]])
    assert not bad_args["ok"] and "cmd_args is not a JSON array" in bad_args["error"]


def test_send_file_exports_and_mails(stack: Scripts) -> None:
    subject = f"udf file {stack.lua}"
    options = {"file_name": "s.csv", "mail": {"to": "ops@example.com", "subject": subject}}
    result = json.loads(only(stack.call("SEND_FILE", [["EXPORTS", "sales", json.dumps(options)]])))
    assert (result["via"], result["rows"], result["file_name"]) == ("mail", 2, "s.csv")
    wait_for(lambda: subject in stack.inbox.subjects, timeout=60, what="the export at the relay")
    [missing] = stack.call("SEND_FILE", [["EXPORTS", "NOPE", '{"sftp": {}}']])
    assert not missing["ok"] and "SEND_FILE failed: bad_args" in missing["error"]


def test_the_secret_of_the_connection_is_what_lets_the_scripts_in(stack: Scripts) -> None:
    [refused] = stack.call("SEND_MAIL", [["ops@example.com", "x", "y"]], password="wrong")
    assert not refused["ok"] and "SEND_MAIL failed: unauthorized" in refused["error"]
    ping = json.loads(only(stack.call("REDPSS_PING", [[]], password="wrong")))
    assert all(v.startswith("unauthorized") for v in ping.values()), ping


def test_a_script_cannot_load_files(stack: Scripts, tmp_path: Path) -> None:
    # the harness is as strict as Exasol: the bundled text needs nothing but socket
    udf = stack.udfs["REDPSS_PING"]
    stack.udfs["SNEAKY"] = Udf("SNEAKY", "SCALAR", [], 'require("redpss_client")\n' + udf.body)
    [failed] = stack.call("SNEAKY", [[]])
    assert not failed["ok"] and "a UDF cannot load files" in failed["error"]
