"""JMON, the job monitor: keeps the timetable of the jobs and watchers defined in the dictionary.

Its loop (:class:`redpss.sched.monitor.Monitor`) looks at the definitions every
``sched_definitions_poll`` seconds (at once when ``redctl reload`` drops ``tmp/reload``),
rebuilds the timetable when they changed, and hands whatever is due to sched over the wire
protocol — job runs in one request, half a second ahead (sched starts each run at its due
time), watcher checks at their time. Between turns it sleeps until the next thing it has to do.
While sched does not answer, due runs are kept and offered again with a growing back-off
(handed over as misfires if late). While the instance is suspended nothing is handed over.
Every ``sched_stats_interval`` seconds it writes ``ADM_JMON_LOAD`` and ``ADM_JMON_JOBLOG``;
once a day it removes old log files, and at ``dictionary_purge_time`` it purges the dictionary
to its retention in a thread of its own (:class:`redpss.retention.NightlyPurge`).
"""

from __future__ import annotations

import logging
import threading
import time

from redpss.errors import DictionaryError
from redpss.logs import purge_old_logs
from redpss.retention import NightlyPurge, Retention
from redpss.roles.base import Role, RoleContext
from redpss.sched.monitor import Monitor, Periods
from redpss.wire import WireClient

__all__ = ["Jmon"]

log = logging.getLogger(__name__)

PURGE_EVERY = 86400.0
AFTER_ERROR = 1.0
"""Seconds slept after a turn that failed unexpectedly (never a tight loop of errors)."""


class Jmon(Role):
    """The job monitor."""

    name = "jmon"

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        cfg = ctx.config.redsys
        # the wire client backs off connecting while sched is down (at most one connect per
        # 2 s, jittered); the monitor backs off offering what is due on top of that
        self.client = WireClient(
            cfg.sched_host,
            cfg.sched_service_port,
            secret=cfg.pss_secret.reveal(),
            timeout=10.0,
            backoff=2.0,
        )
        self.monitor = Monitor(
            ctx.dictionary,
            self.client.call,
            periods=Periods(
                definitions=cfg.sched_definitions_poll,
                stats=cfg.sched_stats_interval,
                grace=cfg.sched_misfire_grace,
            ),
            suspended=ctx.suspended,
            reload_requested=self._reload_requested,
        )
        self.timetable = self.monitor.timetable
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="jmon", daemon=True)
        self._last_purge = 0.0
        self.purge = NightlyPurge(
            ctx.dictionary, Retention.from_config(ctx.config), data_dir=ctx.instance.home / "data"
        )

    def start(self) -> None:
        """Load the timetable (misfires while the stack was down) and start the loop."""
        self.monitor.reload(force=True)
        self._thread.start()
        self.health.watch("scheduling loop", self._thread)
        self.purge.start()
        self.health.watch("dictionary purge", self.purge.thread)

    def stop(self) -> None:
        """Stop the loop; idempotent."""
        self._stop.set()
        self.purge.stop()
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
        return f"{len(self.timetable.entries)} scheduled, {sched[self.monitor.sched_ok]}{bad}"

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.monitor.turn()
            except DictionaryError as exc:
                log.warning("role=jmon dictionary not available: %s", exc)
                wait = max(self.monitor.sleep_time(), AFTER_ERROR)
            except Exception:  # the loop must outlive any surprise; the traceback is logged
                log.exception("role=jmon loop error")
                wait = max(self.monitor.sleep_time(), AFTER_ERROR)
            self._stop.wait(wait)

    def _reload_requested(self) -> bool:
        flag = self.ctx.instance.tmp / "reload"
        if flag.exists():
            flag.unlink(missing_ok=True)
            log.info("role=jmon reload requested")
            self.monitor.definitions.forget()
            return True
        return False
