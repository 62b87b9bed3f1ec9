"""An export written as Parquet with a pyarrow ``ParquetWriter``, one batch at a time.

Imported only when a Parquet export is asked for: pyarrow costs a process about 60 MB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from redpss.errors import RemoteError
from redpss.export.writer import Batches, text

__all__ = ["write_parquet"]

_ARROW_TYPES = {
    "INTEGER": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "VARCHAR": pa.string(),
    "BINARY": pa.binary(),
}


def _arrow_column(values: tuple[Any, ...], kind: str) -> pa.Array:
    if kind == "BOOLEAN":
        values = tuple(None if v is None else bool(v) for v in values)
    elif kind == "VARCHAR":
        values = tuple(v if v is None or isinstance(v, str) else str(text(v)) for v in values)
    return pa.array(values, type=_ARROW_TYPES[kind])


def write_parquet(batches: Batches, path: Path, kinds: dict[str, str]) -> int:
    """Write the batches to ``path``; return the rows written."""
    rows = 0
    writer: pq.ParquetWriter | None = None
    try:
        for names, batch in batches:
            schema = pa.schema([(n, _ARROW_TYPES[kinds[n]]) for n in names])
            if writer is None:
                writer = pq.ParquetWriter(str(path), schema, compression="snappy")
            if not batch:
                continue
            arrays = []
            for name, values in zip(names, zip(*batch, strict=True), strict=True):
                try:
                    arrays.append(_arrow_column(values, kinds[name]))
                except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
                    raise RemoteError(
                        "export_failed",
                        f"column {name} ({kinds[name]}) holds a value Parquet cannot take "
                        f"as such: {exc}",
                    ) from exc
            writer.write_batch(pa.record_batch(arrays, schema=schema))
            rows += len(batch)
    finally:
        if writer is not None:
            writer.close()
    return rows
