"""The export area in SQLite: tables and views of a target schema's file, read in batches.

Names come from ``sqlite_master`` and ``PRAGMA table_info`` and are quoted as found there, so
nothing the caller wrote is ever part of the SQL text. The rows are read by one ``SELECT``,
which holds one read snapshot for its whole life (WAL: writers are not blocked meanwhile).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from redpss.dictionary.export import (
    DEFAULT_BATCH_SIZE,
    ExportColumn,
    FilterValue,
    check_batch_size,
    match_filters,
    match_name,
    pick_columns,
)
from redpss.dictionary.sqlite.core import SqliteCore

__all__ = ["SqliteExport", "sqlite_kind"]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sqlite_kind(declared: str) -> str:
    """The export kind of a column declared as ``declared`` (SQLite's affinity rules)."""
    upper = declared.upper()
    if upper.startswith("BOOL"):
        return "BOOLEAN"
    if "INT" in upper:
        return "INTEGER"
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return "VARCHAR"
    if "BLOB" in upper:
        return "BINARY"
    if any(word in upper for word in ("REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL")):
        return "DOUBLE"
    return "VARCHAR"  # no declared type (an expression in a view): exported as text


class SqliteExport(SqliteCore):
    """Rows of a target schema's tables and views, for SENDFILE."""

    def _export_path(self, schema: str) -> Path:
        path = self._schema_path(schema)  # checks the schema name (DictionaryError)
        if not path.exists():
            raise ValueError(f"target schema {schema!r} does not exist")
        return path

    @staticmethod
    def _objects(conn: sqlite3.Connection) -> list[str]:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        ).fetchall()
        return [str(r[0]) for r in rows]

    @staticmethod
    def _columns(conn: sqlite3.Connection, name: str) -> list[ExportColumn]:
        rows = conn.execute(f"PRAGMA table_info({_quote(name)})").fetchall()
        return [ExportColumn(str(r[1]), sqlite_kind(str(r[2] or ""))) for r in rows]

    def export_objects(self, schema: str) -> list[str]:
        """The tables and views of target schema ``schema``, sorted."""
        with self._connect(self._export_path(schema)) as conn:
            return self._objects(conn)

    def export_columns(self, schema: str, object_name: str) -> list[ExportColumn]:
        """The columns of ``schema.object_name`` in order; ValueError if it does not exist."""
        with self._connect(self._export_path(schema)) as conn:
            name = match_name(object_name, self._objects(conn), f"table or view of {schema}")
            return self._columns(conn, name)

    def export_rows(
        self,
        schema: str,
        object_name: str,
        *,
        columns: Sequence[str] | None = None,
        where: Mapping[str, FilterValue] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        """Yield ``(column names, rows)`` batches (see ``ExportStore.export_rows``)."""
        check_batch_size(batch_size)
        path = self._export_path(schema)
        with self._connect(path) as conn:
            obj = match_name(object_name, self._objects(conn), f"table or view of {schema}")
            real = [c.name for c in self._columns(conn, obj)]
            picked = pick_columns(columns, real)
            conditions: list[str] = []
            params: list[FilterValue] = []
            for col, value in match_filters(where, real):
                if value is None:
                    conditions.append(f"{_quote(col)} IS NULL")
                else:
                    conditions.append(f"{_quote(col)} = ?")
                    params.append(value)
            sql = f"SELECT {', '.join(map(_quote, picked))} FROM {_quote(obj)}"
            if conditions:
                sql += " WHERE " + " AND ".join(conditions)
            cursor = conn.execute(sql, params)
            first = True
            while True:
                rows = cursor.fetchmany(batch_size)
                if not rows and not first:
                    return
                first = False
                yield list(picked), rows
                if len(rows) < batch_size:
                    return
