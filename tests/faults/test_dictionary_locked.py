"""Promise 4 (every fault heals or speaks): the dictionary locked for 25 s.

Another process holds the write lock of ``REDSYS.db`` (``BEGIN EXCLUSIVE``) for 25 s: no role
can write its heartbeat (each try waits the busy timeout, 10 s, then fails). ``redctl status``
must still answer at once and show the heartbeats stop (#14 saw exit 0 and RUNNING), each role's
own health check must name the lock, no role may die of it, and once the lock is gone every role
writes its heartbeat again without an operator.

A lock that stops readers too (``PRAGMA locking_mode = EXCLUSIVE``) cannot be taken while the
instance runs: every role keeps a connection to the file open for its heartbeat (WAL's shared
memory), so the other process gets "database is locked" itself — the second test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

from redpss.instance import Instance
from tests.conftest import run_cli, wait_for

MakeInstance = Callable[..., Instance]
LOCK_SECONDS = 25

HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("UPDATE ADM_PSS_STATUS SET STATE = STATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""
EXCLUSIVE_MODE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=2)
conn.execute("PRAGMA locking_mode = EXCLUSIVE")
try:
    conn.execute("BEGIN EXCLUSIVE")
except sqlite3.OperationalError as exc:
    print(exc)
else:
    print("got it")
"""


def _status(inst: Instance) -> tuple[int, dict[str, object], str]:
    out = run_cli("redctl", "--json", "status", inst=inst)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout), out.stderr


def test_a_locked_dictionary_is_reported_and_healed(make_instance: MakeInstance) -> None:
    inst = make_instance("tst1")
    out = run_cli("redctl", "start", inst=inst)
    assert out.returncode == 0, out.stdout + out.stderr
    code, before, _ = _status(inst)
    assert code == 0
    pids = {str(r["role"]): r["pid"] for r in before["roles"]}  # type: ignore[attr-defined]
    exited = (inst.log_dir / "supervisord.log").read_text().count("exited:")

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(inst.db_dir / "REDSYS.db"), str(LOCK_SECONDS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        locked_at = time.monotonic()

        def stalled() -> bool:
            code, doc, _ = _status(inst)  # answers during the lock: readers are not blocked
            rows = doc["roles"]
            assert isinstance(rows, list)
            return code != 0 and all(
                r["alert"] >= 1 and "heartbeat" in str(r["reason"]) for r in rows
            )  # "heartbeat late (N s)", then "no heartbeat for N s"

        wait_for(stalled, timeout=LOCK_SECONDS, what="status to see the heartbeats stop")

        def named() -> bool:
            check = run_cli("redpss", "role", "sched", "--check", inst=inst)
            return check.returncode == 1 and "database is locked" in check.stdout + check.stderr

        wait_for(named, timeout=LOCK_SECONDS, what="the role's own check to name the lock")
        assert time.monotonic() - locked_at < LOCK_SECONDS  # all seen during the lock
    finally:
        assert holder.wait(LOCK_SECONDS + 30) == 0
        holder.stdout.close()  # type: ignore[union-attr]

    def healthy() -> bool:
        code, doc, _ = _status(inst)
        rows = doc["roles"]
        assert isinstance(rows, list)
        return code == 0 and all(r["heartbeat_age"] is not None for r in rows)

    wait_for(healthy, timeout=30, what="every role's heartbeat after the lock")
    _, after, _ = _status(inst)
    # no role died of the lock: same pids, no restart, supervisord saw no exit
    assert {str(r["role"]): r["pid"] for r in after["roles"]} == pids  # type: ignore[attr-defined]
    assert (inst.log_dir / "supervisord.log").read_text().count("exited:") == exited
    assert run_cli("redctl", "stop", inst=inst).returncode == 0


def test_an_exclusive_mode_lock_cannot_be_taken_from_a_running_instance(
    make_instance: MakeInstance,
) -> None:
    inst = make_instance("tst1")
    assert run_cli("redctl", "start", inst=inst).returncode == 0
    try:
        tried = subprocess.run(
            [sys.executable, "-c", EXCLUSIVE_MODE, str(inst.db_dir / "REDSYS.db")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert tried.stdout.strip() == "database is locked", tried.stdout + tried.stderr
        assert _status(inst)[0] == 0  # the instance did not notice
    finally:
        assert run_cli("redctl", "stop", inst=inst).returncode == 0
