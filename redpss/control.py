"""Control of one instance: start, stop, abort, suspend, dictionary set-up.

The one implementation behind ``redctl``, ``redsysctl`` and the REST API: the command line tools
only parse, call one function here and print. What they show afterwards is
:func:`redpss.status.status`; roles left running without their supervisord (it was killed) are
ended here before a start and by a stop or an abort.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable

from redpss import compose, preclone, shutdown
from redpss.config import Config, ServerSection
from redpss.config.secrets import require_private_secrets
from redpss.dictionary import open_instance_dictionary
from redpss.errors import DictionaryError, InstanceError, RedpssError, SupervisorError
from redpss.instance import Instance, narrow_private_modes, record_ports
from redpss.ports import ephemeral_advice, ephemeral_ports
from redpss.roles import enabled_roles
from redpss.shutdown import StopReport
from redpss.status import InstanceStatus, in_container, status
from redpss.supervisor import Leftover, ProcessInfo, Supervisor, end_leftovers

__all__ = [
    "abort",
    "db_init",
    "db_upgrade",
    "require_process_mode",
    "require_stopped",
    "resume",
    "start",
    "stop",
    "stop_report",
    "suspend",
]

log = logging.getLogger(__name__)

HEARTBEAT_WAIT = 15.0


def db_init(inst: Instance, config: Config) -> tuple[int, str]:
    """Create (or bring up to date) the dictionary objects; return the schema version and the
    database that holds them (``Exasol 8.32.0 at exa1:8563``). An Exasol older than 7.1 is
    refused (DictionaryError) before anything is created."""
    inst.db_dir.mkdir(parents=True, exist_ok=True)
    with open_instance_dictionary(inst, config) as dictionary:
        database = dictionary.database()
        return dictionary.init(), database


def db_upgrade(inst: Instance, config: Config) -> list[str]:
    """Apply pending dictionary migrations; return what was applied."""
    narrow_private_modes(inst)
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


def _check_ephemeral_ports(inst: Instance, config: Config) -> None:
    """Warn about ports inside the kernel's ephemeral range (see :mod:`redpss.ports`), and
    record the instance's ports in the host's registry."""
    inside = ephemeral_ports(config.ports())
    if inside:
        log.warning("instance=%s %s: %s", inst.name, config.path, ephemeral_advice(inside))
    try:
        record_ports(inst, config)
    except (OSError, InstanceError) as exc:  # the registry helps create; never blocks a start
        log.warning("instance=%s ports not recorded in the host registry: %s", inst.name, exc)


def start(
    inst: Instance, config: Config, *, suspended: bool = False, trace: bool = False
) -> InstanceStatus:
    """Start the instance under its supervisord; return its status once the roles settled.

    ``suspended`` starts without starting jobs or watchers (``redctl start -S``); a start without
    it ends a suspended mode. ``trace`` starts every role with TRACE logging.
    """
    _not_in_container_mode(inst, "start")
    sup = Supervisor(inst)
    if sup.is_running():
        raise SupervisorError(
            f"instance {inst.name} is already running (use redctl restart to restart it)"
        )
    require_private_secrets(config)
    narrow_private_modes(inst)
    _end_leftovers(inst, config, "start")
    _check_ports_free(config)
    _check_ephemeral_ports(inst, config)
    with open_instance_dictionary(inst, config) as dictionary:
        if dictionary.version() == 0:
            log.info("instance=%s initialising the embedded dictionary", inst.name)
            inst.db_dir.mkdir(parents=True, exist_ok=True)
            dictionary.init()
        dictionary.reset_status()
        restored = preclone.restore_if_cloned(inst, dictionary)
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


def require_stopped(inst: Instance, what: str) -> None:
    """Refuse ``what`` while the instance runs (its roles would see a half-changed state)."""
    if Supervisor(inst).is_running():
        raise SupervisorError(f"instance {inst.name} is running: stop it before {what}")


def require_process_mode(inst: Instance, what: str) -> None:
    """Refuse ``what`` (supervisord's start/stop) for an instance in container mode."""
    _not_in_container_mode(inst, what)


def _not_in_container_mode(inst: Instance, what: str) -> None:
    """Refuse supervisord's start/stop where the roles are containers (they would run twice)."""
    if in_container():
        raise SupervisorError(
            f"redctl {what} does not run inside a container: each role is a container; "
            f"on the host: redsysctl {what} {inst.name}"
        )
    if compose.is_compose(inst):
        raise SupervisorError(
            f"instance {inst.name} runs in container mode: redsysctl {what} {inst.name}"
        )


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


def _end_leftovers(inst: Instance, config: Config | None, what: str) -> list[Leftover]:
    """End the roles of the instance that run without its supervisord (it was killed): SIGTERM
    and the grace time (``abort``: SIGKILL at once); say which. Return them."""
    left = Supervisor(inst).leftovers()
    if not left:
        return []
    grace = config.redsys.stop_grace if config is not None else ServerSection.stop_grace
    listed = ", ".join(f"{p.role} (pid {p.pid})" for p in left)
    log.warning(
        "instance=%s %s: %s roles running without supervisor: %s",
        inst.name,
        what,
        "killing" if what == "abort" else "stopping",
        listed,
    )
    killed = end_leftovers(left, grace=0 if what == "abort" else grace + 5)
    if killed and what != "abort":
        log.warning(
            "instance=%s killed after %d s: %s",
            inst.name,
            grace + 5,
            ", ".join(f"{p.role} (pid {p.pid})" for p in killed),
        )
    return left


def stop(inst: Instance, config: Config | None) -> bool:
    """Stop gracefully; return False if nothing of the instance was running.

    Works without a usable configuration too (``config`` None: the default grace time). Roles
    left running without supervisor are stopped too.
    """
    return stop_report(inst, config).was_running


def stop_report(
    inst: Instance, config: Config | None, *, progress: Callable[[str], None] | None = None
) -> StopReport:
    """Stop gracefully role by role, telling ``progress`` what it waits for; then verify that
    no process of the instance is left (:mod:`redpss.shutdown`)."""
    _not_in_container_mode(inst, "stop")
    say = progress or (lambda _line: None)
    began = time.monotonic()
    ended = [] if Supervisor(inst).is_running() else _end_leftovers(inst, config, "stop")
    for proc in ended:
        say(f"  {proc.role} (pid {proc.pid}) was running without supervisor: stopped")
    report = shutdown.stop(inst, config, progress=progress)
    if ended:
        report.was_running = True
        report.roles = [
            {"role": p.role, "result": "stopped (was running without supervisor)", "seconds": 0.0}
            for p in ended
        ]
        report.seconds = time.monotonic() - began
    return report


def abort(inst: Instance, config: Config | None) -> list[str]:
    """Kill every role now and stop supervisord; return the roles that were killed.

    supervisord restarts none of them meanwhile (see :meth:`Supervisor.abort`); roles left
    running without supervisor are killed too.
    """
    _not_in_container_mode(inst, "stop")
    killed = Supervisor(inst).abort()
    killed += [p.role for p in _end_leftovers(inst, config, "abort")]
    if config is None:
        return sorted(set(killed))
    with contextlib.suppress(DictionaryError), open_instance_dictionary(inst, config) as d:
        for row in d.pss_status():
            if row.state != "STOPPED":
                d.role_stopped(row.role, pid=row.pid or 0, exit_info="killed by redctl abort")
    return sorted(set(killed))


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
