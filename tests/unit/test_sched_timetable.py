"""jmon's timetable: first fires, misfires by policy, suspension, live changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redpss.dictionary.jobs import JobDef, RunRecord, WatcherDef
from redpss.sched.timetable import Timetable

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def job(name: str = "j", **kw: object) -> JobDef:
    base: dict[str, object] = {"schedule_type": "INTERVAL", "interval_seconds": 10}
    base.update(kw)
    return JobDef(name, "DWH", "SQL", "SELECT 1", **base)  # type: ignore[arg-type]


def last_run(name: str, at: datetime) -> RunRecord:
    return RunRecord("DWH", 1, name, "default", "OK", at, at, at, 0, None, None, None)


def test_interval_job_first_runs_one_interval_after_scheduling() -> None:
    tt = Timetable(grace=5)
    assert tt.load([job()], [], {}, T0) == []
    assert tt.due(T0 + timedelta(seconds=9)) == []
    due = tt.due(T0 + timedelta(seconds=10, milliseconds=3))
    assert [(d.name, d.due, d.note) for d in due] == [("j", T0 + timedelta(seconds=10), None)]
    assert tt.next_wakeup() == T0 + timedelta(seconds=20)


def test_missed_while_down_runs_once_or_skips_by_policy() -> None:
    tt = Timetable(grace=5)
    jobs = [job("once"), job("skip", misfire_policy="SKIP")]
    last = {n: last_run(n, T0 - timedelta(seconds=95)) for n in ("once", "skip")}
    tt.load(jobs, [], last, T0)
    due = {d.name: d for d in tt.due(T0)}
    assert "misfire: 9 run(s) due since" in (due["once"].note or "")
    assert "running once (policy RUN_ONCE)" in (due["once"].note or "")
    assert not due["once"].skip
    assert due["skip"].skip and "skipped (policy SKIP)" in (due["skip"].note or "")
    # the next fire is on the old grid, after now
    assert tt.next_wakeup() == T0 + timedelta(seconds=5)


def test_busy_misfire_coalesces_and_small_lateness_does_not() -> None:
    tt = Timetable(grace=5)
    tt.load([job(interval_seconds=1)], [], {}, T0)
    late = tt.due(T0 + timedelta(seconds=1, milliseconds=200))
    assert late[0].note is None  # 0.2 s late: on time
    very = tt.due(T0 + timedelta(seconds=9))
    assert len(very) == 1 and "misfire: 8 run(s)" in (very[0].note or "")


def test_suspended_hands_nothing_over_but_moves_on() -> None:
    tt = Timetable(grace=5)
    tt.load([job()], [], {}, T0)
    assert tt.due(T0 + timedelta(seconds=35), suspended=True) == []
    resumed = tt.due(T0 + timedelta(seconds=40, milliseconds=1))
    assert [d.note for d in resumed] == [None]


def test_live_changes_keep_or_reset_the_schedule() -> None:
    tt = Timetable(grace=5)
    tt.load([job()], [], {}, T0)
    first = tt.next_wakeup()
    tt.load([job(description="text only")], [], {}, T0 + timedelta(seconds=3))
    assert tt.next_wakeup() == first  # schedule unchanged: same grid
    tt.load([job(interval_seconds=60)], [], {}, T0 + timedelta(seconds=3))
    assert tt.next_wakeup() == T0 + timedelta(seconds=63)
    tt.load([job(active=False)], [], {}, T0 + timedelta(seconds=4))
    assert tt.entries == {}


def test_cron_fires_on_its_minute() -> None:
    tt = Timetable(grace=5)
    tt.load(
        [job(schedule_type="CRON", cron_expr="*/15 * * * *")], [], {}, T0 + timedelta(minutes=1)
    )
    assert tt.next_wakeup() == T0 + timedelta(minutes=15)


def test_bad_definitions_are_reported_once_and_isolated() -> None:
    tt = Timetable(grace=5)
    jobs = [
        job("good"),
        job("badcron", schedule_type="CRON", cron_expr="61 * * * *"),
        job("neg", interval_seconds=-1),
        job("pool", pool="fast"),
    ]
    watchers = [
        WatcherDef("w", "DWH", "FILE", "(", "good"),
        WatcherDef("orphan", "DWH", "FILE", "x", "missing"),
    ]
    errors = tt.load(jobs, watchers, {}, T0)
    assert len(errors) == 5
    assert any("cron expression '61 * * * *'" in e for e in errors)
    assert any("interval must be a positive number" in e for e in errors)
    assert any("pool 'fast'" in e for e in errors)
    assert any("file pattern '('" in e for e in errors)
    assert any("executor job 'missing' does not exist" in e for e in errors)
    assert set(tt.entries) == {("job", "good")}
    assert tt.load(jobs, watchers, {}, T0) == []  # reported once, not every poll


def test_watchers_are_checked_at_once_then_every_interval() -> None:
    tt = Timetable(grace=5)
    tt.load(
        [job("exe", schedule_type="NONE")],
        [WatcherDef("w", "DWH", "FILE", "x", "exe", check_interval=5)],
        {},
        T0,
    )
    assert [d.kind for d in tt.due(T0)] == ["watch"]
    assert tt.due(T0 + timedelta(seconds=4)) == []
    assert [d.name for d in tt.due(T0 + timedelta(seconds=5))] == ["w"]


def test_jobs_are_handed_over_ahead_watchers_are_not() -> None:
    tt = Timetable(grace=5, ahead=0.5)
    tt.load([job("exe")], [WatcherDef("w", "DWH", "FILE", "x", "exe", check_interval=60)], {}, T0)
    tt.due(T0)  # the watcher's first check
    early = tt.due(T0 + timedelta(seconds=9, milliseconds=600))
    assert [(d.kind, d.due, d.note) for d in early] == [("job", T0 + timedelta(seconds=10), None)]


def test_an_interval_job_stopped_for_a_year_has_its_misfires_counted_not_walked() -> None:
    # jobs every few seconds, last run a year ago: walking each missed fire (millions a job)
    # held jmon's start for minutes; an interval's fires are counted by division
    tt = Timetable(grace=5)
    jobs = [job(f"j{i}", interval_seconds=1 + i % 7) for i in range(21)]
    year = timedelta(days=365, seconds=3)
    tt.load(jobs, [], {j.name: last_run(j.name, T0 - year) for j in jobs}, T0)
    due = {d.name: d for d in tt.due(T0)}
    assert len(due) == 21
    for i in (0, 1, 6):
        every = 1 + i % 7
        assert due[f"j{i}"].fires == int(year.total_seconds()) // every  # beyond the old cap
        nxt = tt.entries[("job", f"j{i}")].next_fire
        assert nxt is not None and T0 < nxt <= T0 + timedelta(seconds=every)
