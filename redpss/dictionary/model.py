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
(``docs/dictionary.md``). The tables themselves are in :mod:`redpss.dictionary.tables` and
:mod:`redpss.dictionary.landing_tables`, the words they share in :mod:`redpss.dictionary.columns`;
this module puts them together with the views and the migrations.
"""

from __future__ import annotations

from redpss.dictionary.columns import JOB_STATUS_SINCE, PROBLEMS_SINCE, YEAR_SINCE
from redpss.dictionary.landing_tables import LANDING_TABLES
from redpss.dictionary.objects import Column, Migration, Model, Table, View
from redpss.dictionary.objects import GenericType as GenericType  # re-exported
from redpss.dictionary.objects import Scope as Scope  # re-exported
from redpss.dictionary.objects import parse_type as parse_type  # re-exported
from redpss.dictionary.tables import CORE_TABLES, JOB_STATUS_TABLES, OPS_TABLES, YEAR_TABLES

TABLES: tuple[Table, ...] = (
    CORE_TABLES + LANDING_TABLES + OPS_TABLES + JOB_STATUS_TABLES + YEAR_TABLES
)
"""Every table, in the order of the migrations that created them."""

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
