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

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from redpss.dictionary import Dictionary
from redpss.dictionary.jobs import JobDef, WatcherDef
from redpss.dictionary.loaders import Loader, LoaderColumn, parse_loader
from redpss.errors import DefinitionsError
from redpss.sched.triggers import DefinitionError, check_job, check_watcher

__all__ = [
    "KINDS",
    "Definitions",
    "apply_file",
    "export_text",
    "loader_table",
    "parse_definitions",
    "remove_definition",
]

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
    """Every job, watcher and loader definition in the format of ``apply`` (round-trips)."""
    doc: dict[str, Any] = {"job": {}, "watcher": {}}
    for j in dictionary.jobs():
        doc["job"].update(_one_job(j)["job"])
    for w in dictionary.watchers():
        doc["watcher"].update(_one_watcher(w)["watcher"])
    doc["loader"] = {loader.name: loader_table(loader) for loader in dictionary.loaders()}
    header = (
        "# job, watcher and loader definitions, written by `redctl db export`;\n"
        "# `redctl db apply FILE` puts them into another instance\n"
    )
    order = ("loader", "job", "watcher")  # a LOAD job names its loader, a watcher its job
    return header + tomli_w.dumps({k: doc[k] for k in order if doc.get(k)})


def loader_table(loader: Loader) -> dict[str, Any]:
    """A loader as the ``[loader.NAME]`` table that :func:`parse_loader` reads back equal."""
    t: dict[str, Any] = {"pattern": loader.pattern, "target": loader.target,
                         "format": loader.format}  # fmt: skip
    defaults = Loader(name=loader.name, pattern="", schema="", table="", columns=())
    for attr, key in (
        ("encoding", "encoding"), ("delimiter", "delimiter"), ("header", "header"),
        ("null_string", "null"), ("date_format", "date_format"),
        ("timestamp_format", "timestamp_format"), ("fixed_width", "fixed_width"),
        ("marker", "marker"), ("duplicates", "duplicates"), ("active", "active"),
        ("method", "method"),
    ):  # fmt: skip
        value = getattr(loader, attr)
        if value != getattr(defaults, attr) or attr == "active":
            t[key] = value
    if loader.quote != defaults.quote:
        t["quote"] = loader.quote or ""
    if loader.description is not None:
        t["description"] = loader.description
    t["columns"] = [_column_table(c) for c in loader.columns]
    return t


def _column_table(c: LoaderColumn) -> dict[str, Any]:
    t: dict[str, Any] = {"name": c.name, "type": c.type}
    for attr, key in (("source", "source"), ("source_pos", "pos"), ("format", "format"),
                      ("fbv_start", "start"), ("fbv_size", "size")):  # fmt: skip
        if getattr(c, attr) is not None:
            t[key] = getattr(c, attr)
    return t


KINDS = ("job", "watcher", "loader")


def remove_definition(dictionary: Dictionary, kind: str, name: str) -> str:
    """Remove one job, watcher or loader; return its definition as a file ``apply`` reads.

    Refused (nothing removed) while another definition needs it: a watcher its executor job,
    a LOAD job its loader. An unknown name is :class:`~redpss.sched.control.NotFound` naming
    the nearest ones. Runs that are active go on; jmon schedules no new ones.
    """
    from redpss.sched.control import NotFound, find_job, find_watcher

    if kind == "job":
        job = find_job(dictionary, name)
        users = sorted(w.name for w in dictionary.watchers() if w.executor_job == name)
        if users:
            raise DefinitionsError(
                f"job {name!r} is the executor of watcher(s) {', '.join(users)}: remove or "
                "change those first; nothing was removed"
            )
        one = _one_job(job)
        dictionary.delete_definition("job", name)
    elif kind == "watcher":
        one = _one_watcher(find_watcher(dictionary, name))
        dictionary.delete_definition("watcher", name)
    else:
        loader = dictionary.loader(name)
        if loader is None:
            near = difflib.get_close_matches(name, [x.name for x in dictionary.loaders()], n=5)
            hint = f"; did you mean: {', '.join(near)}" if near else ""
            raise NotFound(f"no loader named {name!r}{hint}")
        users = sorted(j.name for j in dictionary.jobs()
                       if j.kind == "LOAD" and j.action.strip() == name)  # fmt: skip
        if users:
            raise DefinitionsError(
                f"loader {name!r} is loaded by job(s) {', '.join(users)}: remove or change "
                "those first; nothing was removed"
            )
        one = {"loader": {name: loader_table(loader)}}
        dictionary.delete_loader(name)
    return f"# {kind} {name}, removed by `redctl db remove`\n" + tomli_w.dumps(one)


def _one_job(j: JobDef) -> dict[str, Any]:
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
    return {"job": {j.name: t}}


def _one_watcher(w: WatcherDef) -> dict[str, Any]:
    t: dict[str, Any] = {
        "schema": w.schema,
        "kind": w.kind,
        ("pattern" if w.kind == "FILE" else "query"): w.watch_text,
        "interval": w.check_interval,
        "executor": w.executor_job,
        "active": w.active,
    }
    if w.description:
        t["description"] = w.description
    return {"watcher": {w.name: t}}
