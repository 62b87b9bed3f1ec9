"""Sleeping until something arrives in a folder: Linux inotify, so an idle converter does not wake.

The converters (json2csv, parq2csv) looked at ``data/input`` every ``landing_poll_interval``
seconds, found it empty, and slept again: on an idle instance that was two wake-ups a second
for nothing, and on a virtual machine each wake-up after a sleep costs milliseconds of CPU.
:class:`FolderWatch` lets them sleep until the kernel says that a name appeared in the folder
(created, moved in, written and closed, or its mode changed: a 0600 upload made readable), until
a timeout, or until :meth:`FolderWatch.wake` (the role stops).

The kernel sees only what happens on this host: a file written into the folder over NFS or SMB
by another machine gives no event. :func:`open_watch` therefore watches only a folder on a local
filesystem and returns None elsewhere (and where inotify is missing or its limits are reached):
the caller then polls as before. The caller also looks now and then without an event
(json2csv's ``RESCAN_EVERY``) as a safety net, never trusting an event to be the only way a file
is seen.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import selectors
import socket
import struct
from pathlib import Path

__all__ = ["FolderWatch", "open_watch", "remote_filesystem"]

_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_IN_ATTRIB = 0x00000004
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_ONLYDIR = 0x01000000
_ARRIVALS = _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE | _IN_ONLYDIR

_REMOTE_FILESYSTEMS = {
    0x00006969: "nfs",
    0x0000517B: "smb",
    0xFF534D42: "cifs",
    0xFE534D42: "smb2",
    0x65735546: "fuse",
    0x01021997: "9p",
    0x00C36400: "ceph",
    0x5346414F: "afs",
    0x01161970: "gfs2",
    0x73757245: "coda",
    0x0BD00BD0: "lustre",
}
"""statfs(2) magic numbers of filesystems whose changes by other hosts inotify does not see."""


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


def remote_filesystem(folder: Path) -> str | None:
    """The name of the network filesystem ``folder`` is on, ``"unknown"`` when statfs(2)
    cannot say (both: poll), None for a local one."""
    libc = _libc()
    if libc is None:
        return "unknown"
    buf = ctypes.create_string_buffer(256)  # struct statfs; f_type is its first word
    if libc.statfs(os.fsencode(folder), buf) != 0:
        return "unknown"
    (magic,) = struct.unpack_from("L", buf.raw)
    return _REMOTE_FILESYSTEMS.get(magic & 0xFFFFFFFF)


class FolderWatch:
    """An inotify watch on one folder plus a wake-up socket pair; :meth:`wait` sleeps on both."""

    def __init__(self, folder: Path) -> None:
        """Watch ``folder``; raises OSError when inotify cannot (no libc, limits reached)."""
        libc = _libc()
        if libc is None:
            raise OSError("the C library was not found")
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        if libc.inotify_add_watch(fd, os.fsencode(folder), _ARRIVALS) < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, f"inotify_add_watch {folder}: {os.strerror(err)}")
        self.folder = folder
        self._fd = fd
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(fd, selectors.EVENT_READ)
        self._selector.register(self._reader, selectors.EVENT_READ)

    def wait(self, timeout: float | None) -> bool:
        """Sleep until a name arrives in the folder, :meth:`wake` or ``timeout`` seconds (None:
        no timeout); True if the folder changed. Events are drained: one wait sees them all."""
        changed = False
        for key, _ in self._selector.select(timeout):
            if key.fileobj is self._reader:
                with contextlib.suppress(OSError):  # drained: EAGAIN
                    while self._reader.recv(512):
                        pass
            else:
                changed = True
                with contextlib.suppress(OSError):  # drained: EAGAIN
                    while os.read(self._fd, 65536):
                        pass
        return changed

    def wake(self) -> None:
        """End the current (or the next) :meth:`wait` at once; from any thread."""
        with contextlib.suppress(OSError):  # full: a wake-up is pending; closed: it is over
            self._writer.send(b"x")

    def close(self) -> None:
        """Release the watch; idempotent."""
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.close()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = -1
        self._reader.close()
        self._writer.close()


def open_watch(folder: Path) -> tuple[FolderWatch | None, str]:
    """A watch on ``folder``, or None and why the caller must poll instead."""
    remote = remote_filesystem(folder)
    if remote == "unknown":
        return None, f"the filesystem of {folder} is not known (statfs failed)"
    if remote is not None:
        return None, f"{folder} is on {remote}, a network filesystem inotify may not see"
    try:
        return FolderWatch(folder), f"inotify on {folder}"
    except OSError as exc:
        return None, f"inotify is not available for {folder}: {exc}"
