"""jmon's timetable: when each active job is due and each active watcher is to be checked.

Built from the definitions and rebuilt whenever they change, without a restart: a new job, a
changed interval or cron expression, a (de)activated or deleted job or watcher take effect at
the next look (``sched_definitions_poll`` seconds, or at once after ``redctl reload``).

Misfires are explicit. A run is a misfire when it is handed over more than
``sched_misfire_grace`` seconds after it was due — because the stack was down (found at start
from the job's last run) or busy. The job's misfire policy decides: ``RUN_ONCE`` runs it once
now (all missed runs coalesced into one), ``SKIP`` records one SKIPPED run that says how many
were missed. Either way the job log says so.

Like APScheduler, an interval job's first run is one interval after it was scheduled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger

from redpss.dictionary.jobs import JobDef, RunRecord, WatcherDef
from redpss.sched.triggers import (
    DefinitionError,
    check_job,
    check_watcher,
    job_trigger,
    watcher_trigger,
)

__all__ = ["Due", "Timetable"]

log = logging.getLogger(__name__)

MAX_COUNT = 100_000  # missed fires counted at most (a 1 s job down for a day: 86 400)


@dataclass(frozen=True)
class Due:
    """Something to hand over to sched: a job run (maybe a misfire) or a watcher check."""

    kind: str  # "job" or "watch"
    name: str
    due: datetime
    note: str | None = None
    skip: bool = False

    def to_wire(self) -> dict[str, Any]:
        """The form sched's ``submit`` op takes."""
        return {
            "kind": self.kind,
            "name": self.name,
            "due": self.due.isoformat(),
            "note": self.note,
            "skip": self.skip,
        }


@dataclass
class _Entry:
    kind: str
    name: str
    signature: tuple[Any, ...]
    trigger: BaseTrigger
    next_fire: datetime | None
    policy: str = "RUN_ONCE"
    fires: int = field(default=0)


def _job_signature(job: JobDef) -> tuple[Any, ...]:
    return (job.schedule_type, job.interval_seconds, job.cron_expr, job.misfire_policy)


class Timetable:
    """Next fire times of every active job and watcher."""

    def __init__(self, *, grace: float) -> None:
        self.grace = timedelta(seconds=grace)
        self.entries: dict[tuple[str, str], _Entry] = {}
        self.errors: dict[str, str] = {}
        self.loaded = False

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
        errors: dict[str, str] = {}
        for job in jobs:
            if not job.active:
                continue
            try:
                check_job(job)
                if job.schedule_type == "NONE":
                    continue
                entry = self._job_entry(job, last_runs.get(job.name), now)
            except DefinitionError as exc:
                errors[job.name] = str(exc)
                continue
            wanted[("job", job.name)] = entry
        for w in watchers:
            if not w.active:
                continue
            try:
                check_watcher(w, by_name)
            except DefinitionError as exc:
                errors[w.name] = str(exc)
                continue
            wanted[("watch", w.name)] = self._watch_entry(w, now)
        new_errors = [msg for name, msg in errors.items() if self.errors.get(name) != msg]
        self.errors = errors
        self.entries = wanted
        self.loaded = True
        return new_errors

    def _job_entry(self, job: JobDef, last: RunRecord | None, now: datetime) -> _Entry:
        old = self.entries.get(("job", job.name))
        sig = _job_signature(job)
        if old is not None and old.signature == sig:
            return old
        # at jmon's start the last run tells what was missed while the stack was down;
        # a job that is new, changed or re-activated later starts from now
        anchor = last.queued_at if (last is not None and not self.loaded) else now
        if job.schedule_type == "INTERVAL":
            assert job.interval_seconds is not None
            start = anchor + timedelta(seconds=job.interval_seconds)
            trigger = job_trigger(job, start=start)
            assert trigger is not None
            first = trigger.get_next_fire_time(None, start)
        else:
            trigger = job_trigger(job)
            assert trigger is not None
            first = trigger.get_next_fire_time(None, anchor + timedelta(seconds=1))
        return _Entry("job", job.name, sig, trigger, first, job.misfire_policy)

    def _watch_entry(self, w: WatcherDef, now: datetime) -> _Entry:
        old = self.entries.get(("watch", w.name))
        sig = (w.check_interval,)
        if old is not None and old.signature == sig:
            return old
        trigger = watcher_trigger(w, start=now)
        return _Entry("watch", w.name, sig, trigger, now)

    # ------------------------------------------------------------------ running

    def due(self, now: datetime, *, suspended: bool = False, ahead: float = 0.0) -> list[Due]:
        """Everything due by ``now`` (job runs: by ``now + ahead``), and advance those entries.

        Nothing is returned while suspended (the entries move on all the same).
        """
        out: list[Due] = []
        horizon = now + timedelta(seconds=ahead)
        for entry in self.entries.values():
            fire = entry.next_fire
            if fire is None or fire > (horizon if entry.kind == "job" else now):
                continue
            missed, following = self._advance(entry, fire, now)
            entry.next_fire = following
            if suspended:
                continue
            if entry.kind == "watch":
                out.append(Due("watch", entry.name, fire))
                continue
            out.append(self._job_due(entry, fire, missed, now))
        return out

    def _advance(self, entry: _Entry, fire: datetime, now: datetime) -> tuple[int, datetime | None]:
        """Count the further fires up to ``now`` (missed) and find the next one after it."""
        missed = 0
        following = entry.trigger.get_next_fire_time(fire, now)
        while following is not None and following <= now and missed < MAX_COUNT:
            missed += 1
            following = entry.trigger.get_next_fire_time(following, now)
        if following is not None and following <= now:  # counted enough: jump ahead
            following = entry.trigger.get_next_fire_time(None, now + timedelta(microseconds=1))
        return missed, following

    def _job_due(self, entry: _Entry, fire: datetime, missed: int, now: datetime) -> Due:
        late = now - fire
        if late <= self.grace and missed == 0:
            return Due("job", entry.name, fire)
        total = missed + 1
        what = (
            f"misfire: {total} run(s) due since {fire.isoformat(timespec='seconds')} "
            f"were not started on time (late by {late.total_seconds():.1f} s)"
        )
        if entry.policy == "SKIP":
            log.warning("job=%s %s; skipped by its misfire policy SKIP", entry.name, what)
            return Due("job", entry.name, fire, note=f"{what}; skipped (policy SKIP)", skip=True)
        log.warning("job=%s %s; running once (policy RUN_ONCE)", entry.name, what)
        return Due("job", entry.name, fire, note=f"{what}; running once (policy RUN_ONCE)")

    def next_wakeup(self) -> datetime | None:
        """The earliest next fire over all entries."""
        times = [e.next_fire for e in self.entries.values() if e.next_fire is not None]
        return min(times) if times else None

    def snapshot(self, limit: int = 50) -> list[dict[str, Any]]:
        """The next ``limit`` fires, soonest first (for ``redctl show``)."""
        items = sorted(
            (e for e in self.entries.values() if e.next_fire is not None),
            key=lambda e: e.next_fire or datetime.max.replace(tzinfo=UTC),
        )[:limit]
        return [
            {
                "kind": e.kind,
                "name": e.name,
                "next": e.next_fire.isoformat() if e.next_fire else None,
            }
            for e in items
        ]

    def next_runs(self) -> dict[str, datetime | None]:
        """Next due time of every scheduled job (for ADM_JMON_JOBLOG)."""
        return {e.name: e.next_fire for e in self.entries.values() if e.kind == "job"}
