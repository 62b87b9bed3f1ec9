"""Missed fires counted, not walked: the same counts as APScheduler's walk, at a few calls a job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redpss.dictionary.jobs import JobDef, RunRecord
from redpss.sched.catchup import Catchup, cron_period
from redpss.sched.timetable import Timetable
from tests.unit.test_sched_timetable_props import _field  # one field of a crontab

T0 = datetime(2026, 11, 30, 11, 7, 42, 500_000, tzinfo=UTC)


def plain_walk(trigger: CronTrigger, fire: datetime, now: datetime) -> tuple[int, datetime | None]:
    """The reference: every fire from ``fire`` up to ``now`` asked of APScheduler in turn."""
    count, following = 1, trigger.get_next_fire_time(fire, fire)
    while following is not None and following <= now:
        count += 1
        following = trigger.get_next_fire_time(following, following)
    return count, following


class Calls:
    """Counts CronTrigger.get_next_fire_time calls (a wrapper: counted, not timed)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        real = CronTrigger.get_next_fire_time

        def counted(trigger: CronTrigger, previous: datetime | None, now: datetime) -> object:
            self.n += 1
            return real(trigger, previous, now)

        monkeypatch.setattr(CronTrigger, "get_next_fire_time", counted)


def cron_job(name: str, expr: str) -> JobDef:
    return JobDef(name, "DWH", "SQL", "SELECT 1", schedule_type="CRON", cron_expr=expr)


def last_run(name: str, at: datetime) -> RunRecord:
    return RunRecord("DWH", 1, name, "default", "OK", at, at, at, 0, None, None, None)


def test_weekly_crons_a_year_behind_cost_a_few_trigger_calls_not_one_a_missed_fire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # bench/year.py: 9 899 weekly crons whose last run was a year ago held jmon's start for
    # more than a minute of CPU (one get_next_fire_time per missed fire: 52 a job)
    shared = [cron_job(f"s{i}", "15 3 * * 2") for i in range(300)]  # one expression
    own = [cron_job(f"o{i}", f"{i} {i % 24} * * {i % 7}") for i in range(60)]  # all different
    everyday = [cron_job("d", "*/5 * * * *")]  # 105 120 fires a year: beyond the old cap
    jobs = shared + own + everyday
    year = timedelta(days=365)
    last = {
        j.name: last_run(j.name, T0 - year + timedelta(hours=i % 5)) for i, j in enumerate(jobs)
    }
    expected = {}
    for j in shared[:1] + own:
        assert j.cron_expr is not None
        trigger = CronTrigger.from_crontab(j.cron_expr, timezone=UTC)
        first = trigger.get_next_fire_time(None, last[j.name].queued_at + timedelta(microseconds=1))
        assert first is not None
        expected[j.name] = (first, *plain_walk(trigger, first, T0))
    expected.update({j.name: expected["s0"] for j in shared})
    five = timedelta(minutes=5)  # "d": every 5 minutes from the first after its last run
    first = datetime(2025, 11, 30, 11, 10, tzinfo=UTC)
    expected["d"] = (first, (T0 - first) // five + 1, datetime(2026, 11, 30, 11, 10, tzinfo=UTC))
    calls = Calls(monkeypatch)
    tt = Timetable(grace=5, ahead=0.5)
    tt.load(jobs, [], last, T0)
    due = {d.name: d for d in tt.due(T0)}
    assert {
        name: (d.due, d.fires, tt.entries[("job", name)].next_fire) for name, d in due.items()
    } == expected
    assert expected["d"][1] > 100_000 and 52 <= expected["s0"][1] <= 53
    # the load asks once a job for its first fire; the catch-up a handful of calls per
    # expression, not 52 per job (old: 300 x 53 + 60 x 53 + 100 000)
    assert calls.n <= len(jobs) + 60 * 6 + 2 * 288 + 10


def test_the_period_of_a_cron_is_a_day_a_week_or_none() -> None:
    def period(expr: str, tz: object = UTC) -> timedelta | None:
        return cron_period(CronTrigger.from_crontab(expr, timezone=tz))

    assert period("*/5 * * * *") == timedelta(days=1)
    assert period("0 3 * * mon-fri") == timedelta(days=7)
    assert period("0 0 1 * *") is None  # day of month: months differ in length
    assert period("0 0 * 2 *") is None
    assert period("0 3 * * 1", ZoneInfo("Europe/Zurich")) is None  # DST moves its fires
    assert cron_period(CronTrigger(hour=3, timezone=UTC, jitter=5)) is None


@st.composite
def crontabs(draw: st.DrawFn) -> str:
    """Crontab expressions, most of them periodic (day and month ``*``), some not."""
    minute = _field(draw, 0, 59)
    if minute == "*" or minute.startswith("*/1"):
        minute = draw(st.sampled_from(["7", "0,30", "*/13"]))  # keep the reference walk short
    hour = _field(draw, 0, 23)
    dow = draw(st.sampled_from(["*", "*", "mon-fri", "sun", "1,3,5", "6"]))
    dom = draw(st.sampled_from(["*"] * 6 + ["1", "29", "*/7"]))
    month = draw(st.sampled_from(["*"] * 8 + ["2", "1-6"]))
    return f"{minute} {hour} {dom} {month} {dow}"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    crontabs(),
    st.lists(
        st.tuples(st.floats(0, 86400.0 * 30), st.floats(0, 86400.0 * 40), st.booleans()),
        min_size=1,
        max_size=4,
    ),
)
def test_counted_fires_equal_the_walk(expr: str, looks: list[tuple[float, float, bool]]) -> None:
    """Any cron, any fire, any span: the count and the next fire of the plain walk.

    One counter for every look, so that what it keeps (fires of one period, answers of the
    same ``now``) is used again, also for another fire at the same ``now``.
    """
    trigger = CronTrigger.from_crontab(expr, timezone=UTC)
    catchup = Catchup()
    now = T0
    for start, span, same_now in looks:
        fire = trigger.get_next_fire_time(None, T0 - timedelta(days=70, seconds=start))
        assert fire is not None
        if not same_now:
            now = fire + timedelta(seconds=span)
        if now <= fire:
            continue
        assert catchup.count(trigger, fire, now) == plain_walk(trigger, fire, now), (fire, now)
