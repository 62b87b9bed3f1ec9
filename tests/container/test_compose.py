"""A whole instance in containers: make up, sFTP upload into the landing zone, redctl through
redsysctl, the chroot holds, passwords are refused, make down leaves nothing; two at once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import paramiko
import pytest

from redpss import compose
from redpss.instance import Instance
from redpss.roles import enabled_roles
from tests.container.conftest import BIN, make, run, wait_for

# the first test pays the image build (cold: compiling OpenSSL and CPython)
pytestmark = [pytest.mark.timeout(3600), pytest.mark.usefixtures("images")]


def _tool(
    name: str, home: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDHOME": str(home)}
    return run([str(BIN / name), *args], env=env, check=check)


def _containers(project: str) -> list[str]:
    out = run(
        ["docker", "ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={project}"]
    )
    return out.stdout.split()


def _key(tmp: Path, name: str) -> tuple[paramiko.PKey, Path]:
    key = paramiko.ECDSAKey.generate(bits=256)
    pub = tmp / f"{name}.pub"
    pub.write_text(f"{key.get_name()} {key.get_base64()} {name}@test\n")
    return key, pub


def _sftp(
    port: int, user: str, key: paramiko.PKey
) -> tuple[paramiko.Transport, paramiko.SFTPClient]:
    transport = paramiko.Transport(socket.create_connection(("127.0.0.1", port), timeout=10))
    transport.start_client(timeout=10)
    transport.auth_publickey(user, key)
    client = paramiko.SFTPClient.from_transport(transport)
    assert client is not None
    return transport, client


def _sftp_port(inst: Instance) -> int:
    return compose.sftp_port(inst, inst.load_config(), compose.load_settings(inst))


DEFINITIONS = """\
[loader.ci_sales]
pattern = '^sales_\\d{8}\\.csv$'
target = "CI.SALES"
delimiter = ";"
columns = [{ name = "ID", type = "DECIMAL(18,0)" }, { name = "NAME", type = "VARCHAR(20)" }]

[job.load_sales]
schema = "CI"
kind = "LOAD"
action = "ci_sales"
pool = "loader"

[watcher.sales_files]
schema = "CI"
kind = "FILE"
pattern = '^sales_\\d{8}\\.csv$'
interval = 1
executor = "load_sales"
"""
UPLOAD = "id;name\n1;one\n2;two\n"
# run by the instance's own Python in its sched container: the rows of CI.SALES as "id:name,..."
ROWS_SCRIPT = """\
from redpss.control import open_instance_dictionary
from redpss.instance import resolve_instance
inst = resolve_instance(None)
with open_instance_dictionary(inst, inst.load_config()) as d:
    try:
        print(d.query_value("CI", "SELECT group_concat(r, ',') FROM (SELECT CAST(ID AS INTEGER)"
                            " || ':' || NAME AS r FROM SALES ORDER BY ID)"))
    except Exception as exc:  # not there yet: the loader creates it
        print("none:", exc)
"""


def _rows(inst: Instance) -> str:
    """CI.SALES as the instance's dictionary sees it (queried inside the sched container)."""
    proc = run(
        [*compose.compose_command(inst, "exec", "-T", "sched", "python3", "-c", ROWS_SCRIPT)]
    )
    return proc.stdout.strip()


def _status_json(home: Path, *, expect: int) -> dict[str, Any]:
    """Host-side ``redctl --json status`` of ci1, which must exit with ``expect``."""
    st = _tool("redctl", home, "--instance", "ci1", "--json", "status", check=False)
    assert st.returncode == expect, st.stdout + st.stderr
    doc: dict[str, Any] = json.loads(st.stdout)
    return doc


def _alerts(doc: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {r["role"]: (r["state"], r["alert"]) for r in doc["roles"]}


def _check_status(inst: Instance, home: Path) -> None:
    """redctl status of a container instance: every role with its ALERT, process-mode codes."""
    roles = enabled_roles(inst.load_config())
    running = {name: ("RUNNING", 0) for name in [*roles, "sftp"]}
    # on the host: docker's view joined with the heartbeats (read inside a role container)
    assert _alerts(_status_json(home, expect=0)) == running
    for args in (("status", "ci1"), ("redctl", "ci1", "status")):
        st = _tool("redsysctl", home, *args, check=False)
        assert st.returncode == 0, st.stdout + st.stderr
        assert "instance ci1: RUNNING" in st.stdout and "ALERT" in st.stdout
        assert all(f"\n{name} " in st.stdout for name in running), st.stdout
    # inside a container there is no supervisord: the heartbeat records alone
    inside = run(
        compose.compose_command(inst, "exec", "-T", "jexec", "redctl", "--json", "status"),
        check=False,
    )
    assert inside.returncode == 0, inside.stdout + inside.stderr
    assert _alerts(json.loads(inside.stdout)) == {name: ("RUNNING", 0) for name in roles}

    # one role's container stopped: degraded (1), that role STOPPED with ALERT 2
    run(compose.compose_command(inst, "stop", "jmon"))
    doc = _status_json(home, expect=1)
    assert _alerts(doc)["jmon"] == ("STOPPED", 2)
    assert _alerts(doc)["sched"] == ("RUNNING", 0)
    assert _tool("redsysctl", home, "status", "ci1", check=False).returncode == 1
    assert _tool("redsysctl", home, "start", "ci1").returncode == 0
    wait_for(
        lambda: _tool("redsysctl", home, "status", "ci1", check=False).returncode == 0,
        30,
        "jmon back in the status",
    )


def test_instance_in_containers(redhome_c: Path, tmp_path: Path) -> None:
    inst = Instance("ci1", redhome_c)
    try:
        up = make("up", "ci1", redhome_c)
        assert "sched" in up.stdout

        # every long-running service is up and healthy
        code, states = compose.status(inst, inst.load_config())
        assert code == 0, states
        assert {s.service for s in states} >= {"sched", "jmon", "sftp"}
        assert all(s.health == "healthy" for s in states), states

        # no secret in what compose shows
        config = run([*compose.compose_command(inst, "config")]).stdout
        assert (inst.etc / "secret").read_text().strip() not in config

        # roles log to docker's log as well as to the instance's log folder
        logs = make("logs", "ci1", redhome_c, "ROLE=sched").stdout
        assert "role=sched" in logs
        assert (inst.log_dir / "sched.log").read_text().count("role=sched") >= 1
        assert "jmon" in make("ps", "ci1", redhome_c).stdout

        _check_status(inst, redhome_c)

        # definitions from a file of the host: a CSV loader, its LOAD job, a FILE watcher
        defs = tmp_path / "defs.toml"
        defs.write_text(DEFINITIONS)
        applied = _tool("redsysctl", redhome_c, "redctl", "ci1", "db", "apply", str(defs))
        assert "1 loader(s)" in applied.stdout, applied.stdout

        # sFTP: a new user uploads; the file lands in the instance's landing zone
        key, pub = _key(tmp_path, "alice")
        added = _tool("redftp_useradd", redhome_c, "ci1", "alice", str(pub))
        assert "uid 1200" in added.stdout
        assert (
            _tool("redftp_useradd", redhome_c, "ci1", "alice", str(pub), check=False).returncode
            == 1
        )
        assert (
            _tool("redftp_useradd", redhome_c, "ci1", "Bad-Name", str(pub), check=False).returncode
            == 1
        )
        port = _sftp_port(inst)
        transport, sftp = _sftp(port, "redftp_ci1_alice", key)
        try:
            assert sftp.normalize(".") == "/input"
            with sftp.open("sales_20250101.csv", "w") as fh:
                fh.write(UPLOAD)
                # the mode OpenSSH's `put` asks for: not writable for redsys (group redftp)
                fh.chmod(0o644)
            assert sftp.stat("sales_20250101.csv").st_size == len(UPLOAD)
            # the chroot holds: only input/ is visible, nothing above it
            assert sftp.listdir("/") == ["input"]
            assert sftp.listdir("/../..") == ["input"]
            for path in ("/etc/passwd", "/../../etc/passwd", "/app/redsys"):
                with pytest.raises(OSError):
                    sftp.stat(path)
            with pytest.raises(OSError):
                sftp.mkdir("/escape")
        finally:
            sftp.close()
            transport.close()

        # sched's watcher hands the file to the loader: rows in CI.SALES, the file in archive/
        wait_for(lambda: _rows(inst) == "1:one,2:two", 60, "the uploaded rows in CI.SALES")
        archived = inst.home / "data" / "archive" / "sales_20250101.csv"
        wait_for(archived.exists, 10, f"{archived}")
        assert archived.read_text() == UPLOAD
        assert archived.stat().st_gid == 1200  # uploaded as group redftp, shared with redsys
        assert not (inst.home / "data" / "input" / "sales_20250101.csv").exists()
        assert not list((inst.home / "data" / "error").iterdir())

        # password login is refused (the offer itself is publickey only)
        transport = paramiko.Transport(socket.create_connection(("127.0.0.1", port), timeout=10))
        try:
            transport.start_client(timeout=10)
            with pytest.raises(paramiko.AuthenticationException):
                transport.auth_password("redftp_ci1_alice", "guess")
        finally:
            transport.close()

        # userdel: the user can no longer log in
        assert _tool("redftp_userdel", redhome_c, "ci1", "alice").returncode == 0
        with pytest.raises(paramiko.AuthenticationException):
            _sftp(port, "redftp_ci1_alice", key)

        make("down", "ci1", redhome_c)
        assert _containers("red_ci1") == []
        assert _tool("redsysctl", redhome_c, "status", "ci1", check=False).returncode == 3
        down = _status_json(redhome_c, expect=3)
        assert {r["state"] for r in down["roles"]} == {"STOPPED"}
        assert {r["alert"] for r in down["roles"]} == {2}
    finally:
        make("down", "ci1", redhome_c, check=False)


def test_two_instances_side_by_side(redhome_c: Path) -> None:
    insts = [Instance(name, redhome_c) for name in ("ci2", "ci3")]
    try:
        for inst in insts:
            make("up", inst.name, redhome_c)
        for inst in insts:
            code, states = compose.status(inst, inst.load_config())
            assert code == 0, (inst.name, states)
        ports = [_sftp_port(i) for i in insts]
        assert ports[0] != ports[1]
        sched = [i.load_config().redsys.sched_service_port for i in insts]
        assert sched[0] != sched[1]
        all_st = _tool("redsysctl", redhome_c, "status-all")
        assert "instance ci2: RUNNING" in all_st.stdout
        assert "instance ci3: RUNNING" in all_st.stdout
    finally:
        for inst in insts:
            make("down", inst.name, redhome_c, check=False)
    for inst in insts:
        assert _containers(compose.project_name(inst)) == []


def test_compose_file_follows_enabled_roles(redhome_c: Path) -> None:
    _tool("redsysctl", redhome_c, "create", "ci4", "--compose")
    inst = Instance("ci4", redhome_c)
    project = json.loads(compose.write(inst).read_text())
    roles = enabled_roles(inst.load_config())
    assert set(project["services"]) == {"init", "net", "sftp", *roles}
    for role in roles:
        svc = project["services"][role]
        assert svc["network_mode"] == "service:net"
        assert svc["stop_grace_period"] == f"{inst.load_config().redsys.stop_grace}s"
    assert all(p.startswith("127.0.0.1:") for p in project["services"]["net"]["ports"])
    assert sys.executable  # the compose file names no secret either
    assert (inst.etc / "secret").read_text().strip() not in json.dumps(project)
