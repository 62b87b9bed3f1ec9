"""The on-disk spool of SENDMAIL: a mail is safe on disk before it is acknowledged.

Below ``$REDENV_HOME/spool/sendmail``::

    tmp/        being written (never acknowledged; removed at start)
    queue/      acknowledged, waiting for (another) delivery attempt; <id>.try holds retries
    inflight/   handed to the relay right now
    sent/       accepted by the relay (kept log_retention days)
    dead/       undeliverable; <id>.reason says why

The folders are 0700 and the files 0600: a mail may carry an export or a report, and only the
instance user may read it. A mail is one file ``<id>.mail``: a JSON header line (envelope,
subject, times) followed by the message. It moves between folders only by ``rename`` (atomic,
same filesystem), followed by an fsync of the folder, so after any crash it is in exactly one
place. A mail found in
``inflight/`` at start was interrupted *while the relay had it*: whether the relay accepted it
cannot be known, so it goes to ``dead/`` with that reason rather than risk a second delivery
(``requeue`` sends it again on purpose).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any, BinaryIO

from redpss.mail.message import Composed

__all__ = ["FOLDERS", "Spool", "Spooled"]

FOLDERS = ("tmp", "queue", "inflight", "sent", "dead")


@dataclass(frozen=True)
class Spooled:
    """A mail in the spool: its header (envelope …) and where its data starts."""

    id: str
    header: dict[str, Any]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create(path: Path) -> BinaryIO:
    """A new file only the instance user can read (mails carry exports)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    return os.fdopen(fd, "wb")


def _write_atomic(path: Path, data: bytes, *, sync: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    with _create(tmp) as fh:
        fh.write(data)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


class Spool:
    """The folders of the spool and the moves between them."""

    def __init__(self, root: Path) -> None:
        """Use (and create) the spool below ``root``."""
        self.root = root
        self._lock = threading.Lock()
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        root.chmod(0o700)  # also a spool made by an older version with the umask's mode
        for name in FOLDERS:
            (root / name).mkdir(mode=0o700, exist_ok=True)
            (root / name).chmod(0o700)

    def folder(self, name: str) -> Path:
        """One of :data:`FOLDERS`."""
        return self.root / name

    def _path(self, folder: str, mail_id: str) -> Path:
        return self.root / folder / f"{mail_id}.mail"

    def where(self, mail_id: str) -> str | None:
        """The folder the mail is in, or None."""
        for folder in FOLDERS[1:]:
            if self._path(folder, mail_id).exists():
                return folder
        return None

    def put(self, mail: Composed) -> tuple[str, bool]:
        """Spool ``mail`` durably; return its id and whether it was already there (its key)."""
        if mail.key is not None:
            mail_id = "k" + sha256(mail.key.encode()).hexdigest()[:32]
        else:
            mail_id = f"{time.time_ns():x}-{secrets.token_hex(6)}"
        header = {
            "id": mail_id,
            "from": mail.sender,
            "rcpt": mail.recipients,
            "subject": mail.subject,
            "queued_at": time.time(),
            "key": mail.key,
        }
        data = json.dumps(header).encode() + b"\n" + mail.data
        with self._lock:  # two requests with one key: the second sees the first
            if mail.key is not None and self.where(mail_id) is not None:
                return mail_id, True
            tmp = self._path("tmp", mail_id)
            try:
                with _create(tmp) as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError:
                tmp.unlink(missing_ok=True)  # a full disk leaves no half-written mail behind
                raise
            os.rename(tmp, self._path("queue", mail_id))
            _fsync_dir(self.folder("queue"))
        return mail_id, False

    def header(self, folder: str, mail_id: str) -> dict[str, Any]:
        """The JSON header of a spooled mail."""
        with self._path(folder, mail_id).open("rb") as fh:
            result: dict[str, Any] = json.loads(fh.readline())
        return result

    def read(self, folder: str, mail_id: str) -> tuple[dict[str, Any], bytes]:
        """Header and message bytes of a spooled mail."""
        raw = self._path(folder, mail_id).read_bytes()
        head, _, data = raw.partition(b"\n")
        return json.loads(head), data

    def move(self, mail_id: str, src: str, dst: str) -> None:
        """Move a mail between folders atomically and durably."""
        os.rename(self._path(src, mail_id), self._path(dst, mail_id))
        # one fsync of the target folder commits the rename (a journalled filesystem commits
        # metadata in order, so the entry cannot reappear in ``src`` once it is in ``dst``)
        _fsync_dir(self.folder(dst))
        if dst in ("sent", "dead"):  # its retries end with it (not on its way to the relay:
            # a 4xx brings it back, and its back-off must go on growing)
            self._path("queue", mail_id).with_suffix(".try").unlink(missing_ok=True)

    def kill(self, mail_id: str, src: str, reason: str) -> None:
        """Move a mail to ``dead/`` with the reason beside it."""
        _write_atomic(self._path("dead", mail_id).with_suffix(".reason"), reason.encode() + b"\n")
        self.move(mail_id, src, "dead")

    def reason(self, mail_id: str) -> str:
        """Why a dead mail is dead."""
        try:
            return self._path("dead", mail_id).with_suffix(".reason").read_text().strip()
        except FileNotFoundError:
            return ""

    def requeue(self, mail_id: str) -> None:
        """Put a dead mail back into the queue, with fresh retries."""
        self.move(mail_id, "dead", "queue")
        self._path("dead", mail_id).with_suffix(".reason").unlink(missing_ok=True)

    def tries(self, mail_id: str) -> dict[str, Any]:
        """The retry state of a queued mail (``attempts``, ``next_try``, ``last_error``)."""
        try:
            result: dict[str, Any] = json.loads(
                self._path("queue", mail_id).with_suffix(".try").read_bytes()
            )
            return result
        except (FileNotFoundError, ValueError):
            return {"attempts": 0, "next_try": 0.0, "last_error": None}

    def set_tries(self, mail_id: str, state: dict[str, Any]) -> None:
        """Remember the retry state (losing it only resets the backoff)."""
        _write_atomic(
            self._path("queue", mail_id).with_suffix(".try"), json.dumps(state).encode(), sync=False
        )

    def ids(self, folder: str) -> list[str]:
        """Ids of the mails in ``folder``, oldest first (by name: ids start with the time)."""
        return sorted(p.stem for p in self.folder(folder).glob("*.mail"))

    def recover(self) -> list[str]:
        """After a start: drop unacknowledged writes, dead-letter interrupted deliveries."""
        for stale in self.folder("tmp").iterdir():
            stale.unlink(missing_ok=True)
        interrupted = self.ids("inflight")
        for mail_id in interrupted:
            self.kill(
                mail_id,
                "inflight",
                "delivery was interrupted by a crash while the relay had the mail; it may or "
                "may not have arrived. Not sent again automatically (requeue to resend).",
            )
        return interrupted

    def purge(self, folder: str, older_than: float) -> int:
        """Delete the files of ``folder`` not modified since ``older_than`` (epoch seconds)."""
        removed = 0
        for path in self.folder(folder).iterdir():
            try:
                if path.stat().st_mtime < older_than:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
