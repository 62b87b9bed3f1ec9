"""DailyFile: a log several processes write at once, a file a day, lines never interleaved."""

from __future__ import annotations

import logging
import multiprocessing
import time
from pathlib import Path

import pytest

from redpss.logs import DailyFile

pytestmark = pytest.mark.unit


def _write(folder: str, tag: str) -> None:
    logger = logging.getLogger(f"daily.{tag}")
    logger.propagate = False
    logger.addHandler(DailyFile(folder, "access"))
    logger.setLevel(logging.INFO)
    for i in range(2000):
        logger.info("%s %04d %s", tag, i, "x" * 300)


def test_processes_append_whole_lines_to_the_file_of_the_day(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write, args=(str(tmp_path), t)) for t in "abcd"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    (day,) = tmp_path.iterdir()
    assert day.name == f"access-{time.strftime('%Y-%m-%d')}.log"
    lines = day.read_text().splitlines()
    assert len(lines) == 8000
    assert all(len(line) == 307 and line[1:7] == f" {line[2:6]} " for line in lines)
    for tag in "abcd":
        assert [line[2:6] for line in lines if line[0] == tag] == [f"{i:04d}" for i in range(2000)]


def test_a_new_day_opens_a_new_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    handler = DailyFile(str(tmp_path / "REST"), "gunicorn")
    logger = logging.getLogger("daily.switch")
    logger.propagate = False
    logger.addHandler(handler)
    days = iter(["2031-01-01", "2031-01-01", "2031-01-02"])
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: next(days))
    for word in ("one", "two", "three"):
        logger.warning(word)
    handler.close()
    logger.removeHandler(handler)
    assert (tmp_path / "REST/gunicorn-2031-01-01.log").read_text() == "one\ntwo\n"
    assert (tmp_path / "REST/gunicorn-2031-01-02.log").read_text() == "three\n"
