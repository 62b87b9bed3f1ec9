"""What the dictionary keeps, and the purge of the rest, in batches no writer waits on.

Every kind that grows has a retention in days (``[redsys] *_retention`` in red_params.conf,
docs/operations.md "Retention"): job runs, watcher fires, jmon's statistics, LOG_MESSAGES, the
load ledger; the change log of the definitions keeps a day. jmon purges once a day at
``dictionary_purge_time`` (UTC; :class:`NightlyPurge`); ``redctl db purge`` does it now, or
with ``--dry-run`` says what would go (:func:`purge_now`).

A purge deletes the oldest rows of one table at a time in batches of one short transaction
each. The batch size follows the time a batch took: it doubles while a transaction ends within
a quarter of :data:`LOCK_BUDGET` and halves when one takes more than half of it, so a writer
(sched's run log, a heartbeat, a load) waits at most about that long; between two batches the
purge rests as long as the batch took, so it never holds the dictionary more than half of the
time. After the rows, the files give their free pages back in steps of the same kind (SQLite's
incremental vacuum). What must stay is the dictionary's rule (:mod:`redpss.dictionary.purge`):
runs that have not ended, the ledger rows of claims still in ``work/``, the newest change.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redpss.config import Config
from redpss.dictionary import Dictionary
from redpss.dictionary.purge import KINDS, PurgeTarget
from redpss.landing.lifecycle import parse_work_name

__all__ = [
    "DEFINITION_LOG_DAYS",
    "LOCK_BUDGET",
    "NightlyPurge",
    "PurgeReport",
    "Purger",
    "Retention",
    "TableReport",
    "claims_in_work",
]

log = logging.getLogger(__name__)

LOCK_BUDGET = 0.1
"""Seconds a purge transaction may hold the dictionary's write lock (the aim; see above)."""
DEFINITION_LOG_DAYS = 1
"""Days the change log of the definitions is kept: jmon and sched look every few seconds."""
FIRST_BATCH = 500
MIN_BATCH, MAX_BATCH = 20, 50_000
FIRST_PAGES = 256
MIN_REST = 0.01


@dataclass(frozen=True)
class Retention:
    """Days each kind is kept, and when jmon purges."""

    days: dict[str, int]
    purge_at: tuple[int, int] = (2, 30)

    @classmethod
    def from_config(cls, config: Config) -> Retention:
        """The retention red_params.conf sets (its defaults when it says nothing)."""
        s = config.redsys
        hour, minute = (int(p) for p in s.dictionary_purge_time.split(":"))
        return cls(
            {
                "runs": s.runs_retention,
                "watcher_runs": s.watcher_runs_retention,
                "jmon_stats": s.jmon_stats_retention,
                "log_messages": s.log_messages_retention,
                "load_ledger": s.load_ledger_retention,
                "definition_log": DEFINITION_LOG_DAYS,
            },
            (hour, minute),
        )

    def cutoffs(self, now: datetime) -> dict[str, datetime]:
        """The moment before which each kind goes."""
        return {kind: now - timedelta(days=self.days[kind]) for kind in KINDS}

    def next_purge(self, now: datetime) -> datetime:
        """The next ``dictionary_purge_time`` after ``now``."""
        hour, minute = self.purge_at
        at = now.astimezone(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
        return at if at > now else at + timedelta(days=1)


def claims_in_work(data_dir: Path) -> frozenset[str]:
    """The claim ids of the files in ``data/work``: their ledger rows must stay (recovery
    archives a claim whose ledger row it finds, and would load it again without one)."""
    try:
        names = os.listdir(data_dir / "work")
    except FileNotFoundError:
        return frozenset()
    return frozenset(p[0] for p in map(parse_work_name, names) if p is not None)


@dataclass
class TableReport:
    """What the purge did (or would do) to one table."""

    kind: str
    table: str
    before: datetime
    rows: int = 0
    batches: int = 0
    longest: float = 0.0  # seconds of the longest transaction


@dataclass
class PurgeReport:
    """What a purge did, or would do (``dry_run``)."""

    dry_run: bool
    tables: list[TableReport] = field(default_factory=list)
    seconds: float = 0.0
    bytes_before: int | None = None
    bytes_after: int | None = None
    compacted: int = 0
    blocked: list[str] = field(default_factory=list)
    stopped: bool = False

    @property
    def rows(self) -> int:
        """Rows deleted (or to delete) over every table."""
        return sum(t.rows for t in self.tables)

    @property
    def longest(self) -> float:
        """Seconds of the longest transaction."""
        return max((t.longest for t in self.tables), default=0.0)


class _Pace:
    """The size of the next batch and the rest after it, from the time the last one took."""

    def __init__(self, first: int, low: int, high: int) -> None:
        self.size, self.low, self.high = first, low, high

    def took(self, seconds: float) -> float:
        """Adapt to a batch that took ``seconds``; return how long to rest."""
        if seconds > LOCK_BUDGET / 2:
            self.size = max(self.low, self.size // 2)
        elif seconds < LOCK_BUDGET / 4:
            self.size = min(self.high, self.size * 2)
        return max(seconds, MIN_REST)


class Purger:
    """One purge of a dictionary to a retention."""

    def __init__(
        self,
        dictionary: Dictionary,
        retention: Retention,
        *,
        keep: Callable[[], frozenset[str]] = frozenset,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dictionary = dictionary
        self.retention = retention
        self.keep = keep
        self.stop = stop or threading.Event()
        self.clock = clock

    def _targets(self, now: datetime) -> list[tuple[PurgeTarget, datetime]]:
        cutoffs = self.retention.cutoffs(now)
        return [(t, cutoffs[k]) for k in KINDS for t in self.dictionary.purge_targets(k)]

    def plan(self, now: datetime) -> PurgeReport:
        """What a purge at ``now`` would delete, table by table (nothing changes)."""
        report = PurgeReport(dry_run=True, bytes_before=self.dictionary.storage_bytes())
        keep = self.keep()
        for target, before in self._targets(now):
            rows = self.dictionary.count_purgeable(target, before, keep=keep)
            report.tables.append(TableReport(target.spec.kind, target.name, before, rows))
        report.blocked = self.dictionary.compaction_blocked()
        return report

    def run(self, now: datetime) -> PurgeReport:
        """Purge every kind to its retention, then give the free pages back."""
        started = self.clock()
        d = self.dictionary
        report = PurgeReport(dry_run=False, bytes_before=d.storage_bytes())
        for target, before in self._targets(now):
            table = TableReport(target.spec.kind, target.name, before)
            report.tables.append(table)
            self._purge_table(target, table)
            if self.stop.is_set():
                report.stopped = True
                break
        if not report.stopped:
            report.compacted = self._compact()
            d.checkpoint()
        report.blocked = d.compaction_blocked()
        report.bytes_after = d.storage_bytes()
        report.seconds = self.clock() - started
        return report

    def _purge_table(self, target: PurgeTarget, table: TableReport) -> None:
        pace = _Pace(FIRST_BATCH, MIN_BATCH, MAX_BATCH)
        while not self.stop.is_set():
            keep = self.keep() if target.spec.keep_claims else frozenset()
            t0 = self.clock()
            deleted = self.dictionary.purge_batch(target, table.before, limit=pace.size, keep=keep)
            took = self.clock() - t0
            table.rows += deleted
            table.batches += 1
            table.longest = max(table.longest, took)
            if deleted < pace.size:
                return
            self.stop.wait(pace.took(took))

    def _compact(self) -> int:
        pace = _Pace(FIRST_PAGES, 16, 65_536)
        total = 0
        while not self.stop.is_set():
            t0 = self.clock()
            freed = self.dictionary.compact(pages=pace.size)
            if not freed:
                return total
            total += freed
            self.stop.wait(pace.took(self.clock() - t0))
        return total


class NightlyPurge:
    """jmon's purge: once a day at ``dictionary_purge_time``, in a thread of its own."""

    def __init__(
        self,
        dictionary: Dictionary,
        retention: Retention,
        *,
        data_dir: Path,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.retention = retention
        self.now = now
        self.stop_event = threading.Event()
        self.purger = Purger(
            dictionary, retention, keep=lambda: claims_in_work(data_dir), stop=self.stop_event
        )
        self.thread = threading.Thread(target=self._loop, name="dictionary purge", daemon=True)
        self.last: PurgeReport | None = None

    def start(self) -> None:
        """Start waiting for the purge time."""
        self.thread.start()

    def stop(self) -> None:
        """Stop waiting (a purge under way stops after its current batch); idempotent."""
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            now = self.now()
            due = self.retention.next_purge(now)
            if self.stop_event.wait((due - now).total_seconds()):
                return
            try:
                self.last = report = self.purger.run(self.now())
            except Exception:  # the dictionary away, a bug: tomorrow again, said in the log
                log.exception("role=jmon dictionary purge failed")
                continue
            log.info(
                "role=jmon dictionary purge: %d rows in %.1f s (%s), longest transaction %.0f ms, "
                "%s bytes given back",
                report.rows,
                report.seconds,
                ", ".join(f"{t.table} {t.rows}" for t in report.tables if t.rows) or "nothing old",
                report.longest * 1000,
                report.compacted,
            )


def purge_now(
    dictionary: Dictionary, config: Config, data_dir: Path, *, dry_run: bool
) -> PurgeReport:
    """``redctl db purge [--dry-run]``: the purge to the configured retention, now."""
    purger = Purger(
        dictionary, Retention.from_config(config), keep=lambda: claims_in_work(data_dir)
    )
    now = datetime.now(UTC)
    return purger.plan(now) if dry_run else purger.run(now)
