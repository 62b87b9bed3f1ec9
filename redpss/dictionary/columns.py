"""What the tables of the dictionary share: the values a column may take (states, kinds, pools),
the dictionary versions that added a column, and the columns many tables have (ids, timestamps,
host, pid, schema).

Apart from the tables (:mod:`redpss.dictionary.tables`, :mod:`redpss.dictionary.landing_tables`)
because the backends, the scheduler and the CLI check values against these words without needing
the whole model.
"""

from __future__ import annotations

from redpss.dictionary.objects import Column

__all__ = [
    "ACTIVE",
    "CHANGED",
    "CREATED",
    "DEFINITION_KINDS",
    "DESC",
    "DUPLICATE_POLICIES",
    "HOST",
    "ID",
    "JOB_KINDS",
    "JOB_STATUS_SINCE",
    "LOAD_FORMATS",
    "LOAD_MARKERS",
    "LOAD_METHODS",
    "LOAD_STATUSES",
    "LOG_LEVELS",
    "MISFIRE_POLICIES",
    "PID",
    "POOL",
    "POOLS",
    "PROBLEMS_SINCE",
    "REDSYS",
    "ROLE_STATES",
    "RUN_ID",
    "RUN_STATES",
    "RUN_TIMES",
    "SCHEDULE_TYPES",
    "SCHEMA",
    "STATE",
    "WATCHER_KINDS",
    "YEAR_SINCE",
    "timestamp",
]

REDSYS = "REDSYS"

PROBLEMS_SINCE = 5
"""The dictionary version that added ``ADM_PSS_STATUS.PROBLEMS`` (role health)."""
ROLE_STATES = ("STARTING", "RUNNING", "SUSPENDED", "STOPPING", "STOPPED", "FAILED", "EXITED")
RUN_STATES = ("QUEUED", "RUNNING", "OK", "FAILED", "TIMEOUT", "ABORTED", "SKIPPED", "KILLED")
JOB_STATUS_SINCE = 6
"""The migration that added ADM_JOB_STATUS, STA_JOB_STATUS and the run state KILLED."""
YEAR_SINCE = 7
"""The migration that fitted the dictionary to a year of operation: the indexes of what
operators ask (the last runs of a job, runs by state and time) and of the purge, and the
change log of the definitions (ADM_DEFINITION_LOG) that makes jmon's look O(changes)."""
DEFINITION_KINDS = ("JOB", "WATCHER")
JOB_KINDS = ("SQL", "CMD", "LOAD")
POOLS = ("default", "loader", "action")
SCHEDULE_TYPES = ("INTERVAL", "CRON", "NONE")
MISFIRE_POLICIES = ("RUN_ONCE", "SKIP")
WATCHER_KINDS = ("FILE", "SQL")
LOG_LEVELS = ("ERROR", "ALERT")
LOAD_FORMATS = ("CSV", "JSON", "PARQUET")
LOAD_MARKERS = ("NONE", ".done", ".ok")
DUPLICATE_POLICIES = ("SKIP", "LOAD", "ERROR")
LOAD_STATUSES = ("LOADED", "DUPLICATE")
LOAD_METHODS = ("TRANSPORT", "IMPORT")


def timestamp(name: str, comment: str, *, nullable: bool = True) -> Column:
    """A TIMESTAMP column (always UTC)."""
    return Column(name, "TIMESTAMP", nullable, comment)


ID = "DECIMAL(18,0)"
RUN_ID = Column("RUN_ID", ID, False, "run id, unique per instance (given by sched)")
HOST = Column("HOST", "VARCHAR(255)", True, "host the process ran on")
PID = Column("PID", "DECIMAL(10,0)", True, "operating system process id")
SCHEMA = Column("SCHEMA_NAME", "VARCHAR(128)", False, "target schema")
CREATED = timestamp("CREATED_AT", "when the row was created (UTC)", nullable=False)
CHANGED = timestamp("CHANGED_AT", "when the row was last changed (UTC)", nullable=False)
ACTIVE = Column("ACTIVE", "BOOLEAN", False, "scheduled only when true", "TRUE")
DESC = Column("DESCRIPTION", "VARCHAR(2000)", True, "free text for operators")
STATE = Column("STATE", "VARCHAR(16)", False, "run state", values=RUN_STATES)
POOL = Column("POOL_NAME", "VARCHAR(16)", False, "worker pool", values=POOLS)
RUN_TIMES = (
    timestamp("QUEUED_AT", "when sched queued the run", nullable=False),
    timestamp("STARTED_AT", "when a worker started it"),
    timestamp("ENDED_AT", "when it ended (any final state)"),
)
