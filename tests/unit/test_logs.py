"""Log retention and levels."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

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
