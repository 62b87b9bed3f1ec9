"""What a dead sched left: every unfinished run ends in the log as it really ended.

At start, sched looks at each run its predecessor left QUEUED or RUNNING and asks jexec, which
books the command of every run it starts (:mod:`redpss.sched.commands`):

* the command still runs → the run is **adopted**: it stays RUNNING and counts for its job's
  ``max_parallel`` (no second copy starts), and ends in the log when jexec says the command
  ended — with its exit code, output, and a note that it was adopted;
* the command ended while sched was down → the run ends with that result, noted as such;
* jexec does not know the run → it ran in the dead sched (SQL, LOAD) or its command never
  started: ABORTED, "interrupted and did not finish", which is then true.

When jexec does not answer, the runs of SQL and LOAD jobs are ABORTED all the same (they ran
in the dead process); a run that may have a command is adopted unconfirmed and settled as
soon as jexec answers. No run is recorded as ended while its process may live. A watcher's
fire (``ADM_WATCHER_LOG``) ends with its executor run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from redpss.dictionary.jobs import (
    ABORTED,
    QUEUED,
    RUNNING,
    JobDef,
    RunRecord,
    RunUpdate,
    WatcherDef,
)
from redpss.errors import WireError
from redpss.sched.executors import Outcome, command_outcome, follow, jexec_call

if TYPE_CHECKING:
    from redpss.sched.engine import Engine, Run

__all__ = ["Recovery"]

log = logging.getLogger(__name__)

_MANY = 100_000


class Recovery:
    """Settles the unfinished runs of a dead sched, once, at start."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.interrupted = (
            f"sched restarted (pid {engine.pid}): the run was interrupted and did not finish"
        )

    def run(self) -> int:
        """Settle or adopt every unfinished run; return how many there were."""
        d = self.engine.dictionary
        unfinished = d.runs(states=(QUEUED, RUNNING), limit=_MANY)
        fires = d.runs(watcher=True, states=(QUEUED, RUNNING), limit=_MANY)
        if not unfinished and not fires:
            return 0
        by_executor = {f.executor_run_id: f for f in fires if f.executor_run_id is not None}
        commands = self._commands()
        adopted = 0
        for rec in unfinished:
            fire = by_executor.pop(rec.run_id, None)
            adopted += self._settle(rec, fire, commands)
        for fire in by_executor.values():  # fires whose executor run had ended already
            self._write(fire, ABORTED, self.interrupted, watcher=True)
        for fire in fires:
            if fire.executor_run_id is None:
                self._write(fire, ABORTED, self.interrupted, watcher=True)
        log.warning(
            "settled %d run(s) a previous sched left unfinished (%d adopted: their commands "
            "still run in jexec)",
            len(unfinished),
            adopted,
        )
        return len(unfinished)

    def _commands(self) -> dict[str, dict[str, Any]] | None:
        """jexec's book by run id; None when jexec does not answer."""
        try:
            listing: list[dict[str, Any]] = jexec_call(self.engine.config, "runs", timeout=5.0)
        except WireError as exc:
            log.warning("jexec does not answer (%s): runs with commands wait for it", exc)
            return None
        return {str(c["run_id"]): c for c in listing}

    def _settle(
        self,
        rec: RunRecord,
        fire: RunRecord | None,
        commands: dict[str, dict[str, Any]] | None,
    ) -> int:
        job = self.engine.definitions.jobs.get(rec.name)
        kind = job.kind if job is not None else None
        if commands is None:
            if kind in ("SQL", "LOAD"):
                self._end(rec, fire, Outcome(ABORTED, message=self.interrupted))
                return 0
            self._adopt(rec, fire, job, confirmed=False)
            return 1
        command = commands.get(str(rec.run_id))
        if command is None:
            what = self.interrupted
            if kind == "CMD":
                what += " (its command was not running in jexec)"
            self._end(rec, fire, Outcome(ABORTED, message=what))
            return 0
        if command.get("state") == "running":
            self._adopt(rec, fire, job, confirmed=True)
            return 1
        result = command.get("result") or {}
        outcome = command_outcome(result, limit=_limit(job, self.engine), cancel=_NotCancelled())
        note = f"ended while sched was down (restarted as pid {self.engine.pid})"
        message = f"{outcome.message}; {note}" if outcome.message else note
        self._end(rec, fire, dataclasses.replace(outcome, message=message))
        self._forget(rec.run_id)
        return 0

    # ------------------------------------------------------------------ adopting

    def _adopt(
        self, rec: RunRecord, fire: RunRecord | None, job: JobDef | None, *, confirmed: bool
    ) -> None:
        run = self._run_of(rec, fire, job)
        self.engine.adopt(run)
        what = "its command still runs in jexec" if confirmed else "jexec does not answer yet"
        log.warning("run=%d job=%s adopted after sched restarted: %s", rec.run_id, rec.name, what)
        thread = threading.Thread(
            target=self._follow, args=(run, job), name=f"adopted-{rec.run_id}", daemon=True
        )
        thread.start()

    def _follow(self, run: Run, job: JobDef | None) -> None:
        engine = self.engine
        result = follow(engine.config, run.run_id, run.cancel)
        if result is None:
            outcome = Outcome(ABORTED, message=self.interrupted)
        else:
            outcome = command_outcome(result, limit=_limit(job, engine), cancel=run.cancel)
            note = f"adopted by sched pid {engine.pid} after a restart"
            message = f"{outcome.message}; {note}" if outcome.message else note
            outcome = dataclasses.replace(outcome, message=message)
        engine.end_run(run, outcome)

    def _run_of(self, rec: RunRecord, fire: RunRecord | None, job: JobDef | None) -> Run:
        from redpss.sched.engine import Run

        defined = job or JobDef(rec.name, rec.schema, "CMD", "-", pool=rec.pool)
        # the run's rows are where it was logged, whatever its definition says now
        defined = dataclasses.replace(defined, schema=rec.schema, pool=rec.pool)
        watcher: WatcherDef | None = None
        if fire is not None:
            watcher = self.engine.definitions.watchers.get(fire.name) or WatcherDef(
                fire.name, fire.schema, "FILE", "", rec.name
            )
            watcher = dataclasses.replace(watcher, schema=fire.schema)
        return Run(
            rec.run_id,
            defined,
            rec.queued_at,
            key=fire.watch_key if fire is not None else None,
            watcher=watcher,
            watcher_run_id=fire.run_id if fire is not None else None,
            started_at=rec.started_at,
        )

    # ------------------------------------------------------------------ ending

    def _end(self, rec: RunRecord, fire: RunRecord | None, outcome: Outcome) -> None:
        self._write(rec, outcome.state, outcome.message, watcher=False, rows=outcome.rows)
        if fire is not None:
            self._write(fire, outcome.state, outcome.message, watcher=True, rows=outcome.rows)

    def _write(
        self,
        rec: RunRecord,
        state: str,
        message: str | None,
        *,
        watcher: bool,
        rows: int | None = None,
    ) -> None:
        earlier = f"{rec.message}; " if rec.message else ""
        self.engine.writer.put(
            RunUpdate(
                schema=rec.schema,
                run_id=rec.run_id,
                name=rec.name,
                pool=rec.pool,
                state=state,
                queued_at=rec.queued_at,
                watcher=watcher,
                ended_at=datetime.now(UTC),
                rows=rows,
                message=f"{earlier}{message}" if message else rec.message,
            )
        )

    def _forget(self, run_id: int) -> None:
        with contextlib.suppress(WireError):  # else jexec forgets it within the hour
            jexec_call(
                self.engine.config, "wait", timeout=5.0, run_id=run_id, seconds=0, forget=True
            )


class _NotCancelled:
    by = None

    def is_set(self) -> bool:
        return False


def _limit(job: JobDef | None, engine: Engine) -> float:
    if job is not None and job.timeout_seconds:
        return float(job.timeout_seconds)
    return float(engine.config.redsys.jexec_timeout)
