"""Run ids and the run log writer of sched.

State changes of runs are queued and written in batches by one thread (group commit): a
worker never waits for the dictionary, and a dictionary that is away loses nothing — the
batch is kept and written when it is back. ``STARTED_AT``/``ENDED_AT`` are taken when the
change happens, not when it is written.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

from redpss.dictionary import Dictionary
from redpss.dictionary.jobs import RunUpdate
from redpss.errors import DictionaryError
from redpss.sched.threads import Died, start_thread

__all__ = ["RunIds", "RunLogWriter", "merge"]

log = logging.getLogger(__name__)

BATCH_WAIT = 0.05
RETRY_WAIT = 1.0
THREAD = "run log writer"
"""The writer thread's name, in the heartbeat's problems when it is not running."""


class RunIds:
    """Run ids unique per instance: milliseconds since the epoch times 1000 + a sequence."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        """A new run id, larger than every id this process gave before."""
        with self._lock:
            self._last = max(int(time.time() * 1000) * 1000, self._last + 1)
            return self._last


def merge(batch: list[RunUpdate]) -> list[RunUpdate]:
    """One update per run: later states win, fields a later update leaves None are kept.

    A run queued, started and ended within one batch becomes one row write instead of three.
    """
    merged: dict[tuple[str, bool, int], RunUpdate] = {}
    for update in batch:
        key = (update.schema, update.watcher, update.run_id)
        old = merged.get(key)
        if old is None:
            merged[key] = update
            continue
        changes = {
            f.name: getattr(update, f.name)
            for f in dataclasses.fields(update)
            if getattr(update, f.name) is not None
        }
        merged[key] = dataclasses.replace(old, **changes)
    return list(merged.values())


class RunLogWriter:
    """Writes :class:`RunUpdate` batches into the dictionary from one background thread."""

    def __init__(self, dictionary: Dictionary, *, died: Died | None = None) -> None:
        self.dictionary = dictionary
        self._pending: list[RunUpdate] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._died = died
        self.written = 0

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = start_thread(THREAD, self._loop, died=self._died)

    @property
    def thread(self) -> threading.Thread | None:
        """The writer thread (None before :meth:`start`): sched's heartbeat watches it."""
        return self._thread

    def put(self, update: RunUpdate) -> None:
        """Queue one state change."""
        with self._cond:
            self._pending.append(update)
            self._cond.notify()

    def pending(self) -> int:
        """How many changes wait to be written."""
        with self._cond:
            return len(self._pending)

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is pending (within ``timeout``) and stop the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)
        if self._pending:
            log.error(
                "run log: %d state changes could not be written before stop", len(self._pending)
            )

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._pending and not self._stopping:
                    self._cond.wait()  # put() and stop() wake it: an idle writer sleeps
                if not self._pending and self._stopping:
                    return
                batch = list(self._pending)
            if not batch:
                continue
            try:
                merged = merge(batch)
                self.dictionary.record_runs(merged)
                self.dictionary.record_job_status(merged)  # STA_JOB_STATUS (idempotent too)
            except DictionaryError as exc:
                log.warning(
                    "run log: %d state changes not written yet (will retry): %s", len(batch), exc
                )
                if self._stopping:
                    return
                time.sleep(RETRY_WAIT)
                continue
            with self._cond:
                del self._pending[: len(batch)]
                self.written += len(batch)
            if not self._stopping:
                time.sleep(BATCH_WAIT)
