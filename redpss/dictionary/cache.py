"""The job and watcher definitions as a role last read them, kept current at the cost of what
changed: jmon looks every ``sched_definitions_poll`` seconds, sched before it starts a run.

A look is one call of :meth:`JobStore.definitions_stamp` (O(1) on SQLite: the end of the change
log); only when the stamp moved are the changed rows read (:meth:`JobStore.definition_changes`),
or — when the backend cannot say what changed (Exasol, a gap in the log) — every row.
"""

from __future__ import annotations

from redpss.dictionary.jobs import JobDef, JobStore, WatcherDef

__all__ = ["DefinitionCache"]


class DefinitionCache:
    """Job and watcher definitions by name, as of :attr:`stamp`."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.jobs: dict[str, JobDef] = {}
        self.watchers: dict[str, WatcherDef] = {}
        self.stamp = ""
        self.full_reads = 0  # how often everything was read (tests, benches)

    def forget(self) -> None:
        """Read everything at the next :meth:`refresh` (``redctl reload``)."""
        self.stamp = ""

    def refresh(self, *, force: bool = False) -> bool:
        """Bring the definitions up to date; True when any of them changed (or all were read)."""
        if force or not self.stamp:
            self._read_all(self.store.definitions_stamp())
            return True
        stamp = self.store.definitions_stamp()
        if stamp == self.stamp:
            return False
        changes = self.store.definition_changes(self.stamp)
        if changes is None:
            self._read_all(stamp)
            return True
        for name, job in changes.jobs.items():
            if job is None:
                self.jobs.pop(name, None)
            else:
                self.jobs[name] = job
        for name, watcher in changes.watchers.items():
            if watcher is None:
                self.watchers.pop(name, None)
            else:
                self.watchers[name] = watcher
        self.stamp = changes.stamp
        return bool(changes.jobs or changes.watchers)

    def _read_all(self, stamp: str) -> None:
        # the stamp was read before the rows: a change between the two moves the stamp again,
        # and the next look reads it
        self.jobs = {j.name: j for j in self.store.jobs()}
        self.watchers = {w.name: w for w in self.store.watchers()}
        self.stamp = stamp
        self.full_reads += 1

    def job_list(self) -> list[JobDef]:
        """Every job, sorted by name (as :meth:`JobStore.jobs`)."""
        return [self.jobs[n] for n in sorted(self.jobs)]

    def watcher_list(self) -> list[WatcherDef]:
        """Every watcher, sorted by name (as :meth:`JobStore.watchers`)."""
        return [self.watchers[n] for n in sorted(self.watchers)]
