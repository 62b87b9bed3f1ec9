"""Stopping an instance so that the operator sees what it waits for, and nothing is left.

``redctl stop`` (process mode) stops the roles one by one in reverse start order, as
supervisord's own shutdown would, but through supervisord's ``stopProcess``: between two
steps it can say which role it waits for, how much of its grace is left (``stop_grace``;
supervisord kills it ``stop_grace + 5`` s after SIGTERM) and which runs are still running
(sched finishes them within its grace, then aborts them). Only then is supervisord shut down
(supervisord refuses every call while it shuts down itself, so its own shutdown cannot be
watched).

Every stop, graceful or forced, ends with :func:`leftovers`: the processes of the instance
still alive — supervisord, a role, a command started by jexec (and whatever it forked). They
are found in ``/proc`` by their environment: ``REDENV_HOME`` of the instance and a mark that
only the instance's processes carry (``REDPSS_ROLE``, which supervisord sets for each role, or
``RED_RUN_ID``, which sched gives each command), both inherited by whatever they start. An
operator's shell after ``eval "$(redsysctl env …)"``, and anything it runs, has
``REDENV_HOME`` but no mark: not the instance's. The caller's own process chain never counts.
A stop that leaves something is exit 4 naming each process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redpss.config import Config, ServerSection
from redpss.errors import RedpssError, SupervisorError
from redpss.instance import Instance
from redpss.roles import enabled_roles
from redpss.supervisor import ProcessInfo, Supervisor

__all__ = [
    "EXIT_BUSY",
    "EXIT_LEFTOVERS",
    "Leftover",
    "Run",
    "StopPlan",
    "StopReport",
    "kill_leftovers",
    "leftovers",
    "plan",
    "running_runs",
    "stop",
]

log = logging.getLogger(__name__)

EXIT_BUSY = 3
"""``redctl stop --if-idle`` refused: runs are active."""
EXIT_LEFTOVERS = 4
"""The stop is done but processes of the instance are left."""

_SCHED_MARGIN = 5
ROLE_ENV = "REDPSS_ROLE"
"""Set by supervisord for each role (conf via :mod:`redpss.supervisor`): every process a role
starts inherits it, an operator's shell does not."""


@dataclass(frozen=True)
class Run:
    """A run that is active: a stop waits for it (or aborts it at the end of the grace)."""

    run_id: int
    job: str
    pool: str
    seconds: float
    pid: int | None = None


@dataclass(frozen=True)
class Leftover:
    """A process of the instance that is still alive after a stop."""

    pid: int
    what: str
    cmdline: str


@dataclass(frozen=True)
class StopPlan:
    """What a stop would do: the roles in stop order and the runs it would wait for."""

    instance: str
    running: bool
    roles: tuple[str, ...]
    runs: tuple[Run, ...]
    runs_from: str
    grace: int

    def to_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {**asdict(self), "roles": list(self.roles), "runs": [asdict(r) for r in self.runs]}


@dataclass
class StopReport:
    """What a stop did."""

    instance: str
    was_running: bool
    seconds: float = 0.0
    roles: list[dict[str, Any]] = field(default_factory=list)
    runs_at_start: list[Run] = field(default_factory=list)
    killed: list[Leftover] = field(default_factory=list)
    leftovers: list[Leftover] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 stopped and nothing left, 4 processes of the instance left."""
        return EXIT_LEFTOVERS if self.leftovers else 0

    def to_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "instance": self.instance,
            "was_running": self.was_running,
            "seconds": round(self.seconds, 3),
            "roles": self.roles,
            "runs_at_start": [asdict(r) for r in self.runs_at_start],
            "killed": [asdict(x) for x in self.killed],
            "leftovers": [asdict(x) for x in self.leftovers],
            "exit_code": self.exit_code,
        }


Progress = Callable[[str], None]


def _grace(config: Config | None) -> int:
    return config.redsys.stop_grace if config is not None else ServerSection.stop_grace


# ---------------------------------------------------------------------- runs


def running_runs(inst: Instance, config: Config | None) -> tuple[list[Run], str]:
    """The active runs and where they come from: ``sched`` (live), ``run log`` (sched does
    not answer: the RUNNING rows of the run log) or ``unknown`` (neither can be read)."""
    if config is None:
        return [], "unknown"
    from redpss.sched import control as jobs

    try:
        shown = jobs.show(config)
    except RedpssError:
        pass
    else:
        return [_run_of(r) for r in shown.get("running", [])], "sched"
    try:
        return _logged_runs(inst, config), "run log"
    except RedpssError as exc:
        log.warning("instance=%s runs not readable: %s", inst.name, exc)
        return [], "unknown"


def _run_of(row: dict[str, Any]) -> Run:
    pid = row.get("command_pid") or row.get("pid")
    return Run(
        run_id=int(row["run_id"]),
        job=str(row.get("job")),
        pool=str(row.get("pool")),
        seconds=float(row.get("duration") or 0.0),
        pid=int(pid) if pid else None,
    )


def _logged_runs(inst: Instance, config: Config) -> list[Run]:
    from redpss.dictionary import open_instance_dictionary

    now = datetime.now(UTC)
    with open_instance_dictionary(inst, config) as d:
        rows = d.runs(states=("RUNNING",), limit=1000)
    return [
        Run(r.run_id, r.name, r.pool,
            (now - r.started_at).total_seconds() if r.started_at else 0.0, r.pid)
        for r in rows
    ]  # fmt: skip


def describe_runs(runs: list[Run]) -> str:
    """``2 runs: slow (run 17…, 12 s), load_sales (run 18…, 3 s)``."""
    if not runs:
        return "no run"
    shown = ", ".join(f"{r.job} (run {r.run_id}, {r.seconds:.0f} s)" for r in runs[:5])
    more = f" and {len(runs) - 5} more" if len(runs) > 5 else ""
    return f"{len(runs)} run{'s' if len(runs) != 1 else ''}: {shown}{more}"


# ---------------------------------------------------------------------- plan


def _stop_order(config: Config | None, procs: list[ProcessInfo]) -> list[str]:
    names = [p.name for p in procs if p.state not in ("STOPPED", "EXITED", "FATAL")]
    order = list(reversed(enabled_roles(config))) if config is not None else []
    # roles supervisord runs that the configuration no longer names stop first
    return [n for n in names if n not in order] + [n for n in order if n in names]


def plan(inst: Instance, config: Config | None) -> StopPlan:
    """What a stop of ``inst`` would do now; changes nothing (``redctl stop --dry-run``)."""
    procs = Supervisor(inst).processes()
    runs, source = running_runs(inst, config) if procs else ([], "sched")
    return StopPlan(
        instance=inst.name,
        running=bool(procs),
        roles=tuple(_stop_order(config, procs)),
        runs=tuple(runs),
        runs_from=source,
        grace=_grace(config),
    )


# ---------------------------------------------------------------------- stop


def stop(
    inst: Instance,
    config: Config | None,
    *,
    progress: Progress | None = None,
    every: float = 5.0,
) -> StopReport:
    """Stop gracefully, role by role, saying what it waits for; verify nothing is left.

    ``progress`` gets one line per event (a role stopping, stopped, killed) and, while a role
    takes its time, every ``every`` seconds what it waits for.
    """
    say = progress or (lambda _line: None)
    began = time.monotonic()
    sup = Supervisor(inst)
    procs = sup.processes()
    report = StopReport(inst.name, was_running=bool(procs))
    if procs:
        grace = _grace(config)
        report.runs_at_start, source = running_runs(inst, config)
        order = _stop_order(config, procs)
        say(
            f"stopping {inst.name}: {len(order)} roles, each with {grace} s grace; "
            f"{describe_runs(report.runs_at_start)}" + (f" ({source})" if source != "sched" else "")
        )
        for name in order:
            report.roles.append(
                _stop_role(inst, config, sup, name, (grace, report.runs_at_start), say, every)
            )
        sup.stop(timeout=30)
    else:
        sup.stop(timeout=30)  # removes a stale socket
    report.leftovers = _settled_leftovers(inst)
    report.seconds = time.monotonic() - began
    return report


def _stop_role(
    inst: Instance,
    config: Config | None,
    sup: Supervisor,
    name: str,
    waits: tuple[int, list[Run]],
    say: Progress,
    every: float,
) -> dict[str, Any]:
    grace, runs = waits
    began = time.monotonic()
    try:
        sup.stop_process(name, wait=False)
    except SupervisorError as exc:
        say(f"  {name}: not stopped by supervisord ({exc})")
        return {"role": name, "result": f"error: {exc}", "seconds": 0.0}
    kill_at = grace + 5  # supervisord's stopwaitsecs
    next_note = began + min(every, 1.0)
    while True:
        info = sup.process(name)
        waited = time.monotonic() - began
        if info is None or info.state not in ("STOPPING", "RUNNING"):
            # supervisord says no more than STOPPED: a role that took all of stopwaitsecs
            # got its SIGKILL
            state = "killed at the end of its grace" if waited >= kill_at - 0.2 else "stopped"
            ended = _run_outcomes(inst, config, runs) if name == "sched" else ""
            say(f"  {name} {state} ({waited:.1f} s)" + (f": {ended}" if ended else ""))
            return {"role": name, "result": state, "seconds": round(waited, 3)}
        if time.monotonic() >= next_note:
            say(f"  waiting for {name} ({waited:.0f} s): " + _waiting_for(inst, config, name,
                grace, waited))  # fmt: skip
            next_note = time.monotonic() + every
        time.sleep(0.1)


def _waiting_for(
    inst: Instance, config: Config | None, name: str, grace: int, waited: float
) -> str:
    kill = f"killed in {max(grace + 5 - waited, 0):.0f} s"
    if name != "sched" or config is None:
        return f"grace {max(grace - waited, 0):.0f} s left, {kill}"
    try:
        runs = _logged_runs(inst, config)
    except RedpssError:
        return f"its runs (not readable now), {kill}"
    if not runs:
        return f"no run is active any more, {kill}"
    # sched gives its runs stop_grace - 5 s, then marks them ABORTED (roles/sched.py)
    left = max(max(grace - _SCHED_MARGIN, 1) - waited, 0)
    return f"{describe_runs(runs)}; aborted in {left:.0f} s if not done, {kill}"


def _run_outcomes(inst: Instance, config: Config | None, runs: list[Run]) -> str:
    """``slow ABORTED, load OK``: how the runs a stop waited for ended."""
    if config is None or not runs:
        return ""
    from redpss.dictionary import open_instance_dictionary

    wanted = {r.run_id for r in runs}
    try:
        with open_instance_dictionary(inst, config) as d:
            found = {r.run_id: r for r in d.runs(limit=1000) if r.run_id in wanted}
    except RedpssError:
        return ""
    return ", ".join(
        f"{r.job} {found[r.run_id].state if r.run_id in found else 'unknown'}" for r in runs
    )


# ---------------------------------------------------------------------- leftovers


def _ancestors(pid: int) -> set[int]:
    seen = {pid}
    while pid > 1:
        stat = _stat(pid)
        if stat is None:
            break
        pid = int(stat[1])
        seen.add(pid)
    return seen


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name: state, ppid, pgrp, session, tty…"""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    out = {}
    for item in raw.split(b"\0"):
        key, eq, value = item.partition(b"=")
        if eq:
            out[key.decode(errors="replace")] = value.decode(errors="replace")
    return out


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _supervisord_pid(inst: Instance) -> int:
    try:
        return int(inst.supervisor_pidfile.read_text().strip())
    except (OSError, ValueError):
        return 0


def _what(inst: Instance, pid: int, argv: list[str]) -> str | None:
    """What process ``pid`` is for the instance; None when it is not the instance's."""
    line = " ".join(argv)
    if "supervisord" in line and (
        str(inst.supervisor_conf) in line or pid == _supervisord_pid(inst)
    ):
        return "supervisord"
    env = _environ(pid)
    if env.get("REDENV_HOME") != str(inst.home):
        return None
    if "redpss.cli.redpss" in line and "role" in argv:
        i = argv.index("role")
        return f"role {argv[i + 1]}" if i + 1 < len(argv) else "role"
    if "RED_RUN_ID" in env:
        return f"command of run {env['RED_RUN_ID']} (job {env.get('RED_JOB', '?')})"
    if ROLE_ENV in env:
        return f"process started by role {env[ROLE_ENV]}"
    return None  # the instance's environment alone: an operator's shell or tool


def leftovers(inst: Instance) -> list[Leftover]:
    """Every living process of the instance (see the module docstring); zombies do not count."""
    mine = _ancestors(os.getpid())
    found = []
    for entry in _proc_pids():
        if entry in mine:
            continue
        stat = _stat(entry)
        if stat is None or stat[0] in ("Z", "X"):
            continue
        argv = _cmdline(entry)
        what = _what(inst, entry, argv)
        if what is not None:
            found.append(Leftover(entry, what, " ".join(argv)[:300]))
    return found


def _proc_pids() -> Iterator[int]:
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            yield int(p.name)


def _settled_leftovers(inst: Instance, *, settle: float = 3.0) -> list[Leftover]:
    """Leftovers that are still there after ``settle`` seconds (a role's last exit, a command
    ending on its SIGKILL, are not leftovers yet)."""
    deadline = time.monotonic() + settle
    found = leftovers(inst)
    while found and time.monotonic() < deadline:
        time.sleep(0.1)
        found = leftovers(inst)
    return found


def kill_leftovers(inst: Instance, *, settle: float = 3.0) -> tuple[list[Leftover], list[Leftover]]:
    """SIGKILL every leftover (``stop --force``); return (killed, still left after that)."""
    killed = leftovers(inst)
    for proc in killed:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc.pid, signal.SIGKILL)
        log.info("instance=%s killed leftover pid=%d (%s)", inst.name, proc.pid, proc.what)
    return killed, _settled_leftovers(inst, settle=settle)
