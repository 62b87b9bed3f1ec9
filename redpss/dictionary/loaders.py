"""Loader definitions: which files go into which table, and how to read them.

A loader is data (``REDSYS.ADM_LOADER`` + ``ADM_LOADER_COLUMN`` in the dictionary). This module
holds its typed, validated form and :func:`parse_loader`, which checks a TOML table
(``[loader.NAME]`` of a file given to ``redctl db apply``) and names the offending key in every
error. It lives in the dictionary beside the job and watcher definitions: the backends store
and read it, the landing zone (``redpss.landing``) imports it — never the reverse, so that
reading a definition never loads the file readers (and pyarrow).

TOML shape (every key but ``pattern``, ``target`` and ``columns`` is optional)::

    [loader.sales]
    pattern = '^sales_\\d{8}\\.csv$'      # Python regex, searched in the file name
    target = "DWH.SALES"                  # SCHEMA.TABLE, created from the columns if missing
    format = "CSV"                        # CSV | JSON | PARQUET
    encoding = "utf-8"
    delimiter = ","                        # "\\t" for TAB
    quote = '"'                           # "" for no quoting
    header = true
    null = ""                             # a field with this text is NULL
    date_format = "%Y-%m-%d"
    timestamp_format = ""                 # "" = ISO 8601
    fixed_width = false                   # true: columns need start and size
    marker = "none"                       # none | .done | .ok
    duplicates = "skip"                   # skip | load | error
    method = "transport"                  # transport | import (Exasol reads it from cfisrv)
    active = true
    description = "daily sales"
    columns = [
      { name = "ID", type = "DECIMAL(18,0)" },
      { name = "AMOUNT", type = "DECIMAL(12,2)", source = "amount" },
      { name = "DAY", type = "DATE", format = "%d.%m.%Y" },
    ]

A column's ``source`` is the CSV header name, JSON key (nested keys joined with ``.``) or
Parquet column, matched case-insensitively; without it the column ``name`` is used (CSV with
``header = false``: ``pos``, the 1-based field number, default the column's own position).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DUPLICATE_POLICIES",
    "FORMATS",
    "MARKERS",
    "Loader",
    "LoaderColumn",
    "parse_loader",
    "parse_loader_type",
]

FORMATS = ("CSV", "JSON", "PARQUET")
MARKERS = ("NONE", ".done", ".ok")
DUPLICATE_POLICIES = ("SKIP", "LOAD", "ERROR")
LOAD_METHODS = ("TRANSPORT", "IMPORT")
"""TRANSPORT: redpss reads the file and sends the rows (pyexasol's HTTP transport, or SQLite);
IMPORT: the database reads the claimed file itself from cfisrv (``IMPORT … FROM CSV AT
'ftp://…'``; Exasol only), for files Exasol's CSV reader reads as ours would."""

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")
_IDENT_RE = re.compile(r"[A-Z][A-Z0-9_]{0,127}")
_TYPE_RE = re.compile(
    r"(?P<base>VARCHAR|CHAR|DECIMAL|DOUBLE|DATE|TIMESTAMP|BOOLEAN)"
    r"(?:\((?P<size>\d+)(?:,(?P<scale>\d+))?\))?"
)
_RESERVED_TABLE_RE = re.compile(r"ADM_.*|LOG_MESSAGES")


@dataclass(frozen=True)
class LoaderColumn:
    """One target column of a loader and where its value comes from."""

    name: str
    type: str
    source: str | None = None
    source_pos: int | None = None
    format: str | None = None
    fbv_start: int | None = None
    fbv_size: int | None = None


@dataclass(frozen=True)
class Loader:
    """A validated loader definition (see the module docstring for the meaning of each field)."""

    name: str
    pattern: str
    schema: str
    table: str
    columns: tuple[LoaderColumn, ...]
    format: str = "CSV"
    encoding: str = "utf-8"
    delimiter: str = ","
    quote: str | None = '"'
    header: bool = True
    null_string: str = ""
    date_format: str = "%Y-%m-%d"
    timestamp_format: str = ""
    fixed_width: bool = False
    marker: str = "NONE"
    duplicates: str = "SKIP"
    active: bool = True
    description: str | None = None
    method: str = "TRANSPORT"

    @property
    def target(self) -> str:
        """``SCHEMA.TABLE``."""
        return f"{self.schema}.{self.table}"

    @property
    def regex(self) -> re.Pattern[str]:
        """The compiled file name pattern (``re`` caches the compilation)."""
        return re.compile(self.pattern)

    def matches(self, file_name: str) -> bool:
        """True when ``file_name`` matches the pattern (``re.search``, as RED's regex)."""
        return self.regex.search(file_name) is not None


def parse_loader_type(text: str) -> tuple[str, int | None, int | None]:
    """Parse a loader column type (``VARCHAR(n)``, ``DECIMAL(p,s)``, ``DATE`` …).

    Returns ``(base, size, scale)``; raises ValueError for anything else.
    """
    match = _TYPE_RE.fullmatch(text.replace(" ", "").upper())
    if match is None:
        raise ValueError(
            f"unknown type {text!r} (expected VARCHAR(n), CHAR(n), DECIMAL(p,s), DOUBLE, DATE, "
            "TIMESTAMP or BOOLEAN)"
        )
    base = match["base"]
    size = int(match["size"]) if match["size"] else None
    scale = int(match["scale"]) if match["scale"] else None
    if base in ("VARCHAR", "CHAR") and (size is None or scale is not None or size < 1):
        raise ValueError(f"type {text!r}: {base} needs a size, e.g. {base}(100)")
    if base == "DECIMAL" and size is not None and not (1 <= size <= 36 and (scale or 0) <= size):
        raise ValueError(f"type {text!r}: DECIMAL(p,s) needs 1 <= p <= 36 and s <= p")
    if base in ("DOUBLE", "DATE", "TIMESTAMP", "BOOLEAN") and size is not None:
        raise ValueError(f"type {text!r}: {base} takes no size")
    return base, size, scale


class _Table:
    """Typed access to a TOML table that remembers which keys were read."""

    def __init__(self, where: str, table: dict[str, Any]) -> None:
        self.where = where
        self.table = table
        self.read: set[str] = set()

    def _get(self, key: str, kind: type[Any], default: Any) -> Any:
        self.read.add(key)
        if key not in self.table:
            if default is _REQUIRED:
                raise ValueError(f"{self.where}: key {key!r} is required")
            return default
        value = self.table[key]
        if kind is int and isinstance(value, bool):
            raise ValueError(f"{self.where}: key {key!r} must be a whole number, got {value!r}")
        if not isinstance(value, kind):
            raise ValueError(
                f"{self.where}: key {key!r} must be {_KIND_NAMES[kind]}, got {value!r}"
            )
        return value

    def text(self, key: str, default: Any = None) -> Any:
        return self._get(key, str, default)

    def flag(self, key: str, default: bool) -> bool:
        return bool(self._get(key, bool, default))

    def number(self, key: str) -> int | None:
        value = self._get(key, int, None)
        if value is not None and value < 1:
            raise ValueError(f"{self.where}: key {key!r} must be 1 or more, got {value}")
        return None if value is None else int(value)

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.text(key, default)
        for option in allowed:
            if value.lower() == option.lower():
                return option
        raise ValueError(
            f"{self.where}: key {key!r} must be one of {', '.join(allowed)}, got {value!r}"
        )

    def check_unknown(self) -> None:
        unknown = sorted(set(self.table) - self.read)
        if unknown:
            raise ValueError(f"{self.where}: unknown key {unknown[0]!r}")


_REQUIRED: Any = object()
_KIND_NAMES = {str: "a string", bool: "true or false", int: "a whole number", list: "an array"}


def _parse_target(t: _Table) -> tuple[str, str]:
    target = t.text("target", _REQUIRED).upper()
    schema, dot, table = target.partition(".")
    if not dot or not _IDENT_RE.fullmatch(schema) or not _IDENT_RE.fullmatch(table):
        raise ValueError(
            f"{t.where}: key 'target' must be SCHEMA.TABLE (identifiers), got {target!r}"
        )
    if schema == "REDSYS" or _RESERVED_TABLE_RE.fullmatch(table):
        raise ValueError(f"{t.where}: key 'target': {target} is a dictionary object, not a table")
    return schema, table


def _parse_column(where: str, index: int, raw: object, fixed: bool) -> LoaderColumn:
    key = f"columns[{index}]"
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: key {key!r} must be a table {{ name = …, type = … }}")
    t = _Table(f"{where}: {key}", raw)
    name = t.text("name", _REQUIRED).upper()
    if not _IDENT_RE.fullmatch(name):
        raise ValueError(f"{t.where}: key 'name' must be an identifier, got {name!r}")
    type_text = t.text("type", _REQUIRED)
    try:
        base, size, scale = parse_loader_type(type_text)
    except ValueError as exc:
        raise ValueError(f"{t.where}: key 'type': {exc}") from None
    type_norm = base + (f"({size}" + (f",{scale})" if scale is not None else ")") if size else "")
    column = LoaderColumn(
        name=name,
        type=type_norm,
        source=t.text("source"),
        source_pos=t.number("pos"),
        format=t.text("format"),
        fbv_start=t.number("start"),
        fbv_size=t.number("size"),
    )
    t.check_unknown()
    if fixed and (column.fbv_start is None or column.fbv_size is None):
        raise ValueError(f"{t.where}: key 'start' and 'size' are required when fixed_width = true")
    return column


def _single_char(t: _Table, key: str, value: str | None) -> None:
    if value is not None and len(value) != 1:
        raise ValueError(f"{t.where}: key {key!r} must be one character, got {value!r}")


def parse_loader(name: str, table: dict[str, object]) -> Loader:
    """Validate the TOML table of loader ``name``; raise ValueError naming the bad key."""
    where = f"loader {name!r}"
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"{where}: the name must match [A-Za-z][A-Za-z0-9_]{{0,127}}")
    t = _Table(where, dict(table))
    pattern = t.text("pattern", _REQUIRED)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{where}: key 'pattern' is not a valid regex: {exc}") from None
    schema, target_table = _parse_target(t)
    fixed = t.flag("fixed_width", False)
    encoding = t.text("encoding", "utf-8")
    try:
        "x".encode(encoding)
    except LookupError:
        raise ValueError(f"{where}: key 'encoding': unknown encoding {encoding!r}") from None
    delimiter = t.text("delimiter", ",")
    quote = t.text("quote", '"') or None
    _single_char(t, "delimiter", delimiter)
    _single_char(t, "quote", quote)
    raw_columns = t._get("columns", list, _REQUIRED)
    if not raw_columns:
        raise ValueError(f"{where}: key 'columns' must list at least one column")
    columns = tuple(_parse_column(where, i, raw, fixed) for i, raw in enumerate(raw_columns))
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"{where}: key 'columns': column {dup} appears twice")
    loader = Loader(
        name=name,
        pattern=pattern,
        schema=schema,
        table=target_table,
        columns=columns,
        format=t.choice("format", FORMATS, "CSV"),
        encoding=encoding,
        delimiter=delimiter,
        quote=quote,
        header=t.flag("header", True),
        null_string=t.text("null", ""),
        date_format=t.text("date_format", "%Y-%m-%d"),
        timestamp_format=t.text("timestamp_format", ""),
        fixed_width=fixed,
        marker=t.choice("marker", MARKERS, "NONE"),
        duplicates=t.choice("duplicates", DUPLICATE_POLICIES, "SKIP"),
        active=t.flag("active", True),
        description=t.text("description"),
        method=t.choice("method", LOAD_METHODS, "TRANSPORT"),
    )
    t.check_unknown()
    if loader.fixed_width and loader.format != "CSV":
        raise ValueError(f"{where}: key 'fixed_width' applies to format CSV only")
    if loader.method == "IMPORT" and (why := import_refusal(loader)):
        raise ValueError(f"{where}: key 'method' = \"import\": {why}")
    return loader


def import_refusal(loader: Loader) -> str | None:
    """Why the database's own CSV reader cannot load ``loader``'s files as ours would (None: it
    can). Exasol's reader treats ``#`` lines as comments, knows no strptime formats, no header
    names and other boolean spellings (docs/dictionary.md, "The IMPORT from cfisrv")."""
    if loader.format != "CSV" or loader.fixed_width or loader.quote is None:
        return "only delimited, quoted CSV can be imported by the database"
    if any(parse_loader_type(c.type)[0] == "BOOLEAN" for c in loader.columns):
        return "BOOLEAN columns need redpss's reader"
    if loader.date_format != "%Y-%m-%d" or loader.timestamp_format:
        return "date and timestamp formats other than ISO 8601 need redpss's reader"
    if any(c.format for c in loader.columns):
        return "per-column formats need redpss's reader"
    return None
