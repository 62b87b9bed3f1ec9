"""The status of one instance: every role's row, its ALERT and health, the exit code.

``redctl status``, ``redsysctl status``, the REST API (``/api/status``, metrics) and an upgrade's
verification all ask this module, so that every front end shows the same words and the same exit
codes; starting, stopping and the other commands live in :mod:`redpss.control`.

:func:`status` has three sources, one shape (:class:`InstanceStatus`, same exit codes):

- process mode: supervisord's process view joined with the heartbeats;
- inside a container (``REDPSS_CONTAINER=1``, no supervisord): the heartbeat records alone;
- on the host, for an instance in container mode (:func:`redpss.compose.is_compose`): docker's
  view of the role containers joined with the heartbeats, which ``redctl --json status`` reads
  inside a running role container (so the host's user never opens the dictionary files that
  belong to ``redsys``), plus the ``sftp`` service.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from redpss import __version__, compose
from redpss.config import Config
from redpss.dictionary import DOWN_STATES, RoleStatus, open_instance_dictionary
from redpss.diskspace import disk_problems
from redpss.errors import DictionaryError
from redpss.health import SUSPENDED, is_healthy, judge
from redpss.instance import Instance
from redpss.roles import PAUSING_ROLES, enabled_roles
from redpss.supervisor import Leftover, ProcessInfo, Supervisor

__all__ = [
    "EXIT_DEGRADED",
    "EXIT_RUNNING",
    "EXIT_STOPPED",
    "EXIT_UNKNOWN",
    "InstanceStatus",
    "RoleRow",
    "StatusReport",
    "compose_status",
    "heartbeat_status",
    "in_container",
    "status",
]

log = logging.getLogger(__name__)

# LSB exit codes of `status`
EXIT_RUNNING = 0
EXIT_DEGRADED = 1
EXIT_STOPPED = 3
EXIT_UNKNOWN = 4
"""LSB "status unknown": the heartbeats (the dictionary) could not be read."""
UNSUPERVISED = "UNSUPERVISED"


@dataclass(frozen=True)
class RoleRow:
    """One role in ``redctl status``; ``healthy`` is the one verdict of
    :func:`redpss.health.is_healthy` (up, not silent, no problem reported)."""

    role: str
    state: str
    pid: int
    uptime: float | None
    heartbeat_age: float | None
    restarts: int
    alert: int
    reason: str
    healthy: bool = False


@dataclass(frozen=True)
class StatusReport:
    """The instance in one document: what ``redctl --json status`` prints and ``/api/status``
    answers (the REST API's model is this class)."""

    instance: str
    state: str
    exit_code: int
    suspended: bool
    message: str
    version: str
    roles: tuple[RoleRow, ...]


@dataclass(frozen=True)
class InstanceStatus:
    """The whole instance as ``redctl status`` shows it.

    ``unsupervised`` names roles that run without a supervisord (it was killed); ``unreadable``
    says why the heartbeats could not be read (then the roles' health is unknown).
    """

    instance: str
    running: bool
    suspended: bool
    roles: tuple[RoleRow, ...]
    unsupervised: tuple[str, ...] = ()
    unreadable: str = ""
    supervisor_died: int = 0
    disk: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        """0 every role healthy, 3 stopped, 1 degraded (a role down, silent or reporting a
        problem such as a dead serve loop, or roles running without supervisor), 4 unknown
        (heartbeats not readable)."""
        if self.unsupervised or (self.supervisor_died and not self.running):
            return EXIT_DEGRADED  # LSB 1: dead, and its pid file is left
        if not self.running:
            return EXIT_STOPPED
        down = any(r.state not in ("RUNNING", "SUSPENDED") for r in self.roles)
        if self.unreadable and not down and not self.disk:
            return EXIT_UNKNOWN
        if not down and not self.disk and all(r.healthy for r in self.roles):
            return EXIT_RUNNING
        return EXIT_DEGRADED

    @property
    def summary(self) -> str:
        """One word: RUNNING, SUSPENDED, DEGRADED, UNSUPERVISED, UNKNOWN or STOPPED."""
        code = self.exit_code
        if self.unsupervised:
            return UNSUPERVISED
        if code == EXIT_STOPPED or not self.running:
            return "STOPPED"
        if code == EXIT_UNKNOWN:
            return "UNKNOWN"
        if code == EXIT_DEGRADED:
            return "DEGRADED"
        return "SUSPENDED" if self.suspended else "RUNNING"

    def report(self) -> StatusReport:
        """This status as one document (``redctl --json status``, ``/api/status``)."""
        return StatusReport(
            instance=self.instance,
            state=self.summary,
            exit_code=self.exit_code,
            suspended=self.suspended,
            message=self.message,
            version=__version__,
            roles=self.roles,
        )

    @property
    def message(self) -> str:
        """What the operator must know beyond the rows, and what to do ("" when nothing)."""
        notes = []
        if self.unsupervised:
            notes.append(
                f"roles running without supervisor ({', '.join(self.unsupervised)}): "
                "supervisord is gone; redctl stop ends them (redctl abort kills them), "
                "redctl start ends them and starts the instance"
            )
        elif self.supervisor_died and not self.running:
            notes.append(
                f"supervisord (pid {self.supervisor_died}) ended without redctl stop (killed, "
                "or the host went down); its roles stopped with it: redctl start"
            )
        notes += list(self.disk)
        if self.unreadable:
            notes.append(
                f"heartbeats not readable, the roles' health is unknown: {self.unreadable}"
            )
        return "; ".join(notes)


def in_container(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs in a container of the instance (the image's REDPSS_CONTAINER)."""
    return (os.environ if env is None else env).get("REDPSS_CONTAINER") == "1"


def _suspension(name: str, state: str, suspended: bool) -> tuple[str, str | None]:
    """The state shown for a role while the instance is ``suspended``, and what to add to its
    reason: a role that pauses (jmon, sched, the converters) is SUSPENDED; a service that keeps
    serving stays RUNNING, with "instance suspended" in its reason."""
    if not suspended or state != "RUNNING":
        return state, None
    if name in PAUSING_ROLES:
        return SUSPENDED, None
    return state, "instance suspended"


def _down_reason(proc: ProcessInfo, beat: RoleStatus | None) -> str:
    """supervisord's word for a role that is not running ("Exited too quickly …"), with the
    role's own reason when its last start failed (the certificate it could not read …)."""
    said = proc.description or proc.state
    why = beat.last_exit if beat is not None else None
    if why and why.startswith("failed to start"):
        return f"{said}; {why}"
    return said


def _with_note(reason: str | None, note: str | None) -> str:
    return "; ".join(part for part in (reason, note) if part)


def _row(
    name: str,
    proc: ProcessInfo | None,
    beat: RoleStatus | None,
    running: bool,
    suspended: bool,
    unreadable: bool = False,
) -> RoleRow:
    if not running or proc is None:
        down = "instance stopped" if not running else "not configured in supervisord"
        return RoleRow(name, "STOPPED", 0, None, None, beat.restarts if beat else 0, 2, down)
    # the suspended mode is the instance's flag, not what the last heartbeat said
    state, note = _suspension(name, proc.state, suspended)
    reason: str | None
    if proc.state != "RUNNING":
        alert, reason, healthy = 2, _down_reason(proc, beat), False
    elif unreadable:
        alert, reason, healthy = 1, "heartbeat not readable", False
    elif beat is None or beat.pid != proc.pid:
        alert, reason, healthy = 1, "no heartbeat yet", False
    else:
        verdict = judge(
            state=state,
            heartbeat_age=beat.heartbeat_age,
            heartbeat_interval=beat.heartbeat_interval,
            restarts=beat.restarts,
            last_exit=beat.last_exit,
            info=None,
            problems=beat.problems,
        )
        alert, reason, healthy = verdict.alert, verdict.reason, verdict.healthy
    return RoleRow(
        role=name,
        state=state,
        pid=proc.pid,
        uptime=proc.uptime if proc.state == "RUNNING" else None,
        heartbeat_age=beat.heartbeat_age if beat else None,
        restarts=beat.restarts if beat else 0,
        alert=alert,
        reason=_with_note(reason, note),
        healthy=healthy,
    )


def _unsupervised_row(left: Leftover, beat: RoleStatus | None) -> RoleRow:
    return RoleRow(
        role=left.role,
        state=UNSUPERVISED,
        pid=left.pid,
        uptime=None,
        heartbeat_age=beat.heartbeat_age if beat and beat.pid == left.pid else None,
        restarts=beat.restarts if beat else 0,
        alert=2,
        reason="running without supervisor (supervisord is gone): redctl stop",
    )


def status(inst: Instance, config: Config | None) -> InstanceStatus:
    """The status of every role (see the module docstring for where it comes from).

    Without a usable configuration (``config`` None) only supervisord's view is shown.
    """
    if config is not None and in_container():
        return heartbeat_status(inst, config)
    if config is not None and compose.is_compose(inst):
        return compose_status(inst, config)
    sup = Supervisor(inst)
    procs = {p.name: p for p in sup.processes()}
    running = bool(procs)
    left = {p.role: p for p in sup.leftovers()}
    beats: dict[str, RoleStatus] = {}
    unreadable = ""
    if config is not None:
        beats, unreadable = _read_beats(inst, config)
    else:
        unreadable = "red_params.conf is not usable (see the error above)"
    names = enabled_roles(config) if config is not None else list(procs)
    names += [n for n in left if n not in names]
    suspended = inst.suspend_flag.exists()
    rows = tuple(
        _unsupervised_row(left[name], beats.get(name))
        if name in left and name not in procs
        else _row(name, procs.get(name), beats.get(name), running, suspended, bool(unreadable))
        for name in names
    )
    unsupervised = tuple(f"{p.role} pid {p.pid}" for p in left.values())
    died = 0 if running else sup.died()
    disk = disk_problems(inst)
    return InstanceStatus(inst.name, running, suspended, rows, unsupervised, unreadable, died, disk)


def _read_beats(inst: Instance, config: Config) -> tuple[dict[str, RoleStatus], str]:
    """The heartbeat rows by role, and "" or why they could not be read."""
    try:
        with open_instance_dictionary(inst, config) as dictionary:
            return {b.role: b for b in dictionary.pss_status()}, ""
    except DictionaryError as exc:
        log.warning("instance=%s heartbeats not readable: %s", inst.name, exc)
        return {}, str(exc)


def heartbeat_status(inst: Instance, config: Config) -> InstanceStatus:
    """The status from the heartbeat records alone (no supervisord: container mode, inside).

    A role is up while its record is not in a down state and not silent for more than three
    intervals (ALERT < 2); the instance runs while one role is up.
    """
    beats, unreadable = _read_beats(inst, config)
    suspended = inst.suspend_flag.exists()
    now = datetime.now(UTC)
    rows = []
    for name in enabled_roles(config):
        beat = beats.get(name)
        if beat is None:
            rows.append(RoleRow(name, "STOPPED", 0, None, None, 0, 2, "no heartbeat record"))
            continue
        up = beat.state not in DOWN_STATES and beat.alert < 2
        state, note = _suspension(name, beat.state, suspended) if up else (beat.state, None)
        started = beat.started_at
        uptime = (now - started).total_seconds() if up and started is not None else None
        rows.append(
            RoleRow(
                role=name,
                state=state,
                pid=beat.pid or 0,
                uptime=uptime,
                heartbeat_age=beat.heartbeat_age,
                restarts=beat.restarts,
                alert=beat.alert,
                reason=_with_note(beat.alert_reason, note),
                healthy=is_healthy(state, beat.alert, beat.problems),
            )
        )
    # unreadable heartbeats: the roles may well run, their state is unknown (exit 4)
    running = bool(unreadable) or any(r.state not in DOWN_STATES and r.alert < 2 for r in rows)
    return InstanceStatus(
        inst.name, running, suspended, tuple(rows), unreadable=unreadable, disk=disk_problems(inst)
    )


def _rows_inside(inst: Instance, role: str) -> tuple[dict[str, RoleRow], str]:
    """The heartbeat rows as ``redctl --json status`` prints them inside ``role``'s container."""
    proc = compose.run(
        inst, "exec", "-T", role, "redctl", "--instance", inst.name, "--json", "status",
        capture=True,
    )  # fmt: skip
    try:
        doc = json.loads(proc.stdout.decode())
        return {r["role"]: RoleRow(**r) for r in doc["roles"]}, ""
    except (ValueError, KeyError, TypeError):
        lines = proc.stderr.decode().strip().splitlines() or ["no output"]
        return {}, f"heartbeats not readable in {role}: {lines[-1]}"


def _sftp_row(svc: compose.ServiceState | None) -> RoleRow:
    if svc is None or svc.state != "running":
        why = "no container" if svc is None else f"container {svc.state}"
        return RoleRow("sftp", "STOPPED", 0, None, None, 0, 2, why)
    alert = {"healthy": 0, "": 0, "starting": 1}.get(svc.health, 2)
    healthy = svc.health in ("healthy", "")
    return RoleRow("sftp", "RUNNING", 0, None, None, 0, alert, svc.health or "", healthy)


def compose_status(inst: Instance, config: Config) -> InstanceStatus:
    """The status of an instance in container mode, seen from the host.

    A role whose container is not running is STOPPED (ALERT 2) whatever its last heartbeat
    says; the others show their heartbeat row, read inside the first running role container.
    No container running: everything STOPPED (exit 3) without asking the dictionary.
    """
    services = compose.service_states(inst)
    names = enabled_roles(config)
    up = [n for n in names if n in services and services[n].state == "running"]
    inner, problem = _rows_inside(inst, up[0]) if up else ({}, "")
    rows = []
    for name in names:
        svc = services.get(name)
        if svc is None or svc.state != "running":
            why = "no container" if svc is None else f"container {svc.state}"
            restarts = inner[name].restarts if name in inner else 0
            rows.append(RoleRow(name, "STOPPED", 0, None, None, restarts, 2, why))
        elif name in inner:
            rows.append(inner[name])
        else:
            rows.append(RoleRow(name, "RUNNING", 0, None, None, 0, 1, problem or "no heartbeat"))
    sftp = services.get("sftp")
    rows.append(_sftp_row(sftp))
    running = bool(up) or (sftp is not None and sftp.state == "running")
    return InstanceStatus(inst.name, running, inst.suspend_flag.exists(), tuple(rows))
