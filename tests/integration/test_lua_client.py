"""The Lua client (redpss/dictionary/lua/redpss_client.lua) with lua5.1 and lua5.4 + LuaSocket
against the real DBLS, JEXEC, SENDMAIL and SENDFILE roles on loopback (and an aiosmtpd relay)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

import redpss.dictionary
from tests.conftest import free_port, wait_for
from tests.integration.role_support import Stack, log_messages

LUA_DIR = Path(redpss.dictionary.__file__).parent / "lua"

SCRIPT = r"""
local redpss = require("redpss_client")
local conf = { host = "127.0.0.1", dbls_port = tonumber(arg[1]), jexec_port = tonumber(arg[2]),
               sendmail_port = tonumber(arg[3]), secret = arg[4], timeout = 30,
               sendfile_port = tonumber(arg[6]) }
local json = redpss.json
local function out(name, res, err)
  print(json.encode({ name = name, res = res or json.null, err = err or json.null }))
end

local buf = redpss.log_buffer(conf, "stage", "LUA_TEST")
buf:add("INFO", "started")
buf:add("ERROR", 'quote " backslash \\ newline \n umlaut ü')
out("flush", buf:flush())
out("lines", redpss.log_lines(conf, "STAGE", { "12:00 ALERT plain line" }))
out("bad_schema", redpss.log_lines(conf, "no-such schema", { "x" }))
local big = {}  -- a buffer of ~200 KiB: the secret must come within the first 64 KiB
for i = 1, 2000 do big[i] = string.rep("x", 100) .. " " .. i end
out("big", redpss.log_lines(conf, "BIG", big))
local nosecret = { dbls_port = conf.dbls_port, timeout = 30 }
out("nosecret", redpss.log_lines(nosecret, "BIG", { "x" }))
out("run", redpss.run_command(conf, "hello.sh", { "a b", "$(id)" }, 30))
out("run_noargs", redpss.run_command(conf, "hello.sh", {}, 30))
out("escape", redpss.run_command(conf, "../etc/secret", {}, 30))
out("mail", redpss.send_mail(conf, { to = { "ops@example.com" }, subject = "from " .. _VERSION,
                                     body = "hello", key = "lua-" .. _VERSION }))
out("file", redpss.send_file(conf, { schema = "EXPORTS", object = "sales", file_name = "s.csv",
                                     mail = { to = "ops@example.com",
                                              subject = "file from " .. _VERSION } }))
out("file_bad", redpss.send_file(conf, { schema = "EXPORTS", object = "NOPE", sftp = {} }))
local c = redpss.connect("127.0.0.1", conf.dbls_port, conf)
out("unknown", c:call("nope", {}))
out("ping", c:call("ping"))
c:close()
out("down", redpss.connect("127.0.0.1", tonumber(arg[5])):call("ping"))
"""


@pytest.mark.parametrize("lua", ["lua5.1", "lua5.4"])
def test_lua_client_against_the_roles(
    lua: str, make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    if shutil.which(lua) is None:
        pytest.skip(f"{lua} is not installed (make sysdeps)")
    stack = make_stack()
    ctx, inbox = stack.ctx, stack.relay.inbox
    cfg = ctx.config.redsys
    script = tmp_path / "t.lua"
    script.write_text(SCRIPT)
    env = dict(os.environ, LUA_PATH=f"{LUA_DIR}/?.lua;;")
    args = [cfg.dbls_port, cfg.jexec_port, cfg.sendmail_port, cfg.pss_secret.reveal(), free_port()]
    args.append(cfg.sendfile_port)
    proc = subprocess.run(
        [lua, str(script), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    results = {}
    for line in proc.stdout.splitlines():
        doc = json.loads(line)
        results[doc["name"]] = (doc["res"], doc["err"])

    day = datetime.now(UTC).strftime("%Y-%m-%d")
    assert results["flush"] == (
        {"written": 2, "file": f"log/DB/STAGE/{day}.log", "messages": 1},
        None,
    )
    assert results["lines"][0]["messages"] == 1
    text = (ctx.instance.log_dir / "DB" / "STAGE" / f"{day}.log").read_text()
    assert 'ERROR LUA_TEST: quote " backslash \\ newline \\n umlaut ü' in text
    assert text.endswith("12:00 ALERT plain line\n")
    assert results["big"][0]["written"] == 2000  # the Lua client sends the secret first
    assert results["nosecret"][1]["code"] == "unauthorized"
    res, err = results["bad_schema"]
    assert res is None and err["code"] == "bad_args" and "'schema'" in err["message"]
    run, _ = results["run"]
    assert (run["exit_code"], run["stdout"]) == (0, "[a b][$(id)]")
    assert results["run_noargs"][0]["stdout"] == "[]"
    assert results["escape"][1]["code"] == "bad_args"
    mail, _ = results["mail"]
    assert mail["state"] == "queue"
    assert results["unknown"][1]["code"] == "unknown_op"
    assert results["ping"][0]["pong"] is True
    assert results["down"][1]["code"] == "connect"
    version = "Lua 5.1" if lua == "lua5.1" else "Lua 5.4"
    wait_for(lambda: f"from {version}" in inbox.subjects, timeout=60, what="mail at the relay")
    export, _ = results["file"]
    assert (export["via"], export["rows"], export["file_name"]) == ("mail", 2, "s.csv")
    assert results["file_bad"][1]["code"] == "bad_args"
    wait_for(lambda: f"file from {version}" in inbox.subjects, timeout=60, what="the export")
    messages = wait_for(
        lambda: [m for m in log_messages(ctx, 10) if m.source == "LUA_TEST"],
        timeout=30,
        what="LOG_MESSAGES row",
    )
    assert isinstance(messages, list) and messages[0].level == "ERROR"
