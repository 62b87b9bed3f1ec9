"""The landing_scale bench's CSV is what its output says it is (bench/lib/bigcsv.py).

The bench judges the loader on a *plain* file and prints the *quoted* one: each shape must be
what ``csv.writer`` writes for its rows, and must take the loader's path the bench names
(plain: pyarrow's reader; quoted: the ``csv`` module's), or its figures describe another path.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import pytest

from redpss.dictionary.loaders import parse_loader
from redpss.landing.arrowcsv import plain_block
from redpss.landing.readers import read_rows

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.lib.bigcsv import make_csv

LOADER = parse_loader("big", {"pattern": "x", "target": "BIG.T", "columns": [
    {"name": "ID", "type": "DECIMAL(18,0)"}, {"name": "NAME", "type": "VARCHAR(40)"},
    {"name": "CITY", "type": "VARCHAR(40)"}, {"name": "NOTE", "type": "VARCHAR(100)"},
]})  # fmt: skip


@pytest.mark.parametrize("shape", ["plain", "quoted"])
def test_each_shape_is_what_csv_writer_writes_and_takes_the_path_it_is_named_for(
    tmp_path: Path, shape: str
) -> None:
    path = tmp_path / "big.csv"
    rows = make_csv(path, 200_000, shape)
    text = path.read_text()
    records = list(csv.reader(io.StringIO(text)))
    written = io.StringIO()
    csv.writer(written, lineterminator="\n").writerows(records)
    assert written.getvalue() == text
    assert len(records) == rows + 1 and rows >= 3_000
    assert (plain_block(path, LOADER) is not None) == (shape == "plain")
    loaded = list(read_rows(path, LOADER, max_record=1 << 20))
    assert len(loaded) == rows
    assert [str(v) for v in loaded[100]] == records[101]
    assert ("," in loaded[100][3]) == (shape == "quoted")
