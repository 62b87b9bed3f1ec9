"""SCHED, the scheduler master: worker pools that run what jmon and operators hand over.

Listens on ``sched_service_port`` (wire protocol, ``docs/protocol.md``). Ops:

``submit``     runs and watcher checks that jmon found due (``items``)
``start_job``  start a job now (``name``; ``scheduled_only`` for redctl start_job)
``show``       pools, running and queued runs, next runs
``timetable``  jmon's next runs (``entries``), shown by ``show``
``stats``      pool sizes, busy, queued, runs ended since the last call (for ADM_JMON_LOAD)
``status``     instance, pid, suspended flag, pool sizes
``kill``       end one run (``run_id``, ``by``): KILLED, who did it in its message

At start, runs that a killed sched left QUEUED or RUNNING are settled with jexec (adopted while
their command runs). On SIGTERM, running runs get ``stop_grace - 5`` seconds to finish; the rest
are marked ABORTED. Every worker thread (pool workers, release, run log writer, watcher checks)
is in the heartbeat: one that is not running is a problem (ALERT 1, ``--check`` exit 1).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from datetime import datetime
from typing import Any

from redpss import landing
from redpss.dictionary.jobs import SKIPPED
from redpss.errors import BadArgs, RedpssError, RemoteError, WireError
from redpss.lineage import Lineage
from redpss.roles.base import Role, RoleContext
from redpss.sched.engine import Engine, RunNotKillable
from redpss.sched.executors import jexec_call
from redpss.sched.watchers import THREAD as WATCHER_THREAD
from redpss.sched.watchers import Watchers
from redpss.wire import Peer, WireServer
from redpss.wire.ops import (
    NoArgs,
    SchedKill,
    SchedStartJob,
    SchedSubmit,
    SchedTimetable,
    SubmitItem,
)

__all__ = ["Sched"]

log = logging.getLogger(__name__)


class Sched(Role):
    """The scheduler master."""

    name = "sched"

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        cfg = ctx.config.redsys
        self.engine = Engine(ctx.instance, ctx.config, ctx.dictionary)
        self.engine.paused = ctx.suspended
        self.watchers = Watchers(self.engine)
        self.lineage = Lineage.attach(self.engine)  # OpenLineage run events, when configured
        self.server = WireServer(
            self,
            host=cfg.sched_host,
            port=cfg.sched_service_port,
            secret=cfg.pss_secret.reveal(),
            name=f"sched/{ctx.instance.name}",
        )

    def start(self) -> None:
        """Recover, start pools and watchers, then listen; returns when the port accepts."""
        self.engine.definitions.refresh(force=True)  # recovery looks the runs' jobs up
        self.engine.on_death = self._thread_died
        self.engine.start()
        for line in landing.recover(self.ctx.instance, self.ctx.dictionary):
            log.warning("role=sched landing zone recovery: %s", line)
        self.watchers.start()
        self.server.start()
        self.health.watch("request server", self.server.thread)
        # a dead worker, release, run log writer or watcher thread: nothing would be run,
        # recorded or watched while the port still answers; the heartbeat says which
        for name, thread in {**self.engine.threads, WATCHER_THREAD: self.watchers.thread}.items():
            self.health.watch(name, thread)
        if self.lineage is not None:
            self.health.watch("lineage sender", self.lineage.thread)
        log.info(
            "role=sched listening on %s:%d pools %s",
            self.ctx.config.redsys.sched_host,
            self.server.port,
            self.engine.sizes,
        )

    def _thread_died(self, name: str, exc: BaseException) -> None:
        self.health.problem(name, f"{name} died: {type(exc).__name__}: {exc}")

    def stop(self) -> None:
        """Stop listening, let running runs finish within the grace time; idempotent."""
        self.server.stop()
        self.watchers.stop()
        self.engine.shutdown(grace=max(self.ctx.config.redsys.stop_grace - 5, 1))
        if self.lineage is not None:
            self.lineage.close(timeout=5.0)

    def tick(self) -> None:
        """Landing zone housekeeping: files no loader or FILE watcher wants go to error/."""
        self.engine.definitions.refresh()
        patterns = [
            re.compile(w.watch_text)
            for w in self.engine.definitions.watchers.values()
            if w.active and w.kind == "FILE"
        ]
        try:
            done = landing.sweep(
                self.ctx.instance,
                self.ctx.config,
                self.ctx.dictionary,
                keep=lambda name: any(p.search(name) for p in patterns),
            )
        except (RedpssError, OSError) as exc:
            log.error("role=sched landing zone housekeeping failed: %s", exc)
            return
        for line in done:
            log.info("role=sched landing zone: %s", line)

    def info(self) -> str:
        """What the heartbeat row shows."""
        show = self.engine.show()
        busy = sum(p["busy"] for p in show["pools"].values())
        return (
            f"port {self.ctx.config.redsys.sched_service_port}, {busy} running, "
            f"{len(show['queued'])} queued"
        )

    # ------------------------------------------------------------------ wire ops

    def op_submit(self, req: SchedSubmit, peer: Peer) -> list[dict[str, Any]]:
        """Runs (and watcher checks) jmon found due."""
        del peer
        dues = [_due(item.due, f"items[{i}].due") for i, item in enumerate(req.items)]
        self.engine.definitions.refresh()  # once per request, not per item
        return [self._submit_one(item, due) for item, due in zip(req.items, dues, strict=True)]

    def _submit_one(self, item: SubmitItem, due: datetime | None) -> dict[str, Any]:
        kind, name = item.kind, item.name
        if kind == "watch":
            return {"name": name, "state": "CHECK" if self.watchers.request(name) else "BUSY"}
        job = self.engine.definitions.jobs.get(name) or self.engine.definitions.job(name)
        if job is None:
            return {"name": name, "state": "UNKNOWN", "message": f"no job {name!r}"}
        if due is not None and not self.engine.first_handover(name, due):
            # jmon offered it again (its request timed out after sched took it, or a restarted
            # jmon recomputed it): a fire time is taken once
            return {"name": name, "state": "DUPLICATE", "message": f"due {due} was taken already"}
        if item.skip:
            return self.engine.skip(job, item.note or "skipped", due=due)
        return {"name": name, **self.engine.submit(job, due=due, note=item.note)}

    def op_start_job(self, req: SchedStartJob, peer: Peer) -> dict[str, Any]:
        """Start a job now (``redctl start_db_job`` / ``start_job``)."""
        del peer
        name = req.name
        job = self.engine.definitions.job(name)
        if job is None:
            raise RemoteError("not_found", f"no job {name!r}")
        if req.scheduled_only and (job.schedule_type == "NONE" or not job.active):
            raise RemoteError(
                "not_scheduled",
                f"job {name} is not scheduled (schedule "
                f"{job.schedule_type}, active {job.active}); use start_db_job",
            )
        result = self.engine.submit(job, note=f"started by operator ({req.by})")
        if result["state"] == SKIPPED:
            raise RemoteError("max_parallel", result["message"])
        return {"name": name, **result}

    def op_show(self, req: NoArgs, peer: Peer) -> dict[str, Any]:
        """Pools, running and queued runs (with the pid of the process that runs each: its
        command's, from jexec, for CMD jobs; sched's for SQL and LOAD), next runs."""
        del req, peer
        shown = self.engine.show()
        if any(r["kind"] == "CMD" for r in shown["running"]):
            try:
                commands = jexec_call(self.ctx.config, "runs", timeout=2.0)
            except WireError as exc:
                log.info("role=sched show: jexec does not answer (%s): no command pids", exc)
                commands = []
            pids = {str(c["run_id"]): c["pid"] for c in commands if c["state"] == "running"}
            for r in shown["running"]:
                if r["kind"] == "CMD":
                    r["pid"] = pids.get(str(r["run_id"]))
        return {"suspended": self.ctx.suspended(), **shown}

    def op_kill(self, req: SchedKill, peer: Peer) -> dict[str, Any]:
        """End one run (``redctl kill``): ``run_id``, ``by`` (who asked). Waits up to 15 s
        for it to end; state KILLED (or KILLING when it takes longer). Errors: ``not_running``,
        ``not_killable`` (a load)."""
        by = req.by or f"an operator at {peer.host}"
        try:
            return self.engine.kill(int(req.run_id), by)
        except RunNotKillable as exc:
            raise RemoteError(exc.code, str(exc)) from exc

    def op_timetable(self, req: SchedTimetable, peer: Peer) -> int:
        """jmon's next runs."""
        del peer
        self.engine.timetable = [dataclasses.asdict(e) for e in req.entries]
        return len(req.entries)

    def op_stats(self, req: NoArgs, peer: Peer) -> dict[str, Any]:
        """Pool statistics since the last call."""
        del req, peer
        show = self.engine.show()
        ended = self.engine.take_ended()
        return {p: {**v, "ended": ended[p]} for p, v in show["pools"].items()}

    def op_status(self, req: NoArgs, peer: Peer) -> dict[str, Any]:
        """Wire op ``status``: instance, pid, suspended flag and pool sizes."""
        del req, peer
        return {
            "instance": self.ctx.instance.name,
            "pid": os.getpid(),
            "suspended": self.ctx.suspended(),
            "pools": dict(self.engine.sizes),
        }


def _due(text: str | None, field: str) -> datetime | None:
    """A fire time of ``submit`` (ISO 8601 with its offset); BadArgs when it is not one."""
    if text is None:
        return None
    try:
        due = datetime.fromisoformat(text)
    except ValueError:
        raise BadArgs(f"'{field}' must be an ISO 8601 time, not {text!r}") from None
    if due.tzinfo is None:
        raise BadArgs(f"'{field}' must carry its offset (UTC: +00:00), not {text!r}")
    return due
