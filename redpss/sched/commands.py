"""jexec's book of the commands it runs for sched's runs, so that runs and processes agree.

A command of a run (``run_id``) is written into the book when it starts — in memory, and as
a file ``tmp/jexec/<run_id>.json`` with its pid and the kernel's start time of that pid — and
gets its result when it ends (the file goes). What the book answers:

* sched dies during a run: the command runs on (its reply has no reader). The result is kept
  (:data:`KEEP_ENDED` seconds); the next sched asks for it (``runs``, ``wait``) and writes the
  run's true end — or adopts the run while the command still runs.
* jexec dies during a run: the command (its own process group) survives it, its output pipe
  to nobody. The next jexec finds the file, kills the group (SIGTERM, then SIGKILL) and books
  the run as ended "killed: jexec restarted", which is what the next sched will hear.

A pid is only believed together with its start time, so a recycled pid is never killed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["Command", "CommandBook", "process_start"]

log = logging.getLogger(__name__)

KEEP_ENDED = 3600.0
"""Seconds the result of an ended command is kept for a sched that did not receive it."""
MAX_ENDED = 1000
KILL_AFTER = 2.0


def process_start(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot); None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19]) if len(fields) > 19 and fields[0] != "Z" else None


def kill_group(pid: int, sig: int) -> bool:
    """Send ``sig`` to the process group ``pid`` leads; False if it is gone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Command:
    """One command of a run, running or ended."""

    run_id: str
    job: str
    pid: int
    started_at: datetime
    start_ticks: int | None
    result: dict[str, Any] | None = None
    ended_at: datetime | None = None
    killed_by: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)
    ended_mono: float = 0.0

    def to_wire(self) -> dict[str, Any]:
        """What ``runs`` and ``wait`` answer about it."""
        return {
            "run_id": self.run_id,
            "job": self.job,
            "pid": self.pid,
            "started_at": self.started_at.isoformat(),
            "state": "ended" if self.result is not None else "running",
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "result": self.result,
            "killed_by": self.killed_by,
        }


class CommandBook:
    """The commands of runs that jexec started: running ones, and ended ones for a while."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._commands: dict[str, Command] = {}

    # ------------------------------------------------------------------ jexec's side

    def started(self, run_id: str, job: str, pid: int) -> Command:
        """Book a command that was just started (its process group leader is ``pid``)."""
        cmd = Command(run_id, job, pid, datetime.now(UTC), process_start(pid))
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {
            "run_id": run_id, "job": job, "pid": pid, "start_ticks": cmd.start_ticks,
            "started_at": cmd.started_at.isoformat(),
        }  # fmt: skip
        path = self._path(run_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        tmp.replace(path)
        with self._lock:
            self._commands[run_id] = cmd
        return cmd

    def ended(self, cmd: Command, result: dict[str, Any]) -> None:
        """Book the end of ``cmd``: its result, until a sched took it or it is too old."""
        if cmd.killed_by is not None:
            result = {**result, "killed_by": cmd.killed_by}
        with self._lock:
            cmd.result = result
            cmd.ended_at = datetime.now(UTC)
            cmd.ended_mono = time.monotonic()
            self._prune()
        self._path(cmd.run_id).unlink(missing_ok=True)
        cmd.done.set()

    def kill(self, run_id: str, by: str | None) -> Command | None:
        """End the command of ``run_id``: SIGTERM to its group, SIGKILL after 2 s."""
        with self._lock:
            cmd = self._commands.get(run_id)
        if cmd is None or cmd.result is not None:
            return cmd
        cmd.killed_by = by or cmd.killed_by or "sched"
        if self._alive(cmd):
            kill_group(cmd.pid, signal.SIGTERM)
            timer = threading.Timer(KILL_AFTER, self._kill_hard, args=(cmd,))
            timer.daemon = True
            timer.start()
        return cmd

    def _kill_hard(self, cmd: Command) -> None:
        if cmd.result is None and self._alive(cmd):
            kill_group(cmd.pid, signal.SIGKILL)

    @staticmethod
    def _alive(cmd: Command) -> bool:
        return cmd.start_ticks is not None and process_start(cmd.pid) == cmd.start_ticks

    def recover(self, jexec_pid: int) -> list[Command]:
        """At jexec's start: end what a dead jexec left running; book it as ended."""
        found: list[Command] = []
        if not self.folder.is_dir():
            return found
        for path in sorted(self.folder.glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                cmd = Command(
                    str(record["run_id"]), str(record.get("job", "-")), int(record["pid"]),
                    datetime.fromisoformat(record["started_at"]), record.get("start_ticks"),
                )  # fmt: skip
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("role=jexec unreadable command record %s: %s", path.name, exc)
                path.unlink(missing_ok=True)
                continue
            with self._lock:
                self._commands[cmd.run_id] = cmd
            if self._alive(cmd):
                kill_group(cmd.pid, signal.SIGTERM)
                deadline = time.monotonic() + KILL_AFTER
                while self._alive(cmd) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if self._alive(cmd):
                    kill_group(cmd.pid, signal.SIGKILL)
                message = (
                    f"killed: jexec restarted (pid {jexec_pid}) while the command ran "
                    f"(pid {cmd.pid}); its output went to the jexec before"
                )
                log.warning("role=jexec run=%s job=%s %s", cmd.run_id, cmd.job, message)
                result = {"exit_code": None, "killed": True, "message": message}
            else:
                message = "the command ended while jexec was down; its exit code is unknown"
                result = {"exit_code": None, "lost": True, "message": message}
            self.ended(cmd, result)
            found.append(cmd)
        return found

    # ------------------------------------------------------------------ sched's side

    def get(self, run_id: str) -> Command | None:
        """The command of ``run_id``, if booked."""
        with self._lock:
            return self._commands.get(run_id)

    def listing(self) -> list[dict[str, Any]]:
        """Every booked command, running or ended."""
        with self._lock:
            self._prune()
            return [c.to_wire() for c in self._commands.values()]

    def wait(self, run_id: str, timeout: float, *, forget: bool = False) -> dict[str, Any]:
        """Wait up to ``timeout`` s for the command of ``run_id`` to end; say how it stands.

        ``forget``: an ended command is dropped from the book once this answer is given.
        """
        cmd = self.get(run_id)
        if cmd is None:
            return {"run_id": run_id, "state": "unknown"}
        cmd.done.wait(timeout)
        answer = cmd.to_wire()
        if forget and cmd.result is not None:
            with self._lock:
                self._commands.pop(run_id, None)
        return answer

    def running(self) -> int:
        """How many booked commands run."""
        with self._lock:
            return sum(1 for c in self._commands.values() if c.result is None)

    # ------------------------------------------------------------------ housekeeping

    def _path(self, run_id: str) -> Path:
        safe = "".join(ch for ch in run_id if ch.isalnum() or ch in "-_")
        return self.folder / f"{safe or 'run'}.json"

    def _prune(self) -> None:
        """Drop ended commands older than KEEP_ENDED, and the oldest past MAX_ENDED (locked)."""
        now = time.monotonic()
        ended = [c for c in self._commands.values() if c.result is not None]
        for c in ended:
            if now - c.ended_mono > KEEP_ENDED:
                self._commands.pop(c.run_id, None)
        ended = [c for c in self._commands.values() if c.result is not None]
        if len(ended) > MAX_ENDED:
            for c in sorted(ended, key=lambda c: c.ended_mono)[: len(ended) - MAX_ENDED]:
                self._commands.pop(c.run_id, None)
