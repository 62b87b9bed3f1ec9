"""One instance: its name, its folder tree under ``$REDHOME/env/<instance>``, its creation.

Names follow the product guide: ``REDHOME`` is the RED-PSS installation (``/app/redsys`` by
default), ``REDENV`` the current instance in upper case (``TST1``) and ``REDENV_HOME`` its folder
``$REDHOME/env/<instance>`` (lower case). Everything an instance owns lives below REDENV_HOME,
so two instances never share files, sockets or ports.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import re
import secrets
import shlex
import stat
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from redpss.config import Config, load_config
from redpss.errors import ConfigError, InstanceError
from redpss.ports import (
    PORT_BLOCK,
    PORT_RANGE_START,
    check_port_base,
    choose_port_base,
    host_registry,
)

__all__ = [
    "DEFAULT_REDHOME",
    "PORT_BLOCK",
    "PORT_RANGE_START",
    "Instance",
    "broken_instances",
    "choose_free_base",
    "conf_text",
    "create_instance",
    "list_instances",
    "narrow_private_modes",
    "port_base_of",
    "redhome",
    "resolve_instance",
    "template_text",
]

log = logging.getLogger(__name__)

DEFAULT_REDHOME = Path("/app/redsys")
SUBDIRS = (
    "bin",
    "cmd",
    "cust",
    "etc",
    "etc/ssl",
    "lib",
    "log",
    "src",
    "tmp",
    "data/input",
    "data/work",
    "data/error",
    "data/archive",
    "data/db",
)
NAME_RE = re.compile(r"^[a-z][a-z0-9]{1,15}$")
# each instance gets a block of PORT_BLOCK ports (see redpss.ports): 9 services + passive FTP
_PORT_OFFSETS = {
    "port_sched": 0,
    "port_sendmail": 1,
    "port_sendfile": 2,
    "port_dbls": 3,
    "port_jexec": 4,
    "port_cfi": 5,
    "port_mail2csv": 6,
    "port_gu": 7,
    "port_pasv_start": 10,
    "port_pasv_end": 19,
}
# the UNIX socket of supervisord must fit into sockaddr_un (108 bytes on Linux)
MAX_SOCKET_PATH = 100


def redhome(env: Mapping[str, str] | None = None) -> Path:
    """Return ``$REDHOME`` (``/app/redsys`` when unset), made absolute."""
    env = os.environ if env is None else env
    return Path(env.get("REDHOME") or DEFAULT_REDHOME).expanduser().absolute()


def template_text(name: str) -> str:
    """Return the text of a template shipped in ``conf/``."""
    return (importlib.resources.files("redpss") / "conf" / name).read_text(encoding="utf-8")


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid instance name, else raise :class:`InstanceError`."""
    if not NAME_RE.match(name):
        raise InstanceError(
            f"bad instance name {name!r}: use 2-16 lower-case letters and digits, "
            "starting with a letter (e.g. tst1)"
        )
    return name


@dataclass(frozen=True)
class Instance:
    """The paths of one instance; creating the object touches nothing on disk."""

    name: str
    redhome: Path

    @property
    def redenv(self) -> str:
        """``REDENV``: the instance name in upper case."""
        return self.name.upper()

    @property
    def home(self) -> Path:
        """``REDENV_HOME``."""
        return self.redhome / "env" / self.name

    @property
    def etc(self) -> Path:
        """``$REDENV_HOME/etc``."""
        return self.home / "etc"

    @property
    def conf_path(self) -> Path:
        """``$REDENV_HOME/etc/red_params.conf``."""
        return self.etc / "red_params.conf"

    @property
    def log_dir(self) -> Path:
        """``$REDENV_HOME/log``."""
        return self.home / "log"

    @property
    def tmp(self) -> Path:
        """``$REDENV_HOME/tmp``."""
        return self.home / "tmp"

    @property
    def db_dir(self) -> Path:
        """Folder of the embedded (SQLite) dictionary: one file per schema."""
        return self.home / "data" / "db"

    @property
    def supervisor_conf(self) -> Path:
        """The generated supervisord configuration."""
        return self.tmp / "supervisord.conf"

    @property
    def supervisor_socket(self) -> Path:
        """The UNIX socket of this instance's supervisord."""
        return self.tmp / "supervisor.sock"

    @property
    def supervisor_pidfile(self) -> Path:
        """The pid file of this instance's supervisord."""
        return self.tmp / "supervisord.pid"

    @property
    def suspend_flag(self) -> Path:
        """Present while the instance is suspended (``redctl start -S`` / ``suspend``)."""
        return self.tmp / "suspended"

    @property
    def autostart_flag(self) -> Path:
        """``$REDENV_HOME/.autostart``: start this instance with ``redsysctl start-all``."""
        return self.home / ".autostart"

    def exists(self) -> bool:
        """True when the instance has been created."""
        return self.conf_path.is_file()

    def require(self) -> Instance:
        """Return self if the instance exists, else raise :class:`InstanceError`."""
        if not self.exists() and self.home.is_dir() and any(self.home.iterdir()):
            raise InstanceError(
                f"{self.conf_path} is missing: instance {self.name!r} exists at {self.home} "
                f"but has no configuration; recreate a default one with: redsysctl repair "
                f"{self.name} (data, logs and secrets stay as they are)"
            )
        if not self.exists():
            raise InstanceError(
                f"instance {self.name!r} does not exist under {self.redhome / 'env'} "
                f"(create it with: redsysctl create {self.name})"
            )
        return self

    def load_config(self) -> Config:
        """Read and check this instance's ``red_params.conf``."""
        return load_config(self.require().conf_path)

    def environment(self) -> dict[str, str]:
        """The variables of the guide's instance switch, for child processes and shells."""
        return {
            "REDHOME": str(self.redhome),
            "REDENV": self.redenv,
            "REDENV_HOME": str(self.home),
        }


def resolve_instance(
    name: str | None, *, env: Mapping[str, str] | None = None, home: Path | None = None
) -> Instance:
    """The instance named by ``--instance``, else by ``$REDENV``; raise if neither is given."""
    env = os.environ if env is None else env
    chosen = name or env.get("REDENV", "")
    if not chosen:
        raise InstanceError(
            "no instance given: use --instance NAME, or switch to one with "
            'eval "$(redsysctl env NAME)"'
        )
    return Instance(check_name(chosen.lower()), home or redhome(env))


def broken_instances(home: Path) -> list[Instance]:
    """Instance folders under ``home`` whose ``red_params.conf`` is missing (``repair``)."""
    env_dir = home / "env"
    if not env_dir.is_dir():
        return []
    found = [Instance(p.name, home) for p in sorted(env_dir.iterdir()) if NAME_RE.match(p.name)]
    return [i for i in found if not i.exists() and i.home.is_dir() and any(i.home.iterdir())]


def list_instances(home: Path) -> list[Instance]:
    """Every created instance under ``home`` (``$REDHOME``), sorted by name."""
    env_dir = home / "env"
    if not env_dir.is_dir():
        return []
    found = [Instance(p.name, home) for p in sorted(env_dir.iterdir()) if NAME_RE.match(p.name)]
    return [i for i in found if i.exists()]


def _used_ports(instances: Iterable[Instance], besides: Instance) -> dict[int, Path]:
    used: dict[int, Path] = {}
    for inst in instances:
        if inst == besides:
            continue
        try:
            used.update(dict.fromkeys(inst.load_config().ports().values(), inst.conf_path))
        except ConfigError:
            continue  # a broken sibling must not block creating a new instance
    return used


def _wrapper(inst: Instance, tool: str) -> str:
    python = shlex.quote(sys.executable)
    return (
        "#!/bin/sh\n"
        f"# {tool} of instance {inst.name} (written by redsysctl create)\n"
        f"export REDHOME={shlex.quote(str(inst.redhome))} REDENV={inst.redenv} "
        f"REDENV_HOME={shlex.quote(str(inst.home))}\n"
        f'exec {python} -m redpss.cli.{tool} --instance {inst.name} "$@"\n'
    )


def create_instance(
    inst: Instance, *, port_base: int | None = None, autostart: bool = False
) -> Path:
    """Create the folder tree, ``etc/red_params.conf``, the secrets and ``bin/`` wrappers.

    Refuses an existing instance. Returns the path of the new configuration file.
    """
    check_name(inst.name)
    if inst.home.exists() and any(inst.home.iterdir()):
        raise InstanceError(
            f"instance {inst.name!r} already exists at {inst.home}; nothing was changed"
        )
    sock = str(inst.supervisor_socket)
    if len(sock.encode()) > MAX_SOCKET_PATH:
        raise InstanceError(
            f"REDHOME {inst.redhome} is too deep: the socket path {sock} "
            f"would exceed {MAX_SOCKET_PATH} bytes; choose a shorter REDHOME"
        )
    registry = host_registry(inst.redhome)
    with registry.lock():
        # the host's registry (every REDHOME) and this REDHOME's instances (older than it)
        used = registry.used(besides=inst.conf_path)
        used.update(_used_ports(list_instances(inst.redhome), inst))
        if port_base is None:
            base = choose_port_base(set(used))
        else:
            check_port_base(port_base, used)
            base = port_base
        for sub in SUBDIRS:
            (inst.home / sub).mkdir(parents=True, exist_ok=True)
        for private in (inst.etc, inst.db_dir):  # secrets, the dictionary: no one else's
            private.chmod(0o750)
        text = conf_text(inst, base)
        _write_secret(inst.etc / "secret", secrets.token_urlsafe(32))
        # cfisrv's FTPS password (cfi_password = file:cfi_password in the template)
        _write_secret(inst.etc / "cfi_password", secrets.token_urlsafe(24))
        # 0600: an operator may write a secret into it (exa_password …); start refuses the file
        # readable by others while it holds one (config.secrets.exposed_secrets)
        _write_private(inst.conf_path, text)
        registry.record(inst.conf_path, set(range(base, base + PORT_BLOCK)))
    for tool in ("redctl", "restctl"):
        path = inst.home / "bin" / tool
        path.write_text(_wrapper(inst, tool), encoding="utf-8")
        path.chmod(0o755)
    if autostart:
        inst.autostart_flag.touch()
    return inst.conf_path


def choose_free_base(inst: Instance) -> int:
    """A free block of ports for ``inst`` (as ``create`` chooses one): ``redsysctl repair``."""
    registry = host_registry(inst.redhome)
    with registry.lock():
        used = registry.used(besides=inst.conf_path)
        used.update(_used_ports(list_instances(inst.redhome), inst))
        return choose_port_base(set(used))


def conf_text(inst: Instance, port_base: int) -> str:
    """The ``red_params.conf`` a new instance gets, with the ports of ``port_base``'s block."""
    ports = {key: port_base + off for key, off in _PORT_OFFSETS.items()}
    return template_text("red_params.conf").format(instance=inst.name, **ports)


def port_base_of(config_sched_port: int) -> int:
    """The first port of the block whose ``sched_service_port`` is given (offset 0)."""
    return config_sched_port - _PORT_OFFSETS["port_sched"]


def _write_secret(path: Path, value: str) -> None:
    _write_private(path, value + "\n")


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` (it must not exist) readable by the instance user only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def record_ports(inst: Instance, config: Config) -> None:
    """Record the instance's configured ports in the host's registry (``redctl start``), so
    that ``redsysctl create`` also knows instances made before the registry or edited by hand."""
    registry = host_registry(inst.redhome)
    with registry.lock():
        registry.record(inst.conf_path, set(config.ports().values()))


def narrow_private_modes(inst: Instance) -> list[str]:
    """Narrow what an older version left open: ``etc/`` and ``data/db/`` to 0750 at most, the
    dictionary's files to 0640 at most; log one line naming what changed and return it.

    ``create`` makes them so, but an instance created before kept the umask's modes (0755,
    0644): every user of the host could copy the dictionary (runs, commands, load ledger).
    ``redctl start`` and ``redctl db upgrade`` call this; bits are only ever taken away, and
    neither a symbolic link nor anything but a folder or a regular file is touched.
    """
    targets = [(inst.etc, 0o750), (inst.db_dir, 0o750)]
    if inst.db_dir.is_dir():
        targets += [(path, 0o640) for path in sorted(inst.db_dir.iterdir())]
    changed = []
    for path, allowed in targets:
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            continue
        old = stat.S_IMODE(st.st_mode)
        new = old & (allowed | 0o7000)
        if new == old:
            continue
        try:
            os.chmod(path, new)
        except OSError as exc:
            log.warning("instance=%s cannot narrow %s (mode %04o): %s", inst.name, path, old, exc)
            continue
        changed.append(f"{path.relative_to(inst.home)} {old:04o}->{new:04o}")
    if changed:
        log.warning(
            "instance=%s narrowed modes other users could read: %s", inst.name, ", ".join(changed)
        )
    return changed


def shell_env(inst: Instance) -> str:
    """Shell code for ``eval "$(redsysctl env NAME)"``: the guide's instance switch."""
    lines = [f"export {k}={shlex.quote(v)}" for k, v in inst.environment().items()]
    bin_dir = shlex.quote(str(inst.home / "bin"))
    # the host's tools (redsysctl, redftp_*: $REDHOME/bin) stay on the path after the switch
    host_bin = shlex.quote(str(inst.redhome / "bin"))
    lines.append(f'export PATH={bin_dir}:{host_bin}:"$PATH"')
    lines.append(f'export PS1={shlex.quote(inst.redenv + " ")}"${{PS1:-\\$ }}"')
    lines.append(f"cd {shlex.quote(str(inst.home))}")
    lines.append(f"echo 'current environment: {inst.redenv}'")
    return "\n".join(lines) + "\n"
