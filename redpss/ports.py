"""The ports of the instances of a host: where their blocks lie, and which instance has which.

A module of its own (not :mod:`redpss.instance`, which is one instance's folder tree) because
ports are a resource of the *host*, shared by every instance under every ``$REDHOME``.

**Below the ephemeral range.** The kernel takes the source port of every outgoing connection
from ``net.ipv4.ip_local_port_range`` (32768-60999 by default). A service port inside that range
can be taken by any outgoing connection while its role is down (between a crash and the
restart), and a client reconnecting to it can even connect to itself (issue #14): the role then
cannot bind and goes FATAL. So the default blocks start at :data:`PORT_RANGE_START` (20000) and
end below the ephemeral range, read at run time. ``redsysctl create --port-base`` refuses a
block inside the range, and ``redctl start`` warns about every configured port inside it (an
existing instance keeps starting), unless the kernel reserves the port
(``net.ipv4.ip_local_reserved_ports``): reserved ports are never handed out as source ports.

**A host-wide registry.** ``redsysctl create`` must not hand out a block that another instance
of the host uses, also under another ``$REDHOME`` (issue #19). :class:`PortRegistry` is a folder
(``/var/lib/redpss/ports``, or ``$REDPSS_PORT_REGISTRY``) with one small JSON file per instance
(its configuration file and its ports) and a lock file; choosing a block and recording it happen
under the lock. An entry whose configuration file is gone is stale and ignored (and removed).
The folder is created sticky and world-writable like ``/tmp``, so instances of several users
share it and none can remove another's entry. Where it cannot be created (not root), the
registry falls back to ``$REDHOME/../.redpss-ports`` and says so: REDHOMEs with the same parent
still see each other.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from redpss.errors import InstanceError

__all__ = [
    "DEFAULT_REGISTRY",
    "PORT_BLOCK",
    "PORT_RANGE_START",
    "REGISTRY_ENV",
    "PortRegistry",
    "choose_port_base",
    "ephemeral_ports",
    "ephemeral_range",
    "host_registry",
    "reserved_ports",
]

log = logging.getLogger(__name__)

PORT_BLOCK = 20
"""Ports per instance: 9 services and a passive FTP range of 10."""
PORT_RANGE_START = 20000
"""Where ``redsysctl create`` starts looking for a free block."""
PORT_LIMIT = 65535
REGISTRY_ENV = "REDPSS_PORT_REGISTRY"
DEFAULT_REGISTRY = Path("/var/lib/redpss/ports")
_PROC = Path("/proc/sys/net/ipv4")
_DEFAULT_EPHEMERAL = (32768, 60999)


def ephemeral_range(proc: Path = _PROC) -> tuple[int, int]:
    """The kernel's range of source ports for outgoing connections (first, last)."""
    try:
        low, high = (proc / "ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL


def reserved_ports(proc: Path = _PROC) -> set[int]:
    """Ports the kernel never hands out as source ports (``ip_local_reserved_ports``)."""
    try:
        text = (proc / "ip_local_reserved_ports").read_text().strip()
    except OSError:
        return set()
    ports: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        with contextlib.suppress(ValueError):
            ports.update(range(int(first), int(last or first) + 1))
    return ports


def ephemeral_ports(ports: Mapping[str, int], proc: Path = _PROC) -> list[tuple[str, int]]:
    """The ``(key, port)`` of ``ports`` inside the ephemeral range and not reserved."""
    low, high = ephemeral_range(proc)
    inside = [(key, port) for key, port in ports.items() if low <= port <= high]
    if not inside:
        return []
    reserved = reserved_ports(proc)
    return [(key, port) for key, port in inside if port not in reserved]


def ephemeral_advice(inside: list[tuple[str, int]], proc: Path = _PROC) -> str:
    """The message for configured ports inside the ephemeral range: keys, range, remedies."""
    low, high = ephemeral_range(proc)
    keys = ", ".join(f"{key.split(' ')[0]} = {port}" for key, port in inside[:4])
    more = f" and {len(inside) - 4} more" if len(inside) > 4 else ""
    first, last = min(p for _, p in inside), max(p for _, p in inside)
    return (
        f"{keys}{more} lie in the kernel's ephemeral port range {low}-{high} "
        "(net.ipv4.ip_local_port_range): an outgoing connection may take such a port while "
        f"its role is down, and the role cannot bind it. Move the ports below {low} "
        f"(a block from {PORT_RANGE_START}), or reserve them: "
        f"sysctl -w net.ipv4.ip_local_reserved_ports={first}-{last}"
    )


@dataclass(frozen=True)
class Entry:
    """One instance in the registry."""

    conf: Path
    ports: frozenset[int]


class PortRegistry:
    """The host's record of which instance uses which ports (see the module docstring)."""

    def __init__(self, path: Path, *, shared: bool = True) -> None:
        """Use the registry folder ``path``; ``shared`` is False for the per-REDHOME fallback."""
        self.path = path
        self.shared = shared

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the registry's lock (an exclusive ``flock`` on ``.lock``)."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _file(self, conf: Path) -> Path:
        digest = hashlib.sha256(str(conf.absolute()).encode()).hexdigest()[:24]
        return self.path / f"{digest}.json"

    def entries(self) -> list[Entry]:
        """Every live entry; stale ones (configuration gone) are removed where allowed."""
        out = []
        for path in sorted(self.path.glob("*.json")):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                entry = Entry(Path(doc["conf"]), frozenset(int(p) for p in doc["ports"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # unreadable or half-written by hand: not ours to judge
            if _gone(entry.conf):
                with contextlib.suppress(OSError):  # another user's entry (sticky folder)
                    path.unlink()
                continue
            out.append(entry)
        return out

    def entry(self, conf: Path) -> Entry | None:
        """The recorded ports of the instance of ``conf``, even while ``conf`` is missing
        (``redsysctl repair`` gives a recreated configuration the instance's own block)."""
        try:
            doc = json.loads(self._file(conf).read_text(encoding="utf-8"))
            return Entry(Path(doc["conf"]), frozenset(int(p) for p in doc["ports"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def used(self, *, besides: Path | None = None) -> dict[int, Path]:
        """Every registered port with the configuration file that uses it."""
        mine = besides.absolute() if besides is not None else None
        return {p: e.conf for e in self.entries() if e.conf != mine for p in e.ports}

    def record(self, conf: Path, ports: set[int]) -> None:
        """Record (or update) the ports of the instance of ``conf``; call under :meth:`lock`."""
        path = self._file(conf)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        doc = {"conf": str(conf.absolute()), "ports": sorted(ports)}
        tmp.write_text(json.dumps(doc) + "\n", encoding="utf-8")
        tmp.chmod(0o644)
        tmp.replace(path)

    def release(self, conf: Path) -> None:
        """Forget the instance of ``conf`` (``redsysctl remove``)."""
        with self.lock():
            self._file(conf).unlink(missing_ok=True)


def _gone(conf: Path) -> bool:
    try:
        conf.stat()
    except FileNotFoundError:
        return True
    except OSError as exc:  # unreadable for us (another user's REDHOME): it is there
        return exc.errno == errno.ENOTDIR
    return False


def host_registry(home: Path, env: Mapping[str, str] | None = None) -> PortRegistry:
    """The registry of this host; the fallback beside ``home`` when that cannot be created."""
    env = os.environ if env is None else env
    if env.get(REGISTRY_ENV):
        return PortRegistry(Path(env[REGISTRY_ENV]))
    try:
        if not DEFAULT_REGISTRY.is_dir():
            DEFAULT_REGISTRY.mkdir(parents=True)
            DEFAULT_REGISTRY.chmod(0o1777)
        if os.access(DEFAULT_REGISTRY, os.W_OK | os.X_OK):
            return PortRegistry(DEFAULT_REGISTRY)
    except OSError:
        pass
    fallback = home.absolute().parent / ".redpss-ports"
    log.warning(
        "host port registry %s cannot be written; blocks are checked against %s only "
        "(as root, once: install -d -m 1777 %s)",
        DEFAULT_REGISTRY,
        fallback,
        DEFAULT_REGISTRY,
    )
    return PortRegistry(fallback, shared=False)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing on this host listens on ``port`` (a bind succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def choose_port_base(
    used: set[int], proc: Path = _PROC, free: Callable[[int], bool] = port_free
) -> int:
    """The first block from :data:`PORT_RANGE_START` below the ephemeral range that is not in
    ``used`` and where nothing listens (``free``); above the range when below is full."""
    low, high = ephemeral_range(proc)
    spans = [(PORT_RANGE_START, low), (high + 1, PORT_LIMIT + 1)]
    for first, end in spans:
        for base in range(first, end - PORT_BLOCK + 1, PORT_BLOCK):
            block = range(base, base + PORT_BLOCK)
            if used.isdisjoint(block) and all(free(p) for p in block):
                return base
    raise InstanceError(
        f"no free block of {PORT_BLOCK} ports from {PORT_RANGE_START} outside the ephemeral "
        f"range {low}-{high}; give one with --port-base"
    )


def check_port_base(base: int, used: Mapping[int, Path], proc: Path = _PROC) -> None:
    """Refuse an explicit ``--port-base`` that is out of range, inside the ephemeral range (and
    not reserved) or overlaps the ports of another instance of the host (named)."""
    if not 1024 <= base <= PORT_LIMIT + 1 - PORT_BLOCK:
        raise InstanceError(f"port base {base} out of range (1024..{PORT_LIMIT + 1 - PORT_BLOCK})")
    block = {f"port {p}": p for p in range(base, base + PORT_BLOCK)}
    inside = ephemeral_ports(block, proc)
    if inside:
        low, high = ephemeral_range(proc)
        raise InstanceError(
            f"--port-base {base}: ports {inside[0][1]}-{inside[-1][1]} lie in the kernel's "
            f"ephemeral port range {low}-{high} (net.ipv4.ip_local_port_range), where any "
            "outgoing connection may take them while a role is down; choose a block below "
            f"{low} (the default from {PORT_RANGE_START}), or reserve these ports first: "
            f"sysctl -w net.ipv4.ip_local_reserved_ports={inside[0][1]}-{inside[-1][1]}"
        )
    for port in range(base, base + PORT_BLOCK):
        if port in used:
            raise InstanceError(
                f"--port-base {base}: port {port} is used by the instance of {used[port]}; "
                "leave --port-base out to get a free block"
            )
