"""Logging set-up for entry points: files under ``$REDENV_HOME/log``, rotation, retention.

Only entry points (``redpss role``, ``redctl`` …) call :func:`configure`; library modules just
use ``logging.getLogger(__name__)``. Two levels are added to the standard ones: ``TRACE`` (5,
below DEBUG, for ``redctl start_trace``) and ``ALERT`` (45, above ERROR: needs an operator).

Each role writes ``log/<role>.log``, rotated at midnight; rotated files older than
``log_retention`` days are deleted by the handler, and :func:`purge_old_logs` removes any other
log file below the log folder (job and DB logs) past the retention.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from pathlib import Path

from redpss.config import LogLevel

__all__ = ["ALERT", "TRACE", "configure", "level_number", "purge_old_logs"]

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


def purge_old_logs(log_dir: Path, retention_days: int, *, now: float | None = None) -> list[Path]:
    """Delete regular files below ``log_dir`` not modified for ``retention_days``; return them.

    Files that are still written (the current ``*.log`` of a role) are kept by their mtime.
    The audit log (``audit.log``, :mod:`redpss.audit`) is the trail of every change and is
    never purged.
    """
    now = time.time() if now is None else now
    limit = now - retention_days * 86400
    removed: list[Path] = []
    if not log_dir.is_dir():
        return removed
    for path in log_dir.rglob("*"):
        if path.name == "audit.log":
            continue
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime < limit:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue
    return removed
