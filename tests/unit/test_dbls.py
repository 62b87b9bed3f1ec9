"""DBLS: checking a log buffer, writing it all or nothing (no server)."""

from __future__ import annotations

import errno
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from redpss.errors import BadArgs
from redpss.roles.dbls import LogFiles, parse_buffer
from redpss.wire.args import parse as parse_args
from redpss.wire.ops import LogRequest

NOW = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)


def parse(**args: object) -> tuple[str, list[tuple[str, str]]]:
    schema, lines = parse_buffer(parse_args(LogRequest, args), max_line=100, now=NOW)
    return schema, [(ln.level, ln.text) for ln in lines]


def test_string_lines_keep_their_text_and_find_their_level() -> None:
    schema, lines = parse(
        schema="stage", lines=["2025-01-31 12:00 ERROR boom", "[warning] x", "plain\nnext"]
    )
    assert schema == "STAGE"
    assert lines == [
        ("ERROR", "2025-01-31 12:00 ERROR boom"),
        ("WARN", "[warning] x"),
        ("INFO", "plain\\nnext"),
    ]


def test_object_lines_are_formatted_with_time_level_and_source() -> None:
    _, lines = parse(schema="S", source="LOAD_X", lines=[{"level": "alert", "message": "m"}])
    assert lines == [("ALERT", "2025-01-31T12:00:00.000+00:00 ALERT LOAD_X: m")]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"lines": ["x"]}, "'schema'"),
        ({"schema": "a-b", "lines": ["x"]}, "'schema'"),
        ({"schema": "S"}, "'lines'"),
        ({"schema": "S", "lines": []}, "'lines'"),
        ({"schema": "S", "lines": ["ok", 3]}, "'lines[1]'"),
        ({"schema": "S", "lines": [{"level": "LOUD", "message": "x"}]}, "'lines[0].level'"),
        ({"schema": "S", "lines": [{"level": "INFO"}]}, "'lines[0].message'"),
        ({"schema": "S", "lines": ["x" * 101]}, "'lines[0]' is longer than 100 bytes"),
        ({"schema": "S", "lines": ["x"], "source": 5}, "'source'"),
        ({"schema": "S", "lines": ["x"], "colour": 1}, "colour"),
    ],
)
def test_bad_buffers_name_the_field(args: dict[str, object], field: str) -> None:
    """Some are refused by the request's type, some by dbls itself: all as BadArgs."""
    with pytest.raises(BadArgs, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_buffer(parse_args(LogRequest, args), max_line=100, now=NOW)


# -- all or nothing (issue #14: a refused buffer left 2 844 lines and a torn one behind) -------

_FILL = """
import os, resource, signal, sys
from pathlib import Path
from redpss.roles.dbls import LogFiles
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
files = LogFiles(Path(sys.argv[1]), fsync=True)
lines = [f"INFO line {i:05d} " + "x" * 80 for i in range(int(sys.argv[3]))]
try:
    files.append("OPS", lines, "2026-01-01")
except OSError as exc:
    print("refused", exc.errno)
else:
    print("written")
"""


def _fill(root: Path, limit: int, count: int) -> str:
    out = subprocess.run(
        [sys.executable, "-c", _FILL, str(root), str(limit), str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_a_buffer_the_disk_refuses_in_part_is_taken_back_whole(tmp_path: Path) -> None:
    day = tmp_path / "OPS" / "2026-01-01.log"
    assert _fill(tmp_path, 1 << 20, 100) == "written"
    before = day.read_bytes()
    # 10 000 lines of ~100 bytes do not fit below 256 KiB: the write stops in the middle
    assert _fill(tmp_path, 256 << 10, 10_000) == f"refused {errno.EFBIG}"
    assert day.read_bytes() == before
    # the retry, once it fits, writes the buffer exactly once
    assert _fill(tmp_path, 4 << 20, 10_000) == "written"
    lines = day.read_text().splitlines()
    # 100 + 10 000 lines, no line twice but the 100 the two buffers share, none torn
    assert len(lines) == 10_100 and len(set(lines)) == 10_000
    assert all(line.startswith("INFO line ") and line.endswith("x" * 80) for line in lines)


def test_a_torn_last_line_is_cut_off_before_the_next_buffer(tmp_path: Path) -> None:
    day = tmp_path / "OPS" / "2026-01-01.log"
    day.parent.mkdir()
    day.write_bytes(b"INFO one\nINFO two\nINFO thr")  # a crash in the middle of a write
    files = LogFiles(tmp_path, fsync=False)
    try:
        files.append("OPS", ["INFO four"], "2026-01-01")
    finally:
        files.close()
    assert day.read_text() == "INFO one\nINFO two\nINFO four\n"
    day.write_bytes(b"no newline at all")
    files = LogFiles(tmp_path, fsync=False)
    try:
        files.append("OPS", ["INFO five"], "2026-01-01")
    finally:
        files.close()
    assert day.read_text() == "INFO five\n"
