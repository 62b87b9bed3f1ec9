"""The role framework: one contract for every role of the stack, and the loop that runs it.

A role is started as ``redpss role <name>`` (by supervisord in process mode, as a container's
command in container mode). :func:`run_role` then

1. configures logging to ``log/<role>.log`` (and stderr in trace mode),
2. registers the role in ``REDSYS.ADM_PSS_STATUS``; a previous row left RUNNING by another pid
   means the role died without stopping: that restart is counted and logged,
3. calls :meth:`Role.start`, which returns once the role is ready (its port accepts),
4. writes a heartbeat every ``heartbeat_interval`` seconds and calls :meth:`Role.tick`,
5. on SIGTERM or SIGINT calls :meth:`Role.stop`, which must finish current work within
   ``stop_grace`` seconds (supervisord kills after ``stop_grace + 5``), marks the role STOPPED
   and exits 0. A second signal while stopping exits at once with status 1.

A dictionary that is away never stops a role: heartbeat failures are logged and retried.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import ClassVar

from redpss import __version__
from redpss.config import Config
from redpss.dictionary import Dictionary
from redpss.errors import DictionaryError, RedpssError
from redpss.instance import Instance

__all__ = ["Role", "RoleContext", "run_role"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1


@dataclass
class RoleContext:
    """What a role gets: its instance, configuration, dictionary and the stop request."""

    instance: Instance
    config: Config
    dictionary: Dictionary
    stop_requested: threading.Event = field(default_factory=threading.Event)

    def suspended(self) -> bool:
        """True while the instance is suspended (no jobs or watchers are started)."""
        return self.instance.suspend_flag.exists()


class Role:
    """Base of every role. Subclasses override what they need; all methods run in one thread."""

    name: ClassVar[str] = ""

    def __init__(self, ctx: RoleContext) -> None:
        self.ctx = ctx

    def start(self) -> None:
        """Get ready to work; return only when ready (a listening role: when its port accepts)."""

    def tick(self) -> None:
        """Periodic work, called after every heartbeat."""

    def stop(self) -> None:
        """Finish current work and release everything; must be idempotent."""

    def state(self) -> str:
        """The state written into the heartbeat: RUNNING or SUSPENDED."""
        return "SUSPENDED" if self.ctx.suspended() else "RUNNING"

    def info(self) -> str | None:
        """A short text for the heartbeat row (e.g. what the role serves)."""
        return None


class _Signals:
    """Flag-only signal handling: the first signal asks for a graceful stop, a second forces."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.received: str | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.stop.is_set():
            os._exit(EXIT_FAILED)  # second signal: stop now, without cleaning up
        self.received = signal.Signals(signum).name
        self.stop.set()


def _beat(role: Role, ctx: RoleContext, pid: int) -> None:
    try:
        ctx.dictionary.heartbeat(role.name, pid=pid, state=role.state(), info=role.info())
    except DictionaryError as exc:
        log.warning("role=%s heartbeat not written: %s", role.name, exc)


def _register(role: Role, ctx: RoleContext, pid: int) -> None:
    start = ctx.dictionary.register_role(
        role.name,
        pid=pid,
        host=socket.gethostname(),
        version=__version__,
        heartbeat_interval=ctx.config.redsys.heartbeat_interval,
    )
    if start.unclean:
        log.warning(
            "role=%s restarted after unclean exit of pid %s (restart %d since instance start)",
            role.name,
            start.previous_pid,
            start.restarts,
        )


def run_role(role_cls: type[Role], ctx: RoleContext) -> int:
    """Run one role until it is asked to stop; return the process exit code."""
    pid = os.getpid()
    signals = _Signals(ctx.stop_requested)
    signals.install()
    role = role_cls(ctx)
    interval = ctx.config.redsys.heartbeat_interval
    try:
        _register(role, ctx, pid)
        role.start()
    except (RedpssError, OSError) as exc:
        log.error("role=%s could not start: %s", role.name, exc)
        role.stop()
        _mark_stopped(role, ctx, pid, f"failed to start: {exc}")
        return EXIT_FAILED
    log.info("role=%s started pid=%d instance=%s", role.name, pid, ctx.instance.name)
    _beat(role, ctx, pid)
    try:
        while not ctx.stop_requested.wait(interval):
            _beat(role, ctx, pid)
            try:
                role.tick()
            except RedpssError as exc:
                log.error("role=%s tick failed: %s", role.name, exc)
    finally:
        log.info("role=%s stopping (%s)", role.name, signals.received or "exit")
        begun = time.monotonic()
        role.stop()
        _mark_stopped(role, ctx, pid, f"stopped by {signals.received or 'request'}")
        log.info("role=%s stopped in %.2f s", role.name, time.monotonic() - begun)
    return EXIT_OK


def _mark_stopped(role: Role, ctx: RoleContext, pid: int, info: str) -> None:
    try:
        ctx.dictionary.role_stopped(role.name, pid=pid, exit_info=info)
    except DictionaryError as exc:
        log.warning("role=%s stop not recorded: %s", role.name, exc)
