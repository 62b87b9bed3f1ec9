"""The tables of the landing zone: loaders, their columns, and the per-schema load log.

Apart from the other tables (:mod:`redpss.dictionary.tables`) because the loader model is the
landing zone's definition and grows with it; :mod:`redpss.dictionary.model` puts them together.
"""

from __future__ import annotations

from redpss.dictionary.columns import (
    ACTIVE,
    CHANGED,
    CREATED,
    DESC,
    DUPLICATE_POLICIES,
    LOAD_FORMATS,
    LOAD_MARKERS,
    LOAD_METHODS,
    LOAD_STATUSES,
    RUN_ID,
    YEAR_SINCE,
    timestamp,
)
from redpss.dictionary.objects import Column, Index, Table

__all__ = ["LANDING_TABLES"]

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
            ACTIVE,
            DESC,
            CREATED,
            CHANGED,
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
            RUN_ID,
            timestamp("LOADED_AT", "when the load committed", nullable=False),
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
