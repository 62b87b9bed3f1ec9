"""jmon's loop (Monitor) on a fake clock: it sleeps until there is something to do, never spins,
hands every fire over once, keeps what sched did not take and backs off while sched is away."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from redpss.dictionary import Dictionary
from redpss.dictionary.jobs import JobDef, WatcherDef
from redpss.errors import WireError
from redpss.sched.monitor import RETRY_CAP, Monitor, Periods
from redpss.wire.frames import DEFAULT_MAX_LINE, encode


class FakeClock:
    """Wall and monotonic time that move only when the test says so (from the real now: the
    dictionary stamps definitions with the real clock)."""

    def __init__(self) -> None:
        self.wall = datetime.now(UTC)
        self.mono = 1000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


class FakeSched:
    """Answers jmon's requests like sched, or refuses the connection while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.items: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}
        self.refused = 0

    def __call__(self, op: str, /, **args: Any) -> Any:
        if self.down:
            self.refused += 1
            raise WireError("connection refused")
        self.calls[op] = self.calls.get(op, 0) + 1
        if op == "submit":
            self.items.extend(args["items"])
            return [{"name": i["name"], "state": "QUEUED"} for i in args["items"]]
        if op == "stats":
            return {"default": {"size": 4, "busy": 0, "queued": 0, "ended": 0}}
        return None


def monitor(dic: Dictionary, sched: FakeSched, clock: FakeClock, poll: float = 2.0) -> Monitor:
    periods = Periods(definitions=poll, stats=60.0)
    m = Monitor(dic, sched, periods=periods, clock=clock, rng=random.Random(5))
    m.reload(force=True)
    return m


def run_for(m: Monitor, clock: FakeClock, seconds: float, jitter: float = 0.0) -> int:
    """Turn the loop like the jmon role for ``seconds`` of simulated time; return the turns."""
    rng = random.Random(7)
    end = clock.mono + seconds
    turns = 0
    while clock.mono < end:
        wait = m.turn()
        turns += 1
        clock.sleep(wait + rng.uniform(0.0, jitter))
    return turns


def test_one_watcher_every_2_s_is_not_a_busy_wait(dic: Dictionary) -> None:
    """#13: jmon spun in the half second before each check of a 2-s FILE watcher."""
    dic.apply_definitions(
        [JobDef("exe", "OPS", "SQL", "SELECT 1")],
        [WatcherDef("w", "OPS", "FILE", "^x", "exe", check_interval=2)],
    )
    clock, sched = FakeClock(), FakeSched()
    m = monitor(dic, sched, clock)
    turns = run_for(m, clock, 60.0, jitter=0.003)
    checks = [i for i in sched.items if i["kind"] == "watch"]
    assert 30 <= len(checks) <= 31
    # a check every 2 s and a definitions look every 2 s, on one grid or two: <= 2 per check
    assert turns <= 2 * len(checks) + 3


def test_a_thousand_watchers_over_an_hour_turns_bounded_by_fires(dic: Dictionary) -> None:
    """Loop turns over a simulated hour are bounded by the fires and the chores, not by time."""
    rng = random.Random(13)
    watchers = [
        WatcherDef(f"w{i}", "OPS", "FILE", f"^f{i}_", "exe", check_interval=rng.randint(5, 600))
        for i in range(1000)
    ]
    dic.apply_definitions([JobDef("exe", "OPS", "SQL", "SELECT 1")], watchers)
    clock, sched = FakeClock(), FakeSched()
    m = monitor(dic, sched, clock, poll=30.0)  # (a look at 1 000 definitions costs ~10 ms)
    start = clock.wall
    turns = run_for(m, clock, 3600.0, jitter=0.002)
    instants = {
        start + timedelta(seconds=k * w.check_interval)
        for w in watchers
        for k in range(3600 // w.check_interval + 1)
    }
    checks = [i for i in sched.items if i["kind"] == "watch"]
    expected = sum(3600 // w.check_interval + 1 for w in watchers)
    assert expected - 1000 <= len(checks) <= expected  # each check handed over once
    chores = 3600 / 30.0 + 3600 / 60.0  # definitions looks and statistics
    assert turns <= len(instants) + chores + 10


def test_nothing_scheduled_sleeps_for_the_chores_only(dic: Dictionary) -> None:
    dic.apply_definitions(
        [JobDef("nightly", "OPS", "SQL", "SELECT 1", schedule_type="CRON", cron_expr="0 2 * * *")],
        [],
    )
    clock, sched = FakeClock(), FakeSched()
    m = monitor(dic, sched, clock)
    turns = run_for(m, clock, 600.0)
    assert turns <= 600 / 2.0 + 600 / 60.0 + 3
    assert "submit" not in sched.calls
    assert sched.calls.get("timetable", 0) <= 2  # pushed when it changed, not every second


def test_cron_every_minute_is_handed_over_once_a_minute(dic: Dictionary) -> None:
    dic.apply_definitions(
        [JobDef("tick", "OPS", "CMD", "t.sh", schedule_type="CRON", cron_expr="* * * * *")], []
    )
    clock, sched = FakeClock(), FakeSched()
    m = monitor(dic, sched, clock)
    minute = clock.wall.replace(second=0, microsecond=0)
    run_for(m, clock, 180.0, jitter=0.05)
    dues = [i["due"] for i in sched.items if i["name"] == "tick"]
    assert dues == [(minute + timedelta(minutes=k)).isoformat() for k in (1, 2, 3)]
    assert all(i["note"] is None and not i["skip"] for i in sched.items)


def test_sched_away_keeps_runs_and_backs_off(dic: Dictionary) -> None:
    dic.apply_definitions(
        [JobDef("j", "OPS", "SQL", "SELECT 1", schedule_type="INTERVAL", interval_seconds=10)], []
    )
    clock, sched = FakeClock(), FakeSched()
    m = monitor(dic, sched, clock)
    sched.down = True
    turns = run_for(m, clock, 120.0)
    # back-off doubling to RETRY_CAP: tries bounded by time / (cap / 2) plus the ramp
    assert sched.refused <= 120 / (RETRY_CAP / 2) + 8
    assert turns <= 120 / 2.0 + sched.refused + 5
    assert sum(d.fires for d in m.pending) >= 11  # kept (coalesced), not lost
    sched.down = False
    run_for(m, clock, 10.0)
    handed = [i for i in sched.items if i["name"] == "j"]
    # what was kept goes out as one misfire (policy RUN_ONCE), then the job is on time again
    missed = re.search(r"misfire: (\d+) run\(s\) due since", handed[0]["note"])
    assert missed is not None and int(missed[1]) in (11, 12)  # 120 s down, every 10 s
    assert [i["note"] for i in handed[1:]] == [None] * (len(handed) - 1)
    assert len({i["due"] for i in handed}) == len(handed)
    assert m.pending == []


def test_a_failing_dictionary_does_not_make_the_loop_spin(
    dic: Dictionary, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redpss.errors import DictionaryError

    clock, sched = FakeClock(), FakeSched()
    m = monitor(dic, sched, clock)

    def away() -> str:
        raise DictionaryError("the dictionary is locked")

    monkeypatch.setattr(dic, "definitions_stamp", away)
    turns = 0
    end = clock.mono + 60
    while clock.mono < end:
        try:
            wait = m.turn()
        except DictionaryError:
            wait = m.sleep_time()
        turns += 1
        clock.sleep(wait)
    assert turns <= 60 / 2.0 + 3


def test_the_job_plan_is_written_whole_once_then_only_what_changed(
    dic: Dictionary, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [
        JobDef(f"n{i}", "OPS", "SQL", "SELECT 1", schedule_type="CRON", cron_expr="0 3 * * *")
        for i in range(50)
    ]
    dic.apply_definitions([*jobs, JobDef("t", "OPS", "SQL", "SELECT 1", schedule_type="CRON",
                                         cron_expr="* * * * *")], [])  # fmt: skip
    writes: list[tuple[int, bool]] = []
    real = dic.record_job_plan

    def counting(plan: dict[str, Any], at: datetime, *, complete: bool = False) -> None:
        writes.append((len(plan), complete))
        real(plan, at, complete=complete)

    monkeypatch.setattr(dic, "record_job_plan", counting)
    clock, sched = FakeClock(), FakeSched()
    m = monitor(dic, sched, clock)
    run_for(m, clock, 300.0)
    assert writes[0] == (51, True)  # at start: every job
    assert all(n == 1 and not complete for n, complete in writes[1:])  # then: t's next run
    assert {s.job: s.next_run_at is not None for s in dic.job_status()}["n0"]


def test_thousands_of_misfires_go_to_sched_in_requests_a_wire_line_can_carry(
    dic: Dictionary,
) -> None:
    """jmon after a long stop: every job is due at once, one misfire each. Handed over in one
    request, the line exceeded the wire's limit; sched refused it at every retry: nothing ran."""
    long = "x" * 100
    jobs = [
        JobDef(f"j{i:05d}_{long}", "OPS", "SQL", "SELECT 1", schedule_type="INTERVAL",
               interval_seconds=10)
        for i in range(3500)
    ]  # fmt: skip
    dic.apply_definitions(jobs, [])
    clock = FakeClock()

    class LineLimited(FakeSched):
        def __call__(self, op: str, /, **args: Any) -> Any:
            size = len(encode({"op": op, **args}))
            if size > DEFAULT_MAX_LINE:  # what sched's wire server answers
                raise WireError(f"line_too_long: request line exceeds {DEFAULT_MAX_LINE} bytes")
            return super().__call__(op, **args)

    sched = LineLimited()
    m = monitor(dic, sched, clock)
    sched.down = True
    run_for(m, clock, 35.0)  # 3 fires of each job kept: one misfire each when sched is back
    sched.down = False
    run_for(m, clock, 1.0)
    assert m.pending == []
    names = [i["name"] for i in sched.items]
    assert sorted(names) == sorted(j.name for j in jobs)  # each once
    assert all(i["note"] and "misfire" in i["note"] for i in sched.items)
    assert len(encode({"op": "submit", "items": sched.items})) > DEFAULT_MAX_LINE  # as one: no


def test_next_run_follows_a_frequent_job_between_the_statistics(dic: Dictionary) -> None:
    # written only with the statistics (every 60 s), a job every 2 s showed a next run up to
    # a minute in the past in list_db_jobs and STA_JOB_STATUS
    dic.apply_definitions(
        [JobDef("often", "OPS", "SQL", "SELECT 1", schedule_type="INTERVAL", interval_seconds=2)],
        [],
    )
    clock, sched = FakeClock(), FakeSched()
    m = monitor(dic, sched, clock)
    for _ in range(6):
        run_for(m, clock, 5.0)
        (status,) = dic.job_status()
        assert status.next_run_at is not None
        assert status.next_run_at >= clock.now() - timedelta(seconds=2.5), (
            status.next_run_at,
            clock.now(),
        )
