"""What the status page's charts ask SQLite beyond the run logs' rows: runs and rows per hour,
each job's newest ended runs of a window, and the names of the jobs of a kind.

Apart from :mod:`~redpss.dictionary.sqlite.jobs` (a module of its own size), as
:mod:`redpss.dictionary.exasol.charts` is for Exasol; both backends' answers are held to the
old Python aggregation by tests/unit/test_dictionary_listings.py.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from redpss.dictionary.listing import EndedRun, ended_by_job
from redpss.dictionary.sqlite.core import SqliteCore, from_db, to_db

__all__ = ["SqliteCharts"]

_ENDED_SQL = (
    "WITH W AS MATERIALIZED (SELECT RUN_ID, JOB_NAME, STARTED_AT, ENDED_AT FROM ADM_JOB_LOG "
    "WHERE QUEUED_AT >= ? AND STARTED_AT IS NOT NULL AND ENDED_AT IS NOT NULL) "
    "SELECT JOB_NAME, N, RUN_ID, STARTED_AT, ENDED_AT FROM (SELECT W.*, "
    "ROW_NUMBER() OVER (PARTITION BY JOB_NAME ORDER BY RUN_ID DESC) AS K, "
    "COUNT(*) OVER (PARTITION BY JOB_NAME) AS N FROM W) WHERE K <= ?"
)


# With ``top`` (the chart): count first, then walk only the top jobs' newest runs backwards
# along (JOB_NAME, RUN_ID) from the window's first RUN_ID. A year's OPS log, its day of 8 640
# heartbeat runs: 25 ms for the window functions above, 5 + 0.4 ms this way.
_ENDED_COUNT_SQL = (
    "WITH W AS MATERIALIZED (SELECT JOB_NAME, RUN_ID FROM ADM_JOB_LOG "
    "WHERE QUEUED_AT >= ? AND STARTED_AT IS NOT NULL AND ENDED_AT IS NOT NULL) "
    "SELECT JOB_NAME, COUNT(*), MIN(RUN_ID) FROM W GROUP BY JOB_NAME"
)
_ENDED_OF_JOB_SQL = (
    "SELECT RUN_ID, STARTED_AT, ENDED_AT FROM ADM_JOB_LOG WHERE JOB_NAME = ? AND RUN_ID >= ? "
    "AND QUEUED_AT >= ? AND STARTED_AT IS NOT NULL AND ENDED_AT IS NOT NULL "
    "ORDER BY RUN_ID DESC LIMIT ?"
)


class SqliteCharts(SqliteCore):
    """:meth:`runs_by_hour`, :meth:`rows_by_hour`, :meth:`ended_runs` and :meth:`job_names` of
    the jobs area."""

    def runs_by_hour(self, since: datetime) -> dict[tuple[datetime, str], int]:
        """Counted per schema file by SQLite over the QUEUED_AT index's range; a stored time
        is ISO text in UTC, so its first 13 characters are its hour."""
        return self._by_hour(
            "SELECT substr(QUEUED_AT, 1, 13), STATE, COUNT(*) FROM ADM_JOB_LOG "
            "WHERE QUEUED_AT >= ? GROUP BY 1, 2",
            since,
        )

    def rows_by_hour(self, since: datetime) -> dict[tuple[datetime, str], int]:
        """Summed per schema file by SQLite (see :meth:`runs_by_hour`)."""
        return self._by_hour(
            "SELECT substr(COALESCE(ENDED_AT, STARTED_AT, QUEUED_AT), 1, 13), JOB_NAME, "
            "SUM(ROW_COUNT) FROM ADM_JOB_LOG WHERE QUEUED_AT >= ? AND ROW_COUNT <> 0 "
            "GROUP BY 1, 2",
            since,
        )

    def _by_hour(self, sql: str, since: datetime) -> dict[tuple[datetime, str], int]:
        found: dict[tuple[datetime, str], int] = defaultdict(int)
        for s in self.schemas():
            if not self._schema_path(s).exists():
                continue
            with self._connect(self._schema_path(s)) as conn:
                for hour, key, n in conn.execute(sql, (to_db(since),)):
                    at = datetime.strptime(hour, "%Y-%m-%d %H").replace(tzinfo=UTC)
                    found[at, key] += int(n)
        return dict(found)

    def ended_runs(
        self, since: datetime, per_job: int, top: int | None = None
    ) -> dict[str, tuple[int, list[EndedRun]]]:
        """Cut per job by SQLite. With ``top`` (the chart): each file counts its jobs' runs of
        the window, and only the ``top`` jobs over all files have their newest runs read,
        backwards along (JOB_NAME, RUN_ID) from the window's first RUN_ID. Without: ROW_NUMBER
        over the runs of the window. The window is materialized first either way: without it
        SQLite walks the whole log along (JOB_NAME, RUN_ID) (240 ms on a year's OPS log)
        instead of the QUEUED_AT index's range."""
        paths = {s: self._schema_path(s) for s in self.schemas()}
        paths = {s: path for s, path in paths.items() if path.exists()}
        rows: list[tuple[str, str, Any, Any, Any, Any]] = []
        if top is None:
            for s, path in paths.items():
                with self._connect(path) as conn:
                    found = conn.execute(_ENDED_SQL, (to_db(since), per_job)).fetchall()
                rows.extend((s, *r) for r in found)
            return ended_by_job(rows, per_job, top, from_db)
        counts: dict[str, list[tuple[str, int, int]]] = {}
        for s, path in paths.items():
            with self._connect(path) as conn:
                counts[s] = conn.execute(_ENDED_COUNT_SQL, (to_db(since),)).fetchall()
        total: dict[str, int] = {}
        for found in counts.values():
            for name, n, _ in found:
                total[name] = total.get(name, 0) + n
        chosen = set(sorted(total, key=lambda name: (-total[name], name))[:top])
        for s, found in counts.items():
            mine = [(name, n, first) for name, n, first in found if name in chosen]
            if not mine:
                continue
            with self._connect(paths[s]) as conn:
                for name, n, first in mine:
                    runs = conn.execute(_ENDED_OF_JOB_SQL, (name, first, to_db(since), per_job))
                    rows.extend((s, name, n, *r) for r in runs)
        return ended_by_job(rows, per_job, top, from_db)

    def job_names(self, kind: str | None = None) -> list[str]:
        """One column of ADM_JOBS (the LOAD jobs of a chart: not 10 000 definitions)."""
        with self._connect(self._redsys) as conn:
            if kind is None:
                rows = conn.execute("SELECT JOB_NAME FROM ADM_JOBS ORDER BY JOB_NAME")
            else:
                rows = conn.execute(
                    "SELECT JOB_NAME FROM ADM_JOBS WHERE JOB_KIND = ? ORDER BY JOB_NAME", (kind,)
                )
            return [r[0] for r in rows]
