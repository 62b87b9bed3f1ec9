"""The embedded dictionary: SQLite, one database file per schema, one mixin per area.

``core`` holds files, connections and migrations; every other module of this package adds the
queries of one area (role status and log messages, jobs …) as a mixin on top of it, and
:class:`SqliteDictionary` composes them. This is the only package with SQLite SQL in it.
"""

from __future__ import annotations

from redpss.dictionary.base import check_schema_name
from redpss.dictionary.sqlite.core import SqliteCore, from_db, to_db
from redpss.dictionary.sqlite.export import SqliteExport
from redpss.dictionary.sqlite.jobs import SqliteJobs
from redpss.dictionary.sqlite.jobstatus import SqliteJobStatus
from redpss.dictionary.sqlite.landing import SqliteLanding
from redpss.dictionary.sqlite.purge import SqlitePurge
from redpss.dictionary.sqlite.status import SqliteStatus

__all__ = ["SqliteCore", "SqliteDictionary", "check_schema_name", "from_db", "to_db"]


class SqliteDictionary(
    SqliteStatus, SqliteJobs, SqliteJobStatus, SqliteLanding, SqliteExport, SqlitePurge
):
    """The dictionary in SQLite files under ``db_dir`` (see :mod:`.core`)."""
