"""Log retention and levels."""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from redpss.config import LogLevel
from redpss.logs import ALERT, TRACE, level_number, purge_old_logs


def test_purge_removes_only_files_past_retention(tmp_path: Path) -> None:
    old = tmp_path / "DB" / "DWH" / "2026-01-01.log"
    new = tmp_path / "jmon.log"
    old.parent.mkdir(parents=True)
    old.write_text("x")
    new.write_text("y")
    past = time.time() - 31 * 86400
    os.utime(old, (past, past))
    assert purge_old_logs(tmp_path, 30) == [old]
    assert not old.exists() and new.exists()
    assert purge_old_logs(tmp_path / "missing", 30) == []


def test_levels_of_the_guide_map_to_logging() -> None:
    assert level_number(LogLevel.TRACE) == TRACE < logging.DEBUG
    assert level_number(LogLevel.WARN) == logging.WARNING
    assert level_number(LogLevel.ALERT) == ALERT > logging.ERROR
    assert logging.getLevelName(ALERT) == "ALERT"


def test_purge_keeps_the_audit_log(tmp_path: Path) -> None:
    trail = tmp_path / "audit.log"
    trail.write_text("{}\n")
    past = time.time() - 400 * 86400
    os.utime(trail, (past, past))
    assert purge_old_logs(tmp_path, 30) == []
    assert trail.exists()


def test_purge_never_deletes_an_open_file_nor_one_of_today(tmp_path: Path) -> None:
    past = time.time() - 400 * 86400
    held = tmp_path / "jmon.log"  # a role's current log: old mtime (quiet role), still open
    rotated = tmp_path / "jmon.log.2025-01-01"
    today_utc = tmp_path / "DB" / "OPS" / f"{datetime.now(UTC).date().isoformat()}.log"
    today_utc.parent.mkdir(parents=True)
    for path in (held, rotated, today_utc):
        path.write_text("x\n")
        os.utime(path, (past, past))
    with held.open("a"):
        assert purge_old_logs(tmp_path, 1) == [rotated]
    assert held.exists() and today_utc.exists()
    assert purge_old_logs(tmp_path, 1) == [held]  # closed now: old like any other


def test_a_retention_below_one_day_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.log").write_text("x")
    for days in (0, -1):
        with pytest.raises(ValueError, match="at least 1 day"):
            purge_old_logs(tmp_path, days)
    assert (tmp_path / "x.log").exists()


def test_a_file_modified_today_is_kept_even_with_one_day(tmp_path: Path) -> None:
    now = time.time()
    midnight = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0).timestamp()
    early = tmp_path / "early.log"
    early.write_text("x")
    os.utime(early, (midnight + 1, midnight + 1))
    assert purge_old_logs(tmp_path, 1, now=now, open_files=set()) == []
