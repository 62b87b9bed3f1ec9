"""jmon's timetable: when each active job is due and each active watcher is to be checked.

Built from the definitions and rebuilt whenever they change, without a restart: a new job, a
changed interval or cron expression, a (de)activated or deleted job or watcher take effect at
the next look (``sched_definitions_poll`` seconds, or at once after ``redctl reload``).

**Every fire time is handed over exactly once.** Each entry keeps the next fire time of its
APScheduler trigger that has not been handed over yet; handing it over moves the entry to the
trigger's following fire, strictly after it. A loop that wakes early, late, twice, or after a
clock step (NTP) can therefore neither repeat a fire nor lose one: fires that passed while
the loop did not look (a forward step, a busy host) are coalesced into one hand-over that says
how many it covers; a backward step only delays the next fire. Job runs are handed over
``ahead`` seconds early (sched starts them at their due time); watcher checks at their time.
The entries sit in a heap ordered by hand-over point, so a look costs O(fires), not O(entries).

**The grid of an interval job is a function of its definition**: it starts one interval after
the definition's last change (``CHANGED_AT``; like APScheduler, the first run is one interval
after the job was scheduled). A restarted jmon therefore computes the same due times as the
one before it, and sched recognises a fire it was already given. Cron expressions are
evaluated in UTC (no daylight saving time).

Misfires are explicit. A hand-over is a misfire when it is more than ``sched_misfire_grace``
seconds late, or covers more than one fire — because the stack was down (found at start from
the job's last run) or the host was busy or the clock stepped forward. The job's misfire
policy decides: ``RUN_ONCE`` runs it once now (all covered fires coalesced into one run),
``SKIP`` records one SKIPPED run that says how many were missed. Either way the job log says so.
How many is counted by :mod:`redpss.sched.catchup` (by division and by whole periods, not
walked fire by fire: a year's stop costs a few trigger calls a job).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger

from redpss.dictionary.jobs import JobDef, RunRecord, WatcherDef
from redpss.sched.catchup import Catchup
from redpss.sched.triggers import (
    DefinitionError,
    check_job,
    check_watcher,
    job_trigger,
    watcher_trigger,
)

__all__ = ["Due", "Timetable"]

log = logging.getLogger(__name__)

_TICK = timedelta(microseconds=1)
_NO_TRIGGER: Any = None


@dataclass(frozen=True)
class Due:
    """Something to hand over to sched: a job run (maybe a misfire) or a watcher check.

    ``fires`` is how many fire times of the trigger this hand-over covers: 1, or more when
    missed fires were coalesced into it (the first of them is ``due``).
    """

    kind: str  # "job" or "watch"
    name: str
    due: datetime
    note: str | None = None
    skip: bool = False
    fires: int = 1

    def to_wire(self) -> dict[str, Any]:
        """The form sched's ``submit`` op takes."""
        return {
            "kind": self.kind,
            "name": self.name,
            "due": self.due.isoformat(),
            "note": self.note,
            "skip": self.skip,
        }


@dataclass(eq=False)
class _Entry:
    kind: str
    name: str
    signature: tuple[Any, ...]
    trigger: BaseTrigger
    next_fire: datetime | None
    policy: str = "RUN_ONCE"

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)


def _job_signature(job: JobDef) -> tuple[Any, ...]:
    return (job.schedule_type, job.interval_seconds, job.cron_expr, job.misfire_policy)


class Timetable:
    """Next fire times of every active job and watcher."""

    def __init__(self, *, grace: float, ahead: float = 0.0) -> None:
        self.grace = timedelta(seconds=grace)
        self.ahead = timedelta(seconds=ahead)
        self.entries: dict[tuple[str, str], _Entry] = {}
        self.errors: dict[tuple[str, str], str] = {}  # ("job"|"watch", name): why refused
        self.loaded = False
        # (hand-over point, sequence, entry, fire): an item is stale once its entry moved on
        # or was replaced; stale items are dropped when they come to the top
        self._heap: list[tuple[datetime, int, _Entry, datetime]] = []
        self._seq = itertools.count()
        self.changes = 0  # grows whenever a next fire changes (snapshot pushes compare it)
        self._seen: dict[str, tuple[JobDef, _Entry | str | None]] = {}  # name: (def, outcome)
        self._catchup = Catchup()  # counts the fires a hand-over covers (redpss.sched.catchup)

    # ------------------------------------------------------------------ building

    def load(
        self,
        jobs: list[JobDef],
        watchers: list[WatcherDef],
        last_runs: dict[str, RunRecord],
        now: datetime,
    ) -> list[str]:
        """(Re)build from definitions; return the definition errors that are new."""
        by_name = {j.name: j for j in jobs}
        wanted: dict[tuple[str, str], _Entry] = {}
        errors: dict[tuple[str, str], str] = {}
        seen: dict[str, tuple[JobDef, _Entry | str | None]] = {}
        for job in jobs:
            known = self._seen.get(job.name)
            # the very definition of the last load (the definitions cache keeps the objects of
            # rows that did not change): its outcome stands, without building its trigger again
            outcome = (
                known[1]
                if known is not None and known[0] is job
                else self._job_of(job, last_runs, now)
            )
            seen[job.name] = (job, outcome)
            if isinstance(outcome, str):
                errors[("job", job.name)] = outcome
            elif outcome is not None:
                wanted[outcome.key] = outcome
        self._seen = seen
        for w in watchers:
            if not w.active:
                continue
            try:
                check_watcher(w, by_name)
            except DefinitionError as exc:
                errors[("watch", w.name)] = str(exc)
                continue
            entry = self._watch_entry(w, now)
            wanted[entry.key] = entry
        new_errors = [msg for key, msg in errors.items() if self.errors.get(key) != msg]
        self.errors = errors
        for key, entry in wanted.items():
            if self.entries.get(key) is not entry:
                self._push(entry)
        if set(wanted) != set(self.entries) or any(
            self.entries.get(k) is not e for k, e in wanted.items()
        ):
            self.changes += 1
        self.entries = wanted
        self.loaded = True
        if len(self._heap) > 4 * len(self.entries) + 64:
            self._compact()
        return new_errors

    def _job_of(
        self, job: JobDef, last_runs: dict[str, RunRecord], now: datetime
    ) -> _Entry | str | None:
        """The entry of a job, why its definition is refused, or None (not scheduled)."""
        if not job.active:
            return None
        try:
            check_job(job)
            if job.schedule_type == "NONE":
                return None
            return self._job_entry(job, last_runs.get(job.name), now)
        except DefinitionError as exc:
            return str(exc)

    def _job_entry(self, job: JobDef, last: RunRecord | None, now: datetime) -> _Entry:
        old = self.entries.get(("job", job.name))
        sig = _job_signature(job)
        if old is not None and old.signature == sig:
            return old
        # at jmon's start the last run tells what was missed while the stack was down (the
        # fires after it); a job that is new, changed or re-activated later owes nothing
        # before now
        restart = last is not None and not self.loaded
        since = last.queued_at + _TICK if last is not None and restart else now
        if job.schedule_type == "INTERVAL":
            assert job.interval_seconds is not None
            scheduled = job.changed_at or (last.queued_at if last is not None and restart else now)
            trigger = job_trigger(job, start=scheduled + timedelta(seconds=job.interval_seconds))
        else:
            trigger = job_trigger(job)
        assert trigger is not None
        first = trigger.get_next_fire_time(None, since)
        return _Entry("job", job.name, sig, trigger, first, job.misfire_policy)

    def _watch_entry(self, w: WatcherDef, now: datetime) -> _Entry:
        old = self.entries.get(("watch", w.name))
        sig = (w.check_interval,)
        if old is not None and old.signature == sig:
            return old
        trigger = watcher_trigger(w, start=now)
        return _Entry("watch", w.name, sig, trigger, now)

    def _lead(self, entry: _Entry) -> timedelta:
        return self.ahead if entry.kind == "job" else timedelta(0)

    def _push(self, entry: _Entry) -> None:
        if entry.next_fire is not None:
            point = entry.next_fire - self._lead(entry)
            heapq.heappush(self._heap, (point, next(self._seq), entry, entry.next_fire))

    def _stale(self, entry: _Entry, fire: datetime) -> bool:
        return self.entries.get(entry.key) is not entry or entry.next_fire != fire

    def _compact(self) -> None:
        self._heap = [item for item in self._heap if not self._stale(item[2], item[3])]
        heapq.heapify(self._heap)

    # ------------------------------------------------------------------ running

    def due(self, now: datetime, *, suspended: bool = False) -> list[Due]:
        """Everything to hand over at ``now`` (job runs up to ``ahead`` early); advance those.

        Each fire time is returned once. Nothing is returned while suspended (the entries
        move on all the same).
        """
        out: list[Due] = []
        while self._heap and self._heap[0][0] <= now:
            _, _, entry, fire = heapq.heappop(self._heap)
            if self._stale(entry, fire):
                continue
            count, following = self._catchup.count(entry.trigger, fire, now)
            entry.next_fire = following
            self._push(entry)
            self.changes += 1
            if suspended:
                continue
            if entry.kind == "watch":
                out.append(Due("watch", entry.name, fire, fires=count))
                continue
            out.append(self._job_due(entry, fire, count, now))
        return out

    def _job_due(self, entry: _Entry, fire: datetime, count: int, now: datetime) -> Due:
        late = now - fire
        if late <= self.grace and count == 1:
            return Due("job", entry.name, fire)
        what = (
            f"misfire: {count} run(s) due since {fire.isoformat(timespec='seconds')} "
            f"were not started on time (late by {late.total_seconds():.1f} s)"
        )
        if entry.policy == "SKIP":
            note = f"{what}; skipped (policy SKIP)"
            return Due("job", entry.name, fire, note=note, skip=True, fires=count)
        note = f"{what}; running once (policy RUN_ONCE)"
        return Due("job", entry.name, fire, note=note, fires=count)

    def regroup(self, kept: list[Due], now: datetime) -> list[Due]:
        """What was handed over but not taken (sched away), as it must be offered at ``now``.

        The fires of one job kept since then become one hand-over again, a misfire by its
        policy when it is late now or covers several fires; a watcher is checked once.
        """
        jobs: dict[str, list[Due]] = {}
        watches: dict[str, list[Due]] = {}
        for d in kept:
            (jobs if d.kind == "job" else watches).setdefault(d.name, []).append(d)
        out = [
            Due("watch", name, group[0].due, fires=sum(d.fires for d in group))
            for name, group in watches.items()
        ]
        for name, group in jobs.items():
            first, count = group[0], sum(d.fires for d in group)
            if count == 1 and (first.note is not None or now - first.due <= self.grace):
                out.append(first)  # on time still, or said already
                continue
            entry = self.entries.get(("job", name))
            policy = entry.policy if entry is not None else ("SKIP" if first.skip else "RUN_ONCE")
            probe = _Entry("job", name, (), _NO_TRIGGER, None, policy)
            out.append(self._job_due(probe, first.due, count, now))
        return out

    def next_handover(self) -> datetime | None:
        """When :meth:`due` will next have something: the earliest hand-over point."""
        while self._heap and self._stale(self._heap[0][2], self._heap[0][3]):
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def next_wakeup(self) -> datetime | None:
        """The earliest next fire over all entries."""
        times = [e.next_fire for e in self.entries.values() if e.next_fire is not None]
        return min(times) if times else None

    def snapshot(self, limit: int = 50) -> list[dict[str, Any]]:
        """The next ``limit`` fires, soonest first (for ``redctl show``)."""
        items = heapq.nsmallest(
            limit,
            (e for e in self.entries.values() if e.next_fire is not None),
            key=lambda e: e.next_fire or datetime.max.replace(tzinfo=UTC),
        )
        return [
            {
                "kind": e.kind,
                "name": e.name,
                "next": e.next_fire.isoformat() if e.next_fire else None,
            }
            for e in items
        ]

    def job_errors(self) -> dict[str, str]:
        """Why each refused job definition is refused, by job name."""
        return {name: msg for (kind, name), msg in self.errors.items() if kind == "job"}

    def next_runs(self) -> dict[str, datetime | None]:
        """Next due time of every scheduled job (for ADM_JMON_JOBLOG)."""
        return {e.name: e.next_fire for e in self.entries.values() if e.kind == "job"}
