"""sched's engine without a process around it: pools, release at the due time, max_parallel,
duplicates, kill, shutdown, and the settling of what a dead sched left (#13, #16, #18).

A real SQLite dictionary in a temporary instance; no jexec listens (its port is refused), so
CMD runs are not used here except where jexec's answers are given to the recovery directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from redpss.dictionary import Dictionary, open_dictionary
from redpss.dictionary.jobs import JobDef, RunUpdate, WatcherDef
from redpss.instance import Instance
from redpss.sched import recovery
from redpss.sched.engine import Engine, RunNotKillable
from tests.conftest import wait_for

SLOW = (
    "WITH RECURSIVE C(N) AS (SELECT 1 UNION ALL SELECT N + 1 FROM C LIMIT 3000000) "
    "SELECT MAX(N) FROM C"
)
FOREVER = "WITH RECURSIVE C(N) AS (SELECT 1 UNION ALL SELECT N + 1 FROM C) SELECT MAX(N) FROM C"


@pytest.fixture
def parts(make_instance: Callable[..., Instance]) -> Iterator[tuple[Instance, Dictionary]]:
    inst = make_instance("eng1", sched_default_pool_size="2")
    with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
        d.init()
        yield inst, d


def engine_of(inst: Instance, d: Dictionary, *jobs: JobDef) -> Engine:
    if jobs:
        d.apply_definitions(list(jobs), [])
    engine = Engine(inst, inst.load_config(), d)
    engine.definitions.refresh(force=True)
    engine.start()
    return engine


def states(d: Dictionary, name: str) -> list[str]:
    return [r.state for r in reversed(d.runs(name=name, limit=100))]


def test_a_run_handed_over_ahead_starts_at_its_due_time(parts: tuple[Instance, Dictionary]) -> None:
    inst, d = parts
    job = JobDef("j", "DWH", "SQL", "SELECT 1")
    engine = engine_of(inst, d, job)
    due = datetime.now(UTC) + timedelta(seconds=0.4)
    assert engine.submit(job, due=due)["state"] == "PENDING"
    assert d.runs(name="j") == []  # not in the log before it is due
    wait_for(lambda: states(d, "j") == ["OK"], timeout=10, what="the run at its due time")
    run = d.runs(name="j")[0]
    assert run.started_at is not None and run.started_at >= due
    engine.shutdown(grace=1)


def test_a_fire_time_is_taken_once(parts: tuple[Instance, Dictionary]) -> None:
    inst, d = parts
    engine = Engine(inst, inst.load_config(), d)
    due = datetime(2026, 1, 1, tzinfo=UTC)
    assert engine.first_handover("j", due)
    assert not engine.first_handover("j", due)  # offered again: a lost reply, a new jmon
    assert not engine.first_handover("j", due - timedelta(seconds=1))
    assert engine.first_handover("j", due + timedelta(seconds=1))
    assert engine.first_handover("other", due)


def test_max_parallel_skips_scheduled_runs_but_never_a_watchers(
    parts: tuple[Instance, Dictionary],
) -> None:
    inst, d = parts
    job = JobDef("slow", "DWH", "SQL", SLOW, max_parallel=1)
    engine = engine_of(inst, d, job)
    assert engine.submit(job)["state"] == "QUEUED"
    skipped = engine.submit(job)
    assert skipped["state"] == "SKIPPED" and "max_parallel 1" in skipped["message"]
    w = WatcherDef("w", "DWH", "FILE", "x", "slow")
    keyed = [engine.submit(job, key=f"f{i}", watcher=w, watcher_run_id=i) for i in range(3)]
    assert [k["state"] for k in keyed] == ["QUEUED"] * 3  # each file is its own run
    wait_for(lambda: states(d, "slow").count("OK") == 4, timeout=60, what="four runs OK")
    engine.shutdown(grace=1)


def test_kill_queued_running_and_refusals(parts: tuple[Instance, Dictionary]) -> None:
    inst, d = parts
    spin = JobDef("spin", "DWH", "SQL", FOREVER, max_parallel=5)
    load = JobDef("load", "DWH", "LOAD", "nope", max_parallel=5)
    engine = engine_of(inst, d, spin, load)
    first = engine.submit(spin)["run_id"]
    second = engine.submit(spin)["run_id"]
    queued = engine.submit(spin)["run_id"]  # the pool has two workers
    wait_for(lambda: states(d, "spin").count("RUNNING") == 2, timeout=10, what="two running")
    assert engine.kill(queued, "alice")["state"] == "KILLED"
    assert engine.kill(first, "bob")["state"] == "KILLED"
    assert engine.kill(second, "carol")["state"] == "KILLED"
    engine.writer.flush()
    by_id = {r.run_id: r for r in d.runs(name="spin")}
    assert by_id[queued].message == "killed by alice before it started"
    assert by_id[first].message == "killed by bob: the statement was interrupted"
    assert {r.state for r in by_id.values()} == {"KILLED"}
    with pytest.raises(RunNotKillable, match="not queued or running") as info:
        engine.kill(first, "bob")
    assert info.value.code == "not_running"
    engine.shutdown(grace=1)


def test_shutdown_aborts_queued_runs_and_interrupts_statements_past_the_grace(
    parts: tuple[Instance, Dictionary],
) -> None:
    inst, d = parts
    spin = JobDef("spin", "DWH", "SQL", FOREVER, max_parallel=5)
    engine = engine_of(inst, d, spin)
    runs = [engine.submit(spin)["run_id"] for _ in range(3)]
    wait_for(lambda: states(d, "spin").count("RUNNING") == 2, timeout=10, what="two running")
    engine.shutdown(grace=0.5)
    by_id = {r.run_id: r for r in d.runs(name="spin")}
    assert by_id[runs[2]].message == "sched stopped before the run started"
    assert all(r.state == "ABORTED" for r in by_id.values())
    assert "the statement was interrupted" in (by_id[runs[0]].message or "")


def _unfinished(d: Dictionary, when: datetime) -> None:
    d.record_runs(
        [
            RunUpdate("DWH", 1, "sql", "default", "RUNNING", when, started_at=when),
            RunUpdate("DWH", 2, "cmd", "default", "RUNNING", when, started_at=when),
            RunUpdate("DWH", 3, "cmd2", "default", "RUNNING", when, started_at=when),
            RunUpdate("DWH", 4, "cmd3", "default", "QUEUED", when),
            RunUpdate(
                "DWH",
                9,
                "w",
                "default",
                "RUNNING",
                when,
                watcher=True,
                watch_key="a.csv",
                executor_run_id=3,
            ),
        ]
    )


def test_a_restarted_sched_settles_what_its_predecessor_left(
    parts: tuple[Instance, Dictionary], monkeypatch: pytest.MonkeyPatch
) -> None:
    inst, d = parts
    jobs = [JobDef(n, "DWH", k, "x.sh" if k == "CMD" else "SELECT 1") for n, k in
            (("sql", "SQL"), ("cmd", "CMD"), ("cmd2", "CMD"), ("cmd3", "CMD"))]  # fmt: skip
    d.apply_definitions(jobs, [WatcherDef("w", "DWH", "FILE", "^a", "cmd2")])
    _unfinished(d, datetime.now(UTC) - timedelta(minutes=1))
    done = {"exit_code": 0, "stdout": "done", "stderr": "", "timed_out": False}
    answers: dict[str, Any] = {
        "runs": [
            {"run_id": "2", "state": "ended", "result": done},
            {"run_id": "3", "state": "running", "result": None},
        ]
    }
    monkeypatch.setattr(recovery, "jexec_call", lambda config, op, **kw: answers.get(op, {}))
    release: list[int] = []

    def follow(config: object, run_id: int, cancel: object) -> dict[str, Any]:
        release.append(run_id)  # the command of run 3 ends: jexec says so
        return done

    monkeypatch.setattr(recovery, "follow", follow)
    engine = Engine(inst, inst.load_config(), d)
    engine.definitions.refresh(force=True)
    assert engine.start() == 4
    wait_for(lambda: release == [3], timeout=10, what="the adopted run followed")
    engine.writer.flush()
    got = {r.run_id: (r.state, r.message or "") for r in d.runs(limit=10)}
    assert got[1][0] == "ABORTED" and "interrupted and did not finish" in got[1][1]
    assert got[2][0] == "OK" and "ended while sched was down" in got[2][1]
    assert got[3][0] == "OK" and "adopted by sched pid" in got[3][1]
    assert got[4][0] == "ABORTED" and "not running in jexec" in got[4][1]
    fire = d.runs(watcher=True)[0]
    assert (fire.run_id, fire.state) == (9, "OK")  # the fire ends with its executor
    engine.shutdown(grace=1)


def test_without_jexec_a_command_run_waits_and_blocks_a_second_copy(
    parts: tuple[Instance, Dictionary], monkeypatch: pytest.MonkeyPatch
) -> None:
    inst, d = parts
    cmd = JobDef("cmd", "DWH", "CMD", "x.sh", max_parallel=1)
    d.apply_definitions([cmd, JobDef("sql", "DWH", "SQL", "SELECT 1")], [])
    when = datetime.now(UTC) - timedelta(minutes=1)
    d.record_runs(
        [
            RunUpdate("DWH", 1, "sql", "default", "RUNNING", when),
            RunUpdate("DWH", 2, "cmd", "default", "RUNNING", when),
        ]
    )
    gate: list[str] = []

    def follow(config: object, run_id: int, cancel: object) -> dict[str, Any]:
        wait_for(lambda: gate, timeout=30, what="jexec answering")  # until then: unknown
        return {"exit_code": 0}

    monkeypatch.setattr(recovery, "follow", follow)
    engine = Engine(inst, inst.load_config(), d)  # jexec's port answers nothing
    engine.definitions.refresh(force=True)
    engine.start()
    engine.writer.flush()
    assert states(d, "sql") == ["ABORTED"]  # it ran in the dead process
    assert states(d, "cmd") == ["RUNNING"]  # its command may live: not ended
    again = engine.submit(cmd)
    assert again["state"] == "SKIPPED"  # no second copy while it may run
    gate.append("jexec answers")
    wait_for(lambda: "OK" in states(d, "cmd"), timeout=10, what="settled once jexec answered")
    engine.shutdown(grace=1)


def test_an_adopted_run_holds_its_pool_slot_until_it_ends(
    make_instance: Callable[..., Instance], monkeypatch: pytest.MonkeyPatch
) -> None:
    inst = make_instance("eng1", sched_default_pool_size="1")
    with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
        d.init()
        cmd, sql = JobDef("cmd", "DWH", "CMD", "x.sh"), JobDef("sql", "DWH", "SQL", "SELECT 1")
        d.apply_definitions([cmd, sql], [])
        when = datetime.now(UTC) - timedelta(minutes=1)
        d.record_runs([RunUpdate("DWH", 2, "cmd", "default", "RUNNING", when, started_at=when)])
        answers = {"runs": [{"run_id": "2", "state": "running", "result": None}]}
        monkeypatch.setattr(recovery, "jexec_call", lambda config, op, **kw: answers.get(op, {}))
        gate: list[str] = []

        def follow(config: object, run_id: int, cancel: object) -> dict[str, Any]:
            wait_for(lambda: gate, timeout=30, what="the adopted command to end")
            return {"exit_code": 0, "stdout": "", "stderr": "", "timed_out": False}

        monkeypatch.setattr(recovery, "follow", follow)
        engine = Engine(inst, inst.load_config(), d)
        engine.definitions.refresh(force=True)
        assert engine.start() == 1
        assert engine.show()["pools"]["default"] == {"size": 1, "busy": 1, "queued": 0}
        queued = engine.submit(sql)
        assert queued["state"] == "QUEUED"
        engine.writer.flush()
        # the pool's one slot is the adopted command's: the new run waits for it
        assert states(d, "sql") == ["QUEUED"]
        shown = engine.show()
        assert shown["pools"]["default"] == {"size": 1, "busy": 1, "queued": 1}
        assert [r["run_id"] for r in shown["running"]] == [2]
        gate.append("the command ended")
        wait_for(lambda: states(d, "sql") == ["OK"], timeout=15, what="the run after the adopted")
        assert states(d, "cmd") == ["OK"]
        assert engine.show()["pools"]["default"] == {"size": 1, "busy": 0, "queued": 0}
        engine.shutdown(grace=1)
