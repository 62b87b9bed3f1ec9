"""The export area of the dictionary: rows of a target schema's table or view, in batches.

SENDFILE reads what it exports through here, so it never writes SQL. Identifiers never reach
SQL as the caller spelled them: the object and every column are looked up among the schema's
real tables, views and columns (exact spelling first, else the one that matches ignoring
case), and only the names found there are quoted into the statement. Filter values are bound
parameters. An object, column or filter that does not exist is a :class:`ValueError` naming
it; a backend failure is a :class:`~redpss.errors.DictionaryError`.

Rows come in batches of ``batch_size`` from one statement (one consistent read), so memory
stays bounded by the batch, whatever the size of the table.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "KINDS",
    "ExportColumn",
    "ExportStore",
    "check_batch_size",
    "match_filters",
    "match_name",
    "pick_columns",
]

DEFAULT_BATCH_SIZE = 10_000
KINDS = ("INTEGER", "DOUBLE", "BOOLEAN", "VARCHAR", "BINARY")
"""The kinds of value an exported column holds (what a file format needs to know)."""

FilterValue = str | int | float | bool | None


@dataclass(frozen=True)
class ExportColumn:
    """A column of an exportable object: its real name and the kind of its values."""

    name: str
    kind: str


def match_name(wanted: object, real: Sequence[str], what: str) -> str:
    """The name in ``real`` that ``wanted`` means (exact, else the one equal ignoring case).

    ValueError when it is not a string, matches nothing, or matches several ignoring case.
    """
    if not isinstance(wanted, str) or not wanted or len(wanted) > 256 or "\0" in wanted:
        raise ValueError(f"{what} must be a non-empty name, not {wanted!r}")
    if wanted in real:
        return wanted
    found = [name for name in real if name.casefold() == wanted.casefold()]
    if len(found) != 1:
        problem = "is ambiguous" if found else "does not exist"
        raise ValueError(f"{what} {wanted!r} {problem}")
    return found[0]


def check_batch_size(batch_size: object) -> int:
    """``batch_size`` if it is a positive whole number, else ValueError."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive whole number, not {batch_size!r}")
    return batch_size


def pick_columns(wanted: Sequence[str] | None, real: Sequence[str]) -> list[str]:
    """The real names of the ``wanted`` columns (all when None); ValueError for none."""
    picked = list(real) if wanted is None else [match_name(c, real, "column") for c in wanted]
    if not picked:
        raise ValueError("no columns to export")
    return picked


def match_filters(
    where: Mapping[str, FilterValue] | None, real: Sequence[str]
) -> list[tuple[str, FilterValue]]:
    """``(real column name, value)`` of each filter; ValueError for a non-scalar value."""
    found: list[tuple[str, FilterValue]] = []
    for key, value in (where or {}).items():
        column = match_name(key, real, "filter column")
        if value is not None and not isinstance(value, str | int | float):
            raise ValueError(f"filter value of {key!r} must be a scalar")
        found.append((column, value))
    return found


class ExportStore(abc.ABC):
    """Reading the rows of a target schema's tables and views, for exports."""

    @abc.abstractmethod
    def export_objects(self, schema: str) -> list[str]:
        """The tables and views of target schema ``schema`` that can be exported, sorted."""

    @abc.abstractmethod
    def export_columns(self, schema: str, object_name: str) -> list[ExportColumn]:
        """The columns of ``schema.object_name`` in order; ValueError if it does not exist."""

    @abc.abstractmethod
    def export_rows(
        self,
        schema: str,
        object_name: str,
        *,
        columns: Sequence[str] | None = None,
        where: Mapping[str, FilterValue] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        """Yield ``(column names, rows)`` batches of ``schema.object_name``.

        ``columns`` picks and orders columns (default: all); ``where`` keeps the rows whose
        columns equal the given values (``None``: IS NULL), all conditions joined by AND. A
        table without rows yields one batch with no rows, so the caller still learns the
        columns. Names are checked before anything is read (ValueError).
        """
