"""Rows and files into Exasol as CSV: target column types, values, the IMPORT from cfisrv.

Values reach pyexasol's HTTP transport (``IMPORT … FROM CSV`` fed by this process) in one shape
per column type (:func:`csv_value`): decimals without exponent, timestamps in UTC with the
database's fractional digits (microseconds from Exasol 8.32, milliseconds before), booleans
TRUE/FALSE, NULL as an empty field (Exasol reads an empty field as
NULL). DATE and TIMESTAMP columns carry their format in the IMPORT (:func:`csv_cols`), so the
session's NLS settings do not matter. A value the transport cannot take is FileRejected.

:func:`cfi_import_sql` builds the other way in, ``method = "import"``: the database reads the
claimed file itself from cfisrv (``IMPORT … FROM CSV AT 'ftp://…/work/' … FILE …``: ``ftp://``
because cfisrv speaks explicit TLS, ``ftps://`` would be implicit TLS; from Exasol 8.32 with
``PUBLIC KEY`` of cfisrv's certificate, :mod:`~redpss.dictionary.exasol.cfi`). Exasol's CSV
reader differs from ours (``#`` lines are comments, no strptime formats, header names are not
matched, other boolean spellings), so only loaders that need none of that may choose it
(:func:`redpss.dictionary.loaders.import_refusal`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from redpss.dictionary.exasol.dialect import Dialect
from redpss.dictionary.exasol.sqltext import ident, literal, render
from redpss.dictionary.loaders import Loader, LoaderColumn, import_refusal, parse_loader_type
from redpss.errors import FileRejected

__all__ = ["Feed", "cfi_import_sql", "csv_cols", "csv_value", "exasol_column_type"]

DATE_FORMAT = "YYYY-MM-DD"

# The database reads the claimed file from cfisrv's work/ folder (see the module doc).
CFI_IMPORT_SQL = (
    "IMPORT INTO {schema!q}.{table!q} ({columns!r}) FROM CSV AT {url} "
    "USER {user} IDENTIFIED BY {password}{public_key!r} FILE {file} ({csv_cols!r}){options!r}"
)


def exasol_column_type(generic: str, dialect: Dialect) -> str:
    """The Exasol column type of a loader column type (timestamps keep microseconds from
    Exasol 8.32, milliseconds before)."""
    base, size, scale = parse_loader_type(generic)
    if base in ("VARCHAR", "CHAR"):
        return f"{base}({size})"
    if base == "DECIMAL":
        return f"DECIMAL({size or 18},{scale or 0})"
    return dialect.timestamp_type if base == "TIMESTAMP" else base  # DOUBLE, DATE, BOOLEAN


# -- values for the CSV transport ------------------------------------------------------------


def _decimal(value: Any) -> Any:
    if isinstance(value, int):
        return value
    try:
        return format(Decimal(str(value).strip()), "f")  # never an exponent
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None


def _double(value: Any) -> Any:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r}: Exasol's DOUBLE holds finite numbers only")
    return number


def _date(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return date.fromisoformat(str(value).strip()).isoformat()


def _timestamp(value: Any) -> Any:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is not None:  # a TIMESTAMP has no zone: the dictionary keeps UTC
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _timestamp_ms(value: Any) -> Any:
    return _timestamp(value)[:-3]  # milliseconds, cut: what TIMESTAMP holds before 8.32


def _boolean(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip().lower() in ("1", "true", "t", "yes", "y", "on")
    return "TRUE" if value else "FALSE"


def csv_value(generic: str, dialect: Dialect) -> Callable[[Any], Any]:
    """The function that turns a reader's value of a ``generic`` column into CSV-ready form."""
    base = parse_loader_type(generic)[0]
    if base in ("VARCHAR", "CHAR"):
        return str
    convert: dict[str, Callable[[Any], Any]] = {
        "DECIMAL": _decimal, "DOUBLE": _double, "DATE": _date,
        "TIMESTAMP": _timestamp if dialect.fraction_digits == 6 else _timestamp_ms,
        "BOOLEAN": _boolean,
    }  # fmt: skip
    return convert[base]


def csv_cols(
    columns: Sequence[LoaderColumn], dialect: Dialect, positions: Sequence[int] | None = None
) -> list[str]:
    """``n`` or ``n FORMAT='…'`` per column: the IMPORT's own DATE/TIMESTAMP formats."""
    cols = []
    for i, column in enumerate(columns):
        base = parse_loader_type(column.type)[0]
        fmt = {"DATE": DATE_FORMAT, "TIMESTAMP": dialect.timestamp_format}.get(base)
        number = positions[i] if positions else i + 1
        cols.append(f"{number} FORMAT='{fmt}'" if fmt else str(number))
    return cols


class Feed:
    """The rows of one load as the transport takes them; counts them and keeps the error the
    reader raised (so it is not mistaken for the database's)."""

    def __init__(self, rows: Iterable[Sequence[object]], loader: Loader, dialect: Dialect) -> None:
        self.rows = rows
        self.names = [c.name for c in loader.columns]
        self.convs = [csv_value(c.type, dialect) for c in loader.columns]
        self.count = 0
        self.failure: BaseException | None = None

    def __iter__(self) -> Iterator[list[Any]]:
        source = iter(self.rows)
        while True:
            try:
                row = next(source)
            except StopIteration:
                return
            except BaseException as exc:
                self.failure = exc
                raise
            try:
                out = [None if v is None else c(v) for v, c in zip(row, self.convs, strict=True)]
            except (ValueError, TypeError, OverflowError) as exc:
                rejected = FileRejected(f"row {self.count + 1}: {exc}")
                self.failure = rejected
                raise rejected from exc
            self.count += 1
            yield out


def cfi_import_sql(
    loader: Loader,
    *,
    url: str,
    user: str,
    password: str,
    file_name: str,
    dialect: Dialect,
    positions: Sequence[int] | None = None,
    public_key: str | None = None,
) -> str:
    """``IMPORT INTO`` the loader's target from ``file_name`` at ``url`` (cfisrv's work/).

    ``url`` is e.g. ``ftp://cfihost:2121/work/``; ``positions`` are the 1-based CSV fields of
    the columns (default 1..n); ``public_key`` (``sha256//…``) is written from Exasol 8.32 on.
    ValueError for a loader this statement cannot read as our reader would (module doc).
    """
    if why := import_refusal(loader):
        raise ValueError(f"loader {loader.name}: {why}")
    pin = public_key if dialect.public_key else None  # before 8.32 the clause is unknown
    options = [
        f"ENCODING = {literal(loader.encoding.upper())}",
        f"COLUMN SEPARATOR = {literal(loader.delimiter)}",
        f"COLUMN DELIMITER = {literal(loader.quote)}",
    ]
    if loader.header:
        options.append("SKIP = 1")
    if loader.null_string:  # '' is Exasol's own NULL: an empty field already is NULL
        options.append(f"NULL = {literal(loader.null_string)}")
    return render(
        CFI_IMPORT_SQL,
        schema=loader.schema,
        table=loader.table,
        columns=", ".join(ident(c.name) for c in loader.columns),
        url=url,
        user=user,
        password=password,
        file=file_name,
        public_key=f" PUBLIC KEY {literal(pin)}" if pin else "",
        csv_cols=", ".join(csv_cols(loader.columns, dialect, positions)),
        options="".join(f" {o}" for o in options),
    )
