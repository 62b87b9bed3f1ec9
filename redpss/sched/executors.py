"""What a run does, by job kind: ``SQL`` through the dictionary, ``CMD`` through jexec, ``LOAD``.

Each executor returns an :class:`Outcome` (state, rows, message) and never raises for a failing
job: a job's failure is data for the job log, not an error of sched.
"""

from __future__ import annotations

import logging
import shlex
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from redpss.config import Config
from redpss.dictionary import Dictionary
from redpss.dictionary.jobs import ABORTED, FAILED, KILLED, OK, TIMEOUT, JobDef
from redpss.errors import (
    DictionaryError,
    LoadError,
    RedpssError,
    RemoteError,
    ServiceUnavailable,
    WireError,
)
from redpss.instance import Instance
from redpss.landing import run_load
from redpss.wire import WireClient, call, local_address

__all__ = ["Outcome", "RunContext", "execute"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """How a run ended.

    ``transient``: it failed for a reason outside the job and its input (the dictionary
    locked or away, the disk, jexec not answering) that a later try can overcome; a watcher
    tries such a key again instead of counting an executor error.
    """

    state: str
    rows: int | None = None
    message: str | None = None
    transient: bool = False


JEXEC_WAIT = 30.0
"""Seconds a CMD run waits for jexec to answer before its command is sent: at the instance's
start sched may fire before jexec listens, and supervisord restarts a jexec that died; nothing
has run yet, so waiting is safe (the run failed at once, FAILED in the run log)."""
_JEXEC_POLL = 0.2

_TRANSIENT_TEXT = (
    "database is locked",
    "database table is locked",
    "database is busy",
    "disk I/O error",  # SQLite on a full disk, when it cannot even extend its -shm or -wal
    "database or disk is full",
)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or what it was raised from) says: the dictionary or the disk failed,
    not the job or its input."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and not isinstance(seen, FileNotFoundError):
            return True
        if isinstance(seen, DictionaryError) and any(t in str(seen) for t in _TRANSIENT_TEXT):
            return True
        if isinstance(seen, DictionaryError) and isinstance(exc, LoadError):
            return True  # the landing zone requeued the file: the database failed, not it
        seen = seen.__cause__
    return False


class Cancel(Protocol):
    """What a running executor polls to learn that it must stop."""

    def is_set(self) -> bool:
        """True once the run must stop."""
        ...


@dataclass
class RunContext:
    """What an executor needs besides the job."""

    instance: Instance
    config: Config
    dictionary: Dictionary
    run_id: int
    key: str | None
    cancel: Cancel


def execute(job: JobDef, ctx: RunContext) -> Outcome:
    """Run ``job`` once; translate every failure into an Outcome."""
    try:
        if job.kind == "SQL":
            return _sql(job, ctx)
        if job.kind == "CMD":
            return _cmd(job, ctx)
        if job.kind == "LOAD":
            return _load(job, ctx)
        return Outcome(FAILED, message=f"unknown job kind {job.kind!r}")
    except TimeoutError as exc:
        return Outcome(TIMEOUT, message=str(exc))
    except RedpssError as exc:
        return Outcome(FAILED, message=str(exc), transient=is_transient(exc))
    except Exception as exc:  # a job must never take sched down
        log.exception("run=%d job=%s failed unexpectedly", ctx.run_id, job.name)
        return Outcome(FAILED, message=f"{type(exc).__name__}: {exc}")


def _sql(job: JobDef, ctx: RunContext) -> Outcome:
    try:
        result = ctx.dictionary.run_sql_job(
            job.schema, job.action, timeout=job.timeout_seconds, cancel=ctx.cancel.is_set
        )
    except (DictionaryError, TimeoutError) as exc:
        if not ctx.cancel.is_set():
            raise
        by = getattr(ctx.cancel, "by", None)
        if by is not None:
            return Outcome(KILLED, message=f"killed by {by}: the statement was interrupted")
        return Outcome(ABORTED, message=f"sched stopped: the statement was interrupted ({exc})")
    return Outcome(OK, rows=max(result.rows, 0), message=result.message)


def _cmd(job: JobDef, ctx: RunContext) -> Outcome:
    """A command of ``cmd/``, run by the jexec role (its rules: only ``cmd/``, no shell)."""
    try:
        argv = shlex.split(job.action)
    except ValueError as exc:
        return Outcome(FAILED, message=f"action {job.action!r}: {exc}")
    if not argv:
        return Outcome(FAILED, message="the action names no command")
    cfg = ctx.config.redsys
    env = {"RED_RUN_ID": str(ctx.run_id), "RED_JOB": job.name, "RED_SCHEMA": job.schema}
    if ctx.key is not None:
        env["RED_WATCH_KEY"] = ctx.key
    request: dict[str, object] = {
        "command": argv[0], "args": argv[1:], "job": job.name, "run_id": ctx.run_id, "env": env,
    }  # fmt: skip
    limit = job.timeout_seconds or cfg.jexec_timeout
    if job.timeout_seconds:
        request["time_limit"] = job.timeout_seconds
    host, secret = local_address(cfg.jexec_host), cfg.pss_secret.reveal()
    done = threading.Event()
    killer = threading.Thread(target=_kill_on_cancel, args=(ctx, done), daemon=True)
    killer.start()
    try:
        with WireClient(host, cfg.jexec_port, secret=secret, timeout=limit + 30) as client:
            waited = _reach_jexec(client, ctx)
            if waited is not None:
                return waited
            result: dict[str, Any] = client.request("run", request)
    except RemoteError as exc:
        stopping = exc.code == "stopping"
        return Outcome(FAILED, message=f"jexec refused: {exc.message}", transient=stopping)
    except WireError as exc:
        # the command may have started and may still run (jexec died, the reply was lost):
        # the run ends only when jexec says how its command ended
        log.warning("run=%d lost jexec during the run (%s); asking how it ended", ctx.run_id, exc)
        followed = follow(ctx.config, ctx.run_id, ctx.cancel)
        if followed is None:
            return Outcome(FAILED, message=f"jexec does not answer: {exc}", transient=True)
        result = followed
    finally:
        done.set()
    return command_outcome(result, limit=limit, cancel=ctx.cancel)


def _reach_jexec(client: WireClient, ctx: RunContext) -> Outcome | None:
    """None once jexec answers a ping, the run's command not sent yet; else the run's outcome
    (jexec did not answer in :data:`JEXEC_WAIT` s, or the run was cancelled meanwhile)."""
    deadline = time.monotonic() + JEXEC_WAIT
    while True:
        try:
            client.call("ping")
            return None
        except ServiceUnavailable as exc:
            if ctx.cancel.is_set():
                by = getattr(ctx.cancel, "by", None)
                if by is not None:
                    return Outcome(KILLED, message=f"killed by {by} before jexec answered")
                return Outcome(ABORTED, message=f"sched stopped before jexec answered ({exc})")
            if time.monotonic() > deadline:
                message = f"jexec does not answer: {exc} (for {JEXEC_WAIT:g} s)"
                return Outcome(FAILED, message=message, transient=True)
        time.sleep(_JEXEC_POLL)


def command_outcome(result: dict[str, Any], *, limit: float, cancel: Cancel) -> Outcome:
    """The outcome of a run from its command's result as jexec gives it."""
    output = _output(result)
    by = getattr(cancel, "by", None) if cancel.is_set() else None
    if by is not None or result.get("killed_by") not in (None, "sched"):
        who = by or result.get("killed_by")
        return Outcome(KILLED, message=f"killed by {who}; output: {output}")
    if cancel.is_set():
        return Outcome(
            ABORTED, message=f"killed: sched stopped and the grace time was over; output: {output}"
        )
    if result.get("killed") or result.get("lost"):
        return Outcome(ABORTED, message=str(result.get("message")))
    if result.get("timed_out"):
        return Outcome(TIMEOUT, message=f"killed after its timeout of {limit} s; output: {output}")
    if result.get("exit_code") != 0:
        return Outcome(FAILED, message=f"exit code {result.get('exit_code')}; output: {output}")
    return Outcome(OK, message=output or None)


def _output(result: dict[str, Any]) -> str:
    out = str(result.get("stdout") or "").strip()
    err = str(result.get("stderr") or "").strip()
    return (out + (f"\nstderr: {err}" if err else ""))[-2000:]


def jexec_call(config: Config, op: str, *, timeout: float = 10.0, **args: Any) -> Any:
    """One request to the instance's jexec."""
    cfg = config.redsys
    return call(
        local_address(cfg.jexec_host),
        cfg.jexec_port,
        op,
        secret=cfg.pss_secret.reveal(),
        timeout=timeout,
        **args,
    )


FOLLOW_WAIT = 10.0
FOLLOW_RETRY_CAP = 10.0


def follow(config: Config, run_id: int, cancel: Cancel) -> dict[str, Any] | None:
    """Wait until jexec says how the command of ``run_id`` ended; its result.

    None when jexec knows no such command (it never started, or ended over an hour ago).
    While jexec does not answer, it is asked again (back-off up to 10 s): the run is not over
    before its command is. A cancelled run's command is asked to be killed.
    """
    delay, asked_kill, since = 0.5, False, time.monotonic()
    while True:
        if cancel.is_set() and not asked_kill:
            asked_kill = _ask_kill(config, run_id, getattr(cancel, "by", None))
        try:
            answer: dict[str, Any] = jexec_call(
                config, "wait", timeout=FOLLOW_WAIT + 10, run_id=run_id, seconds=FOLLOW_WAIT,
                forget=True,
            )  # fmt: skip
        except WireError as exc:
            if time.monotonic() - since > 60:
                log.warning("run=%d jexec still does not answer (%s); asking again", run_id, exc)
                since = time.monotonic()
            time.sleep(delay)
            delay = min(delay * 2, FOLLOW_RETRY_CAP)
            continue
        delay = 0.5
        if answer.get("state") == "ended":
            result: dict[str, Any] = answer.get("result") or {}
            return result
        if answer.get("state") != "running":
            return None


def _ask_kill(config: Config, run_id: int, by: str | None) -> bool:
    try:
        jexec_call(config, "kill", timeout=5.0, run_id=run_id, by=by or "sched")
    except WireError as exc:
        log.warning("run=%d could not ask jexec to kill the command: %s", run_id, exc)
        return False
    return True


def _kill_on_cancel(ctx: RunContext, done: threading.Event) -> None:
    """Ask jexec to kill the run's command if sched cancels the run (stop, grace over, kill)."""
    while not done.wait(0.2):
        if ctx.cancel.is_set():
            _ask_kill(ctx.config, ctx.run_id, getattr(ctx.cancel, "by", None))
            return


def _load(job: JobDef, ctx: RunContext) -> Outcome:
    """A loader run: the job's action names the loader; a watcher's key names the file.

    A file rejected into error/ makes the run FAILED (the message names it); the other files
    of the run are loaded all the same.
    """
    result = run_load(
        instance=ctx.instance, config=ctx.config, dictionary=ctx.dictionary,
        loader=job.action.strip(), key=ctx.key, run_id=ctx.run_id, schema=job.schema,
    )  # fmt: skip
    state = FAILED if result.errors else OK
    return Outcome(state, rows=result.rows, message=result.message)
