"""Opening a claimed file the only way the landing zone reads one: a regular file, as opened.

:func:`open_regular` opens with ``O_NOFOLLOW | O_NONBLOCK`` and decides on ``fstat`` of what
was opened — a regular file, or :class:`~redpss.errors.FileRejected` naming what it is (a
symbolic link, a FIFO, a socket, a device, a hard link, a sparse file, a file the process may
not read). Special files are refused from their ``lstat`` before any open; everything after
reads the opened file (:attr:`Opened.view`), never the name again, so nothing can be swapped in
between the check and the read.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from redpss.errors import FileRejected

__all__ = ["Opened", "open_regular"]


def _what(mode: int) -> str | None:
    """What a non-regular file is, in the words of a rejection; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kinds = (
        (stat.S_ISLNK, "a symbolic link (the landing zone never follows links)"),
        (stat.S_ISFIFO, "a FIFO (named pipe), not a regular file"),
        (stat.S_ISSOCK, "a socket, not a regular file"),
        (stat.S_ISCHR, "a character device, not a regular file"),
        (stat.S_ISBLK, "a block device, not a regular file"),
        (stat.S_ISDIR, "a directory, not a regular file"),
    )
    return next((what for test, what in kinds if test(mode)), "not a regular file")


def _unreadable(path: Path, exc: OSError) -> FileRejected:
    try:
        st = path.lstat()
        detail = f"mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid} gid {st.st_gid}"
    except OSError:
        detail = "its mode could not be read"
    return FileRejected(
        f"not readable for the loader (uid {os.geteuid()}): {exc.strerror} ({detail}); "
        "upload it readable for the instance's user or group (e.g. mode 0640 or 0644), "
        "then move it back to input/"
    )


@dataclass
class Opened:
    """A claimed file, opened once; every later read goes through :attr:`view`, not the name."""

    fd: int
    path: Path
    size: int

    @property
    def view(self) -> Path:
        """A path that reaches exactly the opened file (``/proc/self/fd/N``), whatever is at
        :attr:`path` now: readers that open by path (pyarrow, ``Path.open``) read what was
        checked, each with its own offset."""
        return Path(f"/proc/self/fd/{self.fd}")

    def close(self) -> None:
        """Close the file; idempotent."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _has_hole(fd: int, size: int) -> bool:
    """True when the open file has a hole before its end (``SEEK_HOLE``; a filesystem that
    cannot tell says no)."""
    if not size:
        return False
    try:
        return os.lseek(fd, 0, os.SEEK_HOLE) < size
    except OSError:
        return False
    finally:
        os.lseek(fd, 0, os.SEEK_SET)


_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def open_regular(path: Path) -> Opened:
    """Open ``path`` for reading if it is a regular file; FileRejected saying what it is if not.

    A FIFO, socket or device is refused from its ``lstat`` without being opened (opening a
    FIFO blocks until a writer comes; a device may act on open). The open itself never
    follows a link (``O_NOFOLLOW``) nor waits (``O_NONBLOCK``), and ``fstat`` of the opened
    file decides, so a file swapped in after the ``lstat`` is judged as what was opened.
    Refused too: a file with more than one name (a hard link: its other name may be anywhere on
    the filesystem, ``etc/secret`` where ``fs.protected_hardlinks`` is off), and a sparse file
    (holes read as NUL bytes that were never written: ``truncate -s 10T`` costs the uploader
    nothing and would keep a loader hashing zeros for hours).
    FileNotFoundError when the file is gone; other OSErrors (the disk) propagate.
    """
    what = _what(path.lstat().st_mode)
    if what is not None:
        raise FileRejected(what)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileRejected(_what(stat.S_IFLNK) or "") from None
        if exc.errno == errno.ENXIO:
            raise FileRejected(_what(stat.S_IFSOCK) or "") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise _unreadable(path, exc) from None
        raise
    try:
        st = os.fstat(fd)
        what = _what(st.st_mode)
        if what is not None:
            raise FileRejected(what)
        if st.st_nlink > 1:
            raise FileRejected(
                f"a hard link: the file has {st.st_nlink} names, another one lies elsewhere "
                "(the landing zone reads files that are only here); upload a copy"
            )
        if _has_hole(fd, st.st_size):
            raise FileRejected(
                f"a sparse file ({st.st_size} bytes, with holes that read as NUL bytes never "
                "written): not data"
            )
        if not os.path.isdir("/proc/self/fd"):
            raise OSError(errno.ENOENT, "/proc is not mounted: the landing zone needs it")
    except BaseException:
        os.close(fd)
        raise
    return Opened(fd, path, st.st_size)
