"""The purge on Exasol: batches bounded by time, each one short transaction.

A batch first finds the time of the ``n``-th oldest row past the moment (a sorted read of
one column), then deletes up to that time in the same transaction: rows sharing that time go
with it, so a batch can be a little larger than ``n``. Exasol marks deleted rows and
reorganises a table by itself once a quarter of it is marked (Exasol's "Automation" page), so
there is nothing to give back afterwards. The rows of deleted jobs in ``ADM_JOB_STATUS`` are
few and go in one statement.
"""

from __future__ import annotations

from datetime import datetime

from redpss.dictionary.columns import REDSYS
from redpss.dictionary.exasol.core import ExasolCore
from redpss.dictionary.exasol.session import Tx
from redpss.dictionary.exasol.sqltext import from_db, ident
from redpss.dictionary.jobs import FINAL_STATES
from redpss.dictionary.purge import KINDS, PURGE_TABLES, PurgeStore, PurgeTable, PurgeTarget
from redpss.errors import DictionaryError

__all__ = ["ExasolPurge"]

PURGE_COUNT_SQL = "SELECT COUNT(*) FROM {schema!q}.{table!q} WHERE {where!r}"
PURGE_BOUND_SQL = (
    "SELECT MAX({time!r}) FROM (SELECT {time!r} FROM {schema!q}.{table!q} WHERE {where!r} "
    "ORDER BY {time!r} LIMIT {limit})"
)
PURGE_DELETE_SQL = "DELETE FROM {schema!q}.{table!q} WHERE {where!r} AND {time!r} <= {bound!r}"
PURGE_ALL_SQL = "DELETE FROM {schema!q}.{table!q} WHERE {where!r}"
VERSIONS_SQL = (
    "SELECT SCHEMA_NAME, MAX(VERSION) FROM REDSYS.ADM_VERSION_HISTORY GROUP BY SCHEMA_NAME"
)


def _where(tx: Tx, spec: PurgeTable, before: datetime, keep: frozenset[str]) -> str:
    """The rule of a table as SQL: older than ``before``, and what must stay."""
    time = ident(spec.time_column)
    older = f"{time} < {tx.literal(before)}"
    if spec.undefined_jobs_only:
        older = f"({time} IS NULL OR {older})"
    where = [older]
    if spec.ended_runs_only:
        where.append(f"{ident('STATE')} IN ({tx.literals(FINAL_STATES)})")
    if spec.keep_claims and keep:
        where.append(f"CLAIM_ID NOT IN ({tx.literals(sorted(keep))})")
    if spec.keep_newest:
        where.append(f"CHANGE_ID < (SELECT MAX(CHANGE_ID) FROM {REDSYS}.{ident(spec.table)})")
    if spec.undefined_jobs_only:
        where.append(f"JOB_NAME NOT IN (SELECT JOB_NAME FROM {REDSYS}.ADM_JOBS)")
    return " AND ".join(where)


class ExasolPurge(ExasolCore, PurgeStore):
    """The purge's area of the Exasol dictionary."""

    def purge_targets(self, kind: str) -> list[PurgeTarget]:
        """The tables of ``kind`` in REDSYS or in every target schema that has them."""
        if kind not in KINDS:
            raise DictionaryError(f"unknown purge kind {kind!r}; expected one of {KINDS}")

        def unit(tx: Tx) -> dict[str, int]:
            return {str(s): int(v) for s, v in tx.rows(VERSIONS_SQL)}

        versions = self.tx(unit, what="reading the schema versions")
        found: list[PurgeTarget] = []
        for spec in PURGE_TABLES:
            if spec.kind != kind:
                continue
            schemas = [REDSYS] if spec.scope == REDSYS else sorted(set(versions) - {REDSYS})
            found.extend(PurgeTarget(s, spec) for s in schemas if versions.get(s, 0) >= spec.since)
        return found

    def count_purgeable(
        self, target: PurgeTarget, before: datetime, *, keep: frozenset[str] = frozenset()
    ) -> int:
        """Rows of ``target`` older than ``before`` that a purge would delete."""

        def unit(tx: Tx) -> int:
            where = _where(tx, target.spec, before, keep)
            table = target.spec.table
            return int(tx.value(PURGE_COUNT_SQL, schema=target.schema, table=table, where=where))

        return self.tx(unit, what=f"counting what the purge of {target.name} would delete")

    def purge_batch(
        self,
        target: PurgeTarget,
        before: datetime,
        *,
        limit: int,
        keep: frozenset[str] = frozenset(),
    ) -> int:
        """Delete the oldest rows of ``target`` up to the time of the ``limit``-th."""
        spec = target.spec

        def unit(tx: Tx) -> int:
            where = _where(tx, spec, before, keep)
            names = {"schema": target.schema, "table": spec.table, "where": where}
            if spec.undefined_jobs_only:
                return tx.execute(PURGE_ALL_SQL, **names)
            time = ident(spec.time_column)
            bound = tx.value(PURGE_BOUND_SQL, time=time, limit=int(limit), **names)
            if bound is None:
                return 0
            bound_sql = tx.literal(from_db(bound))  # the session's text of a TIMESTAMP
            return tx.execute(PURGE_DELETE_SQL, time=time, bound=bound_sql, **names)

        return self.tx(unit, what=f"purging {target.name}")
