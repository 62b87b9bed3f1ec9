"""Promise 4 (every fault heals or speaks): supervisord killed, a role frozen, an abort.

Issue #14, items 2 and 3: after ``kill -9`` of supervisord the roles ran on unsupervised, status
said STOPPED, stop and abort did nothing and start was refused; ``abort`` raced supervisord,
which respawned the roles it was killing. Each test states the promise it checks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from redpss.instance import Instance
from redpss.supervisor import leftover_roles
from tests.conftest import run_cli, wait_for

MakeInstance = Callable[..., Instance]


def _status(inst: Instance) -> tuple[int, dict[str, dict[str, object]], dict[str, object]]:
    out = run_cli("redctl", "--json", "status", inst=inst)
    assert "Traceback" not in out.stderr, out.stderr
    doc = json.loads(out.stdout)
    return out.returncode, {r["role"]: r for r in doc["roles"]}, doc


def _start(inst: Instance) -> dict[str, dict[str, object]]:
    out = run_cli("redctl", "start", inst=inst)
    assert out.returncode == 0, out.stdout + out.stderr
    code, roles, _ = _status(inst)
    assert code == 0
    return roles


def _supervisord_pid(inst: Instance) -> int:
    return int(inst.supervisor_pidfile.read_text().strip())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", "rb") as fh:  # a zombie waiting for init counts as gone
        return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"


def test_roles_stop_with_a_killed_supervisord_and_start_brings_the_instance_back(
    make_instance: MakeInstance,
) -> None:
    """kill -9 of supervisord leaves no role running unsupervised; status says what happened
    and what to do (exit 1, not STOPPED/3); a plain redctl start heals the instance."""
    inst = make_instance("tst1")
    roles = _start(inst)
    sup = _supervisord_pid(inst)
    # each role gets SIGTERM from the kernel (parent death) and stops gracefully
    _kill_supervisord(inst, roles)
    assert "role=sched stopping (SIGTERM)" in (inst.log_dir / "sched.log").read_text()
    code, _, doc = _status(inst)
    assert code == 1
    assert f"supervisord (pid {sup}) ended without redctl stop" in str(doc["message"])
    assert "redctl start" in str(doc["message"])
    roles = _start(inst)
    assert all(r["state"] == "RUNNING" for r in roles.values())
    assert run_cli("redctl", "stop", inst=inst).returncode == 0


def _kill_supervisord(inst: Instance, roles: dict[str, dict[str, object]]) -> None:
    os.kill(_supervisord_pid(inst), signal.SIGKILL)
    pids = [int(str(r["pid"])) for r in roles.values()]
    wait_for(lambda: not any(_alive(p) for p in pids), timeout=30, what="roles gone")


def _role_by_hand(inst: Instance, role: str) -> subprocess.Popen[bytes]:
    """A role process that does not die with a supervisord: one of an older version, or
    started by hand. It is what a killed supervisord leaves behind."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    env.update(inst.environment())
    proc = subprocess.Popen(
        [sys.executable, "-m", "redpss.cli.redpss", "role", role, "--instance", inst.name],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for(
        lambda: f"role={role} started pid={proc.pid}" in (inst.log_dir / f"{role}.log").read_text(),
        timeout=30,
        what=f"{role} started by hand",
    )
    return proc


def test_a_role_left_without_supervisor_is_reported_and_ended_by_start(
    make_instance: MakeInstance,
) -> None:
    """A role running without supervisord is shown UNSUPERVISED with exit 1 and what to do;
    redctl start ends it (gracefully, and names it) and starts the instance."""
    inst = make_instance("tst1")
    _kill_supervisord(inst, _start(inst))
    sched = _role_by_hand(inst, "sched")
    code, rows, doc = _status(inst)
    assert code == 1
    assert doc["state"] == "UNSUPERVISED"
    assert rows["sched"]["state"] == "UNSUPERVISED" and rows["sched"]["pid"] == sched.pid
    assert f"roles running without supervisor (sched pid {sched.pid})" in str(doc["message"])
    assert "redctl stop" in str(doc["message"])

    out = run_cli("redctl", "start", inst=inst)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"roles running without supervisor: sched (pid {sched.pid})" in out.stderr
    assert sched.wait(5) == 0  # a graceful stop
    code, rows, _ = _status(inst)
    assert code == 0 and rows["sched"]["pid"] != sched.pid
    assert run_cli("redctl", "stop", inst=inst).returncode == 0


def test_stop_and_abort_end_roles_left_without_supervisor(make_instance: MakeInstance) -> None:
    """stop (gracefully) and abort (at once) end roles that run without supervisord."""
    inst = make_instance("tst1")
    _kill_supervisord(inst, _start(inst))
    left = [_role_by_hand(inst, "sched"), _role_by_hand(inst, "dbls")]
    assert len(leftover_roles(inst)) == 2
    out = run_cli("redctl", "stop", inst=inst)
    assert out.returncode == 0, out.stderr
    assert "stopped" in out.stdout
    assert [p.wait(5) for p in left] == [0, 0]
    assert leftover_roles(inst) == []

    jmon = _role_by_hand(inst, "jmon")
    out = run_cli("redctl", "abort", inst=inst)
    assert out.returncode == 0, out.stderr
    assert "jmon" in out.stdout
    assert jmon.wait(5) == -signal.SIGKILL
    assert leftover_roles(inst) == []


def test_abort_respawns_nothing_and_is_quick(make_instance: MakeInstance) -> None:
    """redctl abort kills every role without supervisord restarting any meanwhile, quickly."""
    inst = make_instance("tst1")
    roles = _start(inst)
    pids = [int(str(r["pid"])) for r in roles.values()]
    log = inst.log_dir / "supervisord.log"
    before = len(log.read_text().splitlines())
    begun = time.monotonic()
    out = run_cli("redctl", "abort", inst=inst)
    took = time.monotonic() - begun
    assert out.returncode == 0, out.stderr
    during = log.read_text().splitlines()[before:]
    # a role that dies while RUNNING is one supervisord restarts ("not expected")
    assert not [line for line in during if "not expected" in line or "spawned" in line], during
    assert not any(_alive(p) for p in pids)
    assert leftover_roles(inst) == []
    code, _, doc = _status(inst)
    assert (code, doc["state"]) == (3, "STOPPED")
    print(f"abort took {took:.2f} s")
    assert took < 6.0, f"abort took {took:.1f} s"  # #14 saw 7.8 s (with respawns)
