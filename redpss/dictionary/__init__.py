"""The RED dictionary: the only code that writes SQL.

:func:`open_dictionary` returns the backend named in ``red_params.conf`` (``dictionary =``);
everything else talks to the backend-neutral :class:`Dictionary`. The objects and their
migrations are data in :mod:`redpss.dictionary.model`; ``docs/dictionary.md`` describes them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

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
)
from redpss.dictionary.model import SCHEMA_VERSION
from redpss.errors import DictionaryError

if TYPE_CHECKING:
    from redpss.config import Config
    from redpss.dictionary.exasol.session import ExaSettings
    from redpss.instance import Instance

BACKENDS = ("sqlite", "exasol")


def open_dictionary(
    kind: str,
    *,
    db_dir: Path,
    busy_timeout: float = 10.0,
    exasol: ExaSettings | None = None,
) -> Dictionary:
    """Return the dictionary backend ``kind`` ("sqlite" or "exasol").

    ``db_dir`` is where the SQLite files live; ``busy_timeout`` (seconds) is how long a write
    waits for another process's write lock; ``exasol`` says how to reach the database (from
    :meth:`ExaSettings.from_config`). Raises DictionaryError for an unknown backend or one
    that lacks its settings.
    """
    if kind == "sqlite":
        from redpss.dictionary.sqlite import SqliteDictionary

        return SqliteDictionary(db_dir, busy_timeout=busy_timeout)
    if kind == "exasol":
        if exasol is None or not exasol.dsn:
            raise DictionaryError(
                "dictionary = exasol needs exa_connection (and exa_password) in red_params.conf"
            )
        from redpss.dictionary.exasol import ExasolDictionary

        return ExasolDictionary(exasol)
    raise DictionaryError(f"unknown dictionary backend {kind!r}; expected one of {BACKENDS}")


def open_config_dictionary(config: Config, *, db_dir: Path, etc_dir: Path) -> Dictionary:
    """The backend ``red_params.conf`` names, with its settings (CA files relative to etc/)."""
    from redpss.dictionary.exasol.session import ExaSettings

    kind = config.default.dictionary.value
    settings = ExaSettings.from_config(config, etc_dir) if kind == "exasol" else None
    return open_dictionary(kind, db_dir=db_dir, exasol=settings)


@contextlib.contextmanager
def open_instance_dictionary(inst: Instance, config: Config) -> Iterator[Dictionary]:
    """Open the instance's dictionary backend; close it afterwards (every command that reads or
    writes the dictionary of an instance goes through here)."""
    dictionary = open_config_dictionary(config, db_dir=inst.db_dir, etc_dir=inst.etc)
    try:
        yield dictionary
    finally:
        dictionary.close()


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
    "open_config_dictionary",
    "open_dictionary",
    "open_instance_dictionary",
]
