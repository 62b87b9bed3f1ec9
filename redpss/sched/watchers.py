"""Watchers: checks that fire the executor job of a watcher, and what sched remembers of them.

* ``FILE``: complete files in ``data/input`` whose name matches the pattern (``re.search``),
  as the landing zone decides (:func:`redpss.landing.lifecycle.complete_names`: unchanged for
  ``sched_file_quiet_period`` seconds; hidden files and uploads in progress never fire). Every
  complete file is its own key and its own executor run, started oldest first; up to the size
  of the executor's pool run at once, and when one ends the next file of the backlog starts at
  once — a batch of files drains at loader speed, not one file per check interval.
* ``SQL``: the query's result (one value, or a hash of all rows) is compared with the value of
  the last successful fire; a different value fires.

A key (file name or value) fires once while its executor run is queued or running. A failed
executor run is counted in ``ADM_WATCHER_EXEC_ERROR``; a key with an entry there does not fire
again until ``redctl we_reset_error`` clears it — no retry loop. A run that failed for a
transient reason (the dictionary locked or away, the disk) is not the key's fault: it is not
an executor error, and the watcher tries the key again after a back-off (doubling from
:data:`RETRY_FIRST` to :data:`RETRY_CAP` seconds): a check of the watcher comes when the
back-off ends, not at its next check interval (which may be an hour away). A file that was
handled successfully but is still in ``data/input`` fires again only when it changes.

A check that fails (a SQL watcher's query on a missing table, an unreadable ``data/input``) is
counted in the same table under the key :data:`CHECK_KEY` with the database's message, so
``list_db_watcher`` and ``we_list_error`` show it; it does not stop the checks, and
``we_reset_error`` clears it. A check that fails for a transient reason (the dictionary locked,
the disk full) is only logged: nothing for the operator to reset once the disk has room again.
"""

from __future__ import annotations

import heapq
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from redpss.dictionary.jobs import OK, QUEUED, JobDef, WatcherDef
from redpss.errors import DictionaryError
from redpss.landing import lifecycle
from redpss.sched.engine import Engine, Run
from redpss.sched.executors import Outcome, is_transient
from redpss.sched.threads import start_thread

__all__ = ["CHECK_KEY", "Watchers", "complete_files"]

log = logging.getLogger(__name__)

SQL_WATCH_TIMEOUT = 60.0
CHECK_KEY = "(check)"
"""The key under which a failing check of a watcher is counted in ADM_WATCHER_EXEC_ERROR."""
RETRY_FIRST = 1.0
RETRY_CAP = 120.0
THREAD = "watcher thread"
"""The check thread's name, in the heartbeat's problems when it is not running."""


def complete_files(
    input_dir: Path, pattern: re.Pattern[str], *, quiet_period: float
) -> list[tuple[str, tuple[int, int]]]:
    """Names and (size, mtime) signatures of the complete files in ``input_dir`` matching,
    oldest first."""
    due = lifecycle.complete_names(
        input_dir, pattern.search, quiet_period=quiet_period, marker=False
    )  # one lstat per name, the signature from it (a link's own: a dangling one fires too)
    return [(d.name, (d.size, d.mtime_ns)) for d in due]


@dataclass
class _State:
    """What sched remembers of one watcher between checks."""

    backlog: deque[tuple[str, object]] = field(default_factory=deque)
    running: int = 0
    failing: str | None = None  # the message of the failing check, while it fails
    retry: dict[str, tuple[float, float]] = field(default_factory=dict)  # key: (at, delay)


class Watchers:
    """Runs watcher checks on one thread and keeps track of their fires."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dictionary = engine.dictionary
        self.input_dir = engine.instance.home / "data" / "input"
        self.quiet = engine.config.redsys.sched_file_quiet_period
        self.in_flight: set[tuple[str, str]] = set()
        self.done_ok: dict[tuple[str, str], object] = {}
        self.last_value: dict[str, str] = {}
        self._signatures: dict[tuple[str, str], object] = {}
        self._states: dict[str, _State] = {}
        self._lock = threading.RLock()
        self._queue: deque[str] = deque()
        self._due: list[tuple[float, str]] = []  # (monotonic time, watcher): checks of retries
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        engine.on_end.append(self._ended)

    def start(self) -> None:
        """Remember the last successful value of SQL watchers; start the check thread."""
        for run in self.dictionary.runs(watcher=True, states=(OK,), limit=1000):
            if run.watch_key is not None:
                self.last_value.setdefault(run.name, run.watch_key)
        with self.engine.cond, self._lock:  # runs adopted from a sched before: keys in flight
            for adopted in self.engine.running.values():
                if adopted.watcher is not None and adopted.key is not None:
                    self.in_flight.add((adopted.watcher.name, adopted.key))
                    self._state(adopted.watcher.name).running += 1
        self._thread = start_thread(THREAD, self._loop, died=self.engine.died)

    @property
    def thread(self) -> threading.Thread | None:
        """The check thread (None before :meth:`start`): sched's heartbeat watches it."""
        return self._thread

    def stop(self) -> None:
        """Stop checking (a running check finishes)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10)

    def request(self, name: str) -> bool:
        """Queue a check of watcher ``name``; False if one is already queued."""
        with self._cond:
            if name in self._queue:
                return False
            self._queue.append(name)
            self._cond.notify()
            return True

    def _state(self, name: str) -> _State:
        with self._lock:
            return self._states.setdefault(name, _State())

    def _check_at(self, name: str, at: float) -> None:
        """Queue a check of watcher ``name`` at monotonic time ``at`` (a key's retry)."""
        with self._cond:
            heapq.heappush(self._due, (at, name))
            self._cond.notify()

    def _next_name(self) -> str | None:
        """The next watcher to check, waiting for a request or a retry's time; None to stop."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                while self._due and self._due[0][0] <= now:
                    _, due = heapq.heappop(self._due)
                    if due not in self._queue:
                        self._queue.append(due)
                if self._queue:
                    return self._queue.popleft()
                self._cond.wait(self._due[0][0] - now if self._due else None)
            return None

    def _loop(self) -> None:
        while True:
            name = self._next_name()
            if name is None:
                return
            watcher = self.engine.definitions.watchers.get(name)
            if watcher is None:
                self.engine.definitions.refresh(force=True)
                watcher = self.engine.definitions.watchers.get(name)
            if watcher is None or not watcher.active:
                continue
            try:
                self.check(watcher)
            except (DictionaryError, OSError, TimeoutError) as exc:
                self._check_failed(watcher, exc)
            else:
                self._check_ok(watcher)

    # ------------------------------------------------------------------ checks

    def check(self, w: WatcherDef) -> int:
        """Check one watcher now; return how many runs it fired."""
        job = self.engine.definitions.job(w.executor_job)
        if job is None:
            log.error("watcher=%s executor job %s does not exist", w.name, w.executor_job)
            return 0
        blocked = {e.key for e in self.dictionary.exec_errors(w.name)} - {CHECK_KEY}
        if w.kind == "FILE":
            pattern = re.compile(w.watch_text)
            found = complete_files(self.input_dir, pattern, quiet_period=self.quiet)
            state = self._state(w.name)
            now = time.monotonic()
            with self._lock:
                state.backlog = deque(
                    (key, sig)
                    for key, sig in found
                    if (w.name, key) not in self.in_flight
                    and key not in blocked
                    and self.done_ok.get((w.name, key)) != sig
                    and state.retry.get(key, (0.0, 0.0))[0] <= now
                )
            return self._pump(w, job)
        value = self.dictionary.query_value(w.schema, w.watch_text, timeout=SQL_WATCH_TIMEOUT)
        k = (w.name, value)
        with self._lock:
            skip = value == self.last_value.get(w.name) or k in self.in_flight
            waiting = self._state(w.name).retry.get(value, (0.0, 0.0))[0] > time.monotonic()
        if skip or waiting or value in blocked or not self.engine.has_capacity(job):
            return 0
        return self._fire(w, job, value, value)

    def _pump(self, w: WatcherDef, job: JobDef) -> int:
        """Fire files of ``w``'s backlog, oldest first, while its pool has room for them."""
        limit = self.engine.sizes.get(job.pool, 1)
        state = self._state(w.name)
        fired = 0
        while True:
            with self._lock:
                if state.running >= limit or not state.backlog:
                    return fired
                key, sig = state.backlog.popleft()
                if (w.name, key) in self.in_flight:
                    continue
            fired += self._fire(w, job, key, sig)

    def _check_failed(self, w: WatcherDef, exc: Exception) -> None:
        message = f"check failed: {exc}"
        state = self._state(w.name)
        transient = is_transient(exc)  # the dictionary or the disk: not the watcher's error
        if state.failing == message:
            log.debug("watcher=%s %s", w.name, message)
        elif transient:
            log.warning("watcher=%s %s (the dictionary or the disk: tried again)", w.name, message)
        else:
            log.error("watcher=%s %s (counted under key %s)", w.name, message, CHECK_KEY)
        state.failing = message
        if transient:
            return
        try:
            self.dictionary.record_exec_error(w.schema, w.name, CHECK_KEY, message)
        except DictionaryError as err:
            log.warning("watcher=%s check error not recorded: %s", w.name, err)

    def _check_ok(self, w: WatcherDef) -> None:
        state = self._state(w.name)
        if state.failing is not None:
            log.info("watcher=%s checks work again (after: %s)", w.name, state.failing)
            state.failing = None

    # ------------------------------------------------------------------ runs

    def _fire(self, w: WatcherDef, job: JobDef, key: str, sig: object) -> int:
        k = (w.name, key)
        state = self._state(w.name)
        with self._lock:
            self.in_flight.add(k)
            self._signatures[k] = sig
            state.running += 1
        result = self.engine.submit(
            job,
            key=key,
            watcher=w,
            watcher_run_id=self.engine.ids.next(),
            note=f"fired by watcher {w.name} for {key}",
        )
        if result["state"] != QUEUED:
            with self._lock:
                self.in_flight.discard(k)
                state.running -= 1
            return 0
        log.info("watcher=%s fired key=%s run=%s job=%s", w.name, key, result["run_id"], job.name)
        return 1

    def _ended(self, run: Run, outcome: Outcome) -> None:
        if run.watcher is None or run.key is None:
            return
        w, key = run.watcher, run.key
        k = (w.name, key)
        state = self._state(w.name)
        if outcome.state != OK and outcome.transient:
            self._retry_later(w, key, run, outcome)
        elif outcome.state != OK:
            # recorded before the key is released, so no check in between can fire it again
            message = outcome.message or outcome.state
            try:
                count = self.dictionary.record_exec_error(w.schema, w.name, key, message)
                log.warning(
                    "watcher=%s key=%s executor run %d %s (error %d; not retried "
                    "until redctl we_reset_error)",
                    w.name,
                    key,
                    run.run_id,
                    outcome.state,
                    count,
                )
            except DictionaryError as exc:
                log.error(
                    "watcher=%s key=%s executor failed, error not recorded: %s", w.name, key, exc
                )
        with self._lock:
            self.in_flight.discard(k)
            state.running = max(state.running - 1, 0)
            sig = self._signatures.pop(k, None)
            if outcome.state == OK:
                state.retry.pop(key, None)
                self.done_ok[k] = sig
                if w.kind == "SQL":
                    self.last_value[w.name] = key
        job = self.engine.definitions.jobs.get(w.executor_job)
        if w.kind == "FILE" and job is not None and not self._stopping:
            self._pump(w, job)  # the next file of the backlog starts now, not at the next check

    def _retry_later(self, w: WatcherDef, key: str, run: Run, outcome: Outcome) -> None:
        state = self._state(w.name)
        with self._lock:
            _, last = state.retry.get(key, (0.0, 0.0))
            delay = min(RETRY_CAP, max(RETRY_FIRST, last * 2))
            at = time.monotonic() + delay
            state.retry[key] = (at, delay)
        self._check_at(w.name, at)
        log.warning(
            "watcher=%s key=%s executor run %d %s for a transient reason; tried again in "
            "%.0f s (not an executor error): %s",
            w.name,
            key,
            run.run_id,
            outcome.state,
            delay,
            (outcome.message or "")[:300],
        )
