"""``import_from_iterable`` of the emulated Exasol: an ``IMPORT … FROM CSV`` of rows.

pyexasol writes the rows as CSV (``str()`` of each value, None as an empty field) and the
database reads the CSV into the table in the importing transaction. Emulated here, row by row:
an empty field is NULL; ``columns`` and ``csv_cols`` (``n`` or ``n FORMAT='…'``) of the import
parameters pick the fields; a DATE or TIMESTAMP field must match its format (the column's, else
the session's ``NLS_*_FORMAT``; fractional seconds may be shorter than ``FF6`` says); a value the
column cannot take fails the whole import with Exasol's ``ETL-3050 … Transformation of value``
error. Other import parameters (separators, encodings, compression) are accepted and ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:
    from tests.unit.exasol_emulator import EmulatedConnection

__all__ = ["import_rows"]

_CSV_COL_RE = re.compile(r"\s*(\d+)(?:\s*\.\.\s*(\d+))?(?:\s+FORMAT\s*=\s*'([^']*)')?\s*", re.I)
_FORMAT_PARTS = {
    "YYYY": r"\d{4}",
    "MM": r"\d\d",
    "DD": r"\d\d",
    "HH24": r"\d\d",
    "MI": r"\d\d",
    "SS": r"\d\d",
}
_LENGTH_RE = re.compile(r"VARCHAR\((\d+)\)|CHAR\((\d+)\)")


def format_regex(fmt: str) -> re.Pattern[str]:
    """A regex for text in Exasol datetime format ``fmt`` (the numeric ISO-like parts)."""
    pattern = ""
    for token in re.findall(r"YYYY|MM|DD|HH24|MI|SS|\.FF\d|.", fmt.upper()):
        if token.startswith(".FF"):
            pattern += rf"(\.\d{{1,{token[3]}}})?"
        else:
            pattern += _FORMAT_PARTS.get(token, re.escape(token))
    return re.compile(pattern)


def _csv_cols(spec: Sequence[str] | None, count: int) -> list[tuple[int, str | None]]:
    if not spec:
        return [(n, None) for n in range(1, count + 1)]
    found: list[tuple[int, str | None]] = []
    for item in spec:
        m = _CSV_COL_RE.fullmatch(item)
        if not m:
            raise ValueError(f"csv_cols entry {item!r} is not 'n', 'n..m' or \"n FORMAT='…'\"")
        first, last = int(m.group(1)), int(m.group(2) or m.group(1))
        found += [(n, m.group(3)) for n in range(first, last + 1)]
    return found


def _field(value: object) -> str | None:
    text = "" if value is None else str(value)
    return text or None


def import_rows(
    conn: EmulatedConnection,
    src: Iterable[Sequence[object]],
    table: str | tuple[str, str],
    import_params: dict[str, Any] | None,
) -> None:
    """Insert ``src`` into ``table`` on ``conn`` as the module doc says; None like pyexasol."""
    params = import_params or {}
    schema, name = table if isinstance(table, tuple) else ("", table)
    target = f'"{schema.upper()}"."{name.upper()}"' if schema else f'"{name.upper()}"'
    query = f"IMPORT INTO {target} FROM CSV (emulated)"
    types, duck_types = conn._column_types(schema, name)
    columns = list(params.get("columns") or types)
    if unknown := [c for c in columns if c.upper() not in types]:
        raise conn._error(query, "42000", f"unknown columns {unknown}")
    try:
        picks = _csv_cols(params.get("csv_cols"), len(columns))
    except ValueError as exc:
        raise conn._error(query, "42000", str(exc)) from exc
    if len(picks) != len(columns):
        raise conn._error(query, "42000", f"{len(picks)} csv_cols for {len(columns)} columns")
    checks = [
        _check_for(types[c.upper()], fmt, conn) for c, (_, fmt) in zip(columns, picks, strict=True)
    ]
    marks = ", ".join("?" for _ in columns)
    quoted = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    insert = f"INSERT INTO {target} ({quoted}) VALUES ({marks})"
    for row_number, row in enumerate(src, start=1):
        fields = [_field(v) for v in row]
        values: list[str | None] = []
        for (position, _), check in zip(picks, checks, strict=True):
            if position > len(fields):
                raise conn._error(query, "42000", f"row {row_number} has no field {position}")
            value = fields[position - 1]
            if value is not None and (problem := check(value)):
                raise _etl_error(conn, query, position, row_number, value, problem)
            values.append(value)
        try:
            conn._run(insert, values)
        except Exception as exc:
            cause = exc.__cause__
            if not isinstance(cause, duckdb.ConversionException | duckdb.InvalidInputException):
                raise
            kinds = [duck_types[c.upper()] for c in columns]
            position, value = _failing_field(conn, values, picks, kinds)
            raise _etl_error(conn, query, position, row_number, value, str(cause)) from exc


def _check_for(exa_type: str, fmt: str | None, conn: EmulatedConnection) -> Any:
    """A function: the problem with a text for a column of ``exa_type``, or None."""
    length = _LENGTH_RE.match(exa_type)
    if length:
        size = int(length.group(1) or length.group(2))
        return lambda v: f"string too long ({len(v)} > {size})" if len(v) > size else None
    nls = {"DATE": conn.session.get("NLS_DATE_FORMAT", "YYYY-MM-DD")}
    nls["TIMESTAMP"] = conn.session["NLS_TIMESTAMP_FORMAT"]
    base = exa_type.split("(")[0]
    if base in nls:
        wanted = fmt or nls[base]
        regex = format_regex(wanted)
        return lambda v: None if regex.fullmatch(v) else f"invalid value for format {wanted}"
    return lambda v: None


def _failing_field(
    conn: EmulatedConnection,
    values: list[str | None],
    picks: list[tuple[int, str | None]],
    duck_types: list[str],
) -> tuple[int, str | None]:
    probe = conn.db.duck.cursor()  # the import's transaction is aborted already
    try:
        for value, (position, _), duck_type in zip(values, picks, duck_types, strict=True):
            try:
                probe.execute(f"SELECT CAST(? AS {duck_type})", [value])
            except duckdb.Error:
                return position, value
    finally:
        probe.close()
    return 0, None


def _etl_error(
    conn: EmulatedConnection, query: str, column: int, row: int, value: str | None, why: str
) -> Exception:
    return conn._error(
        query,
        "42636",
        f"ETL-3050: [Column={column} Row={row}] [Transformation of value={value!r} failed - {why}]",
    )
