"""Logging set-up for entry points: files under ``$REDENV_HOME/log``, rotation, retention.

Only entry points (``redpss role``, ``redctl`` …) call :func:`configure`; library modules just
use ``logging.getLogger(__name__)``. Two levels are added to the standard ones: ``TRACE`` (5,
below DEBUG, for ``redctl start_trace``) and ``ALERT`` (45, above ERROR: needs an operator).

Each role writes ``log/<role>.log``, rotated at midnight; rotated files older than
``log_retention`` days are deleted by the handler, and :func:`purge_old_logs` removes any other
log file below the log folder (job and DB logs) past the retention.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import stat
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from redpss.config import LogLevel

__all__ = [
    "ALERT",
    "TRACE",
    "DailyFile",
    "configure",
    "files_open_below",
    "level_number",
    "purge_old_logs",
]

TRACE = 5
ALERT = 45
logging.addLevelName(TRACE, "TRACE")
logging.addLevelName(ALERT, "ALERT")

FORMAT = "%(asctime)s %(levelname)-5s [%(process)d] %(name)s: %(message)s"

_LEVELS = {
    LogLevel.TRACE: TRACE,
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.INFO: logging.INFO,
    LogLevel.WARN: logging.WARNING,
    LogLevel.ERROR: logging.ERROR,
    LogLevel.ALERT: ALERT,
}


def level_number(level: LogLevel) -> int:
    """The :mod:`logging` number of a configured level."""
    return _LEVELS[level]


def configure(
    *,
    level: LogLevel,
    log_file: Path | None = None,
    retention_days: int = 30,
    stream: bool = False,
) -> None:
    """Configure the root logger: a rotating file and/or stderr, at ``level``."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter(FORMAT)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.TimedRotatingFileHandler(
            log_file, when="midnight", backupCount=max(retention_days, 1), encoding="utf-8"
        )
        file_handler.setFormatter(formatter)
        root.addHandler(file_handler)
    if stream or log_file is None:
        stream_handler = logging.StreamHandler(sys.stderr)
        stream_handler.setFormatter(formatter)
        root.addHandler(stream_handler)
    root.setLevel(level_number(level))


class DailyFile(logging.Handler):
    """``<folder>/<stem>-YYYY-MM-DD.log``, a file a day (local date), for a log several
    processes write at once (gunicorn's master and workers: ``log/REST/``).

    A rotating handler in each process would rename the file under the others; here each
    record is one ``write`` on a file opened with ``O_APPEND``, so lines of several processes
    never interleave, and a new day simply opens a new name. :func:`purge_old_logs` deletes the
    days past ``log_retention`` as it does every other log file.
    """

    def __init__(self, folder: str, stem: str, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.folder = Path(folder)
        self.stem = stem
        self._day = ""
        self._fd = -1

    def path(self, day: str) -> Path:
        """The file of ``day`` (``YYYY-MM-DD``)."""
        return self.folder / f"{self.stem}-{day}.log"

    def emit(self, record: logging.LogRecord) -> None:
        """Append one line to today's file."""
        try:
            day = time.strftime("%Y-%m-%d")
            line = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            with self.lock or _NO_LOCK:
                if day != self._day:
                    self._close()
                    self.folder.mkdir(parents=True, exist_ok=True)
                    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
                    self._fd, self._day = os.open(self.path(day), flags, 0o640), day
                os.write(self._fd, line)
        except Exception:
            self.handleError(record)

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def close(self) -> None:
        """Close the file of the day."""
        with self.lock or _NO_LOCK:
            self._close()
        super().close()


_NO_LOCK = contextlib.nullcontext()


def purge_old_logs(
    log_dir: Path,
    retention_days: int,
    *,
    now: float | None = None,
    open_files: set[tuple[int, int]] | None = None,
) -> list[Path]:
    """Delete regular files below ``log_dir`` not modified for ``retention_days``; return them.

    Never deleted, whatever their age: a file some process has open (a role's current log,
    ``supervisord.log``: found in ``/proc/*/fd``, or given as ``open_files``, (device, inode)
    pairs); a file of the current day (modified today, or named with today's date, local or UTC,
    as ``log/DB/<SCHEMA>/<YYYY-MM-DD>.log``); the audit log (``audit.log``, :mod:`redpss.audit`),
    the trail of every change. ``retention_days`` below 1 is refused (``red_params.conf``
    refuses it first), because it would mean "everything".
    """
    if retention_days < 1:
        raise ValueError(f"log retention must be at least 1 day, not {retention_days}")
    now = time.time() if now is None else now
    local = datetime.fromtimestamp(now)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    limit = min(now - retention_days * 86400, midnight)
    today = {local.date().isoformat(), datetime.fromtimestamp(now, UTC).date().isoformat()}
    removed: list[Path] = []
    if not log_dir.is_dir():
        return removed
    held = files_open_below(log_dir) if open_files is None else open_files
    for path in log_dir.rglob("*"):
        if path.name == "audit.log" or any(day in path.name for day in today):
            continue
        try:
            st = path.lstat()
            if not stat.S_ISREG(st.st_mode) or st.st_mtime >= limit:
                continue
            if (st.st_dev, st.st_ino) in held:
                continue
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            continue
    return removed


def files_open_below(folder: Path) -> set[tuple[int, int]]:
    """(device, inode) of every file below ``folder`` that a process has open (``/proc``).

    Only processes this user may inspect are seen: the instance's own roles and tools.
    """
    prefix = str(folder.resolve()) + os.sep
    found: set[tuple[int, int]] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            link = f"{fd_dir}/{fd}"
            try:
                if not os.readlink(link).startswith(prefix):
                    continue
                st = os.stat(link)
            except OSError:
                continue
            found.add((st.st_dev, st.st_ino))
    return found
