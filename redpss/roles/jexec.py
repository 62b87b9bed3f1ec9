"""JEXEC, the job executor: runs the command of an application action from ``$REDENV_HOME/cmd``.

Wire op ``run`` names a command *inside* ``cmd/`` (a relative path; ``..``, absolute paths and
symbolic links that lead out of ``cmd/`` are refused) and its arguments as a list. The command
is executed directly (no shell, so nothing in an argument is interpreted) in its own process
group, with ``$REDENV_HOME`` as working directory and the instance's environment (``REDHOME``,
``REDENV``, ``REDENV_HOME``, ``PATH`` with ``$REDENV_HOME/bin`` first). The reply carries the
exit code and the first ``jexec_output_limit`` bytes of stdout and of stderr; a command running
longer than its ``time_limit`` (at most ``jexec_timeout``) gets SIGTERM, two seconds later
SIGKILL, for its whole process group.
The ``CMD`` jobs of the scheduler call this op.

At most ``jexec_max_parallel`` commands run at once; a further request waits for a free slot.
On stop no new command starts (reply code ``stopping``); running ones get ``stop_grace``
seconds, then are killed.

Every command of a run is booked (:class:`redpss.sched.commands.CommandBook`) so that the run
log can tell the truth after a crash: ``runs`` lists the commands running and recently ended
(with their pid and result), ``wait`` waits for one to end (a sched that restarted adopts the
runs its predecessor started), ``kill`` ends one (SIGTERM, SIGKILL 2 s later, to its whole
process group; ``by`` says who asked). Commands a dead jexec left running are killed when
jexec starts, and booked as such.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

from redpss.errors import BadArgs, RemoteError
from redpss.roles.base import Role, RoleContext
from redpss.sched.commands import CommandBook
from redpss.wire import Peer, WireServer
from redpss.wire.ops import JexecKill, JexecRun, JexecWait, NoArgs

__all__ = ["Jexec", "resolve_command"]

log = logging.getLogger(__name__)

_KILL_AFTER = 2.0


def resolve_command(cmd_dir: Path, command: str) -> Path:
    """Return the executable ``command`` names inside ``cmd_dir``; BadArgs if it may not run."""
    rel = Path(command)
    if rel.is_absolute():
        raise BadArgs(f"'command' must be relative to cmd/, not absolute: {command!r}")
    if ".." in rel.parts:
        raise BadArgs(f"'command' must not contain '..': {command!r}")
    root = cmd_dir.resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        raise BadArgs(f"'command' {command!r} leads outside cmd/")
    if not path.is_file():
        raise RemoteError("not_found", f"no command {command!r} in cmd/")
    if not os.access(path, os.X_OK):
        raise RemoteError("not_executable", f"command {command!r} is not executable")
    return path


class _Capture(threading.Thread):
    """Reads a pipe to its end, keeping the first ``limit`` bytes."""

    def __init__(self, pipe: IO[bytes], limit: int) -> None:
        super().__init__(daemon=True)
        self.pipe, self.limit = pipe, limit
        self.data = bytearray()
        self.total = 0

    def run(self) -> None:
        while chunk := self.pipe.read(65536):
            self.total += len(chunk)
            room = self.limit - len(self.data)
            if room > 0:
                self.data += chunk[:room]
        self.pipe.close()

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class Jexec(Role):
    """The job executor."""

    name = "jexec"

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        cfg = ctx.config.redsys
        self.cmd_dir = ctx.instance.home / "cmd"
        self._slots = threading.BoundedSemaphore(cfg.jexec_max_parallel)
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self.book = CommandBook(ctx.instance.tmp / "jexec")
        self._stopping = threading.Event()
        self._runs = 0
        self.server = WireServer(
            self,
            host=cfg.jexec_host,
            port=cfg.jexec_port,
            secret=cfg.pss_secret.reveal(),
            name=f"jexec/{ctx.instance.name}",
        )

    def start(self) -> None:
        """Listen on ``jexec_port``; returns when it accepts."""
        self.cmd_dir.mkdir(parents=True, exist_ok=True)
        self.book.recover(os.getpid())
        self.server.start()
        self.health.watch("request server", self.server.thread)

    def stop(self) -> None:
        """Refuse new runs, give running ones ``stop_grace`` seconds, kill the rest; idempotent."""
        self._stopping.set()
        deadline = time.monotonic() + self.ctx.config.redsys.stop_grace
        while self._busy() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            left = list(self._running)
        for proc in left:
            log.warning("role=jexec killing pid=%d at stop", proc.pid)
            _kill_group(proc, signal.SIGKILL)
        self.server.stop()

    def _busy(self) -> bool:
        with self._lock:
            return bool(self._running)

    def info(self) -> str:
        """What the heartbeat row shows."""
        with self._lock:
            busy = len(self._running)
        return f"port {self.server.port}, {busy} running, {self._runs} runs"

    def environment(self) -> dict[str, str]:
        """The environment of a command: this process's, plus the instance's."""
        env = dict(os.environ)
        env.update(self.ctx.instance.environment())
        env["PATH"] = f"{self.ctx.instance.home / 'bin'}:{env.get('PATH', os.defpath)}"
        return env

    def op_run(self, req: JexecRun, peer: Peer) -> dict[str, Any]:
        """Wire op ``run``: run a command of ``cmd/``; reply with its exit code and output."""
        limit = float(self.ctx.config.redsys.jexec_timeout)  # the default and the most allowed
        timeout = min(req.time_limit, limit) if req.time_limit is not None else limit
        path = resolve_command(self.cmd_dir, req.command)
        ids = f"job={_id(req.job)} run={_id(req.run_id)}"
        run = str(req.run_id) if req.run_id is not None else None
        with self._slots:
            if self._stopping.is_set():
                raise RemoteError("stopping", "jexec is stopping; no new commands start")
            job = str(req.job) if req.job is not None else "-"
            return self._run(path, req.args, timeout, req.stdin, ids, peer, req.env, run, job)

    def op_kill(self, req: JexecKill, peer: Peer) -> dict[str, Any]:
        """Wire op ``kill``: end the command of run ``run_id`` (its process group) now.

        SIGTERM, and SIGKILL two seconds later if it still runs; ``by`` (optional) is who asked,
        kept in the command's result.
        """
        run = str(req.run_id)
        cmd = self.book.kill(run, req.by)
        running = cmd is not None and cmd.result is None
        if running:
            assert cmd is not None
            log.warning(
                "role=jexec run=%s killed on request of %s from %s", run, cmd.killed_by, peer.host
            )
        return {"run_id": run, "killed": running, "pid": cmd.pid if cmd else None}

    def op_runs(self, req: NoArgs, peer: Peer) -> list[dict[str, Any]]:
        """Wire op ``runs``: the commands of runs, running or ended in the last hour."""
        del req, peer
        return self.book.listing()

    def op_wait(self, req: JexecWait, peer: Peer) -> dict[str, Any]:
        """Wire op ``wait``: wait up to ``seconds`` (at most 30) for run ``run_id``'s command
        to end; its state (``running``, ``ended`` with the result, ``unknown``). ``forget``:
        drop an ended command from the book with this answer."""
        del peer
        return self.book.wait(str(req.run_id), min(req.seconds, 30.0), forget=req.forget)

    def _run(
        self,
        path: Path,
        argv: list[str],
        timeout: float,
        stdin: str | None,
        ids: str,
        peer: Peer,
        extra_env: dict[str, str],
        run: str | None,
        job: str,
    ) -> dict[str, Any]:
        limit = self.ctx.config.redsys.jexec_output_limit
        began = time.monotonic()
        try:
            proc = subprocess.Popen(
                [str(path), *argv],
                cwd=self.ctx.instance.home,
                env={**self.environment(), **extra_env},
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise RemoteError("exec_failed", f"cannot execute {path.name}: {exc.strerror}") from exc
        with self._lock:
            self._running.add(proc)
            self._runs += 1
        cmd = self.book.started(run, job, proc.pid) if run is not None else None
        assert proc.stdout is not None and proc.stderr is not None
        out, err = _Capture(proc.stdout, limit), _Capture(proc.stderr, limit)
        out.start()
        err.start()
        if stdin is not None:
            assert proc.stdin is not None
            threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()
        timed_out = False
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc, signal.SIGTERM)
            try:
                proc.wait(_KILL_AFTER)
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGKILL)
                proc.wait()
        finally:
            with self._lock:
                self._running.discard(proc)
        # a grandchild may hold the pipes open after the group was killed: do not wait forever
        out.join(_KILL_AFTER)
        err.join(_KILL_AFTER)
        took = time.monotonic() - began
        rel = path.relative_to(self.cmd_dir.resolve())
        log.info(
            "role=jexec %s command=%s exit=%s timed_out=%s %.2f s stdout=%dB stderr=%dB from %s",
            ids, rel, proc.returncode, timed_out, took, out.total, err.total, peer.host,
        )  # fmt: skip
        if err.total:
            log.debug("role=jexec %s command=%s stderr: %s", ids, rel, err.text()[:2000])
        result = {
            "command": str(rel),
            "exit_code": proc.returncode,
            "timed_out": timed_out,
            "seconds": round(took, 3),
            "stdout": out.text(),
            "stderr": err.text(),
            "stdout_truncated": out.total > limit,
            "stderr_truncated": err.total > limit,
            "pid": proc.pid,
        }
        if cmd is not None:
            self.book.ended(cmd, result)  # kept for a sched that is no longer there to hear it
            if cmd.killed_by is not None:
                result["killed_by"] = cmd.killed_by
        return result


def _id(value: str | int | None) -> str:
    return "-" if value is None else str(value)


def _feed(pipe: IO[bytes], text: str) -> None:
    try:
        pipe.write(text.encode("utf-8"))
        pipe.close()
    except OSError:
        pass  # the command did not read its input


def _kill_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(proc.pid, sig)
