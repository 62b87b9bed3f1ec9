"""A whole instance in containers from compose/redpss.yaml, as an operator drives it.

One instance (ci1) is brought up once for the module: make up with an override and log settings
of the operator, status and the documented diagnosis commands, the override in docker inspect,
log rotation, sFTP uploads (paramiko, and OpenSSH's sftp with 0600 and 0644 files) loaded into
the dictionary, restart and an upgrade to a new image tag keeping the override, make down
leaving nothing. Then two instances with different optional roles side by side.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paramiko
import pytest
import trustme

from redpss import compose
from redpss.instance import Instance
from redpss.rest import CERT_FILE, KEY_FILE, ssl_dir
from redpss.roles import enabled_roles
from tests.conftest import wait_for
from tests.container.conftest import BIN, create, make, run

# the first test pays the image build (cold: compiling OpenSSL and CPython)
pytestmark = [pytest.mark.timeout(3600), pytest.mark.usefixtures("images")]

OVERRIDE = """\
services:
  sched:
    mem_limit: 300m
    labels:
      com.example.team: dwh
"""
LOG_MAX_SIZE_MB = 1
LOG_MAX_FILE = 2


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


def _inspect(inst: Instance, service: str) -> dict[str, Any]:
    """``docker inspect`` of the service's container."""
    ids = run(
        compose.compose_command(inst, "ps", "-q", service), env=compose.compose_environment(inst)
    ).stdout.split()
    assert len(ids) == 1, (service, ids)
    doc: dict[str, Any] = json.loads(run(["docker", "inspect", ids[0]]).stdout)[0]
    return doc


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
from redpss.dictionary import open_instance_dictionary
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
        compose.compose_command(inst, "exec", "-T", "sched", "python3", "-c", ROWS_SCRIPT),
        env=compose.compose_environment(inst),
    )
    return proc.stdout.strip()


def _openssh_put(inst: Instance, user: str, key: Path, files: list[Path]) -> None:
    """Upload ``files`` with OpenSSH's sftp as the instance's sFTP user ``user`` (batch mode:
    it keeps each file's local mode)."""
    folder = key.parent
    batch = folder / f"{user}_batch"
    batch.write_text("".join(f"put {f}\n" for f in files))
    upload = run(
        ["sftp", "-b", str(batch), "-i", str(key), "-P", str(_sftp_port(inst)),
         "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", f"UserKnownHostsFile={folder / 'known_hosts'}",
         f"redftp_{inst.name}_{user}@127.0.0.1"],
        timeout=60,
    )  # fmt: skip
    assert upload.returncode == 0, upload.stderr


def _status_json(inst: Instance, *, expect: int) -> dict[str, Any]:
    """Host-side ``redctl --json status``, which must exit with ``expect``."""
    st = _tool("redctl", inst.redhome, "--instance", inst.name, "--json", "status", check=False)
    assert st.returncode == expect, st.stdout + st.stderr
    doc: dict[str, Any] = json.loads(st.stdout)
    return doc


def _alerts(doc: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {r["role"]: (r["state"], r["alert"]) for r in doc["roles"]}


def _drop_volumes(inst: Instance) -> None:
    """Remove the project's named volumes (the sFTP host keys), which `make down` keeps."""
    proc = run(
        compose.compose_command(inst, "down", "--volumes"),
        env=compose.compose_environment(inst),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def ci1(redhome_m: Path) -> Iterator[Instance]:
    """Instance ci1 up, with the operator's override and log rotation settings made first."""
    inst = create(redhome_m, "ci1")
    compose.override_path(inst).write_text(OVERRIDE)
    compose.update_settings(inst, LOG_MAX_SIZE=f"{LOG_MAX_SIZE_MB}m", LOG_MAX_FILE=LOG_MAX_FILE)
    try:
        up = make("up", inst.name, redhome_m)
        assert "sched" in up.stdout
        yield inst
    finally:
        make("down", inst.name, redhome_m, check=False)
        _drop_volumes(inst)


def test_up_every_service_healthy_and_no_secret(ci1: Instance) -> None:
    code, states = compose.status(ci1, ci1.load_config())
    assert code == 0, states
    assert {s.service for s in states} == {*enabled_roles(ci1.load_config()), "sftp"}
    assert all(s.health == "healthy" for s in states), states
    config = _tool("redsysctl", ci1.redhome, "compose", ci1.name, "config").stdout
    assert "com.example.team: dwh" in config  # the effective file: the override merged
    for name in ("secret", "cfi_password"):
        assert (ci1.etc / name).read_text().strip() not in config


def test_diagnosis_as_documented(ci1: Instance, tmp_path: Path) -> None:
    # docs/containers.md: `docker compose -p red_tst1 logs sched` and `... ps` from anywhere
    env = compose.compose_environment(ci1)
    plain = subprocess.run(
        ["docker", "compose", "-p", f"red_{ci1.name}", "logs", "--no-color", "sched"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    assert "role=sched" in plain.stdout
    ps = subprocess.run(
        ["docker", "compose", "-p", f"red_{ci1.name}", "ps"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ps.returncode == 0, ps.stderr
    assert all(name in ps.stdout for name in (f"red_{ci1.name}-sched-1", f"red_{ci1.name}-sftp-1"))
    # and the make targets
    assert "role=sched" in make("logs", ci1.name, ci1.redhome, "ROLE=sched").stdout
    assert "jmon" in make("ps", ci1.name, ci1.redhome).stdout
    # roles log to their file in the instance's log folder as well
    assert (ci1.log_dir / "sched.log").read_text().count("role=sched") >= 1


def test_status_stop_and_start_as_before(ci1: Instance) -> None:
    roles = enabled_roles(ci1.load_config())
    running = {name: ("RUNNING", 0) for name in [*roles, "sftp"]}
    # on the host: docker's view joined with the heartbeats (read inside a role container)
    assert _alerts(_status_json(ci1, expect=0)) == running
    for args in (("status", ci1.name), ("redctl", ci1.name, "status")):
        st = _tool("redsysctl", ci1.redhome, *args, check=False)
        assert st.returncode == 0, st.stdout + st.stderr
        assert f"instance {ci1.name}: RUNNING" in st.stdout and "ALERT" in st.stdout
        assert all(f"\n{name} " in st.stdout for name in running), st.stdout
    # inside a container there is no supervisord: the heartbeat records alone
    inside = run(
        compose.compose_command(ci1, "exec", "-T", "jexec", "redctl", "--json", "status"),
        env=compose.compose_environment(ci1),
        check=False,
    )
    assert inside.returncode == 0, inside.stdout + inside.stderr
    assert _alerts(json.loads(inside.stdout)) == {name: ("RUNNING", 0) for name in roles}

    # one role's container stopped: degraded (1), that role STOPPED with ALERT 2
    assert _tool("redsysctl", ci1.redhome, "compose", ci1.name, "stop", "jmon").returncode == 0
    doc = _status_json(ci1, expect=1)
    assert _alerts(doc)["jmon"] == ("STOPPED", 2)
    assert _alerts(doc)["sched"] == ("RUNNING", 0)
    assert _tool("redsysctl", ci1.redhome, "status", ci1.name, check=False).returncode == 1
    assert _tool("redsysctl", ci1.redhome, "start", ci1.name).returncode == 0
    wait_for(
        lambda: _tool("redsysctl", ci1.redhome, "status", ci1.name, check=False).returncode == 0,
        timeout=30,
        what="jmon back in the status",
    )


def _override_honoured(inst: Instance) -> dict[str, Any]:
    sched = _inspect(inst, "sched")
    assert sched["Config"]["Labels"]["com.example.team"] == "dwh"
    assert sched["HostConfig"]["Memory"] == 300 * 2**20
    # the stack's defaults for the others
    dbls = _inspect(inst, "dbls")
    assert dbls["HostConfig"]["Memory"] == 256 * 2**20
    assert dbls["HostConfig"]["ReadonlyRootfs"] is True
    assert dbls["HostConfig"]["Init"] is True
    assert dbls["HostConfig"]["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-file": str(LOG_MAX_FILE), "max-size": f"{LOG_MAX_SIZE_MB}m"},
    }
    return sched


def test_override_and_settings_show_in_docker_inspect(ci1: Instance) -> None:
    _override_honoured(ci1)


def test_a_role_writing_megabytes_of_log_stays_within_the_rotation(ci1: Instance) -> None:
    # 6 MB into dbls's stdout (its init's: the container's log), in lines of 1000 characters
    writer = "head -c 6000000 /dev/zero | tr '\\0' x | fold -w 1000 > /proc/1/fd/1"
    proc = run(
        compose.compose_command(ci1, "exec", "-T", "dbls", "sh", "-c", writer),
        env=compose.compose_environment(ci1),
    )
    assert proc.returncode == 0
    path = Path(_inspect(ci1, "dbls")["LogPath"])
    files = sorted(path.parent.glob(path.name + "*"))
    total = sum(f.stat().st_size for f in files)
    limit = LOG_MAX_FILE * LOG_MAX_SIZE_MB * 2**20
    assert 1 < len(files) <= LOG_MAX_FILE, files
    # a file is rotated once it passes max-size: at most one line (~1 kB as JSON) over each
    assert limit / 2 < total <= limit + LOG_MAX_FILE * 2048, (total, files)
    # the role is unharmed and its log still readable
    assert compose.status(ci1, ci1.load_config())[0] == 0
    tail = _tool("redsysctl", ci1.redhome, "compose", ci1.name, "logs", "--tail", "1", "dbls")
    assert "xxxxxxxxxx" in tail.stdout


def test_sftp_uploads_load_whatever_mode_the_client_asked_for(
    ci1: Instance, tmp_path: Path
) -> None:
    home = ci1.redhome
    defs = tmp_path / "defs.toml"
    defs.write_text(DEFINITIONS)
    applied = _tool("redsysctl", home, "redctl", ci1.name, "db", "apply", str(defs))
    assert "1 loader(s)" in applied.stdout, applied.stdout

    # a new user uploads with paramiko; the file lands in the instance's landing zone
    key, pub = _key(tmp_path, "alice")
    added = _tool("redftp_useradd", home, ci1.name, "alice", str(pub))
    assert "uid 1200" in added.stdout
    for user in ("alice", "Bad-Name"):  # a duplicate, a bad name
        assert _tool("redftp_useradd", home, ci1.name, user, str(pub), check=False).returncode == 1
    port = _sftp_port(ci1)
    transport, sftp = _sftp(port, f"redftp_{ci1.name}_alice", key)
    try:
        assert sftp.normalize(".") == "/input"
        with sftp.open("sales_20250101.csv", "w") as fh:
            fh.write(UPLOAD)
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
    wait_for(lambda: _rows(ci1) == "1:one,2:two", timeout=60, what="the paramiko upload")

    # OpenSSH's sftp keeps the local mode: 0600 (umask 077, most tools' fresh file) and 0644
    ssh_key = tmp_path / "bob_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_key)])
    assert _tool("redftp_useradd", home, ci1.name, "bob", f"{ssh_key}.pub").returncode == 0
    private = tmp_path / "sales_20250102.csv"
    private.write_text("id;name\n3;three\n")
    private.chmod(0o600)
    public = tmp_path / "sales_20250103.csv"
    public.write_text("id;name\n4;four\n")
    public.chmod(0o644)
    _openssh_put(ci1, "bob", ssh_key, [private, public])
    wait_for(
        lambda: _rows(ci1) == "1:one,2:two,3:three,4:four",
        timeout=60,
        what="both OpenSSH uploads loaded",
    )
    archive = ci1.home / "data" / "archive"
    for name in ("sales_20250101.csv", "sales_20250102.csv", "sales_20250103.csv"):
        wait_for((archive / name).exists, timeout=10, what=f"{name} in archive/")
        assert (archive / name).stat().st_gid == 1200  # group redftp, shared with redsys
    assert not list((ci1.home / "data" / "input").iterdir())
    assert not list((ci1.home / "data" / "error").iterdir())
    # the sftp container made the 0600 upload group-readable when it was closed
    logs = _tool("redsysctl", home, "compose", ci1.name, "logs", "sftp").stdout
    assert "sales_20250102.csv mode 0600 -> 0660" in logs, logs

    # password login is refused (the offer itself is publickey only)
    transport = paramiko.Transport(socket.create_connection(("127.0.0.1", port), timeout=10))
    try:
        transport.start_client(timeout=10)
        with pytest.raises(paramiko.AuthenticationException):
            transport.auth_password(f"redftp_{ci1.name}_alice", "guess")
    finally:
        transport.close()

    # userdel: the user can no longer log in
    assert _tool("redftp_userdel", home, ci1.name, "alice").returncode == 0
    with pytest.raises(paramiko.AuthenticationException):
        _sftp(port, f"redftp_{ci1.name}_alice", key)


def test_a_json_upload_is_converted_at_once_by_the_sleeping_json2csv(
    ci1: Instance, tmp_path: Path
) -> None:
    # json2csv sleeps on inotify in its container; the upload comes through the sftp container
    # into the same bind-mounted input/: the arrival must wake it (its safety net is 60 s)
    assert "json2csv" in enabled_roles(ci1.load_config())
    logs = _tool("redsysctl", ci1.redhome, "compose", ci1.name, "logs", "json2csv").stdout
    assert "waits for arrivals in input/" in logs, logs
    ssh_key = tmp_path / "carol_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_key)])
    added = _tool("redftp_useradd", ci1.redhome, ci1.name, "carol", f"{ssh_key}.pub")
    assert added.returncode == 0, added.stdout + added.stderr
    events = tmp_path / "events_20250104.json"
    events.write_text('{"ID": 1, "CITY": "Bonn"}\n{"ID": 2, "CITY": "Köln"}\n')
    _openssh_put(ci1, "carol", ssh_key, [events])
    converted = ci1.home / "data" / "input" / "events_20250104.csv"
    try:
        wait_for(converted.exists, timeout=30, what="the JSON upload converted by json2csv")
        lines = converted.read_text(encoding="utf-8").replace('"', "").splitlines()
        assert lines == ["ID,CITY", "1,Bonn", "2,Köln"]
        wait_for(
            (ci1.home / "data" / "archive" / "events_20250104.json").exists,
            timeout=10,
            what="the original in archive/",
        )
    finally:
        converted.unlink(missing_ok=True)  # no loader takes it: leave input/ as it was


def test_restart_and_upgrade_keep_the_override(ci1: Instance) -> None:
    upgrade_tag = f"redpss-runtime:{ci1.name}-upgrade"
    before = _inspect(ci1, "sched")["Id"]
    assert _tool("redsysctl", ci1.redhome, "restart", ci1.name).returncode == 0
    after = _override_honoured(ci1)
    assert after["Id"] != before  # re-created, not merely restarted
    # an upgrade in container mode runs a new image tag (redsysctl upgrade, issue 16)
    run(["docker", "tag", "redpss-runtime:latest", upgrade_tag])
    try:
        up = _tool("redsysctl", ci1.redhome, "upgrade", ci1.name, "--to", upgrade_tag)
        assert up.returncode == 0, up.stdout + up.stderr
        upgraded = _override_honoured(ci1)
        assert upgraded["Config"]["Image"] == upgrade_tag
        assert compose.override_path(ci1).read_text() == OVERRIDE
        back = _tool("redsysctl", ci1.redhome, "upgrade", ci1.name, "--rollback")
        assert back.returncode == 0, back.stdout + back.stderr
        assert _override_honoured(ci1)["Config"]["Image"] == "redpss-runtime:latest"
        assert compose.status(ci1, ci1.load_config())[0] == 0
    finally:
        compose.update_settings(ci1, REDPSS_IMAGE="redpss-runtime:latest")


def test_down_leaves_nothing(ci1: Instance) -> None:
    make("down", ci1.name, ci1.redhome)
    assert _containers(f"red_{ci1.name}") == []
    assert _tool("redsysctl", ci1.redhome, "status", ci1.name, check=False).returncode == 3
    down = _status_json(ci1, expect=3)
    assert {r["state"] for r in down["roles"]} == {"STOPPED"}
    assert {r["alert"] for r in down["roles"]} == {2}
    run(["docker", "image", "rm", f"redpss-runtime:{ci1.name}-upgrade"], check=False)


def test_two_instances_with_different_optional_roles_side_by_side(redhome_c: Path) -> None:
    # ci2: the template's roles (cfisrv and its converters); ci3: no cfisrv, but mail2cmd and rest
    ci2 = create(redhome_c, "ci2")
    ci3 = create(
        redhome_c, "ci3", cfi_enabled="false", mail2csv_enabled="true", rest_enabled="true"
    )
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = ssl_dir(ci3)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CERT_FILE).write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(folder / KEY_FILE))
    insts = [ci2, ci3]
    try:
        for inst in insts:
            make("up", inst.name, redhome_c)
        for inst in insts:
            code, states = compose.status(inst, inst.load_config())
            assert code == 0, (inst.name, states)
            running = set(_tool("redsysctl", redhome_c, "compose", inst.name, "ps",
                                "--services", "--status", "running").stdout.split())  # fmt: skip
            assert running == {*enabled_roles(inst.load_config()), "net", "sftp"}, inst.name
        assert {"cfisrv", "json2csv", "parq2csv"} <= set(enabled_roles(ci2.load_config()))
        assert {"mail2cmd", "rest"} <= set(enabled_roles(ci3.load_config()))
        # both from the one stack file
        for inst in insts:
            labels = _inspect(inst, "sched")["Config"]["Labels"]
            files = labels["com.docker.compose.project.config_files"].split(",")
            assert files[0] == str(compose.stack_file())
        # ci3's API answers over HTTPS on its published port
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        port = ci3.load_config().rest.gu_port
        health = httpx.get(f"https://127.0.0.1:{port}/health", verify=ctx, timeout=30)
        assert health.status_code == 200, health.text
        all_st = _tool("redsysctl", redhome_c, "status-all")
        assert f"instance {ci2.name}: RUNNING" in all_st.stdout
        assert f"instance {ci3.name}: RUNNING" in all_st.stdout
    finally:
        for inst in insts:
            make("down", inst.name, redhome_c, check=False)
            _drop_volumes(inst)
    for inst in insts:
        assert _containers(compose.project_name(inst)) == []
