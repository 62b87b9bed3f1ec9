"""JMON, the job monitor.

This first version keeps the instance's pulse: it checks every heartbeat that the scheduler
master answers on its service port (logging when it stops or starts answering), and once a day
removes log files older than ``log_retention`` days. Reading job and watcher definitions and
handing due runs to sched comes with the scheduling issue.
"""

from __future__ import annotations

import logging
import time

from redpss import wire
from redpss.errors import WireError
from redpss.logs import purge_old_logs
from redpss.roles.base import Role, RoleContext

__all__ = ["Jmon"]

log = logging.getLogger(__name__)

PURGE_EVERY = 86400.0


class Jmon(Role):
    """The job monitor."""

    name = "jmon"

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        self.sched_ok: bool | None = None
        self.last_purge = 0.0

    def start(self) -> None:
        """Nothing to open yet; the first tick checks sched."""
        self.tick()

    def tick(self) -> None:
        """Check that sched answers; purge old logs once a day."""
        self._check_sched()
        now = time.monotonic()
        if now - self.last_purge >= PURGE_EVERY or self.last_purge == 0.0:
            self.last_purge = now
            cfg = self.ctx.config.redsys
            removed = purge_old_logs(self.ctx.instance.log_dir, cfg.log_retention)
            if removed:
                log.info(
                    "role=jmon removed %d log files older than %d days",
                    len(removed),
                    cfg.log_retention,
                )

    def info(self) -> str:
        """What the heartbeat row shows."""
        return {None: "starting", True: "sched answers", False: "sched not answering"}[
            self.sched_ok
        ]

    def _check_sched(self) -> None:
        cfg = self.ctx.config.redsys
        try:
            wire.call(
                cfg.sched_host,
                cfg.sched_service_port,
                "ping",
                secret=cfg.pss_secret.reveal(),
                timeout=2.0,
            )
            ok = True
        except WireError as exc:
            ok = False
            if self.sched_ok is not False:
                log.warning(
                    "role=jmon sched at %s:%d does not answer: %s",
                    cfg.sched_host,
                    cfg.sched_service_port,
                    exc,
                )
        if ok and self.sched_ok is False:
            log.info("role=jmon sched answers again")
        self.sched_ok = ok
