"""The tables of the dictionary that the scheduler and the roles write: definitions, runs and
their logs, role status, the instance's identity, job status, the change log of definitions.

The model (:mod:`redpss.dictionary.model`) puts them together with the landing zone's tables,
the views and the migrations; a new table of these kinds goes here, under the version that adds
it.
"""

from __future__ import annotations

from redpss.dictionary.columns import (
    ACTIVE,
    CHANGED,
    CREATED,
    DEFINITION_KINDS,
    DESC,
    HOST,
    ID,
    JOB_KINDS,
    LOG_LEVELS,
    MISFIRE_POLICIES,
    PID,
    POOL,
    POOLS,
    PROBLEMS_SINCE,
    ROLE_STATES,
    RUN_ID,
    RUN_STATES,
    RUN_TIMES,
    SCHEDULE_TYPES,
    SCHEMA,
    STATE,
    WATCHER_KINDS,
    YEAR_SINCE,
    timestamp,
)
from redpss.dictionary.objects import Column, Index, Table

__all__ = ["CORE_TABLES", "JOB_STATUS_TABLES", "OPS_TABLES", "YEAR_TABLES"]

CORE_TABLES: tuple[Table, ...] = (
    Table(
        "ADM_VERSION_HISTORY",
        "REDSYS",
        "installed dictionary versions, one row per schema and applied migration",
        (
            Column("SCHEMA_NAME", "VARCHAR(128)", False, "REDSYS or the target schema"),
            Column("VERSION", "DECIMAL(9,0)", False, "migration version"),
            Column("DESCRIPTION", "VARCHAR(2000)", False, "what the migration did"),
            timestamp("APPLIED_AT", "when it was applied", nullable=False),
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
            SCHEMA,
            Column("JOB_KIND", "VARCHAR(8)", False, "what the action is", values=JOB_KINDS),
            Column("ACTION_TEXT", "VARCHAR(2000000)", False, "statement, command or file set"),
            Column("POOL_NAME", "VARCHAR(16)", False, "worker pool", "'default'", POOLS),
            Column("SCHEDULE_TYPE", "VARCHAR(8)", False, "", "'NONE'", SCHEDULE_TYPES),
            Column("INTERVAL_SECONDS", "DECIMAL(18,0)", True, "for INTERVAL schedules"),
            Column("CRON_EXPR", "VARCHAR(200)", True, "for CRON schedules (5 fields, UTC)"),
            ACTIVE,
            Column("TIMEOUT_SECONDS", "DECIMAL(18,0)", True, "a run is killed after this"),
            Column("MAX_PARALLEL", "DECIMAL(9,0)", False, "concurrent runs allowed", "1"),
            Column("MISFIRE_POLICY", "VARCHAR(8)", False, "", "'RUN_ONCE'", MISFIRE_POLICIES),
            DESC,
            CREATED,
            CHANGED,
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
            SCHEMA,
            Column("WATCHER_KIND", "VARCHAR(8)", False, "", values=WATCHER_KINDS),
            Column("WATCH_TEXT", "VARCHAR(2000000)", False, "file name pattern or SQL query"),
            Column("CHECK_INTERVAL_SECONDS", "DECIMAL(18,0)", False, "poll period", "60"),
            Column("EXECUTOR_JOB", "VARCHAR(128)", False, "ADM_JOBS.JOB_NAME run on a fire"),
            ACTIVE,
            DESC,
            CREATED,
            CHANGED,
        ),
        primary_key=("WATCHER_NAME",),
        writers="operators (SQL, REST); read by jmon",
    ),
    Table(
        "ADM_JMON_LOAD",
        "REDSYS",
        "pool statistics, one row per pool every 60 s",
        (
            timestamp("SAMPLE_AT", "sample time", nullable=False),
            POOL,
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
            timestamp("SAMPLE_AT", "sample time", nullable=False),
            Column("JOB_NAME", "VARCHAR(128)", False, "job"),
            timestamp("NEXT_RUN_AT", "next due time (NULL: not scheduled)"),
            timestamp("LAST_RUN_AT", "start of the last run"),
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
            RUN_ID,
            timestamp("LOADED_AT", "when the load committed", nullable=False),
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
            PID,
            HOST,
            timestamp("STARTED_AT", "when this process registered"),
            timestamp("HEARTBEAT_AT", "last heartbeat"),
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
            RUN_ID,
            Column("JOB_NAME", "VARCHAR(128)", False, "job"),
            POOL,
            STATE,
            *RUN_TIMES,
            Column("ROW_COUNT", "DECIMAL(18,0)", True, "rows affected or loaded"),
            Column("MESSAGE", "VARCHAR(2000000)", True, "error text or output summary"),
            HOST,
            PID,
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
            RUN_ID,
            Column("WATCHER_NAME", "VARCHAR(128)", False, "watcher"),
            POOL,
            STATE,
            *RUN_TIMES,
            Column("WATCH_KEY", "VARCHAR(2000)", True, "what fired: file name or result key"),
            Column("EXECUTOR_RUN_ID", ID, True, "ADM_JOB_LOG.RUN_ID of the executor run"),
            Column("ROW_COUNT", "DECIMAL(18,0)", True, "rows affected or loaded"),
            Column("MESSAGE", "VARCHAR(2000000)", True, "error text or summary"),
            HOST,
            PID,
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
            timestamp("FIRST_SEEN", "first failure", nullable=False),
            timestamp("LAST_SEEN", "latest failure", nullable=False),
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
            Column("MESSAGE_ID", ID, False, "ascending id", identity=True),
            timestamp("LOG_TS", "when the line was logged", nullable=False),
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

# -- version 3: preclone (the identity stamp of each instance) ------------------------------

OPS_TABLES: tuple[Table, ...] = (
    Table(
        "ADM_PSS_IDENTITY",
        "REDSYS",
        "the identity stamp of each instance on this dictionary: redctl preclone writes a new "
        "one; a clone from another database replaces it, which is how start knows one happened",
        (
            Column("INSTANCE_NAME", "VARCHAR(16)", False, "instance name (lower case)"),
            Column("STAMP", "VARCHAR(64)", False, "random stamp, also kept in tmp/preclone"),
            timestamp("STAMPED_AT", "when preclone wrote it", nullable=False),
            HOST,
            Column("REDPSS_VERSION", "VARCHAR(64)", True, "redpss version that wrote it"),
        ),
        primary_key=("INSTANCE_NAME",),
        writers="redctl preclone",
    ),
)

# -- version 6: the status of every job (STA_JOB_STATUS) ---------------------------------------

JOB_STATUS_TABLES: tuple[Table, ...] = (
    Table(
        "ADM_JOB_STATUS",
        "REDSYS",
        "per job: its newest run (from sched) and its next run and definition check (from jmon)",
        (
            Column("JOB_NAME", "VARCHAR(128)", False, "job"),
            Column("LAST_RUN_ID", ID, True, "the newest run that was not SKIPPED"),
            Column("LAST_STATE", "VARCHAR(16)", True, "its state", values=RUN_STATES),
            timestamp("LAST_QUEUED_AT", "when it was queued"),
            timestamp("LAST_STARTED_AT", "when it started"),
            timestamp("LAST_ENDED_AT", "when it ended"),
            Column("LAST_MESSAGE", "VARCHAR(2000)", True, "its message (start of it)"),
            timestamp("LAST_SEEN_AT", "newest QUEUED_AT of any run, SKIPPED ones too"),
            timestamp("NEXT_RUN_AT", "next due time as jmon planned it (NULL: not scheduled)"),
            Column("DEFINITION_ERROR", "VARCHAR(2000)", True, "why jmon refuses the definition"),
            timestamp("PLANNED_AT", "when jmon wrote NEXT_RUN_AT and DEFINITION_ERROR"),
        ),
        primary_key=("JOB_NAME",),
        writers="sched (run log writer), jmon (every sched_stats_interval and after a reload)",
    ),
)

# -- version 7: a year of operation (indexes, the change log of the definitions) -------------

YEAR_TABLES: tuple[Table, ...] = (
    Table(
        "ADM_DEFINITION_LOG",
        "REDSYS",
        "one row per changed job or watcher definition, written by triggers on SQLite (any "
        "writer, plain SQL too): jmon and sched read the changes since their last look",
        (
            Column("CHANGE_ID", ID, False, "ascending id", identity=True),
            Column("DEFINITION_KIND", "VARCHAR(8)", False, "", values=DEFINITION_KINDS),
            Column("DEFINITION_NAME", "VARCHAR(128)", False, "job or watcher name"),
            timestamp("CHANGED_AT", "when the change was written (UTC)", nullable=False),
        ),
        primary_key=("CHANGE_ID",),
        writers="SQLite triggers on ADM_JOBS and ADM_WATCHER; purged after a day",
    ),
)
