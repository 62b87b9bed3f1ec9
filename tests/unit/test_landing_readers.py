"""The batched CSV path: same rows and the same precise reasons as the record-by-record path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from redpss.dictionary.loaders import parse_loader
from redpss.errors import FileRejected
from redpss.landing.readers import _csv_rows_exact, read_rows

COLUMNS = [
    {"name": "ID", "type": "DECIMAL(5,0)"},
    {"name": "NAME", "type": "VARCHAR(12)"},
    {"name": "AMOUNT", "type": "DECIMAL(9,2)"},
    {"name": "RATE", "type": "DOUBLE"},
]
LOADER = parse_loader("t", {"pattern": "x", "target": "S.T", "columns": COLUMNS})


def _rows(path: Path, max_record: int = 1 << 20) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in read_rows(path, LOADER, max_record=max_record)]


def _exact(path: Path, max_record: int = 1 << 20) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in _csv_rows_exact(path, LOADER, max_record)]


def test_same_rows_as_the_exact_path(tmp_path: Path) -> None:
    lines = ["ID,NAME,AMOUNT,RATE"]
    for i in range(20000):
        name = '"two\nlines"' if i % 997 == 0 else ("" if i % 13 == 0 else f"n{i}")
        lines.append(f"{i % 99999},{name},{i}.25,{'' if i % 7 == 0 else i / 3}")
        if i % 5000 == 0:
            lines.append("")  # blank lines are skipped
    path = tmp_path / "a.csv"
    path.write_text("\r\n".join(lines))  # CRLF, no newline at the end
    rows = _rows(path)
    assert rows == _exact(path)
    assert len(rows) == 20000 and rows[0] == (0, "two\nlines", "0.25", None)
    assert rows[13][1] is None and isinstance(rows[1][0], int) and rows[1][3] == 1 / 3


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("1,a,1.00", "3 fields, expected 4"),
        ("123456,a,1.00,1", "column ID"),
        ("1,thirteen chars,1,1", "column NAME"),
        ("1,a,x,1", "column AMOUNT"),
        ("1,a,1,one", "column RATE"),
        ('1,"a,1,1', "bad CSV"),
        ("1,\udce9,1,1", "not valid utf-8"),
        ("1," + "x" * 5000 + ",1,1", "longer than 4096 bytes"),
    ],
)
def test_a_bad_record_deep_in_the_file_is_named_by_its_line(
    tmp_path: Path, bad: str, reason: str
) -> None:
    good = [f"{i},n{i},{i}.50,1.5" for i in range(7000)]
    text = "\n".join(["ID,NAME,AMOUNT,RATE", *good[:6000], bad, *good[6000:]]) + "\n"
    path = tmp_path / "bad.csv"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(FileRejected) as info:
        _rows(path, max_record=4096)
    assert reason.lower() in str(info.value).lower()
    if reason != "bad CSV":  # an open quote runs to the end of the file
        assert info.value.line == 6002
