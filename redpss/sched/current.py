"""The job and watcher definitions as sched knows them now: looked at at most once a second,
the changed ones re-read (:class:`redpss.dictionary.cache.DefinitionCache`: a look is O(1) on
SQLite, a change O(changes))."""

from __future__ import annotations

import threading
import time

from redpss.dictionary import Dictionary
from redpss.dictionary.cache import DefinitionCache
from redpss.dictionary.jobs import JobDef, WatcherDef

__all__ = ["Definitions"]


class Definitions:
    """Job and watcher definitions, re-read when the dictionary says they changed."""

    def __init__(self, dictionary: Dictionary, *, min_age: float = 1.0) -> None:
        self.dictionary = dictionary
        self.min_age = min_age
        self.jobs: dict[str, JobDef] = {}
        self.watchers: dict[str, WatcherDef] = {}
        self._cache = DefinitionCache(dictionary)
        self._checked = 0.0
        self._lock = threading.Lock()

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read if changed (at most every ``min_age`` s unless forced); True if changed."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._checked < self.min_age:
                return False
            self._checked = now
            if not self._cache.refresh():
                return False
            self.jobs = dict(self._cache.jobs)
            self.watchers = dict(self._cache.watchers)
            return True

    def current(self, job: JobDef) -> JobDef | None:
        """``job`` as defined now (as last read); None if it was deactivated or deleted."""
        if not self._cache.stamp:
            return job  # not read yet: nothing to compare with
        now = self.jobs.get(job.name)
        return now if now is not None and now.active else None

    def job(self, name: str) -> JobDef | None:
        """The definition of job ``name``, re-read once if it is not known."""
        self.refresh()
        if name not in self.jobs:
            self.refresh(force=True)
        return self.jobs.get(name)
