"""The backend-neutral dictionary interface.

Roles and the CLI talk to :class:`Dictionary` only; they never see SQL or a dialect. All
timestamps crossing this interface are timezone-aware UTC :class:`datetime` values.

The ALERT rule of ``STA_PSS_STATUS`` is written once more in Python,
:func:`redpss.health.judge`, as the reference the backends' SQL is tested against.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from redpss.dictionary.columns import LOG_LEVELS, REDSYS
from redpss.dictionary.export import ExportStore
from redpss.dictionary.jobs import JobStore
from redpss.dictionary.landing import LandingStore
from redpss.dictionary.purge import PurgeStore
from redpss.errors import DictionaryError
from redpss.health import (
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
    is_healthy,
)

# the role states and the ALERT levels are the health module's (one verdict, redpss/health.py)
__all__ = [
    "ALERT_ERROR",
    "ALERT_OK",
    "ALERT_WARNING",
    "DOWN_STATES",
    "EXITED",
    "FAILED",
    "PROCESS_STARTED",
    "RUNNING",
    "SCHEMA_NAME_RE",
    "STARTING",
    "STOPPED",
    "STOPPING",
    "SUSPENDED",
    "Dictionary",
    "LogMessage",
    "RoleStart",
    "RoleStatus",
    "check_log_level",
    "check_schema_name",
    "same_process",
]

PROCESS_STARTED = datetime.now(UTC)
"""When this process started (imported the dictionary). A role's row written before that is
another process's, even with the same pid — in a container every role is pid 1."""

SCHEMA_NAME_RE = re.compile(r"[A-Z][A-Z0-9_]{0,127}")
"""A target schema name: an upper-case identifier (it is a file name on SQLite)."""


def check_schema_name(schema: str) -> str:
    """Return ``schema`` if it is a valid target schema name, else raise DictionaryError."""
    if not SCHEMA_NAME_RE.fullmatch(schema) or schema == REDSYS:
        raise DictionaryError(
            f"invalid target schema name {schema!r}: expected an upper-case identifier "
            "[A-Z][A-Z0-9_]{0,127} other than REDSYS"
        )
    return schema


@dataclass(frozen=True)
class RoleStart:
    """What :meth:`Dictionary.register_role` found about the role's previous process."""

    previous_pid: int | None
    unclean: bool
    restarts: int


@dataclass(frozen=True)
class RoleStatus:
    """One row of ``STA_PSS_STATUS``: a role's heartbeat record and its computed ALERT."""

    role: str
    state: str
    pid: int | None
    host: str | None
    started_at: datetime | None
    heartbeat_at: datetime | None
    heartbeat_interval: float
    restarts: int
    last_exit: str | None
    version: str | None
    info: str | None
    heartbeat_age: float | None
    alert: int
    alert_reason: str | None
    problems: str | None = None

    @property
    def healthy(self) -> bool:
        """Whether the role does its work (:func:`redpss.health.is_healthy`)."""
        return is_healthy(self.state, self.alert, self.problems)


@dataclass(frozen=True)
class LogMessage:
    """One ERROR/ALERT line of a target schema's ``LOG_MESSAGES``."""

    message_id: int
    log_ts: datetime
    schema: str
    level: str
    source: str | None
    message: str


def check_log_level(level: str) -> str:
    """``level`` if LOG_MESSAGES takes it (ERROR, ALERT), else DictionaryError."""
    if level not in LOG_LEVELS:
        raise DictionaryError(f"unknown log level {level!r}; expected one of {LOG_LEVELS}")
    return level


def same_process(old_pid: int | None, pid: int, old_started: datetime | None) -> bool:
    """Whether a role's row (pid, STARTED_AT) was written by this very process."""
    return old_pid == pid and old_started is not None and old_started >= PROCESS_STARTED


class Dictionary(JobStore, LandingStore, ExportStore, PurgeStore, abc.ABC):
    """The RED dictionary of one instance: REDSYS plus the target schemas.

    Usable as a context manager; :meth:`close` releases the backend's resources.
    """

    # -- lifecycle and migrations ----------------------------------------------------------

    @abc.abstractmethod
    def init(self) -> int:
        """Create or migrate REDSYS to the newest version; idempotent; return the version."""

    @abc.abstractmethod
    def upgrade(self) -> list[str]:
        """Apply pending migrations to REDSYS and every target schema.

        Returns one description per applied migration (empty when all is current). Raises
        MigrationError when REDSYS was never initialised.
        """

    @abc.abstractmethod
    def version(self) -> int:
        """Return the REDSYS dictionary version; 0 when it is not initialised."""

    def database(self) -> str:
        """Which database holds the dictionary, for an operator (``redctl db init`` says it):
        the backend and its version, and where it is."""
        return type(self).__name__

    @abc.abstractmethod
    def ensure_schema(self, schema: str) -> None:
        """Create or migrate the objects of target schema ``schema``."""

    @abc.abstractmethod
    def schemas(self) -> list[str]:
        """Return the target schemas that exist, sorted."""

    # -- role status -----------------------------------------------------------------------

    @abc.abstractmethod
    def register_role(
        self, role: str, *, pid: int, host: str, version: str, heartbeat_interval: float
    ) -> RoleStart:
        """Record that process ``pid`` now runs ``role`` (STATE RUNNING, fresh heartbeat).

        A previous process of the role that is not STOPPED exited uncleanly: RESTARTS is
        counted up and LAST_EXIT says so; the result reports it. The previous process is
        another one when its pid differs or it registered before this process started
        (:data:`PROCESS_STARTED`: a restarted container's role has the same pid 1).
        """

    @abc.abstractmethod
    def heartbeat(
        self,
        role: str,
        *,
        pid: int,
        state: str = RUNNING,
        info: str | None = None,
        problems: str | None = None,
    ) -> bool:
        """Refresh the heartbeat, STATE, INFO and PROBLEMS of ``role`` as written by process
        ``pid`` (PROBLEMS: what the role reports wrong, :class:`redpss.health.RoleHealth`;
        a dictionary older than version 5 (PROBLEMS_SINCE) has no place for it and keeps none).

        Returns False, changing nothing, when another process owns the role's row. When the
        role has no row at all, one is created.
        """

    @abc.abstractmethod
    def role_stopped(self, role: str, *, pid: int, exit_info: str = "stopped") -> None:
        """Mark ``role`` STOPPED with LAST_EXIT ``exit_info`` if process ``pid`` owns it."""

    @abc.abstractmethod
    def identity_stamp(self, instance: str) -> str | None:
        """The identity stamp of ``instance`` (``redctl preclone``); None when it has none."""

    @abc.abstractmethod
    def write_identity_stamp(self, instance: str, stamp: str, *, host: str, version: str) -> None:
        """Replace the identity stamp of ``instance`` (``redctl preclone``)."""

    @abc.abstractmethod
    def reset_status(self) -> None:
        """Forget every role's status (called at instance start)."""

    @abc.abstractmethod
    def pss_status(self, now: datetime | None = None) -> list[RoleStatus]:
        """Return ``STA_PSS_STATUS`` sorted by role; ages measured at ``now`` (default: now)."""

    # -- log messages ----------------------------------------------------------------------

    @abc.abstractmethod
    def log_message(
        self,
        schema: str,
        *,
        level: str,
        message: str,
        source: str | None = None,
        ts: datetime | None = None,
    ) -> int:
        """Append an ERROR/ALERT line to ``schema.LOG_MESSAGES``; return its MESSAGE_ID."""

    @abc.abstractmethod
    def all_log_messages(
        self,
        limit: int = 100,
        *,
        schema: str | None = None,
        levels: tuple[str, ...] | None = None,
        since: datetime | None = None,
    ) -> list[LogMessage]:
        """Return the newest ``limit`` lines over all target schemas (or ``schema`` only),
        newest first; only of ``levels`` and logged at or after ``since`` when given.

        This is ``REDSYS.ALL_LOG_MESSAGES`` (``redctl log``, ``/api/log_messages``).
        """

    # -- database-side scripts ---------------------------------------------------------------

    def install_scripts(self, statements: list[str]) -> int:
        """Run the ``CREATE SCRIPT`` statements of ``redctl db init --with-scripts``.

        Only a database can hold scripts: the embedded dictionary raises DictionaryError.
        Returns how many statements ran.
        """
        raise DictionaryError(
            f"{type(self).__name__} cannot hold database scripts: they need dictionary = exasol "
            "(redctl db scripts prints them for a DBA)"
        )

    # -- resources -------------------------------------------------------------------------

    @abc.abstractmethod
    def close(self) -> None:
        """Release the backend's resources; idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
