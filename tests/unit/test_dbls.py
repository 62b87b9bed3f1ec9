"""DBLS: checking a log buffer (no server)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from redpss.roles.dbls import parse_buffer

NOW = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)


def parse(**args: object) -> tuple[str, list[tuple[str, str]]]:
    schema, lines = parse_buffer(dict(args), max_line=100, now=NOW)
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
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_buffer(args, max_line=100, now=NOW)
