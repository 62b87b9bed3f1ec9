"""The scheduler master: three worker pools that run what jmon (or an operator) hands over.

* ``submit`` queues a run of a job in the job's pool, or records it SKIPPED when the job
  already has ``max_parallel`` runs queued or running (never silently dropped).
* Workers run jobs through :mod:`.executors`; every state change goes to the run log writer.
* Watcher checks run on their own thread (:mod:`.watchers`) and fire executor runs.
* ``shutdown`` lets running runs finish within the grace time, then marks the rest ABORTED.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from redpss.config import Config
from redpss.dictionary import Dictionary
from redpss.dictionary.jobs import (
    ABORTED,
    KILLED,
    QUEUED,
    RUNNING,
    SKIPPED,
    JobDef,
    RunUpdate,
    WatcherDef,
)
from redpss.instance import Instance
from redpss.sched.current import Definitions
from redpss.sched.executors import Outcome, RunContext, execute
from redpss.sched.run import Flag, Run, RunNotKillable, killed_answer
from redpss.sched.runlog import THREAD as WRITER_THREAD
from redpss.sched.runlog import RunIds, RunLogWriter
from redpss.sched.threads import Died, start_thread

__all__ = ["Definitions", "Engine", "Flag", "Run", "RunNotKillable"]  # Definitions: from .current

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class Engine:
    """Pools, queues and running runs of one instance."""

    def __init__(self, instance: Instance, config: Config, dictionary: Dictionary) -> None:
        self.instance = instance
        self.config = config
        self.dictionary = dictionary
        cfg = config.redsys
        self.sizes = {
            "default": cfg.sched_default_pool_size,
            "loader": cfg.sched_loader_pool_size,
            "action": cfg.sched_action_pool_size,
        }
        # one lock; a condition per pool (a queued run wakes one worker of its pool), one for
        # the release of runs handed over ahead of time, one for "a run ended" (shutdown)
        lock = threading.RLock()
        self.cond = threading.Condition(lock)
        self.pool_cond = {p: threading.Condition(lock) for p in self.sizes}
        self.release_cond = threading.Condition(lock)
        self.queues: dict[str, deque[Run]] = {p: deque() for p in self.sizes}
        self.busy = dict.fromkeys(self.sizes, 0)
        self.ended = dict.fromkeys(self.sizes, 0)
        self.running: dict[int, Run] = {}
        self.active: dict[str, int] = {}  # runs queued or running, per job
        self.accepting = False
        self.ids = RunIds()
        self.writer = RunLogWriter(dictionary, died=self.died)
        self.definitions = Definitions(dictionary)
        self.timetable: list[dict[str, Any]] = []
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._threads: dict[str, threading.Thread] = {}
        self._adopted: set[int] = set()  # runs of a sched before: they hold a pool slot
        self._pending: list[tuple[datetime, int, JobDef, str | None]] = []
        self._seq = itertools.count()
        self._taken: dict[str, datetime] = {}  # per job: the latest due time jmon handed over
        self.paused: Any = lambda: False  # set by the role: True while suspended
        self.on_end: list[Any] = []  # callbacks(run, outcome), e.g. the watchers' bookkeeping
        self.on_start: list[Any] = []  # callbacks(run) when a worker takes it (lineage)
        self.on_death: Died | None = None  # set by the role: a thread of sched died of it

    @property
    def threads(self) -> dict[str, threading.Thread | None]:
        """sched's worker threads by name (pool workers, release, run log writer): the
        role's heartbeat watches them, so one that ends is a problem, not a silent stop."""
        return {**self._threads, WRITER_THREAD: self.writer.thread}

    def died(self, name: str, exc: BaseException) -> None:
        """A thread of sched ended for ``exc``: tell the role (:attr:`on_death`)."""
        if self.on_death is not None:
            self.on_death(name, exc)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> int:
        """Settle the runs a dead sched left unfinished, start writer and workers.

        Each ends in the log as it really ended (:mod:`.recovery`): a command that still runs
        in jexec is adopted; returns how many runs were settled or adopted.
        """
        from redpss.sched.recovery import Recovery  # recovery builds on this module

        self.writer.start()
        settled = Recovery(self).run()
        for pool, size in self.sizes.items():
            for i in range(size):
                name = f"{pool} worker {i}"
                self._threads[name] = start_thread(name, self._worker, pool, died=self.died)
        self._threads["release thread"] = start_thread(
            "release thread", self._release_due, died=self.died
        )
        with self.cond:
            self.accepting = True
        return settled

    def _release_due(self) -> None:
        """Queue runs handed over ahead of time the moment they are due."""
        while True:
            with self.cond:
                now = _now()
                if not self._pending or self._pending[0][0] > now:
                    # until the first pending run is due (at most a second: the wall clock may
                    # step), or without end while nothing is pending (a submit wakes it)
                    left = (self._pending[0][0] - now).total_seconds() if self._pending else None
                    self.release_cond.wait(None if left is None else min(max(left, 0.0), 1.0))
                    continue
                due = []
                while self._pending and self._pending[0][0] <= now:
                    due.append(heapq.heappop(self._pending))
            if self.paused():
                log.info("%d run(s) due while suspended were not started", len(due))
                continue
            for when, _, job, note in due:
                current = self.definitions.current(job)
                if current is None:
                    log.info("job=%s due %s not started: deactivated or deleted", job.name, when)
                    continue
                self._enqueue(current, due=when, note=note)

    def shutdown(self, grace: float) -> None:
        """Stop taking runs; let running ones finish within ``grace``; abort the rest."""
        with self.cond:
            self.accepting = False
            if self._pending:
                log.info(
                    "%d run(s) handed over ahead of time were not due yet at stop",
                    len(self._pending),
                )
                self._pending.clear()
            for queue in self.queues.values():
                while queue:
                    run = queue.popleft()
                    self._release(run)
                    self._final(run, ABORTED, "sched stopped before the run started")
            deadline = time.monotonic() + grace
            while self.running and time.monotonic() < deadline:
                self.cond.wait(0.1)
            leftover = list(self.running.values())
        for run in leftover:
            run.cancel.set()  # commands are killed (SIGTERM, SIGKILL 2 s later); SQL ends too
        with self.cond:
            end = time.monotonic() + 4.0
            while self.running and time.monotonic() < end:
                self.cond.wait(0.1)
            for run in list(self.running.values()):
                if run.job.kind == "CMD":
                    # jexec did not confirm the end of its command: the run is not over; the
                    # next sched settles it with jexec (adopts it, or logs how it ended)
                    log.warning(
                        "run=%d job=%s left RUNNING at stop: its command's end is unconfirmed",
                        run.run_id,
                        run.job.name,
                    )
                    continue
                del self.running[run.run_id]
                self._release(run)
                self._final(
                    run, ABORTED, f"sched stopped: the grace time of {grace:.0f} s was over"
                )
            self.cond.notify_all()
        self.writer.stop()

    # ------------------------------------------------------------------ submitting

    def submit(
        self,
        job: JobDef,
        *,
        due: datetime | None = None,
        key: str | None = None,
        watcher: WatcherDef | None = None,
        watcher_run_id: int | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Queue a run of ``job``; returns ``{"run_id", "state", "message"}``.

        A run handed over before it is due (jmon looks ahead) waits in sched until its due
        time and is queued then (state PENDING until that moment, not yet in the job log).
        """
        now = _now()
        if due is not None and due > now and key is None:
            with self.cond:
                if not self.accepting:
                    return {"run_id": None, "state": "REFUSED", "message": "sched is stopping"}
                heapq.heappush(self._pending, (due, next(self._seq), job, note))
                self.release_cond.notify()
            return {"run_id": None, "state": "PENDING", "message": None}
        return self._enqueue(
            job, due=due, key=key, watcher=watcher, watcher_run_id=watcher_run_id, note=note
        )

    def _enqueue(
        self,
        job: JobDef,
        *,
        due: datetime | None,
        key: str | None = None,
        watcher: WatcherDef | None = None,
        watcher_run_id: int | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        now = _now()
        run = Run(
            self.ids.next(),
            job,
            now,
            due_at=due,
            key=key,
            watcher=watcher,
            watcher_run_id=watcher_run_id,
            note=note,
        )
        with self.cond:
            if not self.accepting:
                return {"run_id": None, "state": "REFUSED", "message": "sched is stopping"}
            active = self.active_runs(job.name)
            # a watcher's runs (one per key: every file must be handled) are never skipped:
            # they wait for a worker of the pool; max_parallel caps the other runs
            if key is None and active >= job.max_parallel:
                message = (
                    f"skipped: {active} run(s) of {job.name} already queued or running "
                    f"(max_parallel {job.max_parallel})"
                )
                self._final(run, SKIPPED, message)
                log.info("run=%d job=%s %s", run.run_id, job.name, message)
                return {"run_id": run.run_id, "state": SKIPPED, "message": message}
            self.queues[job.pool].append(run)
            self.active[job.name] = active + 1
            self._log(run, QUEUED, message=note)
            self.pool_cond[job.pool].notify()
        return {"run_id": run.run_id, "state": QUEUED, "message": note}

    def first_handover(self, name: str, due: datetime) -> bool:
        """True the first time jmon hands over fire time ``due`` of job ``name``.

        jmon hands the fires of a job over in increasing order, so a due time not after the
        latest one taken was taken already.
        """
        with self.cond:
            last = self._taken.get(name)
            if last is not None and due <= last:
                return False
            self._taken[name] = due
            return True

    def skip(self, job: JobDef, message: str, *, due: datetime | None = None) -> dict[str, Any]:
        """Record a run of ``job`` as SKIPPED with ``message`` (a misfire under policy SKIP)."""
        run = Run(self.ids.next(), job, _now(), due_at=due)
        self._final(run, SKIPPED, message)
        return {"name": job.name, "run_id": run.run_id, "state": SKIPPED, "message": message}

    def active_runs(self, job_name: str) -> int:
        """Runs of ``job_name`` queued or running (call with the lock held or accept a race)."""
        return self.active.get(job_name, 0)

    def _release(self, run: Run) -> None:
        """One run of its job less queued or running (with the lock held)."""
        left = self.active.get(run.job.name, 0) - 1
        if left > 0:
            self.active[run.job.name] = left
        else:
            self.active.pop(run.job.name, None)

    def has_capacity(self, job: JobDef) -> bool:
        """True if a run of ``job`` would not be skipped for max_parallel right now."""
        with self.cond:
            return self.active_runs(job.name) < job.max_parallel

    # ------------------------------------------------------------------ workers

    def _worker(self, pool: str) -> None:
        queue = self.queues[pool]
        wake = self.pool_cond[pool]
        while True:
            with self.cond:
                # workers are daemon threads: they end with the process; a run adopted from a
                # sched before holds a slot of its pool as a worker's run does
                while not queue or self.busy[pool] >= self.sizes[pool]:
                    wake.wait()
                run = queue.popleft()
                run.started_at = _now()
                self.running[run.run_id] = run
                self.busy[pool] += 1
            self._log(run, RUNNING, started=run.started_at)
            for callback in self.on_start:
                callback(run)
            ctx = RunContext(
                self.instance, self.config, self.dictionary, run.run_id, run.key, run.cancel
            )
            begun = time.monotonic()
            outcome = execute(run.job, ctx)
            with self.cond:
                self.busy[pool] -= 1
                wake.notify()  # a worker waiting while adopted runs held the slots
            self.end_run(run, outcome, time.monotonic() - begun)

    def adopt(self, run: Run) -> None:
        """Count ``run`` as running: its command runs on from a sched before this one. It
        counts for its job's ``max_parallel`` and holds a slot of its pool until it ends, so
        the pool runs no more than its size at once (adopted runs included)."""
        with self.cond:
            self.running[run.run_id] = run
            self.active[run.job.name] = self.active_runs(run.job.name) + 1
            if run.job.pool in self.busy:
                self.busy[run.job.pool] += 1
                self._adopted.add(run.run_id)

    def end_run(self, run: Run, outcome: Outcome, seconds: float | None = None) -> None:
        """``run`` ended with ``outcome``: log it, free its place, tell the callbacks."""
        with self.cond:
            self.ended[run.job.pool] = self.ended.get(run.job.pool, 0) + 1
            mine = self.running.pop(run.run_id, None) is not None
            if run.run_id in self._adopted:  # it took no worker: give its pool slot back
                self._adopted.discard(run.run_id)
                self.busy[run.job.pool] -= 1
                self.pool_cond[run.job.pool].notify()
            if mine:
                self._release(run)
                self._final(run, outcome.state, outcome.message, rows=outcome.rows)
            self.cond.notify_all()  # shutdown and kill wait for runs to end
        if not mine:
            return
        log.info(
            "run=%d job=%s pool=%s %s%s%s",
            run.run_id,
            run.job.name,
            run.job.pool,
            outcome.state,
            f" in {seconds:.3f} s" if seconds is not None else "",
            f": {outcome.message[:200]}" if outcome.message else "",
        )
        for callback in self.on_end:
            callback(run, outcome)

    # ------------------------------------------------------------------ the run log

    def _log(
        self,
        run: Run,
        state: str,
        *,
        started: datetime | None = None,
        ended: datetime | None = None,
        rows: int | None = None,
        message: str | None = None,
    ) -> None:
        update = RunUpdate(
            schema=run.job.schema,
            run_id=run.run_id,
            name=run.job.name,
            pool=run.job.pool,
            state=state,
            queued_at=run.queued_at,
            started_at=started,
            ended_at=ended,
            rows=rows,
            message=message,
            host=self.host,
            pid=self.pid,
        )
        self.writer.put(update)
        if run.watcher is not None and run.watcher_run_id is not None:
            # the watcher's fire mirrors its executor run, in the watcher's schema
            self.writer.put(
                dataclasses.replace(
                    update,
                    schema=run.watcher.schema,
                    run_id=run.watcher_run_id,
                    name=run.watcher.name,
                    watcher=True,
                    watch_key=run.key,
                    executor_run_id=run.run_id,
                )
            )

    def _final(self, run: Run, state: str, message: str | None, *, rows: int | None = None) -> None:
        self._log(run, state, ended=_now(), rows=rows, message=message)

    # ------------------------------------------------------------------ killing

    def kill(self, run_id: int, by: str, *, wait: float = 15.0) -> dict[str, Any]:
        """End run ``run_id`` for operator ``by``: a queued run is taken off its queue, a
        running command's process group is ended through jexec, a running statement is
        interrupted; the run is recorded KILLED, with who did it.

        Waits up to ``wait`` seconds for the run to end. Raises :class:`RunNotKillable`
        when there is no such run queued or running, or it cannot be interrupted (a load).
        """
        with self.cond:
            for queue in self.queues.values():
                for run in queue:
                    if run.run_id == run_id:
                        queue.remove(run)
                        self._release(run)
                        self._final(run, KILLED, f"killed by {by} before it started")
                        log.warning("run=%d job=%s killed by %s (queued)", run_id, run.job.name, by)
                        return killed_answer(run, KILLED, None)
            found = self.running.get(run_id)
            if found is None:
                raise RunNotKillable("not_running", f"run {run_id} is not queued or running")
            if found.job.kind == "LOAD":
                raise RunNotKillable(
                    "not_killable",
                    f"run {run_id} of job {found.job.name} is a load: it is not interrupted "
                    "(its file would be left half-claimed); it ends after its current file",
                )
            found.cancel.set(by=by)
            log.warning("run=%d job=%s killed by %s", run_id, found.job.name, by)
            deadline = time.monotonic() + wait
            while run_id in self.running and time.monotonic() < deadline:
                self.cond.wait(0.1)
            ended = run_id not in self.running
        return killed_answer(found, KILLED if ended else "KILLING", None)

    # ------------------------------------------------------------------ status

    def show(self) -> dict[str, Any]:
        """Pools, running and queued runs, and jmon's next runs (for ``redctl show``)."""
        now = _now()
        with self.cond:
            pools = {
                p: {"size": self.sizes[p], "busy": self.busy[p], "queued": len(self.queues[p])}
                for p in self.sizes
            }
            running = [
                {
                    "run_id": r.run_id,
                    "job": r.job.name,
                    "kind": r.job.kind,
                    "pool": r.job.pool,
                    "schema": r.job.schema,
                    "key": r.key,
                    "started": r.started_at.isoformat() if r.started_at else None,
                    "duration": (now - r.started_at).total_seconds() if r.started_at else 0.0,
                    "pid": self.pid,
                }
                for r in sorted(self.running.values(), key=lambda r: r.run_id)
            ]
            queued = [
                {
                    "run_id": r.run_id,
                    "job": r.job.name,
                    "pool": r.job.pool,
                    "queued": r.queued_at.isoformat(),
                }
                for q in self.queues.values()
                for r in q
            ]
        return {"pools": pools, "running": running, "queued": queued, "next": self.timetable}

    def take_ended(self) -> dict[str, int]:
        """Runs ended per pool since the last call (for ADM_JMON_LOAD)."""
        with self.cond:
            ended, self.ended = self.ended, dict.fromkeys(self.sizes, 0)
        return ended
