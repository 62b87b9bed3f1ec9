"""The dictionary model as data: every object, its columns, and the versioned migrations.

Backends generate their DDL from this model, so the SQLite and the Exasol dictionary cannot
drift apart. Column types are generic (``VARCHAR(n)``, ``DECIMAL(p,s)``, ``DOUBLE``,
``TIMESTAMP``, ``BOOLEAN``); each backend maps them (see :func:`parse_type`). Timestamps are
always UTC.

A column carries ``since``: the migration version that added it. Creating a table at version
*v* uses the columns with ``since <= v``; migration *v* adds the columns with ``since == v`` to
tables that already existed. Migrations only add (objects, columns); they never drop or
rename, so an older redpss keeps working against a newer dictionary of the same major design.

The public RED documents give no column lists for these objects: the columns are our design
(``docs/dictionary.md``).
"""

from __future__ import annotations

from redpss.dictionary.objects import Column, Index, Migration, Model, Table, View
from redpss.dictionary.objects import GenericType as GenericType  # re-exported
from redpss.dictionary.objects import Scope as Scope  # re-exported
from redpss.dictionary.objects import parse_type as parse_type  # re-exported

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


def _ts(name: str, comment: str, *, nullable: bool = True) -> Column:
    return Column(name, "TIMESTAMP", nullable, comment)


_ID = "DECIMAL(18,0)"
_RUN_ID = Column("RUN_ID", _ID, False, "run id, unique per instance (given by sched)")
_HOST = Column("HOST", "VARCHAR(255)", True, "host the process ran on")
_PID = Column("PID", "DECIMAL(10,0)", True, "operating system process id")
_SCHEMA = Column("SCHEMA_NAME", "VARCHAR(128)", False, "target schema")
_CREATED = _ts("CREATED_AT", "when the row was created (UTC)", nullable=False)
_CHANGED = _ts("CHANGED_AT", "when the row was last changed (UTC)", nullable=False)
_ACTIVE = Column("ACTIVE", "BOOLEAN", False, "scheduled only when true", "TRUE")
_DESC = Column("DESCRIPTION", "VARCHAR(2000)", True, "free text for operators")
_STATE = Column("STATE", "VARCHAR(16)", False, "run state", values=RUN_STATES)
_POOL = Column("POOL_NAME", "VARCHAR(16)", False, "worker pool", values=POOLS)
_RUN_TIMES = (
    _ts("QUEUED_AT", "when sched queued the run", nullable=False),
    _ts("STARTED_AT", "when a worker started it"),
    _ts("ENDED_AT", "when it ended (any final state)"),
)

TABLES: tuple[Table, ...] = (
    Table(
        "ADM_VERSION_HISTORY",
        "REDSYS",
        "installed dictionary versions, one row per schema and applied migration",
        (
            Column("SCHEMA_NAME", "VARCHAR(128)", False, "REDSYS or the target schema"),
            Column("VERSION", "DECIMAL(9,0)", False, "migration version"),
            Column("DESCRIPTION", "VARCHAR(2000)", False, "what the migration did"),
            _ts("APPLIED_AT", "when it was applied", nullable=False),
            Column("APPLIED_BY", "VARCHAR(64)", True, "redpss version that applied it"),
        ),
        primary_key=("SCHEMA_NAME", "VERSION"),
        writers="redctl db init|upgrade",
    ),
    Table(
        "ADM_JOBS",
        "REDSYS",
        "job definitions read by jmon",
        (
            Column("JOB_NAME", "VARCHAR(128)", False, "job name, unique"),
            _SCHEMA,
            Column("JOB_KIND", "VARCHAR(8)", False, "what the action is", values=JOB_KINDS),
            Column("ACTION_TEXT", "VARCHAR(2000000)", False, "statement, command or file set"),
            Column("POOL_NAME", "VARCHAR(16)", False, "worker pool", "'default'", POOLS),
            Column("SCHEDULE_TYPE", "VARCHAR(8)", False, "", "'NONE'", SCHEDULE_TYPES),
            Column("INTERVAL_SECONDS", "DECIMAL(18,0)", True, "for INTERVAL schedules"),
            Column("CRON_EXPR", "VARCHAR(200)", True, "for CRON schedules (5 fields, UTC)"),
            _ACTIVE,
            Column("TIMEOUT_SECONDS", "DECIMAL(18,0)", True, "a run is killed after this"),
            Column("MAX_PARALLEL", "DECIMAL(9,0)", False, "concurrent runs allowed", "1"),
            Column("MISFIRE_POLICY", "VARCHAR(8)", False, "", "'RUN_ONCE'", MISFIRE_POLICIES),
            _DESC,
            _CREATED,
            _CHANGED,
        ),
        primary_key=("JOB_NAME",),
        writers="operators (SQL, REST); read by jmon and sched",
    ),
    Table(
        "ADM_WATCHER",
        "REDSYS",
        "watcher definitions read by jmon",
        (
            Column("WATCHER_NAME", "VARCHAR(128)", False, "watcher name, unique"),
            _SCHEMA,
            Column("WATCHER_KIND", "VARCHAR(8)", False, "", values=WATCHER_KINDS),
            Column("WATCH_TEXT", "VARCHAR(2000000)", False, "file name pattern or SQL query"),
            Column("CHECK_INTERVAL_SECONDS", "DECIMAL(18,0)", False, "poll period", "60"),
            Column("EXECUTOR_JOB", "VARCHAR(128)", False, "ADM_JOBS.JOB_NAME run on a fire"),
            _ACTIVE,
            _DESC,
            _CREATED,
            _CHANGED,
        ),
        primary_key=("WATCHER_NAME",),
        writers="operators (SQL, REST); read by jmon",
    ),
    Table(
        "ADM_JMON_LOAD",
        "REDSYS",
        "pool statistics, one row per pool every 60 s",
        (
            _ts("SAMPLE_AT", "sample time", nullable=False),
            _POOL,
            Column("POOL_SIZE", "DECIMAL(9,0)", False, "configured workers"),
            Column("BUSY", "DECIMAL(9,0)", False, "workers running a job"),
            Column("QUEUED", "DECIMAL(9,0)", False, "runs waiting for a worker"),
            Column("RUNS_IN_PERIOD", "DECIMAL(18,0)", False, "runs ended since last sample"),
        ),
        primary_key=("SAMPLE_AT", "POOL_NAME"),
        writers="jmon",
    ),
    Table(
        "ADM_JMON_JOBLOG",
        "REDSYS",
        "per job schedule state, one row per job every 60 s",
        (
            _ts("SAMPLE_AT", "sample time", nullable=False),
            Column("JOB_NAME", "VARCHAR(128)", False, "job"),
            _ts("NEXT_RUN_AT", "next due time (NULL: not scheduled)"),
            _ts("LAST_RUN_AT", "start of the last run"),
            Column("LAST_STATE", "VARCHAR(16)", True, "state of the last run", values=RUN_STATES),
        ),
        primary_key=("SAMPLE_AT", "JOB_NAME"),
        writers="jmon",
    ),
    Table(
        "ADM_LOAD_LEDGER",
        "REDSYS",
        "every loaded file; a file (content) is loaded into a target once",
        (
            Column("CONTENT_SHA256", "VARCHAR(64)", False, "hex sha256 of the file content"),
            Column("FILE_NAME", "VARCHAR(1024)", False, "file name as it arrived"),
            Column("FILE_SIZE", "DECIMAL(18,0)", False, "bytes"),
            Column("TARGET", "VARCHAR(257)", False, "SCHEMA.TABLE loaded into"),
            _RUN_ID,
            _ts("LOADED_AT", "when the load committed", nullable=False),
        ),
        primary_key=("CONTENT_SHA256", "TARGET"),
        indexes=(("FILE_NAME",),),
        writers="sched (loader pool)",
    ),
    Table(
        "ADM_PSS_STATUS",
        "REDSYS",
        "one row per role: the heartbeat record",
        (
            Column("ROLE", "VARCHAR(32)", False, "role name"),
            Column("STATE", "VARCHAR(16)", False, "role state", values=ROLE_STATES),
            _PID,
            _HOST,
            _ts("STARTED_AT", "when this process registered"),
            _ts("HEARTBEAT_AT", "last heartbeat"),
            Column("HEARTBEAT_INTERVAL", "DOUBLE", False, "seconds between heartbeats"),
            Column("RESTARTS", "DECIMAL(9,0)", False, "unclean restarts since start", "0"),
            Column("LAST_EXIT", "VARCHAR(2000)", True, "how the previous process ended"),
            Column("VERSION", "VARCHAR(64)", True, "redpss version of the process"),
            Column("INFO", "VARCHAR(2000)", True, "free text, e.g. 'suspended by operator'"),
            Column(
                "PROBLEMS",
                "VARCHAR(2000)",
                True,
                "what the role reports wrong with itself ('; '-joined), e.g. a dead serve loop",
                since=PROBLEMS_SINCE,
            ),
        ),
        primary_key=("ROLE",),
        writers="every role (heartbeat); redctl start (reset)",
    ),
    Table(
        "ADM_JOB_LOG",
        "TARGET",
        "one row per job run",
        (
            _RUN_ID,
            Column("JOB_NAME", "VARCHAR(128)", False, "job"),
            _POOL,
            _STATE,
            *_RUN_TIMES,
            Column("ROW_COUNT", "DECIMAL(18,0)", True, "rows affected or loaded"),
            Column("MESSAGE", "VARCHAR(2000000)", True, "error text or output summary"),
            _HOST,
            _PID,
        ),
        primary_key=("RUN_ID",),
        indexes=(
            ("JOB_NAME", "QUEUED_AT"),
            Index(("JOB_NAME", "RUN_ID"), YEAR_SINCE),
            Index(("STATE", "RUN_ID"), YEAR_SINCE),
            Index(("QUEUED_AT",), YEAR_SINCE),
        ),
        writers="sched, jexec",
    ),
    Table(
        "ADM_WATCHER_LOG",
        "TARGET",
        "one row per watcher fire",
        (
            _RUN_ID,
            Column("WATCHER_NAME", "VARCHAR(128)", False, "watcher"),
            _POOL,
            _STATE,
            *_RUN_TIMES,
            Column("WATCH_KEY", "VARCHAR(2000)", True, "what fired: file name or result key"),
            Column("EXECUTOR_RUN_ID", _ID, True, "ADM_JOB_LOG.RUN_ID of the executor run"),
            Column("ROW_COUNT", "DECIMAL(18,0)", True, "rows affected or loaded"),
            Column("MESSAGE", "VARCHAR(2000000)", True, "error text or summary"),
            _HOST,
            _PID,
        ),
        primary_key=("RUN_ID",),
        indexes=(
            ("WATCHER_NAME", "QUEUED_AT"),
            Index(("WATCHER_NAME", "RUN_ID"), YEAR_SINCE),
            Index(("STATE", "RUN_ID"), YEAR_SINCE),
            Index(("QUEUED_AT",), YEAR_SINCE),
        ),
        writers="sched",
    ),
    Table(
        "ADM_WATCHER_EXEC_ERROR",
        "TARGET",
        "failing executor runs per watcher and key (we_list_error / we_reset_error)",
        (
            Column("WATCHER_NAME", "VARCHAR(128)", False, "watcher"),
            Column("WATCH_KEY", "VARCHAR(2000)", False, "file name or result key"),
            Column("ERROR_COUNT", "DECIMAL(9,0)", False, "failed runs for this key", "1"),
            _ts("FIRST_SEEN", "first failure", nullable=False),
            _ts("LAST_SEEN", "latest failure", nullable=False),
            Column("LAST_MESSAGE", "VARCHAR(2000000)", True, "error of the latest failure"),
        ),
        primary_key=("WATCHER_NAME", "WATCH_KEY"),
        writers="sched; cleared by we_reset_error",
    ),
    Table(
        "LOG_MESSAGES",
        "TARGET",
        "ERROR and ALERT lines of the schema's log buffers",
        (
            Column("MESSAGE_ID", _ID, False, "ascending id", identity=True),
            _ts("LOG_TS", "when the line was logged", nullable=False),
            Column("SCHEMA_NAME", "VARCHAR(128)", False, "schema that logged it"),
            Column("MSG_LEVEL", "VARCHAR(8)", False, "", values=LOG_LEVELS),
            Column("SOURCE", "VARCHAR(256)", True, "script, job or role that logged"),
            Column("MESSAGE", "VARCHAR(2000000)", False, "the line"),
        ),
        primary_key=("MESSAGE_ID",),
        indexes=(("LOG_TS",),),
        writers="dbls",
    ),
)

# -- version 2: the landing zone (loaders and the per-schema load ledger) ---------------------

_LOADER = Column("LOADER_NAME", "VARCHAR(128)", False, "loader name, unique")
LANDING_TABLES: tuple[Table, ...] = (
    Table(
        "ADM_LOADER",
        "REDSYS",
        "loader definitions: which files go into which table, and how to read them",
        (
            _LOADER,
            Column("FILE_PATTERN", "VARCHAR(2000)", False, "regex on the file name (search)"),
            Column("SCHEMA_NAME", "VARCHAR(128)", False, "target schema"),
            Column("TABLE_NAME", "VARCHAR(128)", False, "target table"),
            Column("FILE_FORMAT", "VARCHAR(8)", False, "", "'CSV'", LOAD_FORMATS),
            Column("FILE_ENCODING", "VARCHAR(32)", False, "CSV text encoding", "'utf-8'"),
            Column("COLUMN_SEPARATOR", "VARCHAR(4)", False, "CSV field separator", "','"),
            Column("QUOTE_CHAR", "VARCHAR(4)", True, "CSV quote; NULL: no quoting", "'\"'"),
            Column("HEADER", "BOOLEAN", False, "CSV: first line names the fields", "TRUE"),
            Column("NULL_STRING", "VARCHAR(64)", False, "CSV field text meaning NULL", "''"),
            Column("DATE_FORMAT", "VARCHAR(64)", False, "strptime format of DATE", "'%Y-%m-%d'"),
            Column(
                "TIMESTAMP_FORMAT",
                "VARCHAR(64)",
                False,
                "strptime format of TIMESTAMP; ISO 8601 when empty",
                "''",
            ),
            Column("FIXED_WIDTH", "BOOLEAN", False, "fixed-width fields (FBV_*)", "FALSE"),
            Column("MARKER", "VARCHAR(8)", False, "marker file required", "'NONE'", LOAD_MARKERS),
            Column(
                "DUPLICATE_POLICY",
                "VARCHAR(8)",
                False,
                "same content again",
                "'SKIP'",
                DUPLICATE_POLICIES,
            ),
            _ACTIVE,
            _DESC,
            _CREATED,
            _CHANGED,
            Column(
                "LOAD_METHOD",
                "VARCHAR(16)",
                False,
                "TRANSPORT: redpss sends the rows; IMPORT: Exasol reads the file from cfisrv",
                "'TRANSPORT'",
                LOAD_METHODS,
                since=4,
            ),
        ),
        primary_key=("LOADER_NAME",),
        writers="operators (redctl db apply, SQL, REST); read by sched",
    ),
    Table(
        "ADM_LOADER_COLUMN",
        "REDSYS",
        "the column mapping of a loader, one row per target column",
        (
            _LOADER,
            Column("COL_POS", "DECIMAL(9,0)", False, "target column position, 1.."),
            Column("COL_NAME", "VARCHAR(128)", False, "target column name"),
            Column("COL_DATA_TYPE", "VARCHAR(64)", False, "generic type, e.g. DECIMAL(18,2)"),
            Column("COL_SOURCE", "VARCHAR(2000)", True, "CSV header / JSON key / Parquet column"),
            Column("COL_SOURCE_POS", "DECIMAL(9,0)", True, "CSV field number, 1.."),
            Column("COL_FORMAT", "VARCHAR(64)", True, "strptime format overriding the loader's"),
            Column("COL_FBV_START", "DECIMAL(9,0)", True, "fixed width: first character, 1.."),
            Column("COL_FBV_SIZE", "DECIMAL(9,0)", True, "fixed width: characters"),
        ),
        primary_key=("LOADER_NAME", "COL_POS"),
        unique=(("LOADER_NAME", "COL_NAME"),),
        writers="operators, with ADM_LOADER",
    ),
    Table(
        "ADM_LOAD_LOG",
        "TARGET",
        "the load ledger of this schema: one row per claimed file that was loaded or skipped",
        (
            Column("CLAIM_ID", "VARCHAR(32)", False, "id of the claim (the name in work/)"),
            Column("CONTENT_SHA256", "VARCHAR(64)", False, "hex sha256 of the file content"),
            Column("FILE_NAME", "VARCHAR(1024)", False, "file name as it arrived"),
            Column("FILE_SIZE", "DECIMAL(18,0)", False, "bytes"),
            Column("TARGET", "VARCHAR(257)", False, "SCHEMA.TABLE loaded into"),
            Column("LOADER_NAME", "VARCHAR(128)", False, "loader"),
            Column("LOAD_STATUS", "VARCHAR(16)", False, "", values=LOAD_STATUSES),
            Column("ROW_COUNT", "DECIMAL(18,0)", False, "rows inserted"),
            _RUN_ID,
            _ts("LOADED_AT", "when the load committed", nullable=False),
        ),
        primary_key=("CLAIM_ID",),
        indexes=(
            ("CONTENT_SHA256", "TARGET"),
            ("FILE_NAME",),
            Index(("LOADED_AT",), YEAR_SINCE),
        ),
        writers="sched (loader pool), in the transaction of the rows",
    ),
)
TABLES = TABLES + LANDING_TABLES

OPS_TABLES: tuple[Table, ...] = (
    Table(
        "ADM_PSS_IDENTITY",
        "REDSYS",
        "the identity stamp of each instance on this dictionary: redctl preclone writes a new "
        "one; a clone from another database replaces it, which is how start knows one happened",
        (
            Column("INSTANCE_NAME", "VARCHAR(16)", False, "instance name (lower case)"),
            Column("STAMP", "VARCHAR(64)", False, "random stamp, also kept in tmp/preclone"),
            _ts("STAMPED_AT", "when preclone wrote it", nullable=False),
            _HOST,
            Column("REDPSS_VERSION", "VARCHAR(64)", True, "redpss version that wrote it"),
        ),
        primary_key=("INSTANCE_NAME",),
        writers="redctl preclone",
    ),
)
TABLES = TABLES + OPS_TABLES

# -- version 6: the status of every job (STA_JOB_STATUS) ---------------------------------------

JOB_STATUS_TABLES: tuple[Table, ...] = (
    Table(
        "ADM_JOB_STATUS",
        "REDSYS",
        "per job: its newest run (from sched) and its next run and definition check (from jmon)",
        (
            Column("JOB_NAME", "VARCHAR(128)", False, "job"),
            Column("LAST_RUN_ID", _ID, True, "the newest run that was not SKIPPED"),
            Column("LAST_STATE", "VARCHAR(16)", True, "its state", values=RUN_STATES),
            _ts("LAST_QUEUED_AT", "when it was queued"),
            _ts("LAST_STARTED_AT", "when it started"),
            _ts("LAST_ENDED_AT", "when it ended"),
            Column("LAST_MESSAGE", "VARCHAR(2000)", True, "its message (start of it)"),
            _ts("LAST_SEEN_AT", "newest QUEUED_AT of any run, SKIPPED ones too"),
            _ts("NEXT_RUN_AT", "next due time as jmon planned it (NULL: not scheduled)"),
            Column("DEFINITION_ERROR", "VARCHAR(2000)", True, "why jmon refuses the definition"),
            _ts("PLANNED_AT", "when jmon wrote NEXT_RUN_AT and DEFINITION_ERROR"),
        ),
        primary_key=("JOB_NAME",),
        writers="sched (run log writer), jmon (every sched_stats_interval and after a reload)",
    ),
)
TABLES = TABLES + JOB_STATUS_TABLES

# -- version 7: a year of operation (indexes, the change log of the definitions) -------------

YEAR_TABLES: tuple[Table, ...] = (
    Table(
        "ADM_DEFINITION_LOG",
        "REDSYS",
        "one row per changed job or watcher definition, written by triggers on SQLite (any "
        "writer, plain SQL too): jmon and sched read the changes since their last look",
        (
            Column("CHANGE_ID", _ID, False, "ascending id", identity=True),
            Column("DEFINITION_KIND", "VARCHAR(8)", False, "", values=DEFINITION_KINDS),
            Column("DEFINITION_NAME", "VARCHAR(128)", False, "job or watcher name"),
            _ts("CHANGED_AT", "when the change was written (UTC)", nullable=False),
        ),
        primary_key=("CHANGE_ID",),
        writers="SQLite triggers on ADM_JOBS and ADM_WATCHER; purged after a day",
    ),
)
TABLES = TABLES + YEAR_TABLES

VIEWS: tuple[View, ...] = (
    View("ALL_ADM_JOBS", "REDSYS", "ADM_JOBS", "the jobs the current user may see"),
    View("ALL_ADM_WATCHER", "REDSYS", "ADM_WATCHER", "the watchers the current user may see"),
    View(
        "STA_PSS_STATUS",
        "REDSYS",
        "ADM_PSS_STATUS",
        "role status with ALERT (docs/dictionary.md gives the rule)",
        (
            Column("HEARTBEAT_AGE", "DOUBLE", True, "seconds since the last heartbeat"),
            Column("ALERT", "DECIMAL(1,0)", False, "0 ok, 1 warning, 2 alert"),
            Column("ALERT_REASON", "VARCHAR(2000)", True, "why ALERT is not 0"),
        ),
    ),
    View(
        "STA_JOB_STATUS",
        "REDSYS",
        "ADM_JOB_STATUS",
        "one row per job definition (ADM_JOBS) with its status and ALERT "
        "(docs/dictionary.md gives the rule)",
        (
            Column("SCHEMA_NAME", "VARCHAR(128)", False, "the job's target schema"),
            Column("ACTIVE", "BOOLEAN", False, "scheduled only when true"),
            Column("OVERDUE_SECONDS", "DOUBLE", True, "seconds since NEXT_RUN_AT"),
            Column("ALERT", "DECIMAL(1,0)", False, "0 ok, 1 warning, 2 alert"),
            Column("ALERT_REASON", "VARCHAR(2000)", True, "why ALERT is not 0"),
        ),
    ),
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial dictionary",
        redsys=(
            "ADM_VERSION_HISTORY",
            "ADM_JOBS",
            "ADM_WATCHER",
            "ADM_JMON_LOAD",
            "ADM_JMON_JOBLOG",
            "ADM_LOAD_LEDGER",
            "ADM_PSS_STATUS",
            "ALL_ADM_JOBS",
            "ALL_ADM_WATCHER",
            "STA_PSS_STATUS",
        ),
        target=("ADM_JOB_LOG", "ADM_WATCHER_LOG", "ADM_WATCHER_EXEC_ERROR", "LOG_MESSAGES"),
    ),
    Migration(
        2,
        "landing zone: loaders and the per-schema load ledger",
        redsys=("ADM_LOADER", "ADM_LOADER_COLUMN"),
        target=("ADM_LOAD_LOG",),
    ),
    Migration(3, "preclone: the identity stamp of each instance", redsys=("ADM_PSS_IDENTITY",)),
    Migration(
        4,
        "load method of a loader: rows sent by redpss, or IMPORT by Exasol from cfisrv",
    ),
    Migration(PROBLEMS_SINCE, "role health: the problems a role reports in its heartbeat"),
    Migration(
        JOB_STATUS_SINCE,
        "job status: ADM_JOB_STATUS and STA_JOB_STATUS; run state KILLED",
        redsys=("ADM_JOB_STATUS", "STA_JOB_STATUS"),
        rebuild=("ADM_JOB_LOG", "ADM_WATCHER_LOG", "ADM_JMON_JOBLOG"),
    ),
    Migration(
        YEAR_SINCE,
        "a year of operation: indexes for the last runs of a job, runs by state and time, "
        "the purge; the change log of the definitions",
        redsys=("ADM_DEFINITION_LOG",),
    ),
)

DICTIONARY = Model(TABLES, VIEWS, MIGRATIONS)
"""The dictionary this redpss version installs."""

SCHEMA_VERSION = DICTIONARY.version
