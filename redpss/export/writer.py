"""An export file written from batches of rows: CSV here, Parquet in :mod:`.parquet`.

Memory stays one batch (``sendfile_batch_size`` rows) whatever the size of the table.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from redpss.dictionary.export import ExportColumn

__all__ = ["FORMATS", "Batches", "Export", "write_export"]

FORMATS = {"csv": ".csv", "parquet": ".parquet"}
"""The formats and the suffix of their files."""

Batches = Iterator[tuple[list[str], list[tuple[Any, ...]]]]


@dataclass(frozen=True)
class Export:
    """A written export file."""

    path: Path
    rows: int
    size: int


def text(value: Any) -> Any:
    """A value as CSV (and a Parquet VARCHAR) shows it: binary as hex."""
    return value.hex() if isinstance(value, bytes) else value


def _write_csv(batches: Batches, path: Path, delimiter: str, header: bool) -> int:
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        for names, batch in batches:
            if header and rows == 0:
                writer.writerow(names)
                header = False
            writer.writerows([tuple(map(text, row)) for row in batch])
            rows += len(batch)
    return rows


def write_export(
    batches: Batches,
    columns: list[ExportColumn],
    path: Path,
    *,
    fmt: Literal["csv", "parquet"],
    delimiter: str = ",",
    header: bool = True,
) -> Export:
    """Write the batches to ``path`` in ``fmt``; memory stays one batch.

    A value Parquet cannot take as its column's type is a RemoteError ``export_failed``.
    """
    if fmt == "parquet":
        from redpss.export.parquet import write_parquet  # pyarrow: only for Parquet

        rows = write_parquet(batches, path, {c.name: c.kind for c in columns})
    else:
        rows = _write_csv(batches, path, delimiter, header)
    return Export(path, rows, path.stat().st_size)
