"""The parts around sched's engine: how a command's result becomes a run's state, which failures
are transient, the run log writer, and the watchers' backlog and check errors (#13, #14.7)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from redpss.dictionary import Dictionary, open_dictionary
from redpss.dictionary.jobs import JobDef, RunUpdate, WatcherDef
from redpss.errors import DictionaryError, LoadError, WireError
from redpss.instance import Instance
from redpss.sched.engine import Engine, Flag
from redpss.sched.executors import command_outcome, is_transient
from redpss.sched.runlog import RunLogWriter, merge
from redpss.sched.watchers import CHECK_KEY, Watchers
from tests.conftest import wait_for

NOW = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)


def flag(by: str | None = None, *, cancelled: bool = False) -> Flag:
    f = Flag()
    if cancelled or by is not None:
        f.set(by=by)
    return f


@pytest.mark.parametrize(
    ("result", "cancel", "state", "text"),
    [
        ({"exit_code": 0, "stdout": "fine\n"}, flag(), "OK", "fine"),
        ({"exit_code": 3, "stdout": "bad"}, flag(), "FAILED", "exit code 3; output: bad"),
        ({"exit_code": -15, "timed_out": True}, flag(), "TIMEOUT", "timeout of 60 s"),
        ({"exit_code": -15, "killed_by": "alice"}, flag("alice"), "KILLED", "killed by alice"),
        ({"exit_code": -15, "killed_by": "sched"}, flag(cancelled=True), "ABORTED", "grace"),
        (
            {"exit_code": None, "killed": True, "message": "killed: jexec restarted"},
            flag(),
            "ABORTED",
            "jexec restarted",
        ),
        (
            {"exit_code": None, "lost": True, "message": "exit code is unknown"},
            flag(),
            "ABORTED",
            "unknown",
        ),
    ],
)
def test_a_commands_result_becomes_the_runs_state(
    result: dict[str, Any], cancel: Flag, state: str, text: str
) -> None:
    outcome = command_outcome(result, limit=60, cancel=cancel)
    assert outcome.state == state and text in (outcome.message or "")


def test_transient_failures_are_the_dictionarys_or_the_disks_not_the_files() -> None:
    locked = DictionaryError("OPS.db: database is locked")
    assert is_transient(locked)
    assert is_transient(OSError(28, "No space left on device"))
    # SQLite on a full disk (a watcher's check met it and was counted as the watcher's error)
    assert is_transient(DictionaryError("REDSYS.db: disk I/O error"))
    assert is_transient(DictionaryError("OPS.db: database or disk is full"))
    try:
        try:
            raise DictionaryError("no such table: X")
        except DictionaryError as exc:
            raise LoadError("loader l: f.csv: the dictionary failed") from exc
    except LoadError as load:
        assert is_transient(load)  # the landing zone requeued the file: not its fault
    assert not is_transient(LoadError("no loader called 'x' in ADM_LOADER"))
    assert not is_transient(DictionaryError("no such table: X"))  # a SQL job's own error
    assert not is_transient(WireError("bad reply"))


def test_merge_keeps_one_update_per_run_later_states_winning() -> None:
    batch = [
        RunUpdate("DWH", 1, "j", "default", "QUEUED", NOW, message="note"),
        RunUpdate("DWH", 1, "j", "default", "RUNNING", NOW, started_at=NOW),
        RunUpdate("DWH", 2, "j", "default", "QUEUED", NOW),
        RunUpdate("DWH", 1, "j", "default", "OK", NOW, ended_at=NOW, rows=3),
    ]
    merged = {u.run_id: u for u in merge(batch)}
    assert (merged[1].state, merged[1].started_at, merged[1].rows) == ("OK", NOW, 3)
    assert merged[1].message == "note" and merged[2].state == "QUEUED"


class Flaky:
    """A dictionary whose first write fails as a locked one does."""

    def __init__(self, real: Dictionary) -> None:
        self.real, self.failures = real, 1

    def record_runs(self, updates: list[RunUpdate]) -> None:
        if self.failures:
            self.failures -= 1
            raise DictionaryError("REDSYS.db: database is locked")
        self.real.record_runs(updates)

    def record_job_status(self, updates: list[RunUpdate]) -> None:
        self.real.record_job_status(updates)


def test_the_run_log_writer_keeps_a_batch_the_dictionary_refused(dic: Dictionary) -> None:
    writer = RunLogWriter(Flaky(dic))  # type: ignore[arg-type]
    writer.start()
    writer.put(RunUpdate("DWH", 1, "j", "default", "OK", NOW, ended_at=NOW))
    assert writer.flush(timeout=10)
    writer.stop()
    assert [r.state for r in dic.runs(name="j")] == ["OK"]
    assert dic.job_status() == []  # no definition j: nothing to show, nothing lost either


@pytest.fixture
def engine(make_instance: Callable[..., Instance]) -> Iterator[Engine]:
    inst = make_instance("wat1", sched_loader_pool_size="3", sched_file_quiet_period="0")
    with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
        d.init()
        e = Engine(inst, inst.load_config(), d)
        yield e
        e.shutdown(grace=1)


def test_a_file_watcher_fires_every_file_up_to_its_pool_and_the_next_when_one_ends(
    engine: Engine,
) -> None:
    d = engine.dictionary
    slow = "WITH RECURSIVE C(N) AS (SELECT 1 UNION ALL SELECT N + 1 FROM C LIMIT 300000) SELECT 1"
    d.apply_definitions(
        [JobDef("exe", "DWH", "SQL", slow, pool="loader")],
        [WatcherDef("w", "DWH", "FILE", r"^f_\d+$", "exe", check_interval=3600)],
    )
    inbox = engine.instance.home / "data" / "input"
    inbox.mkdir(parents=True, exist_ok=True)
    for i in range(8):
        (inbox / f"f_{i}").write_text("x")
        time.sleep(0.002)  # distinct change times: arrival order
    engine.definitions.refresh(force=True)
    engine.start()
    watchers = Watchers(engine)
    watcher = engine.definitions.watchers["w"]
    assert watchers.check(watcher) == 3  # the loader pool's size, at once
    wait_for(
        lambda: len(d.runs(name="w", watcher=True, states=("OK",))) == 8,
        timeout=60,
        what="every file fired without another check",
    )
    fires = sorted(d.runs(name="w", watcher=True, limit=20), key=lambda r: r.run_id)
    assert [f.watch_key for f in fires] == [f"f_{i}" for i in range(8)]  # oldest first, once
    assert watchers.check(watcher) == 0  # handled: no file fires again unchanged


def test_a_failing_check_is_counted_under_its_own_key_and_reset(engine: Engine) -> None:
    d = engine.dictionary
    d.apply_definitions(
        [JobDef("exe", "DWH", "SQL", "SELECT 1")],
        [WatcherDef("q", "DWH", "SQL", "SELECT MAX(ID) FROM MISSING", "exe", check_interval=1)],
    )
    engine.definitions.refresh(force=True)
    engine.start()
    watchers = Watchers(engine)
    watchers.start()
    try:
        for _ in range(2):
            watchers.request("q")
            wait_for(lambda: not watchers._queue, timeout=10, what="the check done")
        wait_for(lambda: d.exec_errors("q") and d.exec_errors("q")[0].count >= 2, timeout=10)
        (error,) = d.exec_errors("q")
        assert error.key == CHECK_KEY and "no such table: MISSING" in (error.message or "")
        with sqlite3.connect(engine.instance.db_dir / "DWH.db") as conn:
            conn.execute("CREATE TABLE MISSING (ID INTEGER)")
            conn.execute("INSERT INTO MISSING VALUES (5)")
        conn.close()
        watchers.request("q")  # works again: fires; the count stays until reset
        wait_for(lambda: d.runs(name="q", watcher=True), timeout=10, what="the fire")
        assert d.exec_errors("q")[0].count >= 2
        assert d.reset_exec_errors("q") == 1 and d.exec_errors("q") == []
    finally:
        watchers.stop()
