"""Purging what grows: the rows of each kind past its retention, a small batch at a time.

What each kind is and which tables hold it is data here (:data:`PURGE_TABLES`); each backend
writes the SQL (``sqlite/purge.py``, ``exasol/purge.py``). The policy — how long each kind is
kept, when the purge runs, how big a batch may be — is :mod:`redpss.retention`'s.

A batch deletes the oldest rows of one table (of one target schema) past a moment, in one
short write transaction, so that other writers wait for it no longer than a heartbeat would.
What must never go is written into the rule of each table: a run that has not ended, the
ledger row of a claim still in ``work/`` (recovery needs it to archive, not reload, the file),
the newest row of the definitions' change log (it carries the stamp).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime

from redpss.dictionary.objects import Scope

__all__ = ["KINDS", "PURGE_TABLES", "PurgeStore", "PurgeTable", "PurgeTarget"]


@dataclass(frozen=True)
class PurgeTable:
    """One table of a kind: its age column and what of it must stay."""

    kind: str
    table: str
    scope: Scope
    time_column: str
    ended_runs_only: bool = False  # a QUEUED or RUNNING run stays, however old
    keep_claims: bool = False  # the ledger rows of claims still in work/ stay
    keep_newest: bool = False  # the newest row stays (the change log's stamp)
    undefined_jobs_only: bool = False  # only rows of jobs no longer defined
    since: int = 1  # the dictionary version that created the table


PURGE_TABLES: tuple[PurgeTable, ...] = (
    PurgeTable("runs", "ADM_JOB_LOG", "TARGET", "QUEUED_AT", ended_runs_only=True),
    PurgeTable("watcher_runs", "ADM_WATCHER_LOG", "TARGET", "QUEUED_AT", ended_runs_only=True),
    PurgeTable("jmon_stats", "ADM_JMON_LOAD", "REDSYS", "SAMPLE_AT"),
    PurgeTable("jmon_stats", "ADM_JMON_JOBLOG", "REDSYS", "SAMPLE_AT"),
    PurgeTable("log_messages", "LOG_MESSAGES", "TARGET", "LOG_TS"),
    PurgeTable("load_ledger", "ADM_LOAD_LOG", "TARGET", "LOADED_AT", keep_claims=True, since=2),
    # the status row of a job that was deleted, once its last run is past the runs' retention
    PurgeTable(
        "runs", "ADM_JOB_STATUS", "REDSYS", "LAST_SEEN_AT", undefined_jobs_only=True, since=6
    ),
    PurgeTable("definition_log", "ADM_DEFINITION_LOG", "REDSYS", "CHANGED_AT", keep_newest=True,
               since=7),
)  # fmt: skip
"""Every table the purge thins out, by kind."""

KINDS: tuple[str, ...] = tuple(dict.fromkeys(t.kind for t in PURGE_TABLES))
"""The kinds, in the order the purge takes them."""


@dataclass(frozen=True)
class PurgeTarget:
    """One table of one schema (REDSYS or a target schema) that exists in the dictionary."""

    schema: str
    spec: PurgeTable

    @property
    def name(self) -> str:
        """``SCHEMA.TABLE``."""
        return f"{self.schema}.{self.spec.table}"


class PurgeStore(abc.ABC):
    """The purge's area of the dictionary."""

    @abc.abstractmethod
    def purge_targets(self, kind: str) -> list[PurgeTarget]:
        """The tables of ``kind`` that exist (one per target schema for a per-schema kind)."""

    @abc.abstractmethod
    def count_purgeable(
        self, target: PurgeTarget, before: datetime, *, keep: frozenset[str] = frozenset()
    ) -> int:
        """How many rows of ``target`` a purge of everything older than ``before`` would
        delete (``keep``: claim ids whose ledger rows stay)."""

    @abc.abstractmethod
    def purge_batch(
        self,
        target: PurgeTarget,
        before: datetime,
        *,
        limit: int,
        keep: frozenset[str] = frozenset(),
    ) -> int:
        """Delete the oldest rows of ``target`` older than ``before`` (about ``limit``; more
        only where rows share one time) in one transaction; return how many went."""

    def storage_bytes(self) -> int | None:
        """The bytes the dictionary takes on disk (None: the backend cannot say)."""
        return None

    def compact(self, *, pages: int) -> int:
        """Give at most ``pages`` pages of free space back to the file system, in one short
        transaction per file; return the bytes given back (0: nothing to do, or the backend
        does it by itself)."""
        return 0

    def checkpoint(self) -> None:
        """After a purge: write back what the purge left in logs, refresh the planner's
        statistics (SQLite: ``wal_checkpoint(TRUNCATE)``, ``optimize``)."""
        return None

    def compaction_blocked(self) -> list[str]:
        """Files whose free space only a full rewrite gives back (SQLite files made before
        version 7, without incremental vacuum): what ``redctl db purge --vacuum`` is for."""
        return []

    def vacuum(self) -> int:
        """Rewrite every file whole (SQLite ``VACUUM``, switching it to incremental vacuum);
        return the bytes given back. Holds each file's write lock while it runs."""
        return 0
