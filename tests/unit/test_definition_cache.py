"""jmon's look at the definitions costs O(changes): the cache reads what changed (plain SQL
too), and the timetable builds the triggers of changed definitions only."""

from __future__ import annotations

import random
import sqlite3
from typing import Any

import pytest

from redpss.dictionary import Dictionary
from redpss.dictionary.cache import DefinitionCache
from redpss.dictionary.exasol import ExasolDictionary
from redpss.dictionary.jobs import JobDef, WatcherDef
from redpss.dictionary.sqlite import SqliteDictionary
from redpss.sched import timetable
from redpss.sched.monitor import Monitor, Periods
from tests.unit.test_sched_monitor import FakeClock, FakeSched

pytestmark = pytest.mark.unit


def _jobs(n: int, prefix: str = "j") -> list[JobDef]:
    return [
        JobDef(f"{prefix}{i:05d}", "DWH", "SQL", "SELECT 1", schedule_type="CRON",
               cron_expr=f"{i % 60} {i % 24} * * *")
        for i in range(n)
    ]  # fmt: skip


def _sql(dic: Dictionary, statement: str) -> None:
    """A user's plain SQL, outside redpss."""
    if isinstance(dic, ExasolDictionary):
        dic.tx(lambda tx: tx.statement(statement), what="test")
        return
    assert isinstance(dic, SqliteDictionary)
    with sqlite3.connect(dic.db_dir / "REDSYS.db") as conn:
        conn.execute(statement.replace("REDSYS.", ""))


def test_the_cache_follows_every_change(any_dic: Dictionary) -> None:
    any_dic.apply_definitions(_jobs(5), [WatcherDef("w", "DWH", "FILE", "x", "j00000")])
    cache = DefinitionCache(any_dic)
    assert cache.refresh() and sorted(cache.jobs) == [f"j{i:05d}" for i in range(5)]
    assert not cache.refresh()  # nothing changed
    _sql(any_dic, "UPDATE REDSYS.ADM_JOBS SET ACTION_TEXT = 'SELECT 2' WHERE JOB_NAME = 'j00001'")
    _sql(any_dic, "DELETE FROM REDSYS.ADM_JOBS WHERE JOB_NAME = 'j00002'")
    any_dic.apply_definitions(_jobs(1, "new"), [])
    any_dic.set_active("watcher", "w", False)
    assert cache.refresh()
    assert cache.job_list() == sorted(any_dic.jobs(), key=lambda j: j.name)
    assert cache.watcher_list() == any_dic.watchers()
    assert cache.jobs["j00001"].action == "SELECT 2" and "j00002" not in cache.jobs
    assert not cache.watchers["w"].active
    assert not cache.refresh()


def test_sqlite_reads_only_what_changed(dic: Dictionary, monkeypatch: pytest.MonkeyPatch) -> None:
    dic.apply_definitions(_jobs(2000), [])
    cache = DefinitionCache(dic)
    cache.refresh()
    unchanged = dict(cache.jobs)
    _sql(dic, "UPDATE ADM_JOBS SET CRON_EXPR = '5 5 * * *' WHERE JOB_NAME = 'j00007'")
    read: list[int] = []
    real = dic.jobs

    def counted() -> list[JobDef]:
        read.append(1)
        return real()

    monkeypatch.setattr(dic, "jobs", counted)
    assert cache.refresh()
    assert read == [] and cache.full_reads == 1
    assert cache.jobs["j00007"].cron_expr == "5 5 * * *"
    # every other definition is the very object read before (the timetable relies on it)
    assert all(cache.jobs[n] is j for n, j in unchanged.items() if n != "j00007")


def test_exasol_reads_everything_after_a_change(exa_dic: Dictionary) -> None:
    exa_dic.apply_definitions(_jobs(3), [])
    cache = DefinitionCache(exa_dic)
    cache.refresh()
    assert not cache.refresh() and cache.full_reads == 1
    _sql(exa_dic, "UPDATE REDSYS.ADM_JOBS SET ACTION_TEXT = 'SELECT 3' WHERE JOB_NAME = 'j00001'")
    assert cache.refresh() and cache.full_reads == 2
    assert cache.jobs["j00001"].action == "SELECT 3"


def test_jmon_with_ten_thousand_jobs_builds_the_trigger_of_the_changed_one_only(
    dic: Dictionary, monkeypatch: pytest.MonkeyPatch
) -> None:
    dic.apply_definitions(_jobs(10_000), [])
    clock, sched = FakeClock(), FakeSched()
    m = Monitor(dic, sched, periods=Periods(definitions=2.0), clock=clock, rng=random.Random(1))
    m.reload(force=True)
    assert len(m.timetable.entries) == 10_000
    calls: dict[str, int] = {}

    def counting(name: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] = calls.get(name, 0) + 1
            return real(*args, **kwargs)

        return call

    real_check = getattr(timetable, "check_job")  # noqa: B009 - imported there, patched there
    monkeypatch.setattr(timetable, "check_job", counting("check_job", real_check))
    for name in ("jobs", "watchers", "definition_changes"):
        monkeypatch.setattr(dic, name, counting(name, getattr(dic, name)))
    for _ in range(10):  # looks without a change: one stamp each, nothing read
        m.reload()
    assert calls == {}
    _sql(dic, "UPDATE ADM_JOBS SET CRON_EXPR = '7 7 * * *' WHERE JOB_NAME = 'j00042'")
    m.reload()
    assert calls == {"definition_changes": 1, "check_job": 1}
    entry = m.timetable.entries[("job", "j00042")]
    assert (entry.next_fire.hour, entry.next_fire.minute) == (7, 7)  # type: ignore[union-attr]


def test_jmon_writes_a_joblog_row_when_a_job_changed_only(dic: Dictionary) -> None:
    dic.apply_definitions(_jobs(50), [])
    clock, sched = FakeClock(), FakeSched()
    m = Monitor(dic, sched, periods=Periods(definitions=2.0), clock=clock, rng=random.Random(1))
    m.reload(force=True)
    m.write_stats()
    clock.sleep(60)
    m.write_stats()  # nothing changed: no job rows
    _sql(dic, "UPDATE ADM_JOBS SET CRON_EXPR = '7 7 * * *' WHERE JOB_NAME = 'j00003'")
    m.reload()
    clock.sleep(60)
    m.write_stats()
    with sqlite3.connect(dic.db_dir / "REDSYS.db") as conn:  # type: ignore[attr-defined]
        per_sample = conn.execute(
            "SELECT COUNT(*) FROM ADM_JMON_JOBLOG GROUP BY SAMPLE_AT ORDER BY SAMPLE_AT"
        ).fetchall()
        pools = conn.execute("SELECT COUNT(*) FROM ADM_JMON_LOAD").fetchone()[0]
    assert [n for (n,) in per_sample] == [50, 1] and pools == 3
