"""Where the files a mail carries may come from: the folders of ``sendmail_attach_dirs``.

A mail request names its attachments by path. Anyone holding the instance secret may send one
(a Lua script in the database among them), so the path alone must not reach the instance's
secrets (``etc/``), its dictionary (``data/db/``), its logs or other mails (``spool/``): a file
is taken only from below one of the configured folders (default ``data/export``, where the
database exports through cfisrv, and ``tmp/sendfile``, sendfile's exports), which
:mod:`redpss.config` checks never to be or hold one of those.

Below a folder no symbolic link is followed: every step is opened relative to the one before
with ``O_NOFOLLOW``, and the file read is the one opened (``fstat``: a regular file), so the
check cannot be raced by a link planted between check and read; a file with other names (hard
links) is refused too. The configured folder itself may be a link (an operator's choice,
checked at start by :meth:`AttachFolders.prepare`).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path

from redpss.config.checks import NEVER_ATTACHED
from redpss.errors import BadArgs, ConfigError, RemoteError

__all__ = ["AttachFolders", "Attachment"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@dataclass(frozen=True)
class Attachment:
    """A file read for a mail: its name and its bytes."""

    name: str
    data: bytes


class AttachFolders:
    """The folders of ``$REDENV_HOME`` a mail may attach files from."""

    def __init__(self, home: Path, folders: tuple[str, ...]) -> None:
        """``folders`` as :func:`redpss.config.checks.attach_dirs` gives them (checked)."""
        self.home = home
        self.folders = folders

    def prepare(self) -> None:
        """Create missing folders; refuse one that really (through a link) is or holds a folder
        never attached (ConfigError)."""
        never = [(self.home / n).resolve() for n in (*NEVER_ATTACHED, "tmp")]
        for folder in self.folders:
            real = (self.home / folder).resolve()
            for bad in never:
                if (
                    real == bad
                    or bad.is_relative_to(real)
                    or (real.is_relative_to(bad) and bad.name != "tmp")
                ):
                    raise ConfigError(
                        f"sendmail_attach_dirs: {folder} is {real}, which is or holds "
                        f"{bad}: mails would carry the instance's own files; name another folder"
                    )
            real.mkdir(parents=True, exist_ok=True)

    def read(self, value: object, field: str, *, limit: int) -> Attachment:
        """The file ``value`` names (relative to ``$REDENV_HOME`` or absolute below it), read.

        BadArgs names ``field`` when the path is not below an attachment folder, leads
        through a link, is not a regular file or holds more than ``limit`` bytes.
        """
        if not isinstance(value, str) or not value or "\0" in value:
            raise BadArgs(f"{field} must be the path of a file")
        rel = self._relative(value, field)
        folder = next((f for f in self.folders if rel.startswith(f + "/")), None)
        if folder is None:
            allowed = ", ".join(f"{f}/" for f in self.folders) or "none configured"
            raise BadArgs(
                f"{field} {value!r} is not in a folder mails may attach from ({allowed}; "
                "sendmail_attach_dirs)"
            )
        steps = rel[len(folder) + 1 :].split("/")
        fd = self._open(folder, steps, value, field)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            os.close(fd)
            if not stat.S_ISREG(st.st_mode):
                raise BadArgs(f"{field} {value!r} is not a regular file")
            # a hard link may be another name of a file of etc/
            raise BadArgs(f"{field} {value!r} has other names (hard links): not attached")
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise BadArgs(f"{field} {value!r} is larger than the mail may be ({limit} bytes)")
        return Attachment(steps[-1], data)

    def _relative(self, value: str, field: str) -> str:
        path = posixpath.normpath(value)
        if posixpath.isabs(path):
            home = posixpath.normpath(str(self.home))
            if not path.startswith(home + "/"):
                raise BadArgs(f"{field} {value!r} is outside the instance ($REDENV_HOME)")
            path = path[len(home) + 1 :]
        if path == ".." or path.startswith("../"):
            raise BadArgs(f"{field} {value!r} is outside the instance ($REDENV_HOME)")
        return path

    def _open(self, folder: str, steps: list[str], value: str, field: str) -> int:
        try:
            fd = os.open(self.home / folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise RemoteError(  # not the caller's mistake: the operator's to repair
                "not_configured", f"attachment folder {folder}/ is unusable: {exc.strerror}"
            ) from None
        try:
            for step in steps[:-1]:
                parent, fd = fd, os.open(step, _DIR_FLAGS, dir_fd=fd)
                os.close(parent)
            parent, fd = fd, os.open(steps[-1], _FILE_FLAGS, dir_fd=fd)
            os.close(parent)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise BadArgs(
                    f"{field} {value!r} leads through a symbolic link (not followed) or a file"
                ) from None
            if exc.errno == errno.ENOENT:
                raise BadArgs(f"{field} {value!r} does not exist") from None
            raise BadArgs(f"{field} {value!r} cannot be read: {exc.strerror}") from None
        return fd
