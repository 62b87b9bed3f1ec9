"""The declarative definitions file: ``redctl db apply FILE.toml`` and ``redctl db export``.

::

    [job.load_sales]                # one table per job
    schema = "DWH"                  # target schema (its ADM_JOB_LOG gets the runs)
    kind = "LOAD"                   # SQL | CMD | LOAD
    action = "sales"                # statement, command line under cmd/, or loader name
    pool = "loader"                 # default | loader | action       (default: default)
    interval = 60                   # seconds; or: cron = "0 2 * * *" (UTC); neither: no schedule
    active = true                   # (default: true)
    timeout = 600                   # seconds (default: none)
    max_parallel = 1                # (default: 1)
    misfire = "RUN_ONCE"            # RUN_ONCE | SKIP  (default: RUN_ONCE)
    description = "…"

    [watcher.sales_files]
    schema = "DWH"
    kind = "FILE"                   # FILE: pattern = regular expression on names in data/input
    pattern = '^sales_.*\\.csv$'    # SQL:  query = "SELECT MAX(ID) FROM …"
    interval = 5                    # check interval in seconds (default: 60)
    executor = "load_sales"         # the job a fire starts (in this file or the dictionary)

Everything is checked before anything changes; every problem is reported with file, table and
key. ``[loader.NAME]`` tables go to the landing zone's loader definitions when installed.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from redpss.dictionary import Dictionary
from redpss.dictionary.jobs import JobDef, WatcherDef
from redpss.dictionary.loaders import parse_loader
from redpss.errors import DefinitionsError
from redpss.sched.triggers import DefinitionError, check_job, check_watcher

__all__ = ["Definitions", "apply_file", "export_text", "parse_definitions"]

_JOB_KEYS: dict[str, type | tuple[type, ...]] = {
    "schema": str, "kind": str, "action": str, "pool": str, "interval": int, "cron": str,
    "active": bool, "timeout": int, "max_parallel": int, "misfire": str, "description": str,
}  # fmt: skip
_WATCHER_KEYS: dict[str, type | tuple[type, ...]] = {
    "schema": str, "kind": str, "pattern": str, "query": str, "interval": int,
    "executor": str, "active": bool, "description": str,
}  # fmt: skip
_REQUIRED_JOB = ("schema", "kind", "action")
_REQUIRED_WATCHER = ("schema", "kind", "executor")


@dataclass
class Definitions:
    """What a definitions file holds, checked."""

    jobs: list[JobDef] = field(default_factory=list)
    watchers: list[WatcherDef] = field(default_factory=list)
    loaders: list[Any] = field(default_factory=list)


def _typed(where: str, table: dict[str, Any], keys: dict[str, Any], errors: list[str]) -> None:
    for key, value in table.items():
        if key not in keys:
            errors.append(f"{where} unknown key {key!r} (known: {', '.join(keys)})")
        elif (isinstance(value, bool) and keys[key] is not bool) or not isinstance(
            value, keys[key]
        ):
            errors.append(f"{where} {key}: expected {keys[key].__name__}, got {value!r}")


def _job(name: str, t: dict[str, Any]) -> JobDef:
    interval, cron = t.get("interval"), t.get("cron")
    if interval is not None and cron is not None:
        raise DefinitionError("interval and cron exclude each other")
    schedule = "INTERVAL" if interval is not None else "CRON" if cron is not None else "NONE"
    return JobDef(
        name=name, schema=str(t["schema"]).upper(), kind=str(t["kind"]).upper(),
        action=t["action"], pool=t.get("pool", "default"), schedule_type=schedule,
        interval_seconds=interval, cron_expr=cron, active=t.get("active", True),
        timeout_seconds=t.get("timeout"), max_parallel=t.get("max_parallel", 1),
        misfire_policy=str(t.get("misfire", "RUN_ONCE")).upper(),
        description=t.get("description"),
    )  # fmt: skip


def _watcher(name: str, t: dict[str, Any]) -> WatcherDef:
    kind = str(t["kind"]).upper()
    text_key = "pattern" if kind == "FILE" else "query"
    other = "query" if kind == "FILE" else "pattern"
    if other in t:
        raise DefinitionError(f"a {kind} watcher takes {text_key}, not {other}")
    if text_key not in t:
        raise DefinitionError(f"a {kind} watcher needs {text_key}")
    return WatcherDef(
        name=name, schema=str(t["schema"]).upper(), kind=kind, watch_text=t[text_key],
        executor_job=t["executor"], check_interval=t.get("interval", 60),
        active=t.get("active", True), description=t.get("description"),
    )  # fmt: skip


def parse_definitions(
    text: str, *, path: str, known_jobs: set[str], known_loaders: set[str] | None = None
) -> Definitions:
    """Parse and check a definitions file; raise DefinitionsError listing every problem."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionsError(f"{path}: not valid TOML: {exc}") from exc
    errors: list[str] = []
    out = Definitions()
    for section in doc:
        if section not in ("job", "watcher", "loader") or not isinstance(doc[section], dict):
            errors.append(
                f"{path}: unknown table [{section}] (known: [job.NAME], "
                "[watcher.NAME], [loader.NAME])"
            )
    jobs_here = set(doc.get("job", {}))
    for name, table in doc.get("job", {}).items():
        where = f"{path}: [job.{name}]"
        _collect(
            errors,
            where,
            table,
            _JOB_KEYS,
            _REQUIRED_JOB,
            lambda n=name, t=table: out.jobs.append(_checked_job(n, t)),
        )
    all_jobs = known_jobs | jobs_here
    for name, table in doc.get("watcher", {}).items():
        where = f"{path}: [watcher.{name}]"
        _collect(
            errors,
            where,
            table,
            _WATCHER_KEYS,
            _REQUIRED_WATCHER,
            lambda n=name, t=table: out.watchers.append(_checked_watcher(n, t, all_jobs)),
        )
    if doc.get("loader"):
        _loaders(doc["loader"], path, out, errors)
    _check_load_jobs(out, known_loaders or set(), path, errors)
    if errors:
        raise DefinitionsError("definitions refused, nothing changed:\n  " + "\n  ".join(errors))
    return out


def _collect(
    errors: list[str],
    where: str,
    table: Any,
    keys: dict[str, Any],
    required: tuple[str, ...],
    build: Any,
) -> None:
    if not isinstance(table, dict):
        errors.append(f"{where} must be a table")
        return
    before = len(errors)
    _typed(where, table, keys, errors)
    errors.extend(f"{where} {key}: required" for key in required if key not in table)
    if len(errors) > before:
        return
    try:
        build()
    except DefinitionError as exc:
        errors.append(f"{where} {exc}")


def _checked_job(name: str, t: dict[str, Any]) -> JobDef:
    job = _job(name, t)
    check_job(job)
    return job


def _checked_watcher(name: str, t: dict[str, Any], jobs: set[str]) -> WatcherDef:
    watcher = _watcher(name, t)
    check_watcher(watcher, jobs)
    return watcher


def _loaders(tables: dict[str, Any], path: str, out: Definitions, errors: list[str]) -> None:
    for name, table in tables.items():
        try:
            out.loaders.append(parse_loader(name, table))
        except ValueError as exc:
            errors.append(f"{path}: [loader.{name}] {exc}")


def _check_load_jobs(out: Definitions, loaders: set[str], path: str, errors: list[str]) -> None:
    names = loaders | {loader.name for loader in out.loaders}
    for job in out.jobs:
        if job.kind == "LOAD" and job.action.strip() not in names:
            errors.append(
                f"{path}: [job.{job.name}] action: loader {job.action.strip()!r} "
                "does not exist (define it as [loader.NAME] or in the dictionary)"
            )


def apply_file(dictionary: Dictionary, path: Path) -> Definitions:
    """Check ``path`` and upsert its definitions in one go; return what was applied."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionsError(f"{path}: cannot read: {exc.strerror}") from exc
    known = {j.name for j in dictionary.jobs()}
    loaders = {loader.name for loader in dictionary.loaders()}
    defs = parse_definitions(text, path=str(path), known_jobs=known, known_loaders=loaders)
    for loader in defs.loaders:  # first: the jobs name them
        dictionary.upsert_loader(loader)
    dictionary.apply_definitions(defs.jobs, defs.watchers)
    return defs


def export_text(dictionary: Dictionary) -> str:
    """Every job and watcher definition in the format of ``apply``."""
    doc: dict[str, Any] = {"job": {}, "watcher": {}}
    for j in dictionary.jobs():
        t: dict[str, Any] = {"schema": j.schema, "kind": j.kind, "action": j.action, "pool": j.pool}
        if j.schedule_type == "INTERVAL" and j.interval_seconds is not None:
            t["interval"] = j.interval_seconds
        elif j.schedule_type == "CRON" and j.cron_expr:
            t["cron"] = j.cron_expr
        t["active"] = j.active
        if j.timeout_seconds is not None:
            t["timeout"] = j.timeout_seconds
        t["max_parallel"] = j.max_parallel
        t["misfire"] = j.misfire_policy
        if j.description:
            t["description"] = j.description
        doc["job"][j.name] = t
    for w in dictionary.watchers():
        t = {
            "schema": w.schema,
            "kind": w.kind,
            ("pattern" if w.kind == "FILE" else "query"): w.watch_text,
            "interval": w.check_interval,
            "executor": w.executor_job,
            "active": w.active,
        }
        if w.description:
            t["description"] = w.description
        doc["watcher"][w.name] = t
    header = "# job and watcher definitions, written by `redctl db export`\n"
    return header + tomli_w.dumps({k: v for k, v in doc.items() if v})
