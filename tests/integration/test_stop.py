"""redctl stop as an operator uses it: what it waits for, --dry-run, --if-idle, --force, and
the verification that nothing of the instance is left (real supervisord, jexec commands)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from redpss import shutdown
from redpss.instance import Instance
from tests.conftest import BIN, run_cli, wait_for

MakeInstance = Callable[..., Instance]

DEFS = """
[job.slow]
schema = "OPS"
kind = "CMD"
action = "slow.sh"
pool = "action"

[job.escape]
schema = "OPS"
kind = "CMD"
action = "escape.sh"
pool = "action"
"""


def _setup(inst: Instance, tmp_path: Path) -> None:
    cmd = inst.home / "cmd"
    # runs until the test drops tmp/release (a fixed sleep ended before the stop on a busy host)
    (cmd / "slow.sh").write_text(
        '#!/bin/sh\necho start\nwhile [ ! -e "$REDENV_HOME/tmp/release" ]; do sleep 0.05; done\n'
        "echo done\n"
    )
    # a command that leaves a process outside its process group (a new session)
    (cmd / "escape.sh").write_text("#!/bin/sh\nsetsid sleep 300 >/dev/null 2>&1 </dev/null &\n")
    for f in cmd.iterdir():
        f.chmod(0o755)
    defs = tmp_path / "defs.toml"
    defs.write_text(DEFS)
    for args in (("db", "init"), ("db", "apply", str(defs)), ("start",)):
        out = run_cli("redctl", *args, inst=inst)
        assert out.returncode == 0, out.stdout + out.stderr


def _audit(inst: Instance) -> list[dict[str, object]]:
    lines = (inst.log_dir / "audit.log").read_text().splitlines()
    return [json.loads(x) for x in lines]


def _run_state(inst: Instance, job: str) -> str:
    out = run_cli("redctl", "--json", "list_db_jobs", inst=inst)
    return str({r["job"]: r for r in json.loads(out.stdout)}[job]["last_state"])


def test_stop_says_what_it_waits_for_and_leaves_nothing(
    make_instance: MakeInstance, tmp_path: Path
) -> None:
    inst = make_instance("stp1", stop_grace="20")
    _setup(inst, tmp_path)
    assert run_cli("redctl", "start_db_job", "slow", inst=inst).returncode == 0
    wait_for(lambda: _run_state(inst, "slow") == "RUNNING", what="slow running")

    # --dry-run: the roles in stop order, the run, the processes; nothing changes
    dry = run_cli("redctl", "--json", "stop", "--dry-run", inst=inst)
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["running"] and plan["roles"][-1] == "dbls"
    assert plan["roles"].index("jmon") < plan["roles"].index("sched")
    assert [r["job"] for r in plan["runs"]] == ["slow"]
    assert {p["what"] for p in plan["processes"]} >= {"supervisord", "role sched"}
    assert any(p["what"].startswith("command of run") for p in plan["processes"])

    # --if-idle refuses while the run is active: exit 3 naming it, nothing stopped
    busy = run_cli("redctl", "stop", "--if-idle", inst=inst)
    assert busy.returncode == 3
    assert "slow (run" in busy.stderr and "--if-idle" in busy.stderr
    assert run_cli("redctl", "status", inst=inst).returncode == 0

    # the graceful stop shows what it waits for (the run ends meanwhile), then verifies
    stop = subprocess.Popen(
        [str(BIN / "redctl"), "stop"],
        env={**os.environ, **inst.environment()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert stop.stdout is not None
    lines = []
    for line in stop.stdout:
        lines.append(line)
        if "waiting for sched" in line:
            (inst.home / "tmp" / "release").touch()
            break
    rest, err = stop.communicate(timeout=120)
    out = "".join(lines) + rest
    assert stop.returncode == 0, out + err
    assert "1 run: slow (run" in out.splitlines()[0]
    assert "waiting for sched" in out and "aborted in" in out
    assert "sched stopped" in out and "slow OK" in out
    assert "no process of the instance is left" in out
    assert shutdown.leftovers(inst) == []
    assert _run_state(inst, "slow") == "OK"

    rows = [(r["command"], r["exit_code"]) for r in _audit(inst)]
    assert ("stop", 3) in rows and rows[-1] == ("stop", 0)
    assert all("--dry-run" not in r["args"] for r in _audit(inst))  # type: ignore[operator]


def test_stop_names_what_is_left_and_force_kills_it(
    make_instance: MakeInstance, tmp_path: Path
) -> None:
    inst = make_instance("stp2")
    _setup(inst, tmp_path)
    assert run_cli("redctl", "start_db_job", "escape", inst=inst).returncode == 0
    wait_for(lambda: _run_state(inst, "escape") == "OK", what="escape ran")

    stop = run_cli("redctl", "stop", inst=inst)
    assert stop.returncode == 4, stop.stdout + stop.stderr
    assert "(job escape): sleep 300" in stop.stderr and "redctl stop --force" in stop.stderr
    (left,) = shutdown.leftovers(inst)
    try:
        # not running any more, the dry run still lists what is alive
        dry = run_cli("redctl", "stop", "--dry-run", inst=inst)
        assert "is not running" in dry.stdout and f"pid {left.pid}" in dry.stdout

        force = run_cli("redctl", "--json", "stop", "--force", inst=inst)
        assert force.returncode == 0, force.stderr
        doc = json.loads(force.stdout)
        assert [k["pid"] for k in doc["killed"]] == [left.pid] and doc["leftovers"] == []
        assert shutdown.leftovers(inst) == []
    finally:
        if shutdown.leftovers(inst):
            os.kill(left.pid, signal.SIGKILL)
    assert [r["exit_code"] for r in _audit(inst) if r["command"] == "stop"] == [4, 0]


def test_abort_kills_the_commands_of_running_runs(
    make_instance: MakeInstance, tmp_path: Path
) -> None:
    inst = make_instance("stp3")
    _setup(inst, tmp_path)
    assert run_cli("redctl", "start_db_job", "slow", inst=inst).returncode == 0
    wait_for(lambda: _run_state(inst, "slow") == "RUNNING", what="slow running")
    wait_for(lambda: any("slow.sh" in x.cmdline for x in shutdown.leftovers(inst)), what="slow.sh")
    abort = run_cli("redctl", "abort", inst=inst)
    assert abort.returncode == 0, abort.stdout + abort.stderr
    assert "slow (run" in abort.stdout
    assert shutdown.leftovers(inst) == []
