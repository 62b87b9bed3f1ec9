"""JMON, the job monitor: keeps the timetable of the jobs and watchers defined in the dictionary.

A thread of its own looks at the definitions every ``sched_definitions_poll`` seconds (at once
when ``redctl reload`` drops ``tmp/reload``), rebuilds the timetable when they changed, and
hands whatever is due to sched over the wire protocol — in one request, half a second ahead;
sched starts each run at its due time. While
sched does not answer, due runs are kept and handed over when it is back (as misfires if late).
While the instance is suspended nothing is handed over. Every ``sched_stats_interval`` seconds
it writes ``ADM_JMON_LOAD`` and ``ADM_JMON_JOBLOG``; once a day it removes old log files.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from redpss.dictionary.jobs import PoolSample
from redpss.errors import DictionaryError, WireError
from redpss.logs import purge_old_logs
from redpss.roles.base import Role, RoleContext
from redpss.sched.timetable import Due, Timetable
from redpss.wire import WireClient

__all__ = ["Jmon"]

log = logging.getLogger(__name__)

PURGE_EVERY = 86400.0
MAX_WAIT = 0.5
TIMETABLE_PUSH = 1.0
LOOKAHEAD = 0.5
"""Job runs are handed to sched this many seconds before they are due; sched starts them at
their due time, so the hand-over never delays a run."""


class Jmon(Role):
    """The job monitor."""

    name = "jmon"

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        cfg = ctx.config.redsys
        self.timetable = Timetable(grace=cfg.sched_misfire_grace)
        # backoff: while sched is down, at most one connect per 2 s (jittered), not ten a second
        self.client = WireClient(
            cfg.sched_host,
            cfg.sched_service_port,
            secret=cfg.pss_secret.reveal(),
            timeout=10.0,
            backoff=2.0,
        )
        self.pending: list[Due] = []
        self.stamp = ""
        self.sched_ok: bool | None = None
        self.suspended = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="jmon", daemon=True)
        self._last_purge = 0.0

    def start(self) -> None:
        """Load the timetable (misfires while the stack was down) and start the loop."""
        self._reload(force=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop; idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.client.close()

    def tick(self) -> None:
        """Once a day: remove log files past the retention."""
        now = time.monotonic()
        if self._last_purge and now - self._last_purge < PURGE_EVERY:
            return
        self._last_purge = now
        cfg = self.ctx.config.redsys
        removed = purge_old_logs(self.ctx.instance.log_dir, cfg.log_retention)
        if removed:
            log.info(
                "role=jmon removed %d log files older than %d days", len(removed), cfg.log_retention
            )

    def info(self) -> str:
        """What the heartbeat row shows."""
        sched = {None: "starting", True: "sched answers", False: "sched not answering"}
        errors = len(self.timetable.errors)
        bad = f", {errors} definition(s) invalid" if errors else ""
        return f"{len(self.timetable.entries)} scheduled, {sched[self.sched_ok]}{bad}"

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        cfg = self.ctx.config.redsys
        next_poll = next_push = next_stats = time.monotonic()
        next_stats += cfg.sched_stats_interval
        while not self._stop.is_set():
            mono = time.monotonic()
            try:
                self._hand_over()  # first: what is due goes out before any other work
                if mono >= next_poll or self._reload_requested():
                    self._reload()
                    next_poll = mono + cfg.sched_definitions_poll
                    self._hand_over()
                if mono >= next_push:
                    self._push_timetable()
                    next_push = mono + TIMETABLE_PUSH
                if mono >= next_stats:
                    self._write_stats()
                    next_stats = mono + cfg.sched_stats_interval
            except DictionaryError as exc:
                log.warning("role=jmon dictionary not available: %s", exc)
            except Exception:  # the loop must outlive any surprise; the traceback is logged
                log.exception("role=jmon loop error")
            self._stop.wait(self._wait_time(next_poll))

    def _wait_time(self, next_poll: float) -> float:
        wait = min(MAX_WAIT, max(next_poll - time.monotonic(), 0.0))
        wake = self.timetable.next_wakeup()
        if wake is not None:
            ahead = (wake - datetime.now(UTC)).total_seconds() - LOOKAHEAD
            wait = min(wait, max(ahead, 0.0))
        return wait if not self.pending else min(wait, 0.2)

    def _reload_requested(self) -> bool:
        flag = self.ctx.instance.tmp / "reload"
        if flag.exists():
            flag.unlink(missing_ok=True)
            log.info("role=jmon reload requested")
            self.stamp = ""
            return True
        return False

    def _reload(self, *, force: bool = False) -> None:
        d = self.ctx.dictionary
        stamp = d.definitions_stamp()
        if stamp == self.stamp and not force:
            return
        self.stamp = stamp
        first = not self.timetable.loaded
        last = d.last_runs() if first else {}
        errors = self.timetable.load(d.jobs(), d.watchers(), last, datetime.now(UTC))
        for message in errors:
            log.error("role=jmon definition refused: %s", message)
        log.info(
            "role=jmon timetable %s: %d entries, %d invalid definitions",
            "loaded" if first else "reloaded",
            len(self.timetable.entries),
            len(self.timetable.errors),
        )

    def _hand_over(self) -> None:
        suspended = self.ctx.suspended()
        if suspended != self.suspended:
            self.suspended = suspended
            log.info(
                "role=jmon %s",
                "suspended: no jobs or watchers are started" if suspended else "resumed",
            )
        self.pending.extend(
            self.timetable.due(datetime.now(UTC), suspended=suspended, ahead=LOOKAHEAD)
        )
        if not self.pending:
            return
        try:
            self.client.call("submit", items=[d.to_wire() for d in self.pending])
        except WireError as exc:
            self._sched_state(False, exc)
            return
        self._sched_state(True)
        self.pending.clear()

    def _sched_state(self, ok: bool, exc: Exception | None = None) -> None:
        if not ok and self.sched_ok is not False:
            log.warning(
                "role=jmon sched does not answer (%d runs kept until it does): %s",
                len(self.pending),
                exc,
            )
        elif ok and self.sched_ok is False:
            log.info("role=jmon sched answers again")
        self.sched_ok = ok

    def _push_timetable(self) -> None:
        try:
            self.client.call("timetable", entries=self.timetable.snapshot())
            self._sched_state(True)
        except WireError as exc:
            self._sched_state(False, exc)

    def _write_stats(self) -> None:
        try:
            stats: dict[str, Any] = self.client.call("stats")
        except WireError as exc:
            self._sched_state(False, exc)
            return
        pools = [
            PoolSample(p, v["size"], v["busy"], v["queued"], v["ended"]) for p, v in stats.items()
        ]
        last = self.ctx.dictionary.last_runs()
        nxt = self.timetable.next_runs()
        names = sorted(set(nxt) | set(last))
        jobs = [
            (
                n,
                nxt.get(n),
                last[n].started_at or last[n].queued_at if n in last else None,
                last[n].state if n in last else None,
            )
            for n in names
        ]
        self.ctx.dictionary.write_jmon_sample(datetime.now(UTC), pools, jobs)
