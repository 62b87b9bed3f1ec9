"""pyarrow's fast CSV path against the reference, the ``csv`` module's exact path.

For any file the fast path takes, it gives the same rows, or the same rejection, as the
record-by-record reader; when it doubts a file that reader accepts, the load reads it again.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import redpss.landing.arrowcsv as arrowcsv
from redpss.dictionary import Dictionary, open_dictionary
from redpss.dictionary.loaders import Loader, parse_loader
from redpss.errors import FileRejected
from redpss.instance import Instance
from redpss.landing import run_load, zone_of
from redpss.landing.readers import ReadAgain, _csv_rows_exact, read_rows

COLUMNS = [
    {"name": "ID", "type": "DECIMAL(5,0)"},
    {"name": "NAME", "type": "VARCHAR(6)"},
    {"name": "AMOUNT", "type": "DECIMAL(7,2)"},
]


def _loader(**table: Any) -> Loader:
    table.setdefault("columns", COLUMNS)
    return parse_loader("t", {"pattern": "x", "target": "S.T", **table})


def _exact(path: Path, loader: Loader) -> list[tuple[Any, ...]] | str:
    try:
        return [tuple(r) for r in _csv_rows_exact(path, loader, 1 << 20)]
    except FileRejected as exc:
        return f"rejected: {exc}"


def _fast(path: Path, loader: Loader) -> list[tuple[Any, ...]] | str:
    try:
        return [tuple(r) for r in read_rows(path, loader, max_record=1 << 20)]
    except ReadAgain:
        raise
    except FileRejected as exc:
        return f"rejected: {exc}"


_ID = st.one_of(
    st.integers(-99_999, 99_999).map(str),
    st.sampled_from(["", "123456", " 7", "+8", "0009", "1_0", "x", "1.0", "٣"]),
)
_NAME = st.text(st.sampled_from("ab yé€,\t;"), max_size=8)
_AMOUNT = st.one_of(
    st.decimals(-99_999, 99_999, places=2).map(str), st.sampled_from(["", "1e3", "nan", "1.234"])
)
_LINE_END = st.sampled_from(["\n", "\r\n"])


@st.composite
def _files(draw: st.DrawFn) -> bytes:
    rows = draw(st.lists(st.tuples(_ID, _NAME, _AMOUNT), max_size=12))
    end = draw(_LINE_END)
    lines = ["ID,NAME,AMOUNT"] + [",".join(r) for r in rows]
    if draw(st.booleans()) and lines:
        lines.insert(draw(st.integers(0, len(lines))), "")  # an empty line somewhere
    text = end.join(lines) + (end if draw(st.booleans()) else "")
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return bom + text.encode("utf-8")


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=_files())
def test_the_fast_path_gives_the_rows_or_the_reason_of_the_exact_path(
    tmp_path: Path, raw: bytes
) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(raw)
    loader = _loader()
    try:
        fast = _fast(path, loader)
    except ReadAgain:  # it doubted a file the exact path reads: the load reads it again
        assert isinstance(_exact(path, loader), list)
        return
    assert fast == _exact(path, loader)


@pytest.mark.parametrize(
    ("raw", "plain"),
    [
        (b"a,b\n1,2\n", True),
        (b"a,b\r\n1,2\r\n", True),
        (b"\xef\xbb\xbfa,b\n1,2", True),
        (b'a,b\n"1",2\n', False),  # a quote: the csv module's rules
        (b"a,b\n1\x00,2\n", False),  # NUL: the exact path names it
        (b"a,b\n1\r2,3\n", False),  # a carriage return inside a line
        (b"a,b\n1,2\r", False),  # ... at the very end
        (b"a,b\n" + b"x" * (3 << 20) + b"\n", False),  # a line longer than half a block
    ],
)
def test_which_files_are_plain(tmp_path: Path, raw: bytes, plain: bool) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(raw)
    assert (arrowcsv.plain_block(path, _loader()) is not None) is plain


def test_a_carriage_return_across_chunks_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(arrowcsv, "_SCAN", 4)
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\r\n1,2\r\n")  # \r at the end of the first 4-byte chunk
    assert arrowcsv.plain_block(path, _loader()) is not None
    path.write_bytes(b"a,b\rx1,2\r\n")
    assert arrowcsv.plain_block(path, _loader()) is None


def test_other_encodings_and_long_delimiters_take_the_csv_module(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\n1,2\n")
    assert arrowcsv.plain_block(path, _loader(encoding="latin-1")) is None
    assert arrowcsv.plain_block(path, _loader(delimiter="§")) is None


@pytest.fixture
def dic(tmp_path: Path) -> Any:
    with open_dictionary("sqlite", db_dir=tmp_path / "db") as d:
        d.init()
        wide = [{**COLUMNS[0], "type": "DECIMAL(9,0)"}, *COLUMNS[1:]]
        d.upsert_loader(parse_loader("t", {"pattern": "^t", "target": "DWH.T", "columns": wide}))
        yield d


def test_a_doubt_after_rows_were_handed_on_loads_the_file_once(
    make_instance: Any, dic: Dictionary, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyarrow doubts (here: made to) a valid file after its first batch went into the
    transaction: that is rolled back, the csv module's reader loads the file, once."""
    inst: Instance = make_instance("tst1")
    config = inst.load_config()
    quick = dataclasses.replace(config.redsys, sched_file_quiet_period=0.0)
    config = dataclasses.replace(config, redsys=quick)
    zone = zone_of(inst, config)
    monkeypatch.setattr(arrowcsv, "BLOCK", 1 << 16)  # batches of a few thousand rows
    lines = ["ID,NAME,AMOUNT"] + [f"{i},n{i % 10},{i}.5" for i in range(20_000)]
    (zone.input / "t.csv").write_text("\n".join(lines) + "\n")
    real = arrowcsv._plan
    batches = 0

    def doubting(column: Any, loader: Loader) -> Any:
        plan = real(column, loader)

        def run(strings: Any) -> Any:
            nonlocal batches
            if column.name == "ID":
                batches += 1
                if batches == 3:
                    raise arrowcsv.Unsure("made to doubt")
            return plan(strings)

        return run

    monkeypatch.setattr(arrowcsv, "_plan", doubting)
    result = run_load(instance=inst, config=config, dictionary=dic, loader="t", key="t.csv",
                      run_id=1, schema="DWH")  # fmt: skip
    assert batches >= 3
    assert (result.files, result.rows, result.errors) == (1, 20_000, 0)
    assert dic.target_row_count("DWH", "T") == 20_000


def test_pyarrows_reading_ahead_of_a_big_plain_file_stays_bounded(tmp_path: Path) -> None:
    """pyarrow's streaming CSV reader reads up to 32 blocks ahead of its consumer on a
    background thread: with 4 MB blocks a big file held ~130 MB of them (a 200 MB CSV's load
    peaked at 340 MB RSS). The block is small enough that this stays well below 64 MB."""
    import pyarrow as pa

    loader = _loader(columns=[{"name": "ID", "type": "DECIMAL(9,0)"},
                              {"name": "NAME", "type": "VARCHAR(60)"}])  # fmt: skip
    path = tmp_path / "big.csv"
    row = b"%d,a name long enough to make the file big quickly %d\n"
    with path.open("wb") as f:
        f.write(b"ID,NAME\n")
        for start in range(0, 1_200_000, 100_000):
            f.write(b"".join(row % (i, i) for i in range(start, start + 100_000)))
    assert path.stat().st_size > 64 << 20
    block = arrowcsv.plain_block(path, loader)
    assert block is not None
    peak = rows = 0
    for batch in arrowcsv.arrow_batches(path, loader, block, lambda _header: [0, 1]):
        rows += sum(1 for _ in batch)  # the consumer is slower than the reader
        peak = max(peak, pa.total_allocated_bytes())
    assert rows == 1_200_000
    assert peak < 48 << 20, f"pyarrow held {peak >> 20} MB"
