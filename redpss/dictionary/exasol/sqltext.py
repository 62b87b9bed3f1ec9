"""SQL text for Exasol: literals, quoted identifiers, and templates rendered with both.

pyexasol sends statement text (its placeholders are formatted on the client, too), so every
value becomes a literal here, written the one safe way: strings quoted with ``''`` doubled,
timestamps as ``TIMESTAMP '…'`` in UTC, numbers as numbers, ``None`` as ``NULL``. A timestamp
carries as many fractional digits as the database's TIMESTAMP keeps (``fraction_digits``: 6 from
Exasol 8.32, 3 before; :mod:`~redpss.dictionary.exasol.dialect`), cut, not rounded.

A template is a module-level constant whose name ends in ``_SQL``; its placeholders are
``{name}`` (a value, as a literal), ``{name!q}`` (an identifier, double-quoted) and
``{name!r}`` (a fragment this package generated, e.g. a column list; never user text). The
unit tests render every ``*_SQL`` constant of :mod:`redpss.dictionary.exasol` and parse it with
sqlglot's Exasol dialect, so a typo fails there, not in production.

Mind Exasol: ``''`` *is* ``NULL``; ``'a' || NULL`` is ``'a'``.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["from_db", "ident", "literal", "qualified", "render", "to_db"]

TIMESTAMP_FORMAT = "YYYY-MM-DD HH24:MI:SS.FF6"
"""The session's NLS_TIMESTAMP_FORMAT: what :func:`from_db` parses."""


def to_db(value: datetime, fraction_digits: int = 6) -> str:
    """An aware datetime as the text of an Exasol TIMESTAMP in UTC, with ``fraction_digits``
    (6: microseconds, 3: milliseconds) fractional digits, the rest cut off."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the dictionary stores UTC only")
    if fraction_digits not in (3, 6):
        raise ValueError(f"fraction_digits must be 3 or 6, not {fraction_digits}")
    moment = value.astimezone(UTC).replace(tzinfo=None)
    if fraction_digits == 3:
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        return moment.isoformat(sep=" ", timespec="milliseconds")
    return moment.isoformat(sep=" ", timespec="microseconds")


def from_db(value: object) -> datetime | None:
    """A TIMESTAMP as fetched (text in the session format, UTC) as an aware datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def literal(value: object, fraction_digits: int = 6) -> str:
    """``value`` as an Exasol SQL literal; TypeError for a type that has none."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no SQL literal")
        return repr(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return f"TIMESTAMP '{to_db(value, fraction_digits)}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL literal for {type(value).__name__} {value!r}")


def ident(name: str) -> str:
    """``name`` as a double-quoted identifier (exactly as written; Exasol folds unquoted)."""
    if not name:
        raise ValueError("empty identifier")
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    """``"SCHEMA"."NAME"``."""
    return f"{ident(schema)}.{ident(name)}"


def literals(values: Sequence[object], fraction_digits: int = 6) -> str:
    """A comma-separated list of literals (for ``IN (…)`` and ``VALUES (…)``)."""
    if not values:
        raise ValueError("an empty list has no SQL form")
    return ", ".join(literal(v, fraction_digits) for v in values)


class _Formatter(string.Formatter):
    def __init__(self, fraction_digits: int) -> None:
        self.fraction_digits = fraction_digits

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is None:
            return literal(value, self.fraction_digits)
        if conversion == "q":
            return ident(value)
        if conversion == "r":
            return str(value)
        raise ValueError(f"unknown conversion !{conversion} (expected !q or !r)")

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec:
            raise ValueError("format specs are not allowed in SQL templates")
        return str(value)


_FORMATTERS = {digits: _Formatter(digits) for digits in (3, 6)}


def render(
    template: str,
    params: Mapping[str, object] | None = None,
    /,
    *,
    fraction_digits: int = 6,
    **kwargs: object,
) -> str:
    """Fill ``template``'s placeholders (see the module doc); KeyError for a missing one.

    Timestamps get ``fraction_digits`` fractional digits (the database's, see the module doc).
    """
    values = {**(params or {}), **kwargs}
    return _FORMATTERS[fraction_digits].vformat(template, (), values)


def placeholders(template: str) -> list[tuple[str, str | None]]:
    """The ``(name, conversion)`` pairs of ``template`` (for the tests)."""
    return [
        (field, conv)
        for _text, field, _spec, conv in string.Formatter().parse(template)
        if field is not None
    ]
