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

**Only its owner writes it** (and root). The registry was sticky and world-writable like
``/tmp``; root's ``redctl start`` then wrote its entry through a symbolic link a local user had
planted (into any file of the host), and any user could hold the lock and hang every ``create``
and ``start``. Now the folder is made ``0755`` (root's, or the service user's:
``install -d -o redsys -m 0755 /var/lib/redpss/ports``); a folder of ours that others may write
(the old ``1777``) is closed to ``0755`` at first use and a lock file of another user in it
replaced. Entries are written to an unpredictable temporary name created exclusively
(:func:`tempfile.mkstemp`) and renamed into place, read with ``O_NOFOLLOW | O_NONBLOCK`` (a link
or a FIFO is never followed nor waited on), and only regular files of root, the folder's owner or
this user count. The lock is waited for :data:`LOCK_WAIT` seconds at most, then the command says
which file and which process holds it. A user who cannot write the registry reads it (its blocks
are still avoided) and records its own instances in ``$REDHOME/../.redpss-ports``, saying so:
REDHOMEs with the same parent still see each other.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import pwd
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from redpss.errors import InstanceError

__all__ = [
    "DEFAULT_REGISTRY",
    "LOCK_WAIT",
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
LOCK_WAIT = 10.0
"""Seconds a command waits for the registry's lock (held for milliseconds by a redpss tool)."""
_MAX_ENTRY = 1 << 16
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

    def __init__(
        self, path: Path, *, shared: bool = True, also_read: tuple[Path, ...] = ()
    ) -> None:
        """Use the registry folder ``path``; ``shared`` is False for the per-REDHOME fallback,
        which also reads the host's registry folders ``also_read`` (this user cannot write
        them)."""
        self.path = path
        self.shared = shared
        self.also_read = also_read

    @contextlib.contextmanager
    def lock(self, wait: float = LOCK_WAIT) -> Iterator[None]:
        """Hold the registry's lock (an exclusive ``flock`` on ``.lock``), waiting ``wait``
        seconds at most: then InstanceError names the lock file and its holder.

        The lock file is the registry owner's, mode 0600: no other user can open it, so no
        other user can hold it. One that is not (the old 0644, or another user's) is replaced
        by a new file renamed over it; after the ``flock`` the name is checked to still be the
        file locked (a replacement in between means: lock the new one).
        """
        self.path.mkdir(mode=0o755, parents=True, exist_ok=True)
        lock = self.path / ".lock"
        deadline = time.monotonic() + wait
        while True:
            fd = self._open_lock()
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise InstanceError(_busy_message(lock, fd, wait)) from None
                        time.sleep(0.05)
                if _same_file(lock, fd):
                    yield
                    return
            finally:
                os.close(fd)

    def _open_lock(self) -> int:
        """``.lock``, opened without following a link: a regular file of the registry's owner
        that only it may open; made (or replaced) that way when it is not."""
        path = self.path / ".lock"
        owner = self.path.stat().st_uid
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        for _ in range(10):
            try:
                fd = os.open(path, flags)
            except FileNotFoundError:
                self._make_lock(path, owner, replace=False)
                continue
            except OSError as exc:  # a link (ELOOP), a file this user may not open
                log.warning("port registry lock %s cannot be used (%s): replaced", path, exc)
                self._make_lock(path, owner, replace=True)
                continue
            info = os.fstat(fd)
            if (
                stat.S_ISREG(info.st_mode)
                and info.st_uid == owner
                and not stat.S_IMODE(info.st_mode) & 0o077
            ):
                return fd
            os.close(fd)
            log.warning(
                "port registry lock %s (user %s, mode %o) could be held by other users: replaced",
                path,
                _user_name(info.st_uid),
                stat.S_IMODE(info.st_mode),
            )
            self._make_lock(path, owner, replace=True)
        raise InstanceError(f"port registry lock {path} keeps changing; run the command again")

    def _make_lock(self, path: Path, owner: int, *, replace: bool) -> None:
        """A new lock file (0600, the registry owner's) at ``path``: made under a random name,
        then linked (a missing lock) or renamed over the old one (a bad lock)."""
        fd, tmp = tempfile.mkstemp(prefix=".lock.", dir=self.path)
        try:
            if owner != os.geteuid():
                os.fchown(fd, owner, -1)  # root in the service user's registry
            os.close(fd)
            if replace:
                os.replace(tmp, path)
            else:
                with contextlib.suppress(FileExistsError):  # another made it first: use that
                    os.link(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _file(self, conf: Path, folder: Path | None = None) -> Path:
        digest = hashlib.sha256(str(conf.absolute()).encode()).hexdigest()[:24]
        return (folder or self.path) / f"{digest}.json"

    def entries(self) -> list[Entry]:
        """Every live entry (of this folder and the host's registry it reads); stale ones
        (configuration gone) are removed where allowed."""
        out = []
        for folder in (self.path, *self.also_read):
            trusted = _trusted(folder)
            for path in sorted(folder.glob("*.json")):
                entry = _read_entry(path, trusted)
                if entry is None:
                    continue
                if _gone(entry.conf):
                    if folder == self.path:
                        with contextlib.suppress(OSError):
                            path.unlink()
                    continue
                out.append(entry)
        return out

    def entry(self, conf: Path) -> Entry | None:
        """The recorded ports of the instance of ``conf``, even while ``conf`` is missing
        (``redsysctl repair`` gives a recreated configuration the instance's own block)."""
        for folder in (self.path, *self.also_read):
            found = _read_entry(self._file(conf, folder), _trusted(folder))
            if found is not None:
                return found
        return None

    def used(self, *, besides: Path | None = None) -> dict[int, Path]:
        """Every registered port with the configuration file that uses it."""
        mine = besides.absolute() if besides is not None else None
        return {p: e.conf for e in self.entries() if e.conf != mine for p in e.ports}

    def record(self, conf: Path, ports: set[int]) -> None:
        """Record (or update) the ports of the instance of ``conf``; call under :meth:`lock`.

        Written to a new file of an unpredictable name (``O_EXCL``: never through a link), then
        renamed over the entry (a rename replaces a link, it does not follow it).
        """
        path = self._file(conf)
        doc = {"conf": str(conf.absolute()), "ports": sorted(ports)}
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=self.path)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(doc) + "\n")
                os.fchmod(fh.fileno(), 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def release(self, conf: Path) -> None:
        """Forget the instance of ``conf`` (``redsysctl remove``)."""
        with self.lock():
            self._file(conf).unlink(missing_ok=True)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _trusted(folder: Path) -> set[int]:
    """The users whose files in ``folder`` count: root, the folder's owner, this user."""
    uids = {0, os.geteuid()}
    with contextlib.suppress(OSError):
        uids.add(folder.stat().st_uid)
    return uids


def _read_entry(path: Path, trusted: set[int]) -> Entry | None:
    """The entry in ``path``: a regular file of a trusted user, opened without following a
    link nor waiting on a FIFO; None when it is not one (another user's file is named)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None  # missing, a link (ELOOP), unreadable
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_uid not in trusted:
            log.warning(
                "port registry entry %s ignored: it belongs to %s, not to root or the "
                "registry's owner",
                path,
                _user_name(info.st_uid),
            )
            return None
        doc = json.loads(os.read(fd, _MAX_ENTRY).decode("utf-8"))
        return Entry(Path(doc["conf"]), frozenset(int(p) for p in doc["ports"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable or half-written by hand: not ours to judge
    finally:
        os.close(fd)


def _same_file(path: Path, fd: int) -> bool:
    """Does ``path`` still name the file open as ``fd``?"""
    try:
        now = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    info = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (info.st_dev, info.st_ino)


def _lock_holders(fd: int) -> list[str]:
    """The processes holding a ``flock`` on the file of ``fd`` (``/proc/locks``)."""
    info = os.fstat(fd)
    key = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    holders = []
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->" or fields[5] != key:
            continue
        pid = fields[4]
        try:
            owner = _user_name(Path(f"/proc/{pid}").stat().st_uid)
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            holders.append(f"pid {pid} ({comm}, user {owner})")
        except OSError:
            holders.append(f"pid {pid}")
    return holders


def _busy_message(lock: Path, fd: int, wait: float) -> str:
    holders = ", ".join(_lock_holders(fd)) or "a process not found in /proc/locks"
    return (
        f"the host's port registry is locked: {lock} is held by {holders} since at least "
        f"{wait:.0f} s (a redpss command holds it for milliseconds); end that process and "
        "run the command again"
    )


def _gone(conf: Path) -> bool:
    try:
        conf.stat()
    except FileNotFoundError:
        return True
    except OSError as exc:  # unreadable for us (another user's REDHOME): it is there
        return exc.errno == errno.ENOTDIR
    return False


def host_registry(home: Path, env: Mapping[str, str] | None = None) -> PortRegistry:
    """The registry of this host (``$REDPSS_PORT_REGISTRY`` or :data:`DEFAULT_REGISTRY`); the
    fallback beside ``home``, which still reads it, when this user may not write it."""
    env = os.environ if env is None else env
    path = Path(env[REGISTRY_ENV]) if env.get(REGISTRY_ENV) else DEFAULT_REGISTRY
    try:
        if not path.is_dir():
            path.mkdir(mode=0o755, parents=True)
            path.chmod(0o755)
        if _writable(path):
            return PortRegistry(path)
    except OSError:
        pass
    fallback = home.absolute().parent / ".redpss-ports"
    if fallback == path:
        return PortRegistry(path, shared=False)
    log.warning(
        "host port registry %s cannot be written by %s; blocks are recorded in %s "
        "(as root, once, for the user that runs the instances: install -d -o USER -m 0755 %s)",
        path,
        _user_name(os.geteuid()),
        fallback,
        path,
    )
    return PortRegistry(fallback, shared=False, also_read=(path,) if path.is_dir() else ())


def _writable(path: Path) -> bool:
    """May this user write the registry ``path`` safely? Its owner (a folder of ours others
    may write is closed to 0755), or root in a folder no one else may write."""
    info = path.stat()
    me = os.geteuid()
    open_to_others = bool(info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))
    if info.st_uid == me and open_to_others:
        path.chmod(0o755)
        log.warning(
            "host port registry %s was writable by every user (mode %o): now 0755; only %s "
            "records there, other users' instances record beside their REDHOME",
            path,
            stat.S_IMODE(info.st_mode),
            "root" if me == 0 else f"{_user_name(me)} and root",
        )
        return True
    if info.st_uid == me:
        return True
    return me == 0 and not open_to_others


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
