"""The RED dictionary: the only code that writes SQL.

:func:`open_dictionary` returns the backend named in ``red_params.conf`` (``dictionary =``);
everything else talks to the backend-neutral :class:`Dictionary`. The objects and their
migrations are data in :mod:`redpss.dictionary.model`; ``docs/dictionary.md`` describes them.
"""

from __future__ import annotations

from pathlib import Path

from redpss.dictionary.base import (
    ALERT_ERROR,
    ALERT_OK,
    ALERT_WARNING,
    DOWN_STATES,
    EXITED,
    FAILED,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    SUSPENDED,
    Dictionary,
    LogMessage,
    RoleStart,
    RoleStatus,
    compute_alert,
)
from redpss.dictionary.model import SCHEMA_VERSION
from redpss.errors import DictionaryError

BACKENDS = ("sqlite", "exasol")


def open_dictionary(kind: str, *, db_dir: Path, busy_timeout: float = 10.0) -> Dictionary:
    """Return the dictionary backend ``kind`` ("sqlite" or "exasol").

    ``db_dir`` is where the SQLite files live; ``busy_timeout`` (seconds) is how long a write
    waits for another process's write lock. Raises DictionaryError for an unknown or
    unavailable backend.
    """
    if kind == "sqlite":
        from redpss.dictionary.sqlite import SqliteDictionary

        return SqliteDictionary(db_dir, busy_timeout=busy_timeout)
    if kind == "exasol":
        raise DictionaryError(
            "the Exasol dictionary backend is not available yet (it comes with the Exasol "
            "backend issue); set dictionary = sqlite"
        )
    raise DictionaryError(f"unknown dictionary backend {kind!r}; expected one of {BACKENDS}")


__all__ = [
    "ALERT_ERROR",
    "ALERT_OK",
    "ALERT_WARNING",
    "BACKENDS",
    "DOWN_STATES",
    "EXITED",
    "FAILED",
    "RUNNING",
    "SCHEMA_VERSION",
    "STARTING",
    "STOPPED",
    "STOPPING",
    "SUSPENDED",
    "Dictionary",
    "LogMessage",
    "RoleStart",
    "RoleStatus",
    "compute_alert",
    "open_dictionary",
]
