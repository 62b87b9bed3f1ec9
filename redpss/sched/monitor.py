"""jmon's loop as one object with its clock passed in: what it does per turn, how long it sleeps.

The jmon role (:mod:`redpss.roles.jmon`) runs :meth:`Monitor.turn` in a thread and sleeps for
the seconds it returns; tests drive the same object with a fake clock and a fake sched.

A turn hands over what is due (first: nothing else delays a run), re-reads the definitions
when their period is over or ``redctl reload`` asked, pushes the next runs to sched when they
changed (at most once a second), and writes the statistics when their period is over. Then it
sleeps until the earliest of: the next hand-over point of the timetable, the next definitions
look, the next statistics, a pending push — never a fixed short period, so an idle jmon
wakes only for what it has to do. While sched does not answer, what was due is kept and
offered again after a back-off that doubles up to :data:`RETRY_CAP` seconds, jittered.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from redpss.dictionary import Dictionary
from redpss.dictionary.cache import DefinitionCache
from redpss.dictionary.jobs import PoolSample
from redpss.errors import WireError
from redpss.sched.timetable import Due, Timetable

__all__ = ["Clock", "Monitor", "Periods", "SystemClock"]

log = logging.getLogger(__name__)

LOOKAHEAD = 0.5
"""Job runs are handed to sched this many seconds before they are due; sched starts them at
their due time, so the hand-over never delays a run."""
PUSH_EVERY = 1.0
"""The next runs shown by ``redctl show`` are pushed to sched at most this often."""
MAX_SLEEP = 5.0
"""The longest sleep: bounds how late a fire is after the wall clock steps forward."""
RETRY_FIRST = 0.2
RETRY_CAP = 5.0
SLACK = 0.25
"""A chore due within this many seconds is done in the current turn rather than in a turn of
its own (a definitions look a little early costs nothing; a wake-up of its own costs one)."""
SUBMIT_BATCH = 500
"""Hand-overs per submit request: a few hundred bytes each, far below a wire line (1 MiB)."""


class Clock(Protocol):
    """Wall time (UTC, what fire times are in) and a monotonic time (what periods are in)."""

    def now(self) -> datetime:
        """The wall clock, aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds of a clock that never steps."""
        ...


class SystemClock:
    """The clocks of the host."""

    def now(self) -> datetime:
        """The wall clock, aware UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """:func:`time.monotonic`."""
        return time.monotonic()


Call = Callable[..., Any]
"""``call(op, **args)``: one request to sched (:meth:`redpss.wire.WireClient.call`)."""


@dataclass(frozen=True)
class Periods:
    """The periods of jmon's chores, in seconds."""

    definitions: float = 2.0
    stats: float = 60.0
    grace: float = 5.0


@dataclass
class _Next:
    poll: float = 0.0
    push: float = 0.0
    stats: float = 0.0
    retry: float = 0.0
    pushed: int = -1
    failures: int = 0
    turns: int = 0
    handed: list[Due] = field(default_factory=list)


class Monitor:
    """The timetable, what waits for sched, and the periods of jmon's chores."""

    def __init__(
        self,
        dictionary: Dictionary,
        call: Call,
        *,
        periods: Periods,
        clock: Clock | None = None,
        suspended: Callable[[], bool] = lambda: False,
        reload_requested: Callable[[], bool] = lambda: False,
        rng: random.Random | None = None,
    ) -> None:
        self.dictionary = dictionary
        self.call = call
        self.periods = periods
        self.clock = clock or SystemClock()
        self.suspended_flag = suspended
        self.reload_requested = reload_requested
        self.rng = rng or random.Random()
        self.timetable = Timetable(grace=periods.grace, ahead=LOOKAHEAD)
        self.pending: list[Due] = []
        self.definitions = DefinitionCache(dictionary)  # a look costs O(changes)
        self.sched_ok: bool | None = None
        self.suspended = False
        mono = self.clock.monotonic()
        self.next = _Next(poll=mono + periods.definitions, stats=mono + periods.stats)
        self.keep_handed = False  # tests: remember every hand-over in ``next.handed``
        self.planned_errors: dict[str, str] = {}
        self.planned: dict[str, tuple[datetime | None, str | None]] | None = None
        self.planned_changes = -1  # the timetable's `changes` when the plan was last written
        self.joblog: dict[str, tuple[Any, ...]] = {}  # the ADM_JMON_JOBLOG row last written

    # ------------------------------------------------------------------ one turn

    def turn(self) -> float:
        """Do what is due now; return how many seconds to sleep before the next turn."""
        nxt = self.next
        nxt.turns += 1
        self.hand_over()  # first: what is due goes out before any other work
        # each chore's next time is set before it runs: a chore that fails (the dictionary
        # away) waits for its period like one that worked, instead of being retried at once
        mono = self.clock.monotonic()
        if mono >= nxt.poll - SLACK or self.reload_requested():
            nxt.poll = mono + self.periods.definitions
            self.reload()
            self.hand_over()
            # NEXT_RUN of STA_JOB_STATUS follows the fires at this pace, not only once a
            # minute with the statistics (a job every 2 s showed a next run in the past)
            if self.planned_changes != self.timetable.changes:
                self.write_plan()
        mono = self.clock.monotonic()
        # the next runs are pushed in turns that happen anyway (a definitions look comes at
        # least every few seconds): a push never costs a wake-up of its own
        if (
            nxt.pushed != self.timetable.changes
            and mono >= nxt.push - SLACK
            and self._may_call(mono)
        ):
            nxt.push = mono + PUSH_EVERY
            self.push_timetable()
        if mono >= nxt.stats - SLACK:
            nxt.stats = mono + self.periods.stats
            if self._may_call(mono):
                self.write_stats()
        return self.sleep_time()

    def sleep_time(self) -> float:
        """Seconds until the earliest thing the next turn has to do."""
        nxt = self.next
        mono = self.clock.monotonic()
        until = [nxt.poll, nxt.stats, mono + MAX_SLEEP]
        if self.pending:
            until.append(nxt.retry)
        wait = min(until) - mono
        point = self.timetable.next_handover()
        if point is not None:
            wait = min(wait, (point - self.clock.now()).total_seconds())
        return max(wait, 0.0)

    def _may_call(self, mono: float) -> bool:
        """False while sched did not answer and its back-off is not over."""
        return self.sched_ok is not False or mono >= self.next.retry

    # ------------------------------------------------------------------ the chores

    def reload(self, *, force: bool = False) -> None:
        """Re-read the definitions if they changed (or ``force``) and rebuild the timetable."""
        d, defs = self.dictionary, self.definitions
        if not defs.refresh(force=force):
            return
        first = not self.timetable.loaded
        last = d.last_runs() if first else {}
        errors = self.timetable.load(defs.job_list(), defs.watcher_list(), last, self.clock.now())
        for message in errors:
            log.error("role=jmon definition refused: %s", message)
        if first or self.timetable.job_errors() != self.planned_errors:
            self.write_plan()  # STA_JOB_STATUS shows a refused definition at once
        log.info(
            "role=jmon timetable %s: %d entries, %d invalid definitions",
            "loaded" if first else "reloaded",
            len(self.timetable.entries),
            len(self.timetable.errors),
        )

    def hand_over(self) -> None:
        """Hand what is due to sched; keep what it did not take for later if sched is away.

        At most :data:`SUBMIT_BATCH` hand-overs a request: after a long stop every scheduled
        job is due at once (one misfire each), and one request of them all was longer than a
        wire line may be (1 MiB): sched refused it at every retry and nothing ran.
        """
        suspended = self.suspended_flag()
        if suspended != self.suspended:
            self.suspended = suspended
            log.info(
                "role=jmon %s",
                "suspended: no jobs or watchers are started" if suspended else "resumed",
            )
        due = self.timetable.due(self.clock.now(), suspended=suspended)
        if self.keep_handed:
            self.next.handed.extend(due)
        self.pending.extend(due)
        if not self.pending or not self._may_call(self.clock.monotonic()):
            return
        if len(self.pending) > len(due):  # kept from before: late now, maybe several fires
            self.pending = self.timetable.regroup(self.pending, self.clock.now())
        while self.pending:  # in batches: 10 000 misfires after a long stop are one line each
            batch = self.pending[:SUBMIT_BATCH]
            try:
                self.call("submit", items=[d.to_wire() for d in batch])
            except WireError as exc:
                self._sched_state(False, exc)
                return
            self._sched_state(True)
            for d in batch:
                if d.note is not None:
                    log.warning("role=jmon job=%s %s", d.name, d.note)
            del self.pending[: len(batch)]

    def _sched_state(self, ok: bool, exc: Exception | None = None) -> None:
        nxt = self.next
        if ok:
            if self.sched_ok is False:
                log.info("role=jmon sched answers again")
            nxt.failures = 0
        else:
            if self.sched_ok is not False:
                log.warning(
                    "role=jmon sched does not answer (%d runs kept until it does): %s",
                    len(self.pending),
                    exc,
                )
            delay = min(RETRY_CAP, RETRY_FIRST * 2**nxt.failures)
            nxt.failures = min(nxt.failures + 1, 16)
            nxt.retry = self.clock.monotonic() + self.rng.uniform(delay / 2, delay)
        self.sched_ok = ok

    def push_timetable(self) -> None:
        """Tell sched the next runs (``redctl show``)."""
        changes = self.timetable.changes
        try:
            self.call("timetable", entries=self.timetable.snapshot())
        except WireError as exc:
            self._sched_state(False, exc)
            return
        self.next.pushed = changes
        self._sched_state(True)

    def write_stats(self) -> None:
        """``ADM_JMON_LOAD`` from sched's pool statistics and ``ADM_JMON_JOBLOG`` per job."""
        try:
            stats: dict[str, Any] = self.call("stats")
        except WireError as exc:
            self._sched_state(False, exc)
            return
        self._sched_state(True)
        pools = [
            PoolSample(p, v["size"], v["busy"], v["queued"], v["ended"]) for p, v in stats.items()
        ]
        last = self.dictionary.last_runs()
        nxt = self.timetable.next_runs()
        names = sorted(set(nxt) | set(last))
        jobs = [
            (
                n,
                nxt.get(n),
                last[n].started_at or last[n].queued_at if n in last else None,
                last[n].state if n in last else None,
            )
            for n in names
        ]
        # a job's row only when its schedule state changed since the row written before (all
        # at start): a row per job a minute was 14 million rows a day for 10 000 jobs
        changed = [j for j in jobs if self.joblog.get(j[0]) != j[1:]]
        self.dictionary.write_jmon_sample(self.clock.now(), pools, changed)
        self.joblog = {j[0]: j[1:] for j in jobs}
        self.write_plan()

    def write_plan(self) -> None:
        """Each job's next run and refused definition into ADM_JOB_STATUS (STA_JOB_STATUS):
        everything the first time, then the jobs whose plan changed (an idle jmon writes
        nothing)."""
        errors = self.timetable.job_errors()
        nxt = self.timetable.next_runs()
        plan = {n: (nxt.get(n), errors.get(n)) for n in set(nxt) | set(errors)}
        first = self.planned is None
        old = self.planned or {}
        changed = {n: p for n, p in plan.items() if old.get(n) != p}
        changed.update({n: (None, None) for n in old if n not in plan})
        if first or changed:
            self.dictionary.record_job_plan(changed, self.clock.now(), complete=first)
        self.planned = plan
        self.planned_errors = errors
        self.planned_changes = self.timetable.changes
