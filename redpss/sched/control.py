"""Operations on jobs and watchers: the one implementation behind redctl (and the REST API).

Reading and toggling definitions works on the dictionary directly (jmon notices the change);
starting a job and showing runs ask the running sched over the wire protocol.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import asdict
from datetime import datetime
from typing import Any

from redpss import audit
from redpss.config import Config
from redpss.dictionary import Dictionary
from redpss.dictionary.jobs import ExecError, JobDef, WatcherDef
from redpss.errors import NotFound, RedpssError, RemoteError, ServiceUnavailable, WireError
from redpss.instance import Instance
from redpss.wire import call

__all__ = [
    "KillRefused",
    "NotFound",
    "find_job",
    "find_watcher",
    "kill_run",
    "list_jobs",
    "list_watchers",
    "operator_name",
    "reload",
    "show",
    "start_job",
    "toggle",
    "we_list_error",
    "we_reset_error",
]

log = logging.getLogger(__name__)


def _nearest(name: str, names: list[str], what: str) -> NotFound:
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.4)
    hint = f"; did you mean: {', '.join(close)}" if close else ""
    return NotFound(f"no {what} named {name!r}{hint}")


def find_job(dictionary: Dictionary, name: str) -> JobDef:
    """The job ``name``, or :class:`NotFound` naming the nearest existing names."""
    jobs = {j.name: j for j in dictionary.jobs()}
    if name not in jobs:
        raise _nearest(name, list(jobs), "job")
    return jobs[name]


def find_watcher(dictionary: Dictionary, name: str) -> WatcherDef:
    """The watcher ``name``, or :class:`NotFound` naming the nearest existing names."""
    watchers = {w.name: w for w in dictionary.watchers()}
    if name not in watchers:
        raise _nearest(name, list(watchers), "watcher")
    return watchers[name]


def list_jobs(
    dictionary: Dictionary, *, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """The jobs sorted by name (``limit`` of them from ``offset``; None: all) with schedule,
    last and next run and ALERT (``list_db_jobs``, ``/api/jobs``): one query
    (:meth:`~redpss.dictionary.Dictionary.job_lines`), one dict per job."""
    rows = []
    for j in dictionary.job_lines(limit, offset):
        if j.schedule_type == "INTERVAL":
            schedule = f"every {j.interval_seconds}s"
        else:
            schedule = f"cron {j.cron_expr}" if j.schedule_type == "CRON" else "-"
        rows.append({
            "job": j.job, "schema": j.schema, "kind": j.kind, "pool": j.pool,
            "schedule": schedule, "active": j.active, "last_state": j.last_state,
            "last_run": j.last_run, "next_run": j.next_run,
            "alert": j.alert, "reason": j.alert_reason,
        })  # fmt: skip
    return rows


def list_watchers(dictionary: Dictionary) -> list[dict[str, Any]]:
    """Every watcher (``list_db_watcher``)."""
    errors: dict[str, int] = {}
    for e in dictionary.exec_errors():
        errors[e.watcher] = errors.get(e.watcher, 0) + 1
    return [
        {"watcher": w.name, "schema": w.schema, "kind": w.kind, "watch": w.watch_text,
         "interval": w.check_interval, "executor": w.executor_job, "active": w.active,
         "errors": errors.get(w.name, 0)}
        for w in dictionary.watchers()
    ]  # fmt: skip


def toggle(dictionary: Dictionary, kind: str, name: str) -> bool:
    """Flip ACTIVE of a job or watcher; return the new value."""
    current = find_job(dictionary, name) if kind == "job" else find_watcher(dictionary, name)
    dictionary.set_active(kind, name, not current.active)
    return not current.active


def we_list_error(dictionary: Dictionary, watcher: str | None) -> list[ExecError]:
    """Executor errors (``we_list_error [WATCHER]``)."""
    if watcher is not None:
        find_watcher(dictionary, watcher)
    return dictionary.exec_errors(watcher)


def we_reset_error(dictionary: Dictionary, watcher: str | None, key: str | None) -> int:
    """Clear executor errors so their keys are tried again; return how many."""
    if watcher is not None:
        find_watcher(dictionary, watcher)
    return dictionary.reset_exec_errors(watcher, key)


def _sched(config: Config, op: str, **args: Any) -> Any:
    cfg = config.redsys
    try:
        return call(
            cfg.sched_host,
            cfg.sched_service_port,
            op,
            secret=cfg.pss_secret.reveal(),
            timeout=15.0,
            **args,
        )
    except RemoteError:
        raise
    except WireError as exc:
        raise ServiceUnavailable(
            f"sched does not answer ({exc}); is the instance running? (redctl status)"
        ) from exc


def start_job(
    config: Config,
    dictionary: Dictionary,
    name: str,
    *,
    scheduled_only: bool,
    by: str | None = None,
) -> dict[str, Any]:
    """Start job ``name`` now through sched; return its run id and state. ``by`` (who asks:
    :func:`operator_name`, or a REST token) goes into the run's message."""
    find_job(dictionary, name)
    try:
        result: dict[str, Any] = _sched(
            config,
            "start_job",
            name=name,
            scheduled_only=scheduled_only,
            by=by if by is not None else operator_name("redctl"),
        )
    except RemoteError as exc:
        raise RedpssError(exc.message) from exc
    return result


class KillRefused(RedpssError):
    """``kill`` of a run sched cannot end: not queued or running (exit 3), or a load (1)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = 3 if code == "not_running" else 1


def operator_name(tool: str) -> str:
    """Who gives a command: the login, the sudo user behind it, and the tool."""
    user = audit.current_user()
    sudo = os.environ.get("SUDO_USER")
    who = f"{sudo} (as {user})" if sudo and sudo != user else user
    return f"{who} with {tool}"


def kill_run(config: Config, run_id: int, *, by: str) -> dict[str, Any]:
    """End run ``run_id`` through sched (its command's process group, or its statement);
    recorded KILLED with ``by``. Returns the run id, job and state (KILLED, or KILLING while
    it still ends)."""
    try:
        result: dict[str, Any] = _sched(config, "kill", run_id=run_id, by=by)
    except RemoteError as exc:
        raise KillRefused(exc.code, exc.message) from exc
    return result


def show(config: Config) -> dict[str, Any]:
    """Pools, running and queued runs, next runs (from the running sched)."""
    result: dict[str, Any] = _sched(config, "show")
    return result


def reload(inst: Instance) -> None:
    """Ask jmon to re-read the definitions now (it does by itself every few seconds)."""
    (inst.tmp / "reload").touch()


def exec_error_dicts(errors: list[ExecError]) -> list[dict[str, Any]]:
    """Executor errors as plain dicts (for --json and tables)."""
    return [
        {
            k: (v.isoformat(timespec="seconds") if isinstance(v, datetime) else v)
            for k, v in asdict(e).items()
        }
        for e in errors
    ]
