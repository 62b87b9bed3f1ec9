"""A loader column's value, as both backends store it: conversion and checks, one by one or a
whole column at once.

``DATE`` → ``YYYY-MM-DD``, ``TIMESTAMP`` → ISO 8601, ``BOOLEAN`` → 1/0, ``DECIMAL(p,0)`` →
int, ``DECIMAL(p,s)`` → its decimal text, ``VARCHAR(n)``/``CHAR(n)`` → the text, at most n
characters. A value that does not fit raises ValueError (TypeError, OverflowError) with the
reason; the readers (:mod:`redpss.landing.readers`) turn it into a rejection naming the line and
column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from redpss.dictionary.loaders import Loader, LoaderColumn, parse_loader_type
from redpss.errors import FileRejected

__all__ = ["Converter", "bulk_converter", "convert_row", "converter"]

Converter = Callable[[Any], Any]
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


# -- value conversion ------------------------------------------------------------------------


def _text(size: int) -> Converter:
    def conv(value: Any) -> Any:
        text = value if isinstance(value, str) else str(value)
        if len(text) > size:
            raise ValueError(f"{len(text)} characters, the column holds {size}")
        return text

    return conv


def _integer(precision: int) -> Converter:
    def conv(value: Any) -> Any:
        if isinstance(value, str):
            number = int(value.strip())
        elif isinstance(value, float | Decimal):
            if value != int(value):
                raise ValueError(f"{value} is not a whole number")
            number = int(value)
        else:
            number = int(value)
        if len(str(abs(number))) > precision:
            raise ValueError(f"{number} has more than {precision} digits")
        return number

    return conv


def _decimal(precision: int, scale: int) -> Converter:
    def conv(value: Any) -> Any:
        try:
            number = Decimal(value.strip() if isinstance(value, str) else str(value))
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
        if not number.is_finite():
            raise ValueError(f"{value!r} is not a finite number")
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)
        if -exponent > scale:
            raise ValueError(f"{value} has more than {scale} decimal places")
        if number.adjusted() + 1 > precision - scale:
            raise ValueError(f"{value} does not fit DECIMAL({precision},{scale})")
        return str(number)

    return conv


def _double(value: Any) -> Any:
    return float(value)


def _date(fmt: str) -> Converter:
    def conv(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        return datetime.strptime(str(value).strip(), fmt).date().isoformat()

    return conv


def _timestamp(fmt: str) -> Converter:
    def conv(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat(sep=" ")
        text = str(value).strip()
        parsed = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
        return parsed.isoformat(sep=" ")

    return conv


def _boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    raise ValueError(f"{value!r} is not a boolean (true/false, 1/0, yes/no)")


def converter(column: LoaderColumn, loader: Loader) -> Converter:
    """The function that turns a field of ``column`` into its stored value."""
    base, size, scale = parse_loader_type(column.type)
    if base in ("VARCHAR", "CHAR"):
        assert size is not None
        return _text(size)
    if base == "DECIMAL":
        return _decimal(size or 18, scale) if scale else _integer(size or 18)
    if base == "DATE":
        return _date(column.format or loader.date_format)
    if base == "TIMESTAMP":
        return _timestamp(column.format or loader.timestamp_format)
    return _double if base == "DOUBLE" else _boolean


def convert_row(
    fields: list[Any], convs: list[Converter], loader: Loader, line: int | None
) -> list[Any]:
    try:  # the fast path; on a failure, find the column again
        return [None if v is None else c(v) for v, c in zip(fields, convs, strict=True)]
    except (ValueError, TypeError, OverflowError):
        pass
    for value, conv, column in zip(fields, convs, loader.columns, strict=True):
        if value is None:
            continue
        try:
            conv(value)
        except (ValueError, TypeError, OverflowError) as exc:
            raise FileRejected(f"column {column.name}: {exc}", line=line) from None
    raise AssertionError("unreachable: a conversion failed once but not twice")


def bulk_converter(
    column: LoaderColumn, loader: Loader
) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """Convert a whole column of text fields (None: NULL) at once; ValueError/TypeError if bad.

    The same checks as :func:`converter`, done with C-level loops where the type allows.
    """
    conv = converter(column, loader)
    base, size, scale = parse_loader_type(column.type)

    def generic(values: Sequence[Any]) -> Sequence[Any]:
        if None in values:
            return [None if v is None else conv(v) for v in values]
        return list(map(conv, values))

    if base in ("VARCHAR", "CHAR"):
        assert size is not None
        width = size

        def text(values: Sequence[Any]) -> Sequence[Any]:
            present = [v for v in values if v is not None] if None in values else values
            if present and max(map(len, present)) > width:
                raise ValueError("too long")
            return values

        return text
    if base == "DECIMAL" and not scale:
        limit = 10 ** (size or 18)

        def integer(values: Sequence[Any]) -> Sequence[Any]:
            if None in values:
                return generic(values)
            numbers = list(map(int, values))
            if numbers and (max(numbers) >= limit or min(numbers) <= -limit):
                raise ValueError("too many digits")
            return numbers

        return integer
    if base == "DOUBLE":

        def double(values: Sequence[Any]) -> Sequence[Any]:
            return generic(values) if None in values else list(map(float, values))

        return double
    return generic
