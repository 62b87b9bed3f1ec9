"""The folders an instance writes to: what ``redctl status`` says of a full disk or a folder
that cannot be written.

A full disk shows up in many places at once (a load fails, SQLite says "disk I/O error" while
creating its shared-memory file, a mail cannot be spooled, a log line is lost) and often cannot
be reported through the heartbeats, which live on the same disk. So ``status`` looks at the
filesystems themselves: a folder of the instance whose filesystem has less than
:data:`MIN_FREE` bytes, or less than 1 % of its size, free (or no inode left) is named, with
what fails until space is freed.

A folder the instance's user cannot write (permissions, a read-only or immutable mount) is named
the same way: a rejected file that ``error/`` cannot take waits in ``input/`` and is tried
again, silently but for the run log, unless status says why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from redpss.instance import Instance

__all__ = ["MIN_FREE", "Full", "disk_problems", "full_filesystems", "has_room", "unwritable"]

MIN_FREE = 1 << 20
"""Below this many free bytes (for an unprivileged writer) a filesystem counts as full."""

# what fails when the folder's filesystem is full (the operator's words)
_FOLDERS = (
    ("data/db", "the embedded dictionary (heartbeats, run logs, loads)"),
    ("data/input", "uploads"),
    ("data/work", "loads"),
    ("data/error", "rejected files"),
    ("data/archive", "loads"),
    ("log", "log files"),
    ("log/DB", "dbls (log buffers from the database)"),
    ("spool", "sendmail's spool"),
    ("tmp", "exports, health records"),
)


@dataclass(frozen=True)
class Full:
    """One full filesystem: the instance's folders on it, its free bytes, what fails."""

    folders: tuple[str, ...]
    free: int
    fails: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"no space left for {', '.join(f + '/' for f in self.folders)} ({self.free} bytes "
            f"free): {', '.join(self.fails)} fail until space is freed"
        )


def _room(st: os.statvfs_result, min_free: int) -> bool:
    free = st.f_bavail * st.f_frsize
    enough = min(min_free, st.f_blocks * st.f_frsize // 100)
    return free >= enough and (st.f_files == 0 or st.f_favail > 0)


def has_room(path: Path, *, min_free: int = MIN_FREE, need: int = 0) -> bool:
    """True when the filesystem of ``path`` is not full and has ``need`` bytes free (a role
    ends its disk problem: room for what it could not write)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return _room(st, min_free) and st.f_bavail * st.f_frsize >= need


def full_filesystems(inst: Instance, *, min_free: int = MIN_FREE) -> list[Full]:
    """Every filesystem below the instance's folders that is full (see the module)."""
    seen: dict[int, tuple[list[str], int, list[str]]] = {}
    for rel, what in _FOLDERS:
        path = inst.home / rel
        try:
            st = os.statvfs(path)
            dev = os.stat(path).st_dev
        except OSError:
            continue  # not there (spool before the first mail): nothing to say
        if _room(st, min_free):
            continue
        free = st.f_bavail * st.f_frsize
        folders, _, fails = seen.setdefault(dev, ([], free, []))
        folders.append(rel)
        if what not in fails:
            fails.append(what)
    return [Full(tuple(f), free, tuple(w)) for f, free, w in seen.values()]


# what fails when the folder cannot be written (the operator's words)
_WRITTEN = (
    ("data/input", "files cannot be claimed (nor uploaded)"),
    ("data/work", "files cannot be claimed"),
    ("data/error", "rejected files cannot go there: they wait in data/input/ and are tried again"),
    ("data/archive", "loaded files cannot be archived"),
    ("data/db", "the embedded dictionary cannot be written"),
    ("log", "the roles cannot write their logs"),
    ("log/DB", "dbls refuses log buffers"),
    ("spool/sendmail", "sendmail refuses mails"),
    ("tmp", "health records, exports and the suspended flag cannot be written"),
)


def unwritable(inst: Instance) -> list[str]:
    """One line per folder of the instance this user cannot write into, with what fails."""
    out = []
    for rel, fails in _WRITTEN:
        path = inst.home / rel
        if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
            out.append(
                f"{rel}/ cannot be written (permissions, read-only or immutable): {fails}; "
                f"make it writable for uid {os.geteuid()}"
            )
    return out


def disk_problems(inst: Instance) -> tuple[str, ...]:
    """What ``status`` says of the instance's folders: full filesystems, unwritable folders."""
    return tuple([str(f) for f in full_filesystems(inst)] + unwritable(inst))
