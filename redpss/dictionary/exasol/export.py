"""The export area on Exasol: tables and views of a target schema, read in batches.

Names come from ``SYS.EXA_ALL_TABLES``, ``EXA_ALL_VIEWS`` and ``EXA_ALL_COLUMNS`` and are
quoted as found there (:func:`~redpss.dictionary.exasol.sqltext.ident`), so nothing the caller
wrote is ever part of the SQL text; filter values become literals. The rows are read by one
``SELECT`` (one consistent read), fetched lazily by pyexasol in chunks and handed out in
batches, so memory stays bounded by a batch. Values come as the SQLite backend gives them for
the same kind: DECIMAL with scale 0 as int, other numbers as float, DATE and TIMESTAMP as text.

The lookups are ordinary units (retried after a reconnect); the SELECT runs once on a connection
of its own (:meth:`Session.dedicated`), which is rolled back and closed when the export ends or
is abandoned: no read transaction stays open, and the thread's other units may commit meanwhile.
A connection lost in the middle of an export is a DictionaryError, and SENDFILE starts the
export again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from redpss.dictionary.base import check_schema_name
from redpss.dictionary.exasol.core import ExasolCore
from redpss.dictionary.exasol.session import Tx
from redpss.dictionary.exasol.sqltext import ident, literal, render
from redpss.dictionary.export import (
    DEFAULT_BATCH_SIZE,
    ExportColumn,
    ExportStore,
    FilterValue,
    check_batch_size,
    match_filters,
    match_name,
    pick_columns,
)

__all__ = ["ExasolExport", "exasol_kind"]

# One system table per query, filtered on one column: Exasol then read-locks only that schema's
# objects; a query over two system tables (a UNION) read-locks every object of both (knowledge
# base, "Filter on system tables and transaction conflicts").
EXPORT_TABLES_SQL = "SELECT TABLE_NAME FROM SYS.EXA_ALL_TABLES WHERE TABLE_SCHEMA = {schema}"
EXPORT_VIEWS_SQL = "SELECT VIEW_NAME FROM SYS.EXA_ALL_VIEWS WHERE VIEW_SCHEMA = {schema}"
EXPORT_COLUMNS_SQL = (
    "SELECT COLUMN_NAME, COLUMN_TYPE FROM SYS.EXA_ALL_COLUMNS WHERE COLUMN_SCHEMA = {schema} "
    "AND COLUMN_TABLE = {table} ORDER BY COLUMN_ORDINAL_POSITION"
)
EXPORT_ROWS_SQL = "SELECT {columns!r} FROM {schema!q}.{table!q}{filters!r}"

_DECIMAL_RE = re.compile(r"DECIMAL\(\s*\d+\s*,\s*(\d+)\s*\)")


def exasol_kind(column_type: str) -> str:
    """The export kind of a column of Exasol type ``column_type`` (as EXA_ALL_COLUMNS says)."""
    upper = column_type.upper()
    if upper.startswith("BOOLEAN"):
        return "BOOLEAN"
    if decimal := _DECIMAL_RE.match(upper):
        return "INTEGER" if decimal.group(1) == "0" else "DOUBLE"
    if upper.startswith(("DOUBLE", "FLOAT", "REAL")):
        return "DOUBLE"
    return "VARCHAR"  # CHAR, VARCHAR, DATE, TIMESTAMP, INTERVAL, GEOMETRY, HASHTYPE: as text


def _as(kind: str) -> Callable[[Any], Any]:
    """What a fetched value of ``kind`` is turned into (pyexasol gives big or scaled
    decimals as text)."""
    if kind == "INTEGER":
        return lambda v: v if v is None or isinstance(v, int) else int(v)
    if kind == "DOUBLE":
        return lambda v: v if v is None or isinstance(v, float) else float(v)
    return lambda v: v


class ExasolExport(ExasolCore, ExportStore):
    """Rows of a target schema's tables and views, for SENDFILE."""

    def _export_schema(self, schema: str) -> str:
        check_schema_name(schema)  # DictionaryError for a bad name, as in SQLite
        if schema not in self.schemas():
            raise ValueError(f"target schema {schema!r} does not exist")
        return schema

    @staticmethod
    def _objects(tx: Tx, schema: str) -> list[str]:
        names = [
            str(r[0])
            for q in (EXPORT_TABLES_SQL, EXPORT_VIEWS_SQL)
            for r in tx.rows(q, schema=schema)
        ]
        return sorted(names)

    @staticmethod
    def _columns(tx: Tx, schema: str, name: str) -> list[ExportColumn]:
        rows = tx.rows(EXPORT_COLUMNS_SQL, schema=schema, table=name)
        return [ExportColumn(str(r[0]), exasol_kind(str(r[1] or ""))) for r in rows]

    def export_objects(self, schema: str) -> list[str]:
        """The tables and views of target schema ``schema``, sorted."""
        schema = self._export_schema(schema)
        return self.tx(lambda tx: self._objects(tx, schema), what=f"listing {schema}")

    def export_columns(self, schema: str, object_name: str) -> list[ExportColumn]:
        """The columns of ``schema.object_name`` in order; ValueError if it does not exist."""
        schema = self._export_schema(schema)

        def unit(tx: Tx) -> list[ExportColumn]:
            name = match_name(object_name, self._objects(tx, schema), f"table or view of {schema}")
            return self._columns(tx, schema, name)

        return self.tx(unit, what=f"columns of {schema}.{object_name}")

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
        schema = self._export_schema(schema)

        def unit(tx: Tx) -> tuple[str, list[ExportColumn]]:
            name = match_name(object_name, self._objects(tx, schema), f"table or view of {schema}")
            return name, self._columns(tx, schema, name)

        obj, real = self.tx(unit, what=f"columns of {schema}.{object_name}")
        kinds = {c.name: c.kind for c in real}
        names = [c.name for c in real]
        picked = pick_columns(columns, names)
        conditions: list[str] = []
        for col, value in match_filters(where, names):
            if value is None or value == "":  # Exasol's '' is NULL
                conditions.append(f"{ident(col)} IS NULL")
            else:
                conditions.append(f"{ident(col)} = {literal(value)}")
        sql = render(
            EXPORT_ROWS_SQL,
            columns=", ".join(map(ident, picked)),
            schema=schema,
            table=obj,
            filters=" WHERE " + " AND ".join(conditions) if conditions else "",
        )
        yield from self._batches(sql, picked, [_as(kinds[c]) for c in picked], batch_size)

    def _batches(
        self, sql: str, picked: list[str], convert: list[Callable[[Any], Any]], size: int
    ) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        with self.session.dedicated(what=f"export {sql[:80]}") as conn:
            stmt: Any = conn.execute(sql)
            try:
                first = True
                while True:
                    fetched = stmt.fetchmany(size)
                    if not fetched and not first:
                        return
                    first = False
                    rows = [tuple(f(v) for f, v in zip(convert, r, strict=True)) for r in fetched]
                    yield list(picked), rows
                    if len(fetched) < size:
                        return
            finally:
                close = getattr(stmt, "close", None)
                if close is not None:  # an abandoned export leaves no result set open
                    close()
