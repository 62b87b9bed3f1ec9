"""Promise 4 (every fault heals or speaks): the dictionary locked for 15 s.

While another process holds an exclusive lock on ``REDSYS.db`` nothing of the instance can read
or write its status. ``redctl status`` must say so (exit 4, "status unknown", no traceback; #14
saw exit 0 and RUNNING); no role may die of it, and once the lock is gone every role writes its
heartbeat again without an operator.
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
LOCK_SECONDS = 15

HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA locking_mode = EXCLUSIVE")
conn.execute("BEGIN EXCLUSIVE")
conn.execute("UPDATE ADM_PSS_STATUS SET STATE = STATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
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
        code, doc, _ = _status(inst)
        assert code == 4, doc
        assert doc["state"] == "UNKNOWN"
        assert "heartbeats not readable" in str(doc["message"])
        assert "database is locked" in str(doc["message"])
        assert time.monotonic() - locked_at < LOCK_SECONDS  # the answer came during the lock
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
