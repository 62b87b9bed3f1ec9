"""Reading a claimed file as rows of a loader's target columns, streaming.

Every reader is a generator of rows (lists in the loader's column order), holding one record
(CSV line, JSON batch, Parquet batch) at a time: memory stays bounded whatever the file size.
Anything wrong with the file raises :class:`FileRejected` with the reason and, where known, the
line and byte; the load's transaction is then rolled back and the file goes to ``error/``.

Text (CSV, fixed width): a NUL byte is refused with its line and column (no database keeps
one in a VARCHAR the same way, and it is the mark of a binary file sent by mistake); a UTF-8
byte order mark at the very start is accepted and dropped (spreadsheet tools write one).

Values are converted to the column's type here, in Python, so both backends get the same
values (:mod:`redpss.landing.values`).
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from redpss.dictionary.loaders import Loader
from redpss.errors import FileRejected
from redpss.landing.arrowcsv import Unsure, arrow_batches, plain_block
from redpss.landing.streams import json_batches, parquet_batches
from redpss.landing.values import bulk_converter, convert_row, converter

__all__ = ["ReadAgain", "import_positions", "read_rows"]

# -- CSV and fixed width ---------------------------------------------------------------------


_BOM = codecs.BOM_UTF8


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def _lines(stream: IO[bytes], encoding: str, max_record: int) -> Iterator[tuple[int, str]]:
    """``(byte offset, decoded line with its newline)``; a line longer than max_record fails.

    A UTF-8 byte order mark at the start is skipped (its bytes still count in the offsets);
    a NUL byte fails with its line and column.
    """
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    number = 0
    skip = len(_BOM) if _is_utf8(encoding) and stream.read(len(_BOM)) == _BOM else 0
    stream.seek(skip)
    offset = skip
    while True:
        raw = stream.readline(max_record + 1)
        if not raw:
            break
        number += 1
        if len(raw) > max_record:
            raise FileRejected(
                f"record longer than {max_record} bytes (landing_max_record)",
                line=number,
                byte=offset,
            )
        nul = raw.find(b"\0")
        if nul >= 0:
            raise FileRejected(f"a NUL byte at column {nul + 1}", line=number, byte=offset + nul)
        try:
            text = decoder.decode(raw)
        except UnicodeDecodeError as exc:
            raise FileRejected(
                f"not valid {encoding}: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}",
                line=number,
                byte=offset + exc.start,
            ) from None
        yield offset, text
        offset += len(raw)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise FileRejected(f"not valid {encoding}: truncated at the end", byte=offset) from None


def _ascii_compatible(encoding: str) -> bool:
    return "\n".encode(encoding) == b"\n"


def _csv_indexes(loader: Loader, header: list[str] | None) -> list[int]:
    if header is None:
        return [(c.source_pos or pos) - 1 for pos, c in enumerate(loader.columns, start=1)]
    names = {h.strip().lower(): i for i, h in enumerate(header)}
    indexes = []
    for c in loader.columns:
        if c.source_pos is not None:
            indexes.append(c.source_pos - 1)
            continue
        key = (c.source or c.name).lower()
        if key not in names:
            raise FileRejected(f"the header has no field {c.source or c.name!r}", line=1)
        indexes.append(names[key])
    return indexes


def import_positions(path: Path, loader: Loader) -> list[int]:
    """The 1-based CSV fields of ``loader``'s columns in ``path``, as our reader maps them (by
    the header's names): what the database's IMPORT takes (``method = "import"``); its own
    reader skips the header but does not match names. FileRejected when a field is missing."""
    header = None
    if loader.header:
        try:
            # a UTF-8 byte order mark is not part of the first name (the header line with it
            # is skipped by the database's reader)
            encoding = "utf-8-sig" if _is_utf8(loader.encoding) else loader.encoding
            with path.open(encoding=encoding, newline="") as stream:
                reader = csv.reader(stream, delimiter=loader.delimiter, quotechar=loader.quote)
                header = next(reader, [])
        except UnicodeDecodeError as exc:
            raise FileRejected(
                f"not valid {loader.encoding} in the header: {exc}", line=1
            ) from None
    return [i + 1 for i in _csv_indexes(loader, header)]


def _csv_rows_exact(path: Path, loader: Loader, max_record: int) -> Iterator[list[Any]]:
    """Record by record, with line numbers: what reports a bad file precisely."""
    convs = [converter(c, loader) for c in loader.columns]
    null = loader.null_string
    with path.open("rb") as stream:
        texts = (text for _offset, text in _lines(stream, loader.encoding, max_record))
        reader = csv.reader(
            texts,
            delimiter=loader.delimiter,
            quotechar=loader.quote or '"',
            quoting=csv.QUOTE_MINIMAL if loader.quote else csv.QUOTE_NONE,
            strict=True,
        )
        indexes: list[int] | None = None
        width: int | None = None
        try:
            for record in reader:
                line = reader.line_num
                if not record:
                    continue
                if indexes is None:
                    header = record if loader.header else None
                    indexes = _csv_indexes(loader, header)
                    width = len(record)
                    if max(indexes) >= width:
                        raise FileRejected(
                            f"{width} fields, the mapping needs field {max(indexes) + 1}",
                            line=line,
                        )
                    if header is not None:
                        continue
                if len(record) != width:
                    raise FileRejected(f"{len(record)} fields, expected {width}", line=line)
                fields = [None if record[i] == null else record[i] for i in indexes]
                yield convert_row(fields, convs, loader, line)
        except csv.Error as exc:
            raise FileRejected(f"bad CSV: {exc}", line=reader.line_num) from None


class _Trouble(Exception):
    """The fast path met something wrong; the exact path finds and reports it."""


_CHUNK = 1 << 20
_BATCH_ROWS = 2048
_BATCH_CHARS = 4 << 20


class _FastLines:
    """The lines of a byte stream, decoded a megabyte at a time (each line ends with ``\n``).

    A UTF-8 byte order mark at the start is dropped. Raises :class:`_Trouble` on a decoding
    error, a NUL byte, or a line longer than ``max_record`` bytes;
    ``chars`` counts what was decoded so far (to size the batches).
    """

    def __init__(self, stream: IO[bytes], encoding: str, max_record: int) -> None:
        self.stream = stream
        self.encoding = encoding
        self.max_record = max_record
        self.chars = 0

    def _too_long(self, lines: list[str]) -> bool:
        # a character is at most 4 bytes: only lines that could be too long are encoded
        suspect = self.max_record // 4
        return any(
            len(line.encode(self.encoding)) + 1 > self.max_record
            for line in lines
            if len(line) > suspect
        )

    def __iter__(self) -> Iterator[str]:
        # a chunk's lines are split and handed on in C (io.StringIO's iterator, newline="\n":
        # like the exact path, endings kept); a generator yielding each line cost 15 % of a
        # load of short records
        return itertools.chain.from_iterable(
            io.StringIO(body, newline="\n") for body in self._bodies()
        )

    def _bodies(self) -> Iterator[str]:
        """The decoded text a chunk at a time, each cut after its last newline."""
        decoder = codecs.getincrementaldecoder(self.encoding)("strict")
        pending = ""
        first = True
        while True:
            raw = self.stream.read(_CHUNK)
            if first:
                first = False
                if _is_utf8(self.encoding) and raw.startswith(_BOM):
                    raw = raw[len(_BOM) :]
            if b"\0" in raw:
                raise _Trouble  # the exact path names line and column
            try:
                text = pending + decoder.decode(raw, final=not raw)
            except UnicodeDecodeError:
                raise _Trouble from None
            self.chars += len(text) - len(pending)
            cut = text.rfind("\n") + 1
            body, pending = text[:cut], text[cut:]
            if len(pending) > self.max_record:
                raise _Trouble
            if body:
                if len(body) > self.max_record // 4 and self._too_long(body.split("\n")):
                    raise _Trouble
                yield body
            if not raw:
                break
        if pending:
            if self._too_long([pending]):
                raise _Trouble
            yield pending


def _convert_batch(
    records: list[list[str]],
    indexes: list[int],
    bulks: list[Callable[[Sequence[Any]], Sequence[Any]]],
    null: str,
) -> Iterable[Sequence[Any]]:
    """The loader's columns of ``records``, converted column by column, as rows."""
    columns = list(zip(*records, strict=True))
    out = []
    for index, bulk in zip(indexes, bulks, strict=True):
        values: Sequence[Any] = columns[index]
        if null in values:
            values = [None if v == null else v for v in values]
        out.append(bulk(values))
    return zip(*out, strict=True)


def _csv_batches(path: Path, loader: Loader, max_record: int) -> Iterator[Iterable[Sequence[Any]]]:
    """Batches of converted rows, a column at a time; on any trouble the exact path reports."""
    bulks = [bulk_converter(c, loader) for c in loader.columns]
    null = loader.null_string
    with path.open("rb") as stream:
        lines = _FastLines(stream, loader.encoding, max_record)
        reader = csv.reader(
            lines,
            delimiter=loader.delimiter,
            quotechar=loader.quote or '"',
            quoting=csv.QUOTE_MINIMAL if loader.quote else csv.QUOTE_NONE,
            strict=True,
        )
        indexes: list[int] | None = None
        width = 0
        batch = 64
        try:
            while True:
                before = lines.chars
                records = list(itertools.islice(reader, batch))
                if not records:
                    return
                if [] in records:
                    records = [r for r in records if r]
                if indexes is None:
                    if not records:
                        continue
                    header = records[0] if loader.header else None
                    indexes = _csv_indexes(loader, header)
                    width = len(records[0])
                    if max(indexes) >= width:
                        raise _Trouble
                    if header is not None:
                        del records[0]
                if any(n != width for n in set(map(len, records))):
                    raise _Trouble
                if records:
                    yield _convert_batch(records, indexes, bulks, null)
                # size the next batch by what this one held (memory stays bounded)
                per_row = max((lines.chars - before) // max(len(records), 1), 1)
                batch = max(1, min(_BATCH_ROWS, _BATCH_CHARS // per_row))
        except (_Trouble, csv.Error, ValueError, TypeError, OverflowError, ArithmeticError):
            pass
    for _row in _csv_rows_exact(path, loader, max_record):
        pass  # raises FileRejected where the file is wrong
    raise FileRejected("the file could not be read as CSV")  # pragma: no cover


class ReadAgain(FileRejected):
    """pyarrow's reader doubted a file that the ``csv`` module reads: its rows were handed on
    in part already, so the caller reads it again with ``fast=False`` (a new transaction)."""


def _csv_rows(
    path: Path, loader: Loader, max_record: int, *, fast: bool
) -> Iterator[Sequence[Any]]:
    if not _ascii_compatible(loader.encoding):
        raise FileRejected(f"encoding {loader.encoding} is not supported (not ASCII-compatible)")
    block = plain_block(path, loader) if fast else None
    if block is not None:
        return itertools.chain.from_iterable(_arrow_batches(path, loader, max_record, block))
    return itertools.chain.from_iterable(_csv_batches(path, loader, max_record))


def _arrow_batches(
    path: Path, loader: Loader, max_record: int, block: int
) -> Iterator[Iterable[Sequence[Any]]]:
    """pyarrow's batches; when it doubts, the exact path names what is wrong (or ReadAgain)."""
    try:
        yield from arrow_batches(path, loader, block, functools.partial(_csv_indexes, loader))
    except Unsure:
        for _row in _csv_rows_exact(path, loader, max_record):
            pass  # raises FileRejected where the file is wrong
        raise ReadAgain("pyarrow's CSV reader doubted the file; read it again") from None


def _fixed_rows(path: Path, loader: Loader, max_record: int) -> Iterator[list[Any]]:
    convs = [converter(c, loader) for c in loader.columns]
    spans = [
        ((c.fbv_start or 1) - 1, (c.fbv_start or 1) - 1 + (c.fbv_size or 0)) for c in loader.columns
    ]
    need = max(end for _, end in spans)
    with path.open("rb") as stream:
        for number, (offset, text) in enumerate(_lines(stream, loader.encoding, max_record), 1):
            if number == 1 and loader.header:
                continue
            body = text.rstrip("\r\n")
            if not body:
                continue
            if len(body) < need:
                raise FileRejected(
                    f"{len(body)} characters, the fields need {need}", line=number, byte=offset
                )
            fields: list[Any] = []
            for start, end in spans:
                value = body[start:end].strip()
                fields.append(None if value == loader.null_string else value)
            yield convert_row(fields, convs, loader, number)


# -- JSON and Parquet ------------------------------------------------------------------------


def _batch_rows(batches: Iterator[Any], loader: Loader) -> Iterator[list[Any]]:
    convs = [converter(c, loader) for c in loader.columns]
    names: list[str] | None = None
    for batch in batches:
        if names is None:
            have = {n.lower(): n for n in batch.schema.names}
            names = []
            for c in loader.columns:
                key = (c.source or c.name).lower()
                if key not in have:
                    raise FileRejected(
                        f"no field {c.source or c.name!r} in the file "
                        f"(fields: {', '.join(batch.schema.names)})"
                    )
                names.append(have[key])
        columns = [batch.column(batch.schema.get_field_index(n)).to_pylist() for n in names]
        for fields in zip(*columns, strict=True):
            yield convert_row(list(fields), convs, loader, None)


def read_rows(
    path: Path, loader: Loader, *, max_record: int, fast: bool = True
) -> Iterator[Sequence[Any]]:
    """The rows of ``path`` as the loader's columns, streaming; FileRejected on bad content.

    A plain CSV goes through pyarrow's reader (:mod:`redpss.landing.arrowcsv`) unless ``fast``
    is False; :class:`ReadAgain` then means: read it again with ``fast=False``.
    """
    if path.stat().st_size == 0:
        raise FileRejected("empty file (0 bytes)")
    if loader.format == "CSV":
        if loader.fixed_width:
            return _fixed_rows(path, loader, max_record)
        return _csv_rows(path, loader, max_record, fast=fast)
    if loader.format == "JSON":
        return _batch_rows(json_batches(path, max_record=max_record), loader)
    return _batch_rows(parquet_batches(path), loader)
