"""Control of one instance: start, stop, abort, status, suspend, dictionary set-up.

The one implementation behind ``redctl``, ``redsysctl`` (and later the REST API): the command
line tools only parse, call one function here and print.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

from redpss.config import Config, ServerSection
from redpss.dictionary import Dictionary, RoleStatus, compute_alert, open_config_dictionary
from redpss.errors import DictionaryError, RedpssError, SupervisorError
from redpss.instance import Instance
from redpss.roles import enabled_roles
from redpss.sched.control import restore_preclone
from redpss.supervisor import ProcessInfo, Supervisor

__all__ = [
    "EXIT_DEGRADED",
    "EXIT_RUNNING",
    "EXIT_STOPPED",
    "InstanceStatus",
    "RoleRow",
    "abort",
    "db_init",
    "db_upgrade",
    "open_instance_dictionary",
    "resume",
    "start",
    "status",
    "stop",
    "suspend",
]

log = logging.getLogger(__name__)

# LSB exit codes of `status`
EXIT_RUNNING = 0
EXIT_DEGRADED = 1
EXIT_STOPPED = 3

HEARTBEAT_WAIT = 15.0


@dataclass(frozen=True)
class RoleRow:
    """One role in ``redctl status``."""

    role: str
    state: str
    pid: int
    uptime: float | None
    heartbeat_age: float | None
    restarts: int
    alert: int
    reason: str


@dataclass(frozen=True)
class InstanceStatus:
    """The whole instance as ``redctl status`` shows it."""

    instance: str
    running: bool
    suspended: bool
    roles: tuple[RoleRow, ...]

    @property
    def exit_code(self) -> int:
        """0 all roles running, 3 stopped, 1 degraded (some role down or silent)."""
        if not self.running:
            return EXIT_STOPPED
        if all(r.state in ("RUNNING", "SUSPENDED") and r.alert < 2 for r in self.roles):
            return EXIT_RUNNING
        return EXIT_DEGRADED

    @property
    def summary(self) -> str:
        """One word for the instance: RUNNING, SUSPENDED, DEGRADED or STOPPED."""
        code = self.exit_code
        if code == EXIT_STOPPED:
            return "STOPPED"
        if code == EXIT_DEGRADED:
            return "DEGRADED"
        return "SUSPENDED" if self.suspended else "RUNNING"


@contextlib.contextmanager
def open_instance_dictionary(inst: Instance, config: Config) -> Iterator[Dictionary]:
    """Open the instance's dictionary backend; close it afterwards."""
    dictionary = open_config_dictionary(config, db_dir=inst.db_dir, etc_dir=inst.etc)
    try:
        yield dictionary
    finally:
        dictionary.close()


def db_init(inst: Instance, config: Config) -> int:
    """Create (or bring up to date) the dictionary objects; return the schema version."""
    inst.db_dir.mkdir(parents=True, exist_ok=True)
    with open_instance_dictionary(inst, config) as dictionary:
        return dictionary.init()


def db_upgrade(inst: Instance, config: Config) -> list[str]:
    """Apply pending dictionary migrations; return what was applied."""
    with open_instance_dictionary(inst, config) as dictionary:
        return dictionary.upgrade()


def _host_of(config: Config, key: str) -> str:
    """The interface a port of :meth:`Config.ports` is bound on (``dbls_port``: dbls_host)."""
    prefix = key.split("_", 1)[0]  # sched, sendmail, sendfile, dbls, jexec, cfi, mail2csv, gu
    host: str = config.rest.gu_host if prefix == "gu" else getattr(config.redsys, f"{prefix}_host")
    return host


def _check_ports_free(config: Config) -> None:
    """Refuse to start when a port the instance will listen on is taken, naming key and port."""
    for key, port in config.ports().items():
        host = _host_of(config, key)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                where = f"[{'rest' if key == 'gu_port' else 'redsys'}] {key.split(' ')[0]}"
                raise RedpssError(
                    f"{config.path}: {where} = {port}: {host}:{port} cannot be used "
                    f"({exc.strerror}); another process listens there"
                ) from exc


def start(
    inst: Instance, config: Config, *, suspended: bool = False, trace: bool = False
) -> InstanceStatus:
    """Start the instance under its supervisord; return its status once the roles settled.

    ``suspended`` starts without starting jobs or watchers (``redctl start -S``); a start without
    it ends a suspended mode. ``trace`` starts every role with TRACE logging.
    """
    sup = Supervisor(inst)
    if sup.is_running():
        raise SupervisorError(
            f"instance {inst.name} is already running (use redctl restart to restart it)"
        )
    _check_ports_free(config)
    with open_instance_dictionary(inst, config) as dictionary:
        if dictionary.version() == 0:
            log.info("instance=%s initialising the embedded dictionary", inst.name)
            inst.db_dir.mkdir(parents=True, exist_ok=True)
            dictionary.init()
        dictionary.reset_status()
        restored = restore_preclone(inst, dictionary)
        if restored is not None:
            log.warning("instance=%s preclone state restored: %s", inst.name, restored)
    if suspended:
        inst.suspend_flag.touch()
    else:
        inst.suspend_flag.unlink(missing_ok=True)
    roles = enabled_roles(config)
    sup.write_config(config, roles, trace=trace)
    procs = sup.start()
    _wait_heartbeats(inst, config, procs)
    return status(inst, config)


def _wait_heartbeats(inst: Instance, config: Config, procs: list[ProcessInfo]) -> None:
    wanted = {p.name: p.pid for p in procs if p.state == "RUNNING"}
    deadline = time.monotonic() + HEARTBEAT_WAIT
    with open_instance_dictionary(inst, config) as dictionary:
        while time.monotonic() < deadline:
            seen = {r.role: r.pid for r in dictionary.pss_status()}
            if all(seen.get(name) == pid for name, pid in wanted.items()):
                return
            time.sleep(0.1)
    log.warning(
        "instance=%s not every role wrote its first heartbeat within %.0f s",
        inst.name,
        HEARTBEAT_WAIT,
    )


def stop(inst: Instance, config: Config | None) -> bool:
    """Stop gracefully; return False if the instance was not running.

    Works without a usable configuration too (``config`` None: the default grace time).
    """
    sup = Supervisor(inst)
    if not sup.is_running():
        return False
    grace = config.redsys.stop_grace if config is not None else ServerSection.stop_grace
    sup.stop(timeout=len(sup.processes()) * (grace + 5) + 10)
    return True


def abort(inst: Instance, config: Config | None) -> list[str]:
    """Kill every role now and stop supervisord; return the roles that were killed."""
    killed = Supervisor(inst).abort()
    if config is None:
        return killed
    with contextlib.suppress(DictionaryError), open_instance_dictionary(inst, config) as d:
        for row in d.pss_status():
            if row.state != "STOPPED":
                d.role_stopped(row.role, pid=row.pid or 0, exit_info="killed by redctl abort")
    return killed


def suspend(inst: Instance) -> bool:
    """Suspend: no job or watcher is started; return False if it already was suspended."""
    if inst.suspend_flag.exists():
        return False
    inst.suspend_flag.touch()
    return True


def resume(inst: Instance) -> bool:
    """End the suspended mode; return False if the instance was not suspended."""
    if not inst.suspend_flag.exists():
        return False
    inst.suspend_flag.unlink()
    return True


def _row(
    name: str, proc: ProcessInfo | None, beat: RoleStatus | None, running: bool, suspended: bool
) -> RoleRow:
    if not running or proc is None:
        reason = "instance stopped" if not running else "not configured in supervisord"
        return RoleRow(name, "STOPPED", 0, None, None, beat.restarts if beat else 0, 2, reason)
    # the suspended mode is the instance's flag, not what the last heartbeat said
    state = "SUSPENDED" if suspended and proc.state == "RUNNING" else proc.state
    if proc.state != "RUNNING":
        alert, reason = 2, proc.description or proc.state
    elif beat is None or beat.pid != proc.pid:
        alert, reason = 1, "no heartbeat yet"
    else:
        alert, why = compute_alert(
            state=state,
            heartbeat_age=beat.heartbeat_age,
            heartbeat_interval=beat.heartbeat_interval,
            restarts=beat.restarts,
            last_exit=beat.last_exit,
            info=None,
        )
        reason = why or ""
    return RoleRow(
        role=name,
        state=state,
        pid=proc.pid,
        uptime=proc.uptime if proc.state == "RUNNING" else None,
        heartbeat_age=beat.heartbeat_age if beat else None,
        restarts=beat.restarts if beat else 0,
        alert=alert,
        reason=reason,
    )


def status(inst: Instance, config: Config | None) -> InstanceStatus:
    """The status of every role: supervisord's process view joined with the heartbeats.

    Without a usable configuration (``config`` None) only supervisord's view is shown.
    """
    sup = Supervisor(inst)
    procs = {p.name: p for p in sup.processes()}
    running = bool(procs)
    beats: dict[str, RoleStatus] = {}
    if config is not None:
        try:
            with open_instance_dictionary(inst, config) as dictionary:
                beats = {b.role: b for b in dictionary.pss_status()}
        except DictionaryError as exc:
            log.warning("instance=%s heartbeats not readable: %s", inst.name, exc)
    names = enabled_roles(config) if config is not None else list(procs)
    suspended = inst.suspend_flag.exists()
    rows = tuple(_row(name, procs.get(name), beats.get(name), running, suspended) for name in names)
    return InstanceStatus(inst.name, running, suspended, rows)
