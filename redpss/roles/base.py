"""The role framework: one contract for every role of the stack, and the loop that runs it.

A role is started as ``redpss role <name>`` (by supervisord in process mode, as a container's
command in container mode). :func:`run_role` then

1. configures logging to ``log/<role>.log`` (and stderr in trace mode),
2. registers the role in ``REDSYS.ADM_PSS_STATUS``; a previous row left RUNNING by another pid
   means the role died without stopping: that restart is counted and logged,
3. calls :meth:`Role.start`, which returns once the role is ready (its port accepts),
4. writes a heartbeat every ``heartbeat_interval`` seconds and calls :meth:`Role.tick`; the
   heartbeat carries the role's state, :meth:`Role.info` and the problems it reports through
   ``self.health`` (:class:`redpss.health.RoleHealth`: watched worker threads, named problems;
   the module docstring of :mod:`redpss.health` says how), and is also written to the local
   record ``tmp/health/<role>.json`` that ``redpss role X --check`` reads,
5. on SIGTERM or SIGINT calls :meth:`Role.stop`, which must finish current work within
   ``stop_grace`` seconds (supervisord kills after ``stop_grace + 5``), marks the role STOPPED
   and exits 0. A second signal while stopping exits at once with status 1.

A dictionary that is away never stops a role: heartbeat failures are logged and retried, and
the local record names the failure as a problem (``--check`` then says unhealthy).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import ClassVar

from redpss import __version__
from redpss.config import Config
from redpss.dictionary import Dictionary
from redpss.errors import DictionaryError, RedpssError
from redpss.health import heartbeat_path, problems_text, write_record
from redpss.instance import Instance
from redpss.roles import PAUSING_ROLES

__all__ = ["Role", "RoleContext", "RoleHealth", "run_role"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1


class RoleHealth:
    """What a role says about its own health in every heartbeat; safe from any thread.

    How a role uses it is in the docstring of :mod:`redpss.health` (which judges it).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread | None] = {}
        self._problems: dict[str, str] = {}

    def watch(self, name: str, thread: threading.Thread | None) -> None:
        """From now on, ``thread`` not being alive is the problem ``<name> is not running``
        (None: there is no such thread, the same problem)."""
        with self._lock:
            self._threads[name] = thread

    def forget(self, name: str) -> None:
        """Stop watching the thread ``name`` (it ends on purpose) and drop its problem."""
        with self._lock:
            self._threads.pop(name, None)
            self._problems.pop(name, None)

    def start_thread(
        self, name: str, target: Callable[..., object], *args: object, daemon: bool = True
    ) -> threading.Thread:
        """Start ``target(*args)`` in a watched daemon thread called ``name``.

        An exception that ends the thread is logged with its traceback and becomes the problem
        ``<name> died: <exception>`` (a thread must not die silently)."""

        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:
                log.exception("thread %r died", name)
                self.problem(name, f"{name} died: {type(exc).__name__}: {exc}")

        thread = threading.Thread(target=run, name=name, daemon=daemon)
        with self._lock:
            self._problems.pop(name, None)
            self._threads[name] = thread
        thread.start()
        return thread

    def problem(self, key: str, text: str) -> None:
        """Report the problem ``text`` under ``key`` (replacing what ``key`` said before)."""
        with self._lock:
            self._problems[key] = text

    def clear(self, key: str) -> None:
        """The problem under ``key`` is over (nothing happens when there was none)."""
        with self._lock:
            self._problems.pop(key, None)

    def problems(self) -> list[str]:
        """Every current problem: named ones and dead threads, in the order of their keys."""
        with self._lock:
            found = dict(self._problems)
            for name, thread in self._threads.items():
                if (thread is None or not thread.is_alive()) and name not in found:
                    found[name] = f"{name} is not running"
        return [found[key] for key in sorted(found)]

    def text(self) -> str | None:
        """The PROBLEMS column of the next heartbeat."""
        return problems_text(self.problems())


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
    """Base of every role. Subclasses override what they need; all methods run in one thread.

    ``self.health`` is what the role reports about itself in every heartbeat: the worker
    threads it watches and the problems it names (see :mod:`redpss.health`)."""

    name: ClassVar[str] = ""

    def __init__(self, ctx: RoleContext) -> None:
        self.ctx = ctx
        self.health = RoleHealth()

    def start(self) -> None:
        """Get ready to work; return only when ready (a listening role: when its port accepts)."""

    def tick(self) -> None:
        """Periodic work, called after every heartbeat."""

    def stop(self) -> None:
        """Finish current work and release everything; must be idempotent."""

    def state(self) -> str:
        """The state written into the heartbeat: SUSPENDED for a role that pauses while the
        instance is suspended (``PAUSING_ROLES``), else RUNNING."""
        return "SUSPENDED" if self.name in PAUSING_ROLES and self.ctx.suspended() else "RUNNING"

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
    state, info, problems = role.state(), role.info(), role.health.problems()
    try:
        ctx.dictionary.heartbeat(
            role.name, pid=pid, state=state, info=info, problems=problems_text(problems)
        )
    except DictionaryError as exc:
        log.warning("role=%s heartbeat not written: %s", role.name, exc)
        problems = [*problems, f"heartbeat not written to the dictionary: {exc}"]
    _record(role, ctx, pid, state, info, problems_text(problems))


def _record(
    role: Role, ctx: RoleContext, pid: int, state: str, info: str | None, problems: str | None
) -> None:
    """The local heartbeat record that ``redpss role X --check`` reads."""
    try:
        write_record(
            heartbeat_path(ctx.instance.home, role.name),
            role=role.name,
            pid=pid,
            state=state,
            interval=ctx.config.redsys.heartbeat_interval,
            info=info,
            problems=problems,
        )
    except OSError as exc:  # a full disk: --check then sees the record age, and says so
        log.warning("role=%s local heartbeat record not written: %s", role.name, exc)


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
    _record(role, ctx, pid, "STARTING", None, None)  # unhealthy until the first heartbeat
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
    _record(role, ctx, pid, "STOPPED", info, None)
    try:
        ctx.dictionary.role_stopped(role.name, pid=pid, exit_info=info)
    except DictionaryError as exc:
        log.warning("role=%s stop not recorded: %s", role.name, exc)
