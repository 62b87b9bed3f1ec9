"""Role health: what a role reports about itself, and the one verdict on it.

**How a role reports** (``self.health``, a :class:`redpss.roles.base.RoleHealth`, in every
role):

- ``self.health.start_thread("serve loop", target, *args)`` starts a worker thread and watches
  it; ``self.health.watch("accept", thread)`` watches a thread started elsewhere (a
  WireServer's). A watched thread that is not alive is a problem ("serve loop is not running";
  if it died of an exception, that exception).
- ``self.health.problem("relay", "relay refused login: 535 …")`` names a problem (one per key;
  setting the key again replaces the text); ``self.health.clear("relay")`` ends it. Keys are
  the role's own words; the text is what an operator reads, so name the thing and the cause.

Every heartbeat carries the problems (``ADM_PSS_STATUS.PROBLEMS``, ``; ``-joined) and also goes
to a small local record, ``$REDENV_HOME/tmp/health/<role>.json``, which ``redpss role X
--check`` reads without a dictionary round trip (see :func:`check`).

**The verdict** (:func:`judge`, mirrored by the ``STA_PSS_STATUS`` SQL of both backends and
tested against it): the first matching rule gives ALERT and ALERT_REASON —

====  =========================================================  ==========================
ALERT when                                                       reason
====  =========================================================  ==========================
2     state STOPPED, FAILED or EXITED                            ``state S: <last exit>``
2     no heartbeat for more than 3 intervals                     ``no heartbeat for N s``
1     the role reports problems                                  the problems
1     heartbeat older than 2 intervals                           ``heartbeat late (N s)``
1     restarted since the instance started                       ``restarted N times; …``
1     state SUSPENDED (a role that pauses: jmon, sched, …)       ``suspended``
0     otherwise
====  =========================================================  ==========================

A role is **healthy** (:func:`is_healthy`) when it is up (RUNNING or SUSPENDED), not silent
(ALERT < 2) and reports no problem: a restart or a suspension is worth a warning, but the role
does its work; a dead serve loop or a refused relay login is not. ``redctl status`` (exit 1,
DEGRADED), the REST API, ``restctl status`` and ``--check`` (exit 1) all use this verdict.

This module imports nothing of redpss and only os, json and time of the standard library:
``--check`` costs a Python start and one small read (``bench/health_check.py``).
"""

from __future__ import annotations

import json
import os
import time

__all__ = [
    "ALERT_ERROR",
    "ALERT_OK",
    "ALERT_WARNING",
    "DOWN_STATES",
    "UP_STATES",
    "Verdict",
    "check",
    "heartbeat_path",
    "is_healthy",
    "judge",
    "problems_text",
    "write_record",
]

STARTING = "STARTING"
RUNNING = "RUNNING"
SUSPENDED = "SUSPENDED"
STOPPING = "STOPPING"
STOPPED = "STOPPED"
FAILED = "FAILED"
EXITED = "EXITED"

DOWN_STATES = (STOPPED, FAILED, EXITED)
"""Role states that raise ALERT 2 on their own."""
UP_STATES = (RUNNING, SUSPENDED)
"""Role states of a role that does its work (a suspended one waits, as it was asked to)."""

ALERT_OK, ALERT_WARNING, ALERT_ERROR = 0, 1, 2

PROBLEMS_MAX = 2000
"""Characters of ``ADM_PSS_STATUS.PROBLEMS``; longer text is cut with an ellipsis."""


class Verdict:
    """ALERT 0/1/2, why (None at 0), and whether the role does its work.

    A plain class, not a dataclass: importing dataclasses (and inspect) would be a third of
    what a health check costs."""

    __slots__ = ("alert", "healthy", "reason")

    def __init__(self, alert: int, reason: str | None, healthy: bool) -> None:
        self.alert, self.reason, self.healthy = alert, reason, healthy

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verdict):
            return NotImplemented
        return (self.alert, self.reason, self.healthy) == (other.alert, other.reason, other.healthy)

    def __hash__(self) -> int:
        return hash((self.alert, self.reason, self.healthy))

    def __repr__(self) -> str:
        return f"Verdict(alert={self.alert}, reason={self.reason!r}, healthy={self.healthy})"


def is_healthy(state: str, alert: int, problems: str | None) -> bool:
    """The one health rule: up, not silent, no problem reported."""
    return state in UP_STATES and alert < ALERT_ERROR and not problems


def _alert(
    state: str,
    age: float | None,
    interval: float,
    restarts: int,
    last_exit: str | None,
    info: str | None,
    problems: str | None,
) -> tuple[int, str | None]:
    if state in DOWN_STATES:
        return ALERT_ERROR, f"state {state}" + (f": {last_exit}" if last_exit is not None else "")
    if age is not None and age > 3 * interval:
        return ALERT_ERROR, f"no heartbeat for {int(age)} s"
    if problems:
        return ALERT_WARNING, problems
    if age is not None and age > 2 * interval:
        return ALERT_WARNING, f"heartbeat late ({int(age)} s)"
    if restarts > 0:
        last = last_exit if last_exit is not None else "unknown"
        return ALERT_WARNING, f"restarted {restarts} times; last: {last}"
    if state == SUSPENDED:
        return ALERT_WARNING, "suspended" + (f": {info}" if info is not None else "")
    return ALERT_OK, None


def judge(
    *,
    state: str,
    heartbeat_age: float | None,
    heartbeat_interval: float,
    restarts: int = 0,
    last_exit: str | None = None,
    info: str | None = None,
    problems: str | None = None,
) -> Verdict:
    """The verdict on one heartbeat record (the table in the module docstring).

    Ages are truncated to whole seconds in the reason text."""
    alert, reason = _alert(
        state, heartbeat_age, heartbeat_interval, restarts, last_exit, info, problems or None
    )
    return Verdict(alert, reason, is_healthy(state, alert, problems))


def problems_text(problems: list[str]) -> str | None:
    """The PROBLEMS column for these problems: ``; ``-joined, at most PROBLEMS_MAX characters."""
    if not problems:
        return None
    text = "; ".join(problems)
    return text if len(text) <= PROBLEMS_MAX else text[: PROBLEMS_MAX - 1] + "…"


# -- the local heartbeat record: what --check reads -----------------------------------------


def heartbeat_path(redenv_home: str | os.PathLike[str], role: str) -> str:
    """Where ``role`` keeps its local heartbeat record (a str: pathlib is not imported here)."""
    return os.path.join(redenv_home, "tmp", "health", f"{role}.json")


def write_record(
    path: str | os.PathLike[str],
    *,
    role: str,
    pid: int,
    state: str,
    interval: float,
    info: str | None,
    problems: str | None,
) -> None:
    """Write the local heartbeat record atomically (a reader never sees half of it)."""
    record = {
        "role": role,
        "pid": pid,
        "state": state,
        "time": time.time(),
        "interval": interval,
        "info": info,
        "problems": problems,
    }
    folder, name = os.path.split(os.fspath(path))
    os.makedirs(folder, exist_ok=True)
    part = os.path.join(folder, f".{name}.{pid}")
    with open(part, "w", encoding="utf-8") as out:
        json.dump(record, out)
    os.replace(part, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def check(path: str | os.PathLike[str], *, now: float | None = None) -> Verdict:
    """The verdict on the local heartbeat record at ``path`` (``redpss role X --check``).

    No record, an unreadable one, or a role process that is gone while its record says it runs
    is ALERT 2, unhealthy."""
    try:
        with open(path, encoding="utf-8") as source:
            record = json.load(source)
        state, pid = str(record["state"]), int(record["pid"])
        age = (time.time() if now is None else now) - float(record["time"])
        interval = float(record["interval"])
    except FileNotFoundError:
        return Verdict(
            ALERT_ERROR, f"no heartbeat record at {os.fspath(path)} (not started?)", False
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Verdict(ALERT_ERROR, f"heartbeat record {os.fspath(path)} unreadable: {exc}", False)
    if state not in DOWN_STATES and pid != os.getpid() and not _alive(pid):
        gone = f"process {pid} is gone (last heartbeat {int(age)} s ago)"
        return Verdict(ALERT_ERROR, gone, False)
    info, problems = record.get("info"), record.get("problems")
    return judge(
        state=state,
        heartbeat_age=max(age, 0.0),
        heartbeat_interval=interval,
        last_exit=info if state in DOWN_STATES else None,  # how it stopped
        info=info,
        problems=problems,
    )
