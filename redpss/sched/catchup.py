"""Catch-up: how many fires of a trigger passed unseen, counted without walking each of them.

At jmon's start every job owes the fires since its last run (its misfire policy then runs it
once or skips, and the message says how many). Asking APScheduler for each missed fire in turn
(``get_next_fire_time`` per fire) cost more than a minute of CPU for 9 899 weekly crons a year
behind (``bench/year.py``), and nothing was handed over meanwhile. Counted here instead:

- an **interval** trigger (no jitter) fires every interval from a fire: counted by division;
- a **cron** trigger whose day, month, week and year fields are ``*``, in a fixed-offset zone
  (jmon's crons are UTC: no daylight saving time), without jitter or start/end date, fires at
  the same times every week — every day when its weekday is ``*`` too. Whole periods are
  counted as periods x the fires of one period (walked once per expression and kept), and only
  the last, partial period is walked;
- any other trigger (a day of month, a month: periods of up to 400 years) is walked, at most
  :data:`MAX_COUNT` fires.

Several jobs that share an expression and were due at the same fire (thousands of jobs, few
expressions) are counted once per look: :meth:`Catchup.count` keeps its answers for the same
``now``. The counts equal the plain walk: ``tests/unit/test_sched_catchup.py`` compares them
with hypothesis.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as FixedOffset

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

__all__ = ["MAX_COUNT", "Catchup", "cron_period", "walk"]

MAX_COUNT = 100_000  # fires walked at most (a cron of one day of the month, every minute)
_TICK = timedelta(microseconds=1)
_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)
_CALENDAR = ("year", "month", "week", "day")  # fields that break a weekly period


def cron_period(trigger: BaseTrigger) -> timedelta | None:
    """The period after which ``trigger``'s fire times repeat: a day, a week, or None."""
    if not isinstance(trigger, CronTrigger):
        return None
    if trigger.jitter is not None or trigger.start_date or trigger.end_date:
        return None
    if not isinstance(trigger.timezone, FixedOffset):  # a zone with DST shifts its fires
        return None
    fields = {f.name: str(f) for f in trigger.fields}
    if any(fields[name] != "*" for name in _CALENDAR):
        return None
    return _DAY if fields["day_of_week"] == "*" else _WEEK


def walk(
    trigger: BaseTrigger, fire: datetime, now: datetime, limit: int = MAX_COUNT
) -> tuple[int, datetime | None]:
    """Fires from ``fire`` (one of them) up to ``now`` one by one (at most ``limit``); the next.

    The trigger is asked for the fire after ``fire`` as of ``max(now, fire)``: asked as of a
    ``now`` before ``fire`` (a hand-over ahead of time), a cron trigger answers ``fire`` itself
    again.
    """
    count = 1
    following = trigger.get_next_fire_time(fire, max(now, fire))
    while following is not None and following <= now and count < limit:
        count += 1
        following = trigger.get_next_fire_time(following, following)
    if following is not None and (following <= now or following <= fire):
        # counted enough (or a trigger that did not move on): jump past now
        following = trigger.get_next_fire_time(None, max(now, fire) + _TICK)
    return count, following


class Catchup:
    """Counts missed fires; keeps what it learnt about cron expressions between looks."""

    def __init__(self) -> None:
        self._per_period: dict[str, int] = {}  # repr of a periodic cron: fires in one period
        self._now: datetime | None = None
        self._answers: dict[tuple[str, datetime], tuple[int, datetime | None]] = {}

    def count(
        self, trigger: BaseTrigger, fire: datetime, now: datetime
    ) -> tuple[int, datetime | None]:
        """How many fires from ``fire`` (a fire of ``trigger``) up to ``now``; the one after."""
        if isinstance(trigger, IntervalTrigger) and trigger.jitter is None and now > fire:
            # APScheduler adds the interval to the previous fire: exact for whole seconds
            missed = (now - fire) // trigger.interval
            return missed + 1, trigger.get_next_fire_time(fire + missed * trigger.interval, now)
        period = cron_period(trigger) if now > fire else None
        if period is None:
            return walk(trigger, fire, now)
        if now != self._now:
            self._now, self._answers = now, {}
        shape = repr(trigger)
        key = (shape, fire)
        answer = self._answers.get(key)
        if answer is None:
            whole = (now - fire) // period
            if whole:
                per = self._per_period.get(shape)
                if per is None:
                    per = self._per_period[shape] = self._one_period(trigger, fire, period)
                # ``fire`` shifted by whole periods is a fire again; walk only what follows it
                count, following = walk(trigger, fire + whole * period, now)
                answer = (whole * per + count, following)
            else:
                answer = walk(trigger, fire, now)
            self._answers[key] = answer
        return answer

    @staticmethod
    def _one_period(trigger: BaseTrigger, fire: datetime, period: timedelta) -> int:
        """Fires in ``[fire, fire + period)`` (as many in any window of one period)."""
        end = fire + period
        count = 1
        following = trigger.get_next_fire_time(fire, fire)
        while following is not None and following < end:
            count += 1
            following = trigger.get_next_fire_time(following, following)
        return count
