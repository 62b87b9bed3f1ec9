"""The purge in SQLite: batches of the oldest rows by rowid, pages given back in steps.

A batch is ``DELETE … WHERE rowid IN (SELECT rowid … ORDER BY <time> LIMIT n)`` in one
``BEGIN IMMEDIATE`` transaction: the time column is indexed (version 7), so the batch reads
what it deletes and nothing else. Files made from version 7 on are in ``auto_vacuum =
INCREMENTAL`` mode: ``PRAGMA incremental_vacuum(n)`` moves n pages' worth from the end of the
file into free pages and cuts the file, a short write transaction per step. An older file
keeps its free pages for new rows (it does not grow) until ``VACUUM`` rewrites it once
(``redctl db purge --vacuum``).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from redpss.dictionary.columns import REDSYS
from redpss.dictionary.jobs import FINAL_STATES
from redpss.dictionary.purge import KINDS, PURGE_TABLES, PurgeStore, PurgeTable, PurgeTarget
from redpss.dictionary.sqlite.core import SqliteCore, to_db, writer_lock
from redpss.errors import DictionaryError

__all__ = ["SqlitePurge", "batch_sql"]

_INCREMENTAL = 2  # PRAGMA auto_vacuum


def _where(spec: PurgeTable) -> str:
    """The rule of a table: older than ``?`` (the first parameter), and what must stay."""
    time = f"COALESCE({spec.time_column}, '')" if spec.undefined_jobs_only else spec.time_column
    where = [f"{time} < ?"]
    if spec.ended_runs_only:
        # "+": not an index term — else SQLite walks (STATE, RUN_ID) for every final state and
        # sorts all of them by time for each batch (a year of runs: 55 rows a batch, 240 ms)
        where.append(f"+STATE IN ({', '.join(repr(s) for s in FINAL_STATES)})")
    if spec.keep_claims:
        where.append("CLAIM_ID NOT IN (SELECT value FROM json_each(?))")
    if spec.keep_newest:
        where.append(f"rowid < (SELECT MAX(rowid) FROM {spec.table})")
    if spec.undefined_jobs_only:
        where.append("JOB_NAME NOT IN (SELECT JOB_NAME FROM ADM_JOBS)")
    return " AND ".join(where)


def batch_sql(spec: PurgeTable) -> str:
    """One batch of the purge of ``spec``'s table: the ``LIMIT ?`` oldest rows to go."""
    order = "rowid" if spec.undefined_jobs_only else spec.time_column
    return (
        f"DELETE FROM {spec.table} WHERE rowid IN (SELECT rowid FROM {spec.table} "
        f"WHERE {_where(spec)} ORDER BY {order} LIMIT ?)"
    )


def _args(spec: PurgeTable, before: datetime, keep: frozenset[str]) -> tuple[Any, ...]:
    return (to_db(before), json.dumps(sorted(keep))) if spec.keep_claims else (to_db(before),)


class SqlitePurge(SqliteCore, PurgeStore):
    """The purge's area of the SQLite dictionary."""

    def _target_path(self, target: PurgeTarget) -> Path:
        return self._redsys if target.schema == REDSYS else self._schema_path(target.schema)

    def purge_targets(self, kind: str) -> list[PurgeTarget]:
        """The tables of ``kind`` in REDSYS.db or in every schema file that has them."""
        if kind not in KINDS:
            raise DictionaryError(f"unknown purge kind {kind!r}; expected one of {KINDS}")
        found: list[PurgeTarget] = []
        for spec in PURGE_TABLES:
            if spec.kind != kind:
                continue
            if spec.scope == REDSYS:
                if self.version() >= spec.since:
                    found.append(PurgeTarget(REDSYS, spec))
                continue
            found.extend(
                PurgeTarget(s, spec) for s in self.schemas() if self.schema_version(s) >= spec.since
            )
        return found

    def count_purgeable(
        self, target: PurgeTarget, before: datetime, *, keep: frozenset[str] = frozenset()
    ) -> int:
        """Rows of ``target`` older than ``before`` that a purge would delete."""
        spec = target.spec
        with self._connect(self._target_path(target)) as conn:
            row = conn.execute(
                f"SELECT COUNT(*) FROM {spec.table} WHERE {_where(spec)}",
                _args(spec, before, keep),
            ).fetchone()
        return int(row[0])

    def purge_batch(
        self,
        target: PurgeTarget,
        before: datetime,
        *,
        limit: int,
        keep: frozenset[str] = frozenset(),
    ) -> int:
        """Delete the ``limit`` oldest rows of ``target`` older than ``before``."""
        spec = target.spec
        with self._write(self._target_path(target)) as conn:
            cur = conn.execute(batch_sql(spec), (*_args(spec, before, keep), int(limit)))
            return int(cur.rowcount)

    def _files(self) -> list[Path]:
        return [self._redsys] + [self._schema_path(s) for s in self.schemas()]

    def storage_bytes(self) -> int:
        """The size of every file of the dictionary (the WAL files too)."""
        total = 0
        for path in self._files():
            for part in (path, path.with_name(path.name + "-wal")):
                with contextlib.suppress(FileNotFoundError):
                    total += part.stat().st_size
        return total

    def compact(self, *, pages: int) -> int:
        """One step of ``incremental_vacuum`` on each file that has free pages."""
        freed = 0
        for path in self._files():
            with self._connect(path) as conn:
                mode, free, size = (
                    conn.execute(f"PRAGMA {p}").fetchone()[0]
                    for p in ("auto_vacuum", "freelist_count", "page_size")
                )
            if mode != _INCREMENTAL or not free:
                continue
            # its own write transaction; executescript steps it to the end (sqlite3's execute
            # steps a PRAGMA once, and incremental_vacuum frees one page per step)
            with writer_lock(path), self._connect(path) as conn:
                conn.executescript(f"PRAGMA incremental_vacuum({int(pages)});")
                left = conn.execute("PRAGMA freelist_count").fetchone()[0]
            freed += max(free - left, 0) * size
        return freed

    def checkpoint(self) -> None:
        """Write the WAL back and cut it (a purge leaves much of it); a busy file is left to
        SQLite's own checkpoints."""
        for path in self._files():
            with self._connect(path) as conn:
                try:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                    conn.execute("PRAGMA optimize")
                except sqlite3.OperationalError:
                    pass

    def compaction_blocked(self) -> list[str]:
        """Files without incremental vacuum that hold free pages."""
        blocked = []
        for path in self._files():
            with self._connect(path) as conn:
                mode = conn.execute("PRAGMA auto_vacuum").fetchone()[0]
                free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            if mode != _INCREMENTAL and free:
                blocked.append(path.name)
        return blocked

    def vacuum(self) -> int:
        """``VACUUM`` every file into incremental-vacuum mode; return the bytes given back."""
        before = self.storage_bytes()
        for path in self._files():
            with self._connect(path) as conn:
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                conn.execute("VACUUM")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return max(before - self.storage_bytes(), 0)
