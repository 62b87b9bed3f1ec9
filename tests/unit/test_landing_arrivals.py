"""The folder watch the converters sleep on (Linux inotify): what wakes it, what does not."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.landing.arrivals import FolderWatch, open_watch, remote_filesystem

DEADLINE = 10.0


@pytest.fixture
def watch(tmp_path: Path) -> Iterator[FolderWatch]:
    found, how = open_watch(tmp_path)
    assert found is not None, how  # tmp_path is on a local filesystem
    try:
        yield found
    finally:
        found.close()
        found.close()  # idempotent


def test_a_local_folder_is_watched_and_nothing_arriving_is_a_timeout(
    tmp_path: Path, watch: FolderWatch
) -> None:
    assert remote_filesystem(tmp_path) is None
    assert watch.wait(0) is False
    (tmp_path / "sub").mkdir()
    assert watch.wait(DEADLINE) is True  # a folder is a name too: the converter looks
    assert watch.wait(0) is False  # drained by the wait that saw it


def test_a_written_file_a_file_moved_in_and_a_mode_change_each_wake_it(
    tmp_path: Path, watch: FolderWatch
) -> None:
    (tmp_path / "a.json").write_text("{}\n")
    assert watch.wait(DEADLINE) is True
    outside = tmp_path.parent / f"{tmp_path.name}-outside.json"
    outside.write_text("{}\n")
    os.replace(outside, tmp_path / "b.json")  # an sFTP client's rename into input/
    assert watch.wait(DEADLINE) is True
    os.chmod(tmp_path / "a.json", 0o600)  # a 0600 upload made readable (or not): look again
    assert watch.wait(DEADLINE) is True
    assert watch.wait(0) is False


def test_wake_ends_a_long_wait_from_another_thread(watch: FolderWatch) -> None:
    timer = threading.Timer(0.2, watch.wake)
    timer.start()
    started = time.monotonic()
    assert watch.wait(60) is False  # woken, nothing arrived
    assert time.monotonic() - started < DEADLINE
    timer.join()


def test_a_missing_folder_is_no_watch_and_says_why(tmp_path: Path) -> None:
    found, how = open_watch(tmp_path / "missing")
    assert found is None
    assert "missing" in how
