"""SCHED, the scheduler master: listens on ``sched_service_port`` for the instance.

This first version serves the wire protocol (``ping``, ``status``) so that jmon, redctl and the
database can reach it, and reports its pools as configured; running jobs in the ``default``,
``loader`` and ``action`` pools comes with the scheduling issue.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from redpss.roles.base import Role, RoleContext
from redpss.wire import Peer, WireServer

__all__ = ["Sched"]

log = logging.getLogger(__name__)


class Sched(Role):
    """The scheduler master."""

    name = "sched"

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        cfg = ctx.config.redsys
        self.server = WireServer(
            self,
            host=cfg.sched_host,
            port=cfg.sched_service_port,
            secret=cfg.pss_secret.reveal(),
            name=f"sched/{ctx.instance.name}",
        )

    def start(self) -> None:
        """Listen on the service port; returns when it accepts connections."""
        self.server.start()
        log.info(
            "role=sched listening on %s:%d", self.ctx.config.redsys.sched_host, self.server.port
        )

    def stop(self) -> None:
        """Stop listening; idempotent."""
        self.server.stop()

    def info(self) -> str:
        """What the heartbeat row shows."""
        return f"port {self.ctx.config.redsys.sched_service_port}"

    def pools(self) -> dict[str, int]:
        """Configured size of each worker pool."""
        cfg = self.ctx.config.redsys
        return {
            "default": cfg.sched_default_pool_size,
            "loader": cfg.sched_loader_pool_size,
            "action": cfg.sched_action_pool_size,
        }

    def op_status(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        """Wire op ``status``: instance, pid, suspended flag and pool sizes."""
        del args, peer
        return {
            "instance": self.ctx.instance.name,
            "pid": os.getpid(),
            "suspended": self.ctx.suspended(),
            "pools": self.pools(),
        }
