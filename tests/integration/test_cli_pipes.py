"""The tools as scripts use them, from real processes with real pipes: a reader that goes away
ends a command quietly (no traceback, the command's own exit code, the work done), ``watch``
writes plain timestamped lines to a file and keeps them after SIGTERM, and ``--json`` answers
errors in JSON on stdout with the exit code in it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from redpss.instance import Instance
from tests.conftest import BIN, run_cli, wait_for

MakeInstance = Callable[..., Instance]
DEMO = Path(__file__).resolve().parents[2] / "conf" / "demo-definitions.toml"
ISO_STAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 "


def _env(inst: Instance) -> dict[str, str]:
    return {**os.environ, **inst.environment()}


def closed_reader(inst: Instance, *argv: str) -> tuple[int, str]:
    """Run ``argv`` with stdout a pipe whose reader is gone before it writes: exit, stderr."""
    r, w = os.pipe()
    os.close(r)  # every write to w is EPIPE from the first byte on
    try:
        proc = subprocess.run(
            [str(BIN / argv[0]), *argv[1:]],
            stdout=w, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            env=_env(inst), text=True, timeout=180, check=False,
        )  # fmt: skip
    finally:
        os.close(w)
    return proc.returncode, proc.stderr


def shell(inst: Instance, line: str) -> subprocess.CompletedProcess[str]:
    """``line`` in bash with the instance's environment and the venv's tools first on PATH;
    it ends with ``echo "rc=${PIPESTATUS[0]}"`` for the first command of the pipe."""
    env = _env(inst)
    env["PATH"] = f"{BIN}:{env['PATH']}"
    return subprocess.run(
        ["bash", "-c", line + '; echo "rc=${PIPESTATUS[0]}"'],
        capture_output=True, text=True, env=env, timeout=180, stdin=subprocess.DEVNULL,
        check=False,
    )  # fmt: skip


@pytest.fixture
def running(make_instance: MakeInstance) -> Instance:
    inst = make_instance("pip1")
    assert run_cli("redctl", "db", "init", inst=inst).returncode == 0
    assert run_cli("redctl", "db", "apply", str(DEMO), inst=inst).returncode == 0
    started = run_cli("redctl", "start", inst=inst)
    assert started.returncode == 0, started.stdout + started.stderr
    return inst


def test_a_reader_that_goes_away_ends_every_tool_quietly(running: Instance) -> None:
    inst = running
    for argv in (
        ("redctl", "status"),
        ("redctl", "--json", "status"),
        ("redctl", "list_db_jobs"),
        ("redctl", "show"),
        ("redctl", "-h"),
        ("redsysctl", "status-all"),
        ("redsysctl", "list"),
        ("restctl", "token", "list"),
    ):
        code, err = closed_reader(inst, *argv)
        assert "Traceback" not in err and "BrokenPipe" not in err, (argv, err)
        assert code in (0, 141), (argv, code, err)


def test_restart_piped_into_head_still_restarts(running: Instance) -> None:
    inst = running
    before = json.loads(run_cli("redctl", "--json", "status", inst=inst).stdout)
    jmon = next(r["pid"] for r in before["roles"] if r["role"] == "jmon")
    code, err = closed_reader(inst, "redctl", "restart")
    assert "Traceback" not in err and code == 0, err
    after = json.loads(run_cli("redctl", "--json", "status", inst=inst).stdout)
    assert after["state"] == "RUNNING"
    assert next(r["pid"] for r in after["roles"] if r["role"] == "jmon") != jmon

    # as an operator types it: the first line, then nothing; no traceback, exit 0
    for line in ("redctl status | head -1", "redctl restart | head -1",
                 "redsysctl status-all | head -1"):  # fmt: skip
        out = shell(inst, line)
        assert out.stdout.splitlines()[-1] == "rc=0", (line, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr, (line, out.stderr)
        assert len(out.stdout.splitlines()) == 2, out.stdout


def test_watch_writes_timestamped_lines_to_a_file_and_keeps_them_after_sigterm(
    running: Instance, tmp_path: Path
) -> None:
    inst = running
    target = tmp_path / "watch.txt"
    with target.open("w") as fh:
        proc = subprocess.Popen(
            [str(BIN / "redctl"), "watch", "--interval", "0.3"],
            stdout=fh, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=_env(inst),
            text=True,
        )  # fmt: skip
        try:
            wait_for(
                lambda: target.read_text().count("scheduler active") >= 2,
                timeout=60,
                what="two refreshes of watch in the file",
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = target.read_text().splitlines()
    assert lines and all(re.match(ISO_STAMP, ln) for ln in lines), lines[:5]
    assert "\x1b" not in target.read_text()  # no terminal control codes in a file
    assert any("pools(busy/size+queued) default=" in ln for ln in lines)

    # --json: one object a line
    out = shell(inst, "redctl --json watch --interval 0.2 | head -2")
    docs = [json.loads(x) for x in out.stdout.splitlines()[:2]]
    assert all(d["instance"] == inst.name and "pools" in d["show"] for d in docs), docs
    assert out.stdout.splitlines()[-1] == "rc=0", out.stderr


def test_json_errors_are_json_on_stdout_with_the_exit_code(running: Instance) -> None:
    inst = running
    cases = [
        (("redctl", "--json", "start_db_job", "no_such_job"), 2, "no_such_job"),
        (("redctl", "--json", "bogus"), 2, "invalid choice"),
        (("redctl", "--json", "--instance", "nope", "status"), 1, "nope"),
        (("redctl", "--json", "kill", "999999"), 3, "999999"),
        (("redsysctl", "--json", "status", "nope"), 1, "nope"),
        (("redsysctl", "--json", "create", "BAD NAME"), 1, "BAD NAME"),
        (("restctl", "--json", "token", "revoke", "nobody"), 1, "nobody"),
        (("redftp_useradd", "--json", inst.name, "u1", "/nonexistent.pub"), 1, "container"),
    ]
    for argv, code, word in cases:
        out = run_cli(*argv, inst=inst)
        assert out.returncode == code, (argv, out.stdout, out.stderr)
        doc = json.loads(out.stdout)
        assert doc["exit"] == code and word in doc["error"], (argv, doc)
        assert "Traceback" not in out.stderr

    # and the commands that succeed answer in JSON too
    for argv in (
        ("redctl", "--json", "db", "upgrade"),
        ("redctl", "--json", "db", "apply", str(DEMO)),
        ("redctl", "--json", "db", "export"),
        ("redctl", "--json", "suspend"),
        ("redctl", "--json", "resume"),
        ("redsysctl", "--json", "list"),
        ("redsysctl", "--json", "env", inst.name),
        ("redsysctl", "--json", "status-all"),
        ("restctl", "--json", "token", "add", "j1", "--role", "reader"),
    ):
        out = run_cli(*argv, inst=inst)
        assert out.returncode == 0, (argv, out.stdout, out.stderr)
        json.loads(out.stdout)  # one document, nothing else on stdout
