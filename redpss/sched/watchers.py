"""Watchers: checks that fire the executor job of a watcher, and what sched remembers of them.

* ``FILE``: complete files in ``data/input`` whose name matches the pattern (``re.search``),
  as the landing zone decides (:func:`redpss.landing.lifecycle.complete_files`: unchanged for
  ``sched_file_quiet_period`` seconds; hidden files and uploads in progress never fire).
* ``SQL``: the query's result (one value, or a hash of all rows) is compared with the value of
  the last successful fire; a different value fires.

A key (file name or value) fires once while its executor run is queued or running. A failed
executor run is counted in ``ADM_WATCHER_EXEC_ERROR``; a key with an entry there does not fire
again until ``redctl we_reset_error`` clears it — no retry loop. A file that was handled
successfully but is still in ``data/input`` fires again only when it changes.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from pathlib import Path

from redpss.dictionary.jobs import OK, QUEUED, WatcherDef
from redpss.errors import DictionaryError
from redpss.landing import lifecycle
from redpss.sched.engine import Engine, Run
from redpss.sched.executors import Outcome

__all__ = ["Watchers", "complete_files"]

log = logging.getLogger(__name__)

SQL_WATCH_TIMEOUT = 60.0


def complete_files(
    input_dir: Path, pattern: re.Pattern[str], *, quiet_period: float
) -> list[tuple[str, tuple[int, int]]]:
    """Names and (size, mtime) signatures of the complete files in ``input_dir`` matching."""
    due = lifecycle.complete_names(
        input_dir, pattern.search, quiet_period=quiet_period, marker=False
    )  # one lstat per name, the signature from it (a link's own: a dangling one fires too)
    return [(d.name, (d.size, d.mtime_ns)) for d in due]


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
        self._lock = threading.Lock()
        self._queue: deque[str] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="watch", daemon=True)
        engine.on_end.append(self._ended)

    def start(self) -> None:
        """Remember the last successful value of SQL watchers; start the check thread."""
        for run in self.dictionary.runs(watcher=True, states=(OK,), limit=1000):
            if run.watch_key is not None:
                self.last_value.setdefault(run.name, run.watch_key)
        self._thread.start()

    def stop(self) -> None:
        """Stop checking (a running check finishes)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def request(self, name: str) -> bool:
        """Queue a check of watcher ``name``; False if one is already queued."""
        with self._cond:
            if name in self._queue:
                return False
            self._queue.append(name)
            self._cond.notify()
            return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait(1.0)
                if self._stopping:
                    return
                name = self._queue.popleft()
            watcher = self.engine.definitions.watchers.get(name)
            if watcher is None:
                self.engine.definitions.refresh(force=True)
                watcher = self.engine.definitions.watchers.get(name)
            if watcher is None or not watcher.active:
                continue
            try:
                self.check(watcher)
            except (DictionaryError, OSError, TimeoutError) as exc:
                log.error("watcher=%s check failed: %s", name, exc)

    def check(self, w: WatcherDef) -> int:
        """Check one watcher now; return how many runs it fired."""
        job = self.engine.definitions.job(w.executor_job)
        if job is None:
            log.error("watcher=%s executor job %s does not exist", w.name, w.executor_job)
            return 0
        blocked = {e.key for e in self.dictionary.exec_errors(w.name)}
        fired = 0
        if w.kind == "FILE":
            pattern = re.compile(w.watch_text)
            for key, sig in complete_files(self.input_dir, pattern, quiet_period=self.quiet):
                k = (w.name, key)
                with self._lock:
                    skip = k in self.in_flight or key in blocked or self.done_ok.get(k) == sig
                if skip:
                    continue
                if not self.engine.has_capacity(job):
                    break  # the rest waits for the next check
                fired += self._fire(w, key, sig)
        else:
            value = self.dictionary.query_value(w.schema, w.watch_text, timeout=SQL_WATCH_TIMEOUT)
            k = (w.name, value)
            with self._lock:
                skip = value == self.last_value.get(w.name) or k in self.in_flight
            if not skip and value not in blocked and self.engine.has_capacity(job):
                fired += self._fire(w, value, value)
        return fired

    def _fire(self, w: WatcherDef, key: str, sig: object) -> int:
        job = self.engine.definitions.jobs[w.executor_job]
        k = (w.name, key)
        with self._lock:
            self.in_flight.add(k)
            self._signatures[k] = sig
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
            return 0
        log.info("watcher=%s fired key=%s run=%s job=%s", w.name, key, result["run_id"], job.name)
        return 1

    def _ended(self, run: Run, outcome: Outcome) -> None:
        if run.watcher is None or run.key is None:
            return
        w, key = run.watcher, run.key
        k = (w.name, key)
        if outcome.state != OK:
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
            sig = self._signatures.pop(k, None)
            if outcome.state == OK:
                self.done_ok[k] = sig
                if w.kind == "SQL":
                    self.last_value[w.name] = key
