"""Process mode: one supervisord per instance, its roles as supervised programs.

The configuration is generated from ``conf/supervisord.conf`` into ``$REDENV_HOME/tmp`` at every
start; the UNIX socket and pid file live there too, so instances never share them. redctl talks
to supervisord over XML-RPC on that socket.

Start order is the roles' priority (sched before jmon); supervisord stops in reverse order, each
role with SIGTERM (graceful) and ``stop_grace`` seconds before SIGKILL.

**Supervision survives its supervisor** (issue #14): a role started by supervisord asks the
kernel for SIGTERM when supervisord dies (:func:`die_with_supervisor`, ``PR_SET_PDEATHSIG``),
so a ``kill -9`` of supervisord stops the roles gracefully instead of orphaning them. What is
left all the same (a role that hangs in its stop, roles of an older version) is found by
:func:`leftover_roles` — processes of ``redpss role … --instance <name>`` whose environment
names this instance's ``REDENV_HOME`` and that no running supervisord of the instance owns — and
``status`` reports them, ``stop``/``abort``/``start`` end them.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from redpss.config import Config
from redpss.errors import RoleError, SupervisorError
from redpss.instance import Instance, template_text

__all__ = ["Leftover", "ProcessInfo", "Supervisor", "die_with_supervisor", "leftover_roles"]

log = logging.getLogger(__name__)

# supervisord's view of a program, as redctl shows it
RUNNING_STATES = frozenset({"RUNNING"})
START_SECS = 2


@dataclass(frozen=True)
class ProcessInfo:
    """One supervised role as supervisord sees it."""

    name: str
    state: str
    pid: int
    uptime: float
    description: str
    exitstatus: int


def _quote_env(value: str) -> str:
    return '"' + value.replace("%", "%%").replace('"', '\\"') + '"'


def _pct(value: str) -> str:
    return value.replace("%", "%%")


class Supervisor:
    """The supervisord of one instance."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst

    # ------------------------------------------------------------------ configuration

    def write_config(self, config: Config, roles: Sequence[str], *, trace: bool = False) -> None:
        """Generate ``tmp/supervisord.conf`` for ``roles`` (in start order)."""
        inst = self.inst
        inst.tmp.mkdir(parents=True, exist_ok=True)
        common = {
            "instance": inst.name,
            "home": _pct(str(inst.home)),
            "log_dir": _pct(str(inst.log_dir)),
        }
        text = template_text("supervisord.conf").format(
            socket=_pct(str(inst.supervisor_socket)),
            pidfile=_pct(str(inst.supervisor_pidfile)),
            **common,
        )
        env = inst.environment()
        env["PYTHONUNBUFFERED"] = "1"
        environment = ",".join(f"{k}={_quote_env(v)}" for k, v in env.items())
        program = template_text("supervisord-program.conf")
        for priority, role in enumerate(roles, start=1):
            command = [
                sys.executable,
                "-m",
                "redpss.cli.redpss",
                "role",
                role,
                "--instance",
                inst.name,
            ]
            if trace:
                command.append("--trace")
            # REDPSS_ROLE marks the role and all it starts: redctl stop finds what is left
            marked = f"{environment},REDPSS_ROLE={_quote_env(role)}"
            text += program.format(
                role=role,
                command=_pct(" ".join(command)),
                environment=marked,
                priority=priority * 10,
                startsecs=START_SECS,
                stopwaitsecs=config.redsys.stop_grace + 5,
                **common,
            )
        tmp = inst.supervisor_conf.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(inst.supervisor_conf)

    # ------------------------------------------------------------------ RPC

    @contextlib.contextmanager
    def _rpc(self) -> Iterator[Any]:
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self.inst.supervisor_socket}")
        proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        try:
            yield proxy
        except (OSError, xmlrpc.client.ProtocolError) as exc:
            raise SupervisorError(
                f"supervisord of instance {self.inst.name} cannot be reached at "
                f"{self.inst.supervisor_socket}: {exc}"
            ) from exc
        except xmlrpc.client.Fault as exc:
            raise SupervisorError(f"supervisord refused: {exc.faultString}") from exc
        finally:
            transport.close()

    def is_running(self) -> bool:
        """True when this instance's supervisord answers on its socket."""
        if not self.inst.supervisor_socket.exists():
            return False
        try:
            with self._rpc() as rpc:
                return bool(rpc.supervisor.getState()["statename"] == "RUNNING")
        except SupervisorError:
            return False

    def processes(self) -> list[ProcessInfo]:
        """Every supervised role; empty when supervisord is not running."""
        if not self.is_running():
            return []
        with self._rpc() as rpc:
            infos = rpc.supervisor.getAllProcessInfo()
        out = []
        for info in infos:
            running = info["statename"] in RUNNING_STATES
            out.append(
                ProcessInfo(
                    name=info["name"],
                    state=info["statename"],
                    pid=int(info["pid"]),
                    uptime=float(info["now"] - info["start"]) if running else 0.0,
                    description=info["description"],
                    exitstatus=int(info["exitstatus"]),
                )
            )
        return out

    # ------------------------------------------------------------------ start / stop

    def start(self, *, timeout: float = 30.0) -> list[ProcessInfo]:
        """Start supervisord and wait until every role is RUNNING or has failed for good."""
        if self.is_running():
            raise SupervisorError(f"instance {self.inst.name} is already running")
        self._remove_stale_socket()
        out = self.inst.log_dir / "supervisord.out"
        with out.open("ab") as fh:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "supervisor.supervisord",
                    "-c",
                    str(self.inst.supervisor_conf),
                ],
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.inst.home,
                check=False,
            )
        if proc.returncode != 0:
            raise SupervisorError(
                f"supervisord of instance {self.inst.name} did not start (exit "
                f"{proc.returncode}); see {out}"
            )
        deadline = time.monotonic() + timeout
        while not self.is_running():
            if time.monotonic() > deadline:
                raise SupervisorError(
                    f"supervisord did not answer within {timeout:.0f} s; "
                    f"see {self.inst.log_dir / 'supervisord.log'}"
                )
            time.sleep(0.05)
        return self.wait_settled(deadline - time.monotonic())

    def wait_settled(self, timeout: float) -> list[ProcessInfo]:
        """Wait until no role is STARTING or BACKOFF any more; return the final states."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            procs = self.processes()
            if all(p.state not in ("STARTING", "BACKOFF") for p in procs):
                return procs
            if time.monotonic() > deadline:
                return procs
            time.sleep(0.1)

    def stop(self, *, timeout: float) -> None:
        """Stop every role gracefully (reverse start order), then supervisord; wait for it."""
        if not self.is_running():
            self._remove_stale_socket()
            return
        pid = self._pid()
        with self._rpc() as rpc:
            rpc.supervisor.shutdown()
        self._wait_gone(pid, timeout)

    def abort(self, *, timeout: float = 10.0) -> list[str]:
        """Kill every role now, without supervisord restarting any; then stop supervisord.

        Each role's process group is frozen (SIGSTOP) first, so no role runs another line;
        then supervisord is told to stop them all (a role it is stopping is not restarted) and
        the groups get SIGKILL. Returns the roles that were running.
        """
        if not self.is_running():
            self._remove_stale_socket()
            return []
        procs = [p for p in self.processes() if p.pid]
        names = [p.name for p in procs]
        for proc in procs:
            _killpg(proc.pid, signal.SIGSTOP)
        with self._rpc() as rpc:
            rpc.supervisor.stopAllProcesses(False)
        deadline = time.monotonic() + timeout
        while procs:
            for proc in procs:
                _killpg(proc.pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
            # until supervisord saw each exit (a role it was starting is stopped by it too)
            procs = [p for p in self.processes() if p.pid]
        self.stop(timeout=timeout)
        return names

    def died(self) -> int:
        """The pid of this instance's supervisord if it ended without a stop (its pid file is
        left and names no running supervisord: killed, or the host crashed); else 0."""
        pid = self._pid()
        if pid and not (_running(pid) and _is_supervisord(pid)):
            return pid
        return 0

    def leftovers(self) -> list[Leftover]:
        """Role processes of the instance that this supervisord does not own (see the module)."""
        return leftover_roles(self.inst, frozenset(p.pid for p in self.processes() if p.pid))

    def process(self, name: str) -> ProcessInfo | None:
        """The supervised role ``name``; None when supervisord does not run or lacks it."""
        return next((p for p in self.processes() if p.name == name), None)

    def start_process(self, name: str) -> None:
        """Start one configured role (``restctl start``); wait until supervisord has it RUNNING."""
        with self._rpc() as rpc:
            rpc.supervisor.startProcess(name, True)

    def stop_process(self, name: str, *, wait: bool = True) -> bool:
        """Stop one role gracefully (``restctl stop``); return False if it was not running.

        ``wait=False`` returns once the role got SIGTERM (it is STOPPING; supervisord kills it
        after its ``stopwaitsecs``): ``redctl stop`` watches it and says what it waits for.
        """
        try:
            with self._rpc() as rpc:
                rpc.supervisor.stopProcess(name, wait)
        except SupervisorError as exc:
            if "NOT_RUNNING" in str(exc):
                return False
            raise
        return True

    def _pid(self) -> int:
        try:
            return int(self.inst.supervisor_pidfile.read_text().strip())
        except (OSError, ValueError):
            return 0

    def _wait_gone(self, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while pid and _alive(pid):
            if time.monotonic() > deadline:
                raise SupervisorError(
                    f"supervisord (pid {pid}) did not stop within {timeout:.0f} s"
                )
            time.sleep(0.05)

    def _remove_stale_socket(self) -> None:
        pid = self._pid()
        if pid and _alive(pid):
            return
        for path in (self.inst.supervisor_socket, self.inst.supervisor_pidfile):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


# ---------------------------------------------------------------------- a supervisor that dies

_PR_SET_PDEATHSIG = 1
_PROC = "/proc"


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"{_PROC}/{pid}/cmdline", "rb") as fh:
            return [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return []


def _is_supervisord(pid: int) -> bool:
    return any(a.endswith(("supervisord", "supervisor.supervisord")) for a in _cmdline(pid)[:3])


def die_with_supervisor(env: dict[str, str] | None = None) -> None:
    """In a role that supervisord started: get SIGTERM (a graceful stop) when supervisord dies.

    Does nothing elsewhere (container mode, a role run by hand). Raises :class:`RoleError` when
    supervisord is already gone (it died between starting us and this call).
    """
    env = dict(os.environ) if env is None else env
    if env.get("SUPERVISOR_ENABLED") != "1":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        log.warning("PR_SET_PDEATHSIG not set (%s): role outlives supervisord", os.strerror(err))
        return
    if not _is_supervisord(os.getppid()):
        raise RoleError("supervisord that started this role is gone; not starting")


@dataclass(frozen=True)
class Leftover:
    """A role process of the instance that no running supervisord owns."""

    pid: int
    role: str
    pgid: int


def _environ(pid: int) -> dict[str, str]:
    try:
        with open(f"{_PROC}/{pid}/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return {}
    out = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            out[key.decode(errors="replace")] = value.decode(errors="replace")
    return out


def _zombie(pid: int) -> bool:
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as fh:
            # "pid (comm) S ...": the state follows the last ")"
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


def leftover_roles(inst: Instance, owned: frozenset[int] = frozenset()) -> list[Leftover]:
    """Every live ``redpss role`` process of ``inst`` whose pid is not in ``owned``."""
    found = []
    for entry in os.listdir(_PROC):
        if not entry.isdigit() or int(entry) in owned or int(entry) == os.getpid():
            continue
        pid = int(entry)
        args = _cmdline(pid)
        if "redpss.cli.redpss" not in args or "role" not in args:
            continue
        try:
            name = args[args.index("role") + 1]
            instance = args[args.index("--instance") + 1]
        except (ValueError, IndexError):
            continue
        if instance != inst.name or _environ(pid).get("REDENV_HOME") != str(inst.home):
            continue
        if _zombie(pid) or _child_of_role(pid):
            continue
        with contextlib.suppress(ProcessLookupError):
            found.append(Leftover(pid, name, os.getpgid(pid)))
    return sorted(found, key=lambda x: x.pid)


def _child_of_role(pid: int) -> bool:
    """A role's own child between fork and exec (jexec starting a command) still shows the
    role's command line: it is the role's, not a leftover."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as fh:
            ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return False
    parent = _cmdline(ppid)
    return "redpss.cli.redpss" in parent and "role" in parent


def _signal(proc: Leftover, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        if proc.pgid == proc.pid:  # supervisord made it the leader of its own group
            os.killpg(proc.pgid, sig)
        else:
            os.kill(proc.pid, sig)


def end_leftovers(leftovers: Sequence[Leftover], *, grace: float) -> list[Leftover]:
    """SIGTERM each leftover role (its process group), SIGKILL what still runs after ``grace``
    seconds (0: SIGKILL at once); return those that had to be killed."""
    if grace > 0:
        for proc in leftovers:
            _signal(proc, signal.SIGTERM)
            _signal(proc, signal.SIGCONT)  # a stopped (frozen) role handles its SIGTERM too
        deadline = time.monotonic() + grace
        while any(_running(p.pid) for p in leftovers) and time.monotonic() < deadline:
            time.sleep(0.05)
    killed = [p for p in leftovers if _running(p.pid)]
    for proc in killed:
        _signal(proc, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(_running(p.pid) for p in killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    return killed


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie that is not our child waits for its parent to reap)."""
    return _alive(pid) and not _zombie(pid)
