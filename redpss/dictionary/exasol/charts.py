"""What the status page's charts ask Exasol beyond the run logs' rows: each job's newest ended
runs of a window, cut per job by the database, and the names of the jobs of a kind.

Apart from :mod:`~redpss.dictionary.exasol.jobs` (a module of its own size); the same answers
as the SQLite backend's, checked against each other by tests/unit/test_dictionary_year.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from redpss.dictionary.exasol.core import ExasolCore
from redpss.dictionary.exasol.session import Tx
from redpss.dictionary.exasol.sqltext import from_db, literal
from redpss.dictionary.jobs import RUN_ID_SLACK, run_id_floor
from redpss.dictionary.listing import EndedRun, ended_by_job

__all__ = ["ExasolCharts"]

ENDED_SQL = (
    "SELECT JOB_NAME, NUM_RUNS, RUN_ID, STARTED_AT, ENDED_AT FROM (SELECT JOB_NAME, RUN_ID, "
    "STARTED_AT, ENDED_AT, ROW_NUMBER() OVER (PARTITION BY JOB_NAME ORDER BY RUN_ID DESC) AS RN, "
    "COUNT(*) OVER (PARTITION BY JOB_NAME) AS NUM_RUNS FROM {schema!q}.ADM_JOB_LOG "
    "WHERE {where!r}) WHERE RN <= {limit}"
)
JOB_NAMES_SQL = "SELECT JOB_NAME FROM REDSYS.ADM_JOBS WHERE {where!r} ORDER BY JOB_NAME"


class ExasolCharts(ExasolCore):
    """:meth:`ended_runs` and :meth:`job_names` of the jobs area."""

    def ended_runs(
        self, since: datetime, per_job: int, top: int | None = None
    ) -> dict[str, tuple[int, list[EndedRun]]]:
        """Cut per job by Exasol (ROW_NUMBER), the range also as a RUN_ID floor."""
        schemas = self.schemas()

        def unit(tx: Tx) -> list[tuple[str, str, Any, Any, Any, Any]]:
            where = (
                f"RUN_ID >= {run_id_floor(since - RUN_ID_SLACK)} "
                f"AND QUEUED_AT >= {tx.literal(since)} "
                "AND STARTED_AT IS NOT NULL AND ENDED_AT IS NOT NULL"
            )
            return [
                (s, str(n), c, r, b, e)
                for s in schemas
                for n, c, r, b, e in tx.rows(ENDED_SQL, schema=s, where=where, limit=int(per_job))
            ]

        rows = self.tx(unit, what="reading the newest ended runs")
        return ended_by_job(rows, per_job, top, from_db)

    def job_names(self, kind: str | None = None) -> list[str]:
        """One column of ADM_JOBS, filtered by Exasol."""
        where = "1 = 1" if kind is None else f"JOB_KIND = {literal(kind)}"

        def unit(tx: Tx) -> list[str]:
            return [str(r[0]) for r in tx.rows(JOB_NAMES_SQL, where=where)]

        return self.tx(unit, what="reading job names")
