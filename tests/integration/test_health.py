"""Role health on a running instance: ``redpss role X --check`` and ``redctl status`` agree,
a suspended instance pauses jmon and sched only, a dictionary that refuses heartbeats makes
the roles unhealthy (and healthy again when it comes back)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from redpss.instance import Instance
from tests.conftest import run_cli, wait_for
from tests.integration.sched_support import MakeSchedInstance, redctl


@pytest.fixture
def started(make_sched_instance: MakeSchedInstance) -> Iterator[Instance]:
    inst = make_sched_instance()
    redctl(inst, "start")
    yield inst


def status(inst: Instance) -> dict[str, Any]:
    out = run_cli("redctl", "--json", "status", inst=inst)
    doc: dict[str, Any] = json.loads(out.stdout)
    doc["exit"] = out.returncode
    return doc


def roles(inst: Instance) -> dict[str, dict[str, Any]]:
    return {r["role"]: r for r in status(inst)["roles"]}


def check(inst: Instance, role: str) -> tuple[int, str]:
    out = run_cli("redpss", "role", role, "--check", inst=inst)
    return out.returncode, out.stdout + out.stderr


def test_check_and_status_agree_and_suspension_pauses_only_the_schedulers(
    started: Instance,
) -> None:
    inst = started
    assert status(inst)["exit"] == 0
    for role in roles(inst):
        assert check(inst, role) == (0, f"role {role}: healthy\n")

    redctl(inst, "suspend")
    wait_for(lambda: roles(inst)["jmon"]["alert"] == 1, timeout=15, what="jmon SUSPENDED")
    doc = status(inst)
    assert (doc["exit"], doc["state"]) == (0, "SUSPENDED")
    by_role = {r["role"]: r for r in doc["roles"]}
    for role in ("jmon", "sched"):
        assert (by_role[role]["state"], by_role[role]["alert"]) == ("SUSPENDED", 1)
    for role in ("dbls", "jexec", "sendmail", "sendfile"):
        row = by_role[role]
        assert (row["state"], row["alert"], row["healthy"]) == ("RUNNING", 0, True), row
        assert "instance suspended" in row["reason"]
    # the heartbeat rows say the same (what the database's own STA_PSS_STATUS shows)
    conn = sqlite3.connect(inst.db_dir / "REDSYS.db")
    try:
        states = dict(conn.execute("SELECT ROLE, STATE FROM STA_PSS_STATUS").fetchall())
    finally:
        conn.close()
    wait_for(lambda: _states(inst)["jmon"] == "SUSPENDED", timeout=15, what="jmon's heartbeat row")
    assert states["dbls"] == "RUNNING"
    assert check(inst, "jmon")[0] == 0  # suspended is not sick
    redctl(inst, "resume")


def _states(inst: Instance) -> dict[str, str]:
    conn = sqlite3.connect(inst.db_dir / "REDSYS.db")
    try:
        return dict(conn.execute("SELECT ROLE, STATE FROM STA_PSS_STATUS").fetchall())
    finally:
        conn.close()


def test_a_dictionary_that_refuses_heartbeats_makes_roles_unhealthy_until_it_is_back(
    started: Instance,
) -> None:
    inst = started
    wait_for(lambda: check(inst, "jexec")[0] == 0, timeout=15, what="jexec healthy")
    lock = sqlite3.connect(inst.db_dir / "REDSYS.db", isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # every writer waits (busy timeout 10 s), then fails
        _, said = wait_for(
            lambda: (lambda c: c if "not written to the dictionary" in c[1] else None)(
                check(inst, "jexec")
            ),
            timeout=60,
            what="--check to name the refused heartbeat",
        )
        assert "role jexec: heartbeat not written to the dictionary" in said
        assert check(inst, "jexec")[0] == 1
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    wait_for(lambda: check(inst, "jexec")[0] == 0, timeout=30, what="jexec healthy again")
    wait_for(lambda: status(inst)["exit"] == 0, timeout=30, what="redctl status exit 0")
