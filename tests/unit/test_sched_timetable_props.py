"""The timetable against APScheduler's own triggers (hypothesis).

Random interval and cron definitions, a loop that wakes early, late and after stalls, a wall
clock that steps back and forth (NTP), over simulated days: the fire times handed over are
exactly the sequence the APScheduler trigger yields, each once; fires that passed unseen are
coalesced into one hand-over that says how many it covers, and its misfire policy decides.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redpss.dictionary.jobs import JobDef, RunRecord, WatcherDef
from redpss.sched.timetable import Due, Timetable

AHEAD = 0.5


def _field(draw: st.DrawFn, low: int, high: int) -> str:
    kind = draw(st.sampled_from(["*", "step", "one", "list", "range"]))
    if kind == "*":
        return "*"
    if kind == "step":
        return f"*/{draw(st.integers(1, max(1, (high - low) // 2)))}"
    if kind == "one":
        return str(draw(st.integers(low, high)))
    if kind == "list":
        values = draw(st.sets(st.integers(low, high), min_size=2, max_size=4))
        return ",".join(str(v) for v in sorted(values))
    a = draw(st.integers(low, high - 1))
    return f"{a}-{draw(st.integers(a + 1, high))}"


@st.composite
def crontabs(draw: st.DrawFn) -> str:
    """5-field crontab expressions that fire at least once a month."""
    minute = _field(draw, 0, 59)
    hour = _field(draw, 0, 23)
    dom = draw(st.sampled_from(["*", "*", "1", "15", "1-10", "*/7"]))
    dow = draw(st.sampled_from(["*", "*", "*", "mon-fri", "sun", "1,3,5"]))
    if dom != "*" and dow != "*":
        dow = "*"
    return f"{minute} {hour} {dom} * {dow}"


@dataclass(frozen=True)
class Definition:
    job: JobDef
    hours: float


@st.composite
def definitions(draw: st.DrawFn) -> Definition:
    """A scheduled job and a simulated span that keeps its fires around a thousand."""
    hours = draw(st.floats(0.5, 72.0))
    policy = draw(st.sampled_from(["RUN_ONCE", "SKIP"]))
    changed = draw(st.floats(-86400.0 * 30, 0.0))
    if draw(st.booleans()):
        low = max(1, int(hours * 3600 / 1000))
        interval = draw(st.integers(low, max(low, 86400)))
        job = JobDef(
            "j", "DWH", "SQL", "SELECT 1", schedule_type="INTERVAL", interval_seconds=interval,
            misfire_policy=policy, changed_at=T0 + timedelta(seconds=changed),
        )  # fmt: skip
    else:
        cron = draw(crontabs())
        job = JobDef(
            "j", "DWH", "SQL", "SELECT 1", schedule_type="CRON", cron_expr=cron,
            misfire_policy=policy, changed_at=T0 + timedelta(seconds=changed),
        )  # fmt: skip
    return Definition(job, hours)


T0 = datetime(2026, 3, 28, 22, 17, 3, 250_000, tzinfo=UTC)  # a DST weekend in Europe


def reference(job: JobDef, loaded: datetime) -> Iterator[datetime]:
    """APScheduler's own sequence for the job as scheduled at ``loaded``."""
    if job.schedule_type == "INTERVAL":
        assert job.interval_seconds is not None and job.changed_at is not None
        trigger: IntervalTrigger | CronTrigger = IntervalTrigger(
            seconds=job.interval_seconds,
            start_date=job.changed_at + timedelta(seconds=job.interval_seconds),
            timezone=UTC,
        )
    else:
        assert job.cron_expr is not None
        trigger = CronTrigger.from_crontab(job.cron_expr, timezone=UTC)
    fire = trigger.get_next_fire_time(None, loaded)
    while fire is not None:
        yield fire
        # as APScheduler's scheduler asks once the fire time has passed
        fire = trigger.get_next_fire_time(fire, fire)


@st.composite
def wakeups(draw: st.DrawFn) -> list[tuple[float, float]]:
    """(oversleep, clock step) per loop turn: early and late wake-ups, stalls, NTP steps."""
    turns = []
    for _ in range(draw(st.integers(20, 200))):
        late = draw(
            st.one_of(
                st.floats(-0.49, 0.05),  # early or punctual
                st.floats(0.0, 3.0),  # a busy host
                st.floats(30.0, 3600.0 * 6),  # a long stall (suspended VM)
            )
        )
        step = draw(st.sampled_from([0.0] * 8 + [-3600.0, -1.5, 0.7, 2.0, 3600.0, 7200.0]))
        turns.append((late, step))
    return turns


@dataclass
class Loop:
    handed: list[tuple[datetime, Due]]
    last_look: datetime


def run_loop(
    tt: Timetable, hours: float, turns: list[tuple[float, float]], reload: JobDef | None = None
) -> Loop:
    """Drive ``tt`` like jmon: sleep until the next hand-over point, wake off by ``late``."""
    real = T0
    offset = timedelta(0)
    end = T0 + timedelta(hours=hours)
    handed: list[tuple[datetime, Due]] = []
    now = T0
    for i, (late, step) in enumerate(turns * (1 + int(hours))):
        if real > end:
            break
        now = real + offset
        handed.extend((now, d) for d in tt.due(now))
        if reload is not None and i % 7 == 3:  # an unchanged definition re-read keeps the grid
            tt.load([reload], [], {}, now)
        point = tt.next_handover()  # (jmon sleeps at most 5 s; longer here, to simulate days)
        sleep = 300.0 if point is None else min(max((point - now).total_seconds(), 0.0), 300.0)
        real += timedelta(seconds=max(sleep + late, 0.001))
        offset += timedelta(seconds=step)
    return Loop(handed, now)


def check(job: JobDef, loop: Loop, tt: Timetable, grace: float) -> None:
    """Each fire of the reference exactly once, in order; misfires by the job's policy."""
    expected = reference(job, T0)
    for now, due in loop.handed:
        covered = [next(expected) for _ in range(due.fires)]
        assert covered[0] == due.due, (due, covered)
        late = (now - due.due).total_seconds() > grace or due.fires > 1
        if late:
            assert due.note is not None and "misfire" in due.note
            assert due.skip == (job.misfire_policy == "SKIP")
        else:
            assert due.note is None and not due.skip
            assert due.due - now <= timedelta(seconds=AHEAD)  # never handed over too early
    following = next(expected, None)
    entry = tt.entries[("job", job.name)]
    assert entry.next_fire == following  # nothing skipped silently, nothing repeated
    if following is not None:  # nothing owed at the last look was kept back
        assert following - timedelta(seconds=AHEAD) > loop.last_look


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definitions(), wakeups(), st.floats(0.5, 10.0), st.booleans())
def test_every_fire_is_handed_over_exactly_once(
    d: Definition, turns: list[tuple[float, float]], grace: float, reload: bool
) -> None:
    tt = Timetable(grace=grace, ahead=AHEAD)
    tt.load([d.job], [], {}, T0)
    loop = run_loop(tt, d.hours, turns, d.job if reload else None)
    check(d.job, loop, tt, grace)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definitions(), wakeups(), st.floats(1.0, 86400.0 * 3))
def test_missed_while_down_are_counted_from_the_last_run(
    d: Definition, turns: list[tuple[float, float]], down: float
) -> None:
    """At jmon's start the fires after the job's last run are owed (by policy), once."""
    last = T0 - timedelta(seconds=down)
    record = RunRecord("DWH", 1, "j", "default", "OK", last, last, last, 0, None, None, None)
    tt = Timetable(grace=5.0, ahead=AHEAD)
    tt.load([d.job], [], {"j": record}, T0)
    loop = run_loop(tt, min(d.hours, 6.0), turns)
    check_from(d.job, loop, tt, last + timedelta(microseconds=1))


def check_from(job: JobDef, loop: Loop, tt: Timetable, since: datetime) -> None:
    expected = reference(job, since)
    for _, due in loop.handed:
        covered = [next(expected) for _ in range(due.fires)]
        assert covered[0] == due.due
    assert tt.entries[("job", job.name)].next_fire == next(expected, None)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3600), wakeups())
def test_watcher_checks_follow_their_interval_once_each(
    interval: int, turns: list[tuple[float, float]]
) -> None:
    tt = Timetable(grace=5.0, ahead=AHEAD)
    exe = JobDef("exe", "DWH", "SQL", "SELECT 1")
    tt.load([exe], [WatcherDef("w", "DWH", "FILE", "x", "exe", check_interval=interval)], {}, T0)
    loop = run_loop(tt, 2.0, turns)
    trigger = IntervalTrigger(seconds=interval, start_date=T0, timezone=UTC)
    fire: datetime | None = T0
    for now, due in loop.handed:
        assert due.kind == "watch" and due.due == fire and due.due <= now  # never early
        for _ in range(due.fires):
            assert fire is not None
            fire = trigger.get_next_fire_time(fire, fire)
    assert tt.entries[("watch", "w")].next_fire == fire


def test_cron_is_handed_over_once_though_the_loop_looks_ahead() -> None:
    """The bug of #13: a cron entry looked at before its fire was handed over every turn."""
    tt = Timetable(grace=5.0, ahead=AHEAD)
    cron = JobDef("c", "DWH", "CMD", "x", schedule_type="CRON", cron_expr="* * * * *")
    tt.load([cron], [], {}, T0)
    fire = datetime(2026, 3, 28, 22, 18, tzinfo=UTC)
    handed = []
    now = fire - timedelta(seconds=0.5)
    while now < fire + timedelta(seconds=2):  # a loop turning every 10 ms around the fire
        handed.extend(tt.due(now))
        now += timedelta(milliseconds=10)
    assert [(d.due, d.fires) for d in handed] == [(fire, 1)]
