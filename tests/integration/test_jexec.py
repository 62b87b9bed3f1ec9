"""JEXEC on loopback: commands from cmd/ only, no shell, timeout, capped output."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redpss import wire
from redpss.errors import RemoteError
from redpss.roles.base import RoleContext
from redpss.roles.jexec import Jexec
from tests.conftest import wait_for
from tests.integration.role_support import MakeInstance, role_context, running


def script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def jexec(make_instance: MakeInstance) -> Iterator[tuple[RoleContext, int]]:
    ctx = role_context(make_instance, jexec_output_limit=1000, jexec_timeout=60)
    cmd = ctx.instance.home / "cmd"
    script(cmd, "echo.sh", 'printf "%s|" "$@"; echo; echo "$REDENV $PWD"; echo oops >&2; exit 3')
    script(cmd, "sub/sleep.sh", 'echo $$ > "$REDENV_HOME/tmp/sleep.pid"; sleep 30')
    script(cmd, "big.sh", "head -c 5000 /dev/zero | tr '\\0' x")
    script(cmd, "cat.sh", "cat")
    script(ctx.instance.home, "outside.sh", "echo outside")
    (cmd / "link.sh").symlink_to(ctx.instance.home / "outside.sh")
    (cmd / "plain.txt").write_text("not a program")
    with running(Jexec, ctx):
        yield ctx, ctx.config.redsys.jexec_port


def call(jexec: tuple[RoleContext, int], op: str, **args: Any) -> Any:
    ctx, port = jexec
    secret = ctx.config.redsys.pss_secret.reveal()
    return wire.call("127.0.0.1", port, op, secret=secret, timeout=60, **args)


def run(jexec: tuple[RoleContext, int], **args: Any) -> Any:
    return call(jexec, "run", **args)


def test_runs_a_command_without_a_shell(
    jexec: tuple[RoleContext, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="redpss.roles.jexec")
    ctx = jexec[0]
    r = run(jexec, command="echo.sh", args=["a b", "$(id)", "; rm -rf /"], job="J1", run_id=7)
    assert r["exit_code"] == 3 and r["timed_out"] is False
    first, second = r["stdout"].splitlines()
    assert first == "a b|$(id)|; rm -rf /|"
    assert second == f"TST1 {ctx.instance.home}"
    assert r["stderr"] == "oops\n"
    assert "job=J1 run=7 command=echo.sh exit=3" in caplog.text


@pytest.mark.parametrize(
    ("command", "code", "words"),
    [
        ("../outside.sh", "bad_args", "'..'"),
        ("sub/../../outside.sh", "bad_args", "'..'"),
        ("/bin/sh", "bad_args", "absolute"),
        ("link.sh", "bad_args", "outside cmd/"),
        ("", "bad_args", "'command'"),
        ("nope.sh", "not_found", "nope.sh"),
        ("plain.txt", "not_executable", "plain.txt"),
    ],
)
def test_refuses_anything_outside_cmd(
    jexec: tuple[RoleContext, int], command: str, code: str, words: str
) -> None:
    with pytest.raises(RemoteError) as info:
        run(jexec, command=command)
    assert info.value.code == code
    assert words in info.value.message
    assert run(jexec, command="cat.sh", stdin="still serving")["stdout"] == "still serving"


def test_bad_arguments_name_the_field(jexec: tuple[RoleContext, int]) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"command": "cat.sh", "args": "x"}, "'args'"),
        ({"command": "cat.sh", "args": [1]}, "'args[0]'"),
        ({"command": "cat.sh", "time_limit": 0}, "'time_limit' must be above 0"),
        ({"command": "cat.sh", "env": {"PATH": "/x"}}, "RED_"),
        ({"command": "cat.sh", "run_id": 1.5}, "'run_id'"),
        ({"command": "cat.sh", "time_limit": -1}, "'time_limit'"),
        ({"command": "cat.sh", "stdin": 5}, "'stdin'"),
        ({"command": "cat.sh", "shell": True}, "shell"),
    ]
    for args, field in cases:
        with pytest.raises(RemoteError) as info:
            run(jexec, **args)
        assert info.value.code == "bad_args" and field in info.value.message


def test_times_out_a_sleeping_command_and_kills_its_group(jexec: tuple[RoleContext, int]) -> None:
    ctx = jexec[0]
    r = run(jexec, command="sub/sleep.sh", time_limit=2)
    assert r["timed_out"] is True
    assert r["exit_code"] == -15
    assert r["seconds"] < 20
    # nothing of that process group is left (the shell was its leader: pgid = its pid)
    pgid = int((ctx.instance.tmp / "sleep.pid").read_text())
    wait_for(lambda: _group_gone(pgid), timeout=30, what=f"process group {pgid} to end")


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_output_is_capped(jexec: tuple[RoleContext, int]) -> None:
    r = run(jexec, command="big.sh")
    assert r["stdout"] == "x" * 1000 and r["stdout_truncated"] is True
    assert r["exit_code"] == 0


def test_red_env_is_passed_and_a_run_can_be_killed(jexec: tuple[RoleContext, int]) -> None:
    import threading

    ctx = jexec[0]
    script(ctx.instance.home / "cmd", "env.sh", 'echo "$RED_RUN_ID $RED_WATCH_KEY"')
    r = run(jexec, command="env.sh", run_id=42, env={"RED_RUN_ID": "42", "RED_WATCH_KEY": "a b"})
    assert r["stdout"] == "42 a b\n"
    with pytest.raises(RemoteError, match="RED_"):
        run(jexec, command="env.sh", env={"PATH": "/evil"})
    result: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: result.update(run(jexec, command="sub/sleep.sh", run_id=43)), daemon=True
    )
    runner.start()
    wait_for(lambda: (ctx.instance.home / "tmp" / "sleep.pid").exists(), timeout=10)
    assert call(jexec, "kill", run_id=43, by="alice")["killed"] is True
    runner.join(timeout=10)
    assert result["exit_code"] == -15  # SIGTERM to the group (SIGKILL 2 s later if need be)
    assert result["killed_by"] == "alice"
    assert call(jexec, "kill", run_id=43)["killed"] is False
    # the result waits for a sched that did not hear it (one that restarted meanwhile)
    listed = {c["run_id"]: c for c in call(jexec, "runs")}
    assert listed["43"]["state"] == "ended" and listed["43"]["result"]["exit_code"] == -15
    assert call(jexec, "wait", run_id=43, seconds=0, forget=True)["state"] == "ended"
    assert call(jexec, "wait", run_id=43, seconds=0)["state"] == "unknown"
