"""A plain CSV file through pyarrow's reader: the fast path of the CSV loader.

Python's ``csv`` module spends about a microsecond a record, and converting and checking the
values column by column as many again; pyarrow's reader parses in C++ (two threads) and does
the usual checks (text length, whole numbers) there, so a big plain CSV loads about as fast as a
bare ``csv.reader`` + ``executemany`` would insert it unchecked.

Its rules must not differ from the ``csv`` module's, so it takes only files where they cannot
(:func:`plain_block`): UTF-8, a one-byte delimiter, no quote character anywhere (where the loader
quotes: pyarrow accepts ``"x"y``, the ``csv`` module refuses it), no NUL byte, no carriage return
but before a line feed, no line longer than half a block. Everything else takes the ``csv``
module's path (:mod:`redpss.landing.readers`).

And it never refuses a file itself: anything it is not sure of — pyarrow's error, a field count
or a value the checks here do not pass — raises :class:`Unsure`, and the caller reads the file
again with the ``csv`` module, which names the line and the reason or, if pyarrow was wrong to
doubt, loads it.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from redpss.dictionary.loaders import Loader, LoaderColumn, parse_loader_type
from redpss.errors import RedpssError
from redpss.landing.values import bulk_converter

__all__ = ["Unsure", "arrow_batches", "plain_block"]

BLOCK = 1 << 20
"""Bytes pyarrow parses at a time (a record must fit: :func:`plain_block` checks lines).

pyarrow's streaming reader reads up to 32 blocks ahead on a background thread, so the block
bounds the memory of a load: 4 MB blocks held ~130 MB (a 200 MB CSV peaked at 340 MB RSS), 1 MB
blocks hold ~35 MB (190 MB RSS, and no slower)."""
_SCAN = 8 << 20


class Unsure(RedpssError):
    """The fast path cannot vouch for this file: read it with the ``csv`` module (never leaves
    :mod:`redpss.landing.readers`)."""


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def plain_block(path: Path, loader: Loader) -> int | None:
    """The block size to read ``path`` with when it is plain (see the module doc), else None.

    One pass over the bytes, a few ``bytes.find``/``count`` per 8 MB.
    """
    delimiter = loader.delimiter.encode("utf-8")
    if loader.fixed_width or not _is_utf8(loader.encoding) or len(delimiter) != 1:
        return None
    if delimiter in b"\r\n\0":
        return None
    scan = _Scan(loader.quote.encode("utf-8") if loader.quote else None)
    with path.open("rb") as stream:
        while chunk := stream.read(_SCAN):
            if not scan.plain(chunk):
                return None
    return BLOCK if scan.done() else None


class _Scan:
    """The checks of :func:`plain_block`, a chunk at a time."""

    limit = BLOCK // 2  # the longest line a block holds with room to spare

    def __init__(self, quote: bytes | None) -> None:
        self.quote = quote
        self.since = 0  # bytes since the last line feed
        self.cr = False  # the chunk before ended with a carriage return

    def plain(self, chunk: bytes) -> bool:
        if self.cr and not chunk.startswith(b"\n"):
            return False
        if b"\0" in chunk or (self.quote is not None and self.quote in chunk):
            return False
        self.cr = chunk.endswith(b"\r")
        if chunk.count(b"\r") - self.cr != chunk.count(b"\r\n"):
            return False
        first, last = chunk.find(b"\n"), chunk.rfind(b"\n")
        if first < 0:
            self.since += len(chunk)
            return self.since <= self.limit
        if self.since + first > self.limit:
            return False
        # a gap of more than 2 x half bytes without a line feed contains a whole window
        half = self.limit // 2
        for pos in range(first, last - half, half):
            if chunk.find(b"\n", pos + 1, pos + 1 + half) < 0:
                return False
        self.since = len(chunk) - 1 - last
        return True

    def done(self) -> bool:
        """False for a carriage return at the very end, or a last line too long."""
        return not self.cr and self.since <= self.limit


def _first_record(path: Path) -> str:
    """The first line that is not empty (pyarrow skips empty lines, as the readers do)."""
    with path.open("rb") as stream:
        head = stream.read(BLOCK).removeprefix(codecs.BOM_UTF8)
    for line in head.split(b"\n"):
        line = line.removesuffix(b"\r")
        if line:
            return line.decode("utf-8", "replace")
    return ""


ColumnPlan = Callable[[pa.Array], Sequence[Any]]


def _plan(column: LoaderColumn, loader: Loader) -> ColumnPlan:
    """How one column's strings become its values (the checks of :mod:`.values`, in C++ where
    the result is the same; else :func:`~redpss.landing.values.bulk_converter` in Python)."""
    base, size, scale = parse_loader_type(column.type)
    null = pa.scalar(loader.null_string, pa.string())
    nothing = pa.scalar(None, pa.string())
    bulk = bulk_converter(column, loader)

    def nulled(strings: pa.Array) -> pa.Array:
        mask = pc.equal(strings, null)
        return pc.if_else(mask, nothing, strings) if pc.any(mask).as_py() else strings

    if base in ("VARCHAR", "CHAR"):
        assert size is not None

        def text(strings: pa.Array) -> Sequence[Any]:
            values = nulled(strings)
            longest = pc.max(pc.utf8_length(values)).as_py()
            if longest is not None and longest > size:
                raise Unsure(f"column {column.name}: a value longer than {size}")
            return values.to_pylist()  # type: ignore[no-any-return]

        return text
    if base == "DECIMAL" and not scale and (size or 18) <= 18:
        limit = 10 ** (size or 18)

        def integer(strings: pa.Array) -> Sequence[Any]:
            values = nulled(strings)
            try:
                numbers = pc.cast(values, pa.int64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return _python(bulk, values)  # spaces, "1_000", other digits: Python's int()
            low, high = pc.min_max(numbers).values()
            if high.as_py() is not None and (high.as_py() >= limit or low.as_py() <= -limit):
                raise Unsure(f"column {column.name}: a number with too many digits")
            return numbers.to_pylist()  # type: ignore[no-any-return]

        return integer

    def other(strings: pa.Array) -> Sequence[Any]:
        return _python(bulk, nulled(strings))

    return other


def _python(bulk: Callable[[Sequence[Any]], Sequence[Any]], values: pa.Array) -> Sequence[Any]:
    try:
        return bulk(values.to_pylist())
    except (ValueError, TypeError, OverflowError, ArithmeticError) as exc:
        raise Unsure(str(exc)) from None


def arrow_batches(
    path: Path, loader: Loader, block: int, indexes_of: Callable[[list[str] | None], list[int]]
) -> Iterator[Iterable[Sequence[Any]]]:
    """Batches of rows of a plain file (:func:`plain_block`); :class:`Unsure` on any doubt.

    ``indexes_of(header)`` maps the header's names (None: no header) to the fields the loader's
    columns take, as the ``csv`` module's path does.
    """
    width = _first_record(path).count(loader.delimiter) + 1
    names = [f"f{i}" for i in range(width)]
    options = {
        "read_options": pa_csv.ReadOptions(block_size=block, column_names=names, use_threads=False),
        "parse_options": pa_csv.ParseOptions(
            delimiter=loader.delimiter,
            quote_char=False,
            double_quote=False,
            escape_char=False,
            newlines_in_values=False,
            ignore_empty_lines=True,
        ),
        "convert_options": pa_csv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            null_values=[],
            check_utf8=True,
        ),
    }
    plans = [_plan(c, loader) for c in loader.columns]
    indexes: list[int] | None = None
    try:
        with pa_csv.open_csv(path, **options) as reader:
            for batch in reader:
                if indexes is None:
                    if not batch.num_rows:
                        continue
                    header = [str(v) for v in batch.slice(0, 1).to_pylist()[0].values()]
                    indexes = indexes_of(header if loader.header else None)
                    if max(indexes) >= width:
                        raise Unsure("the mapping needs a field the file does not have")
                    if loader.header:
                        batch = batch.slice(1)
                if batch.num_rows:
                    columns = [
                        plan(batch.column(i)) for i, plan in zip(indexes, plans, strict=True)
                    ]
                    yield zip(*columns, strict=True)
    except pa.ArrowException as exc:
        raise Unsure(str(exc)) from None
