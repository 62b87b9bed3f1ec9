"""Process mode end to end: real supervisord, real role processes, the installed CLIs."""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from redpss import wire
from redpss.errors import RemoteError
from redpss.instance import Instance
from tests.conftest import run_cli, wait_for

MakeInstance = Callable[..., Instance]


def status(inst: Instance) -> tuple[int, dict[str, dict[str, object]], str]:
    """``redctl --json status``: exit code, rows by role, instance state."""
    out = run_cli("redctl", "--json", "status", inst=inst)
    doc = json.loads(out.stdout)
    return out.returncode, {r["role"]: r for r in doc["roles"]}, doc["state"]


def start(inst: Instance, *args: str) -> None:
    out = run_cli("redctl", "start", *args, inst=inst)
    assert out.returncode == 0, out.stdout + out.stderr


def test_lifecycle_crash_restart_and_stop(make_instance: MakeInstance) -> None:
    inst = make_instance("tst1")
    assert run_cli("redctl", "db", "init", inst=inst).returncode == 0
    start(inst)
    code, roles, state = status(inst)
    assert (code, state) == (0, "RUNNING")
    assert {"sched", "jmon", "dbls", "jexec", "sendmail"} <= set(roles)
    assert all(r["state"] == "RUNNING" and r["restarts"] == 0 for r in roles.values())

    # the scheduler master answers on its service port (wire protocol, loopback)
    cfg = inst.load_config().redsys
    port, secret = cfg.sched_service_port, cfg.pss_secret.reveal()
    assert wire.call("127.0.0.1", port, "status", secret=secret)["instance"] == "tst1"
    assert wire.call("127.0.0.1", port, "ping", secret=secret)["pong"] is True

    # kill -9 one role: supervisord restarts it, status shows the restart
    old_pid = int(str(roles["jmon"]["pid"]))
    os.kill(old_pid, signal.SIGKILL)

    def restarted() -> dict[str, object] | None:
        _, rows, _ = status(inst)
        row = rows["jmon"]
        new = row["pid"] not in (0, old_pid) and row["state"] == "RUNNING"
        return row if new and row["restarts"] == 1 else None

    row = wait_for(restarted, timeout=30, what="jmon restarted by supervisord")
    assert isinstance(row, dict)
    assert f"pid {old_pid} exited without stopping" in str(row["reason"])
    log = (inst.log_dir / "jmon.log").read_text()
    assert f"restarted after unclean exit of pid {old_pid}" in log
    assert (
        "exited: jmon (terminated by SIGKILL; not expected)"
        in (inst.log_dir / "supervisord.log").read_text()
    )
    assert run_cli("redpss", "role", "jmon", "--check", inst=inst).returncode == 0

    stop = run_cli("redctl", "stop", inst=inst)
    assert stop.returncode == 0, stop.stderr
    code, roles, state = status(inst)
    assert (code, state) == (3, "STOPPED")
    # graceful stop is recorded by the roles themselves
    assert "role=sched stopped" in (inst.log_dir / "sched.log").read_text()
    check = run_cli("redpss", "role", "sched", "--check", inst=inst)
    assert check.returncode == 1 and "STOPPED" in check.stderr
    assert not inst.supervisor_socket.exists()


def test_start_suspended_resume_and_restart_ends_it(make_instance: MakeInstance) -> None:
    inst = make_instance("tst1")
    start(inst, "-S")
    code, roles, state = status(inst)
    assert (code, state) == (0, "SUSPENDED")
    # jmon, sched and the converters pause; the services keep serving the database (#19)
    paused = {name for name, r in roles.items() if r["state"] == "SUSPENDED"}
    assert paused == {"jmon", "sched", "json2csv", "parq2csv"} & set(roles)
    assert all(
        "instance suspended" in str(r["reason"]) for n, r in roles.items() if n not in paused
    )
    cfg = inst.load_config().redsys
    secret = cfg.pss_secret.reveal()
    assert wire.call("127.0.0.1", cfg.sched_service_port, "status", secret=secret)["suspended"]

    assert run_cli("redctl", "resume", inst=inst).returncode == 0
    assert status(inst)[2] == "RUNNING"
    assert run_cli("redctl", "suspend", inst=inst).returncode == 0
    assert status(inst)[2] == "SUSPENDED"
    assert run_cli("redctl", "restart", inst=inst).returncode == 0
    assert status(inst)[2] == "RUNNING"
    assert run_cli("redctl", "abort", inst=inst).returncode == 0
    assert status(inst)[0] == 3


def test_two_instances_side_by_side(make_instance: MakeInstance) -> None:
    a, b = make_instance("tst1"), make_instance("tst2")
    start(a)
    start(b)
    ca, cb = a.load_config().redsys, b.load_config().redsys
    pa, pb = ca.sched_service_port, cb.sched_service_port
    assert pa != pb
    assert wire.call("127.0.0.1", pa, "status", secret=ca.pss_secret.reveal())["instance"] == "tst1"
    assert wire.call("127.0.0.1", pb, "status", secret=cb.pss_secret.reveal())["instance"] == "tst2"
    with pytest.raises(RemoteError, match="unauthorized"):  # one instance's secret is not another's
        wire.call("127.0.0.1", pb, "status", secret=ca.pss_secret.reveal())
    assert a.supervisor_socket != b.supervisor_socket
    _, ra, _ = status(a)
    _, rb, _ = status(b)
    assert {r["pid"] for r in ra.values()}.isdisjoint({r["pid"] for r in rb.values()})
    assert run_cli("redctl", "stop", inst=a).returncode == 0
    assert status(a)[0] == 3
    assert status(b)[0] == 0
    with pytest.raises(Exception):  # noqa: B017 - refused or reset, either is "gone"
        wire.call("127.0.0.1", pa, "ping", secret=ca.pss_secret.reveal(), timeout=2)


def test_bad_config_refuses_start_and_names_line_and_key(make_instance: MakeInstance) -> None:
    inst = make_instance("tst1")
    text = inst.conf_path.read_text().replace(
        "sched_loader_pool_size = 2", "sched_loader_pool_size = lots"
    )
    inst.conf_path.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "= lots" in t)
    out = run_cli("redctl", "start", inst=inst)
    assert out.returncode == 1
    assert (
        f"{inst.conf_path}, line {line}: [redsys] sched_loader_pool_size: expected a whole "
        "number, got 'lots'" in out.stderr
    )
    assert "Traceback" not in out.stderr
    assert not inst.supervisor_socket.exists()
    assert status(inst)[0] == 3


def test_role_that_cannot_start_goes_fatal_not_looping(make_instance: MakeInstance) -> None:
    """A crashed role that fails at every restart goes FATAL (no endless loop): degraded."""
    inst = make_instance("tst1")
    start(inst)
    _, roles, _ = status(inst)
    # the operator breaks the configuration, then a role crashes: it cannot come back
    inst.conf_path.write_text(inst.conf_path.read_text() + "\n[redsys_typo]\n")
    os.kill(int(str(roles["jmon"]["pid"])), signal.SIGKILL)

    def fatal() -> bool:
        out = run_cli("redctl", "--json", "status", inst=inst)
        doc = json.loads(out.stdout)
        return any(r["role"] == "jmon" and r["state"] == "FATAL" for r in doc["roles"])

    wait_for(fatal, timeout=60, what="jmon FATAL after its start retries")
    out = run_cli("redctl", "status", inst=inst)
    assert out.returncode == 1
    assert "instance tst1: DEGRADED" in out.stdout
    assert "unknown section [redsys_typo]" in out.stderr  # status says why it lacks heartbeats
    assert "unknown section [redsys_typo]" in (inst.log_dir / "jmon.out").read_text()
    assert run_cli("redctl", "restart", inst=inst).returncode == 1  # refused before stopping
    assert status(inst)[0] == 1
    assert run_cli("redctl", "abort", inst=inst).returncode == 0  # works on a broken config
    assert status(inst)[0] == 3
    inst.conf_path.write_text(inst.conf_path.read_text().replace("[redsys_typo]", ""))
    assert run_cli("redctl", "start", inst=inst).returncode == 0
    assert status(inst)[0] == 0


def test_redsysctl_all_and_autostart(make_instance: MakeInstance, redhome: Path) -> None:
    a, b = make_instance("tst1"), make_instance("tst2")
    a.autostart_flag.touch()
    out = run_cli("redsysctl", "start-all", home=redhome)
    assert out.returncode == 0, out.stdout + out.stderr
    assert status(a)[0] == 0 and status(b)[0] == 3
    out = run_cli("redsysctl", "status-all", home=redhome)
    assert out.returncode == 1  # one running, one stopped
    assert "instance tst1: RUNNING" in out.stdout and "instance tst2: STOPPED" in out.stdout
    assert run_cli("redsysctl", "start", "tst2", home=redhome).returncode == 0
    assert run_cli("redsysctl", "status-all", home=redhome).returncode == 0
    assert run_cli("redsysctl", "stop-all", home=redhome).returncode == 0
    assert run_cli("redsysctl", "status-all", home=redhome).returncode == 3


def test_sched_wants_the_secret_on_loopback_too(make_instance: MakeInstance) -> None:
    inst = make_instance("tst1")
    start(inst)
    cfg = inst.load_config().redsys
    port = cfg.sched_service_port
    for secret in (None, "wrong"):
        with pytest.raises(RemoteError) as info:
            wire.call("127.0.0.1", port, "ping", secret=secret)
        assert info.value.code == "unauthorized"
    with pytest.raises(RemoteError) as info:
        wire.call("127.0.0.1", port, "no_such_op", secret=cfg.pss_secret.reveal())
    assert info.value.code == "unknown_op"


def test_start_trace_logs_at_trace_level(make_instance: MakeInstance) -> None:
    inst = make_instance("tst1")
    out = run_cli("redctl", "start_trace", "--no-follow", inst=inst)
    assert out.returncode == 0, out.stderr
    assert status(inst)[0] == 0
    sup_conf = inst.supervisor_conf.read_text()
    assert "redpss role jmon --instance tst1 --trace" in sup_conf
    assert run_cli("redctl", "stop", inst=inst).returncode == 0
    # a plain start drops trace again
    start(inst)
    assert "--trace" not in inst.supervisor_conf.read_text()


@pytest.mark.parametrize("key", ["sched_service_port", "dbls_port"])
def test_any_taken_port_of_the_instance_refuses_start(
    make_instance: MakeInstance, key: str
) -> None:
    inst = make_instance("tst1")
    port = getattr(inst.load_config().redsys, key)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        out = run_cli("redctl", "start", inst=inst)
    assert out.returncode == 1
    assert f"[redsys] {key} = {port}: 127.0.0.1:{port} cannot be used" in out.stderr
    assert not inst.supervisor_socket.exists()
