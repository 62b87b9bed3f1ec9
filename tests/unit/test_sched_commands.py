"""jexec's book of commands: results kept for a sched that was not there, orphans of a dead
jexec killed (their whole process group) and booked as killed, recycled pids never killed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from redpss.sched.commands import CommandBook, process_start


def _sleeper(seconds: float) -> subprocess.Popen[bytes]:
    """A command in its own session with a child of its own, as jexec starts commands."""
    code = (
        f"import subprocess, time; subprocess.Popen(['sleep', '{seconds}']); time.sleep({seconds})"
    )
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def _group(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _gone(pid: int) -> bool:
    return process_start(pid) is None


def test_a_result_waits_for_the_sched_that_asks(tmp_path: Path) -> None:
    book = CommandBook(tmp_path / "jexec")
    proc = _sleeper(0.1)
    cmd = book.started("17", "j", proc.pid)
    assert (tmp_path / "jexec" / "17.json").exists()
    assert book.wait("17", 0.0)["state"] == "running"
    proc.wait()
    book.ended(cmd, {"exit_code": 0, "stdout": "fine"})
    assert not (tmp_path / "jexec" / "17.json").exists()
    listed = book.listing()
    assert [(c["run_id"], c["state"], c["result"]["stdout"]) for c in listed] == [
        ("17", "ended", "fine")
    ]
    assert book.wait("17", 5.0, forget=True)["result"] == {"exit_code": 0, "stdout": "fine"}
    assert book.wait("17", 0.0) == {"run_id": "17", "state": "unknown"}


def test_kill_ends_the_whole_group_and_says_who(tmp_path: Path) -> None:
    book = CommandBook(tmp_path / "jexec")
    proc = _sleeper(30)
    cmd = book.started("5", "j", proc.pid)
    deadline = time.monotonic() + 10
    while len(_group(proc.pid)) < 2:  # the command and its child
        assert time.monotonic() < deadline
        time.sleep(0.02)
    book.kill("5", "alice")
    proc.wait(5)
    book.ended(cmd, {"exit_code": proc.returncode})
    assert book.wait("5", 0)["result"]["killed_by"] == "alice"
    deadline = time.monotonic() + 5
    while _group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _group(proc.pid) == []  # the child went with its leader


def test_a_new_jexec_kills_what_a_dead_one_left_and_books_it(tmp_path: Path) -> None:
    folder = tmp_path / "jexec"
    dead = CommandBook(folder)
    proc = _sleeper(30)
    dead.started("9", "nightly", proc.pid)  # ... and then that jexec is killed
    gone = _sleeper(0)
    gone.wait()
    dead.started("10", "gone", gone.pid)  # a command that ended while jexec was down
    book = CommandBook(folder)
    found = {c.run_id: c for c in book.recover(jexec_pid=4242)}
    proc.wait(10)
    assert _gone(proc.pid)
    assert found["9"].result is not None and found["9"].result["killed"] is True
    assert "killed: jexec restarted (pid 4242)" in found["9"].result["message"]
    assert found["10"].result is not None and found["10"].result["lost"] is True
    assert list(folder.glob("*.json")) == []
    assert book.wait("9", 0)["state"] == "ended"


def test_a_recycled_pid_is_not_killed(tmp_path: Path) -> None:
    folder = tmp_path / "jexec"
    folder.mkdir()
    innocent = _sleeper(30)
    record = {
        "run_id": "3",
        "job": "j",
        "pid": innocent.pid,
        "start_ticks": 1,
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    (folder / "3.json").write_text(json.dumps(record))
    try:
        found = CommandBook(folder).recover(jexec_pid=1)
        assert found[0].result is not None and found[0].result["lost"] is True
        assert innocent.poll() is None  # the pid now belongs to someone else: left alone
    finally:
        innocent.kill()
        innocent.wait()
