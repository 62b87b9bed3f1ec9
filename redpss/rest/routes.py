"""The read routes of the REST API (any token): status, definitions, runs, landing zone, mail
spool, log messages, chart data, metrics.

Every route calls what ``redctl`` calls and only shapes the result; errors are answered by the
one table of :mod:`redpss.rest.errors`.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, Query, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from redpss import __version__
from redpss.dictionary import SCHEMA_VERSION, Dictionary
from redpss.dictionary.jobs import RunRecord
from redpss.errors import NotFound
from redpss.rest import charts, metrics, views
from redpss.rest.api import ApiDep, Reader
from redpss.rest.errors import responses
from redpss.sched import control as jobs
from redpss.status import StatusReport

__all__ = ["RUN_STATES", "TIME_SCAN", "add_read_routes", "known_schema", "plain"]

RUN_STATES = ("QUEUED", "RUNNING", "OK", "FAILED", "TIMEOUT", "ABORTED", "SKIPPED", "KILLED")
# a time filter is applied to the newest runs up to this many (the dictionary pages by count)
TIME_SCAN = 10_000
MAX_JOB_OFFSET = 1_000_000
"""The last ``offset`` of /api/jobs (a page past every job an instance has; a number past
SQLite's 64-bit integers was a 500)."""
READ = responses(401, 503)
READ_ONE = responses(401, 404, 503)


class Health(BaseModel):
    """``/health``: the app answers (no token needed)."""

    status: str
    instance: str


class Whoami(BaseModel):
    """The caller's token: its name and role (reader or operator)."""

    name: str
    role: str


class Version(BaseModel):
    """Versions of redpss and of the dictionary schema."""

    redpss: str
    dictionary_schema: int
    instance: str


def _iso(value: Any) -> Any:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else value


def plain(obj: Any) -> dict[str, Any]:
    """A dataclass as a JSON-ready dict (times in ISO 8601)."""
    return {k: _iso(v) for k, v in asdict(obj).items()}


def _run_rows(runs: list[RunRecord]) -> list[dict[str, Any]]:
    return [plain(r) | {"duration": _duration(r)} for r in runs]


def _duration(r: RunRecord) -> float | None:
    if r.started_at is None:
        return None
    end = r.ended_at or datetime.now(r.started_at.tzinfo)
    return round((end - r.started_at).total_seconds(), 3)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def known_schema(d: Dictionary, schema: str | None) -> None:
    """:class:`NotFound` naming the target schemas when ``schema`` is not one of them."""
    if schema is None:
        return
    known = d.schemas()
    if schema.upper() not in known:
        raise NotFound(f"no target schema {schema!r}; schemas: {', '.join(known) or 'none yet'}")


def add_read_routes(app: FastAPI) -> None:
    """Add the read routes to ``app``."""
    _status_routes(app)
    _definition_routes(app)
    _run_routes(app)
    _service_routes(app)


def _status_routes(app: FastAPI) -> None:
    @app.get("/health", response_model=Health, tags=["status"])
    def health(api: ApiDep) -> dict[str, Any]:
        """The app answers (for load balancers and container healthchecks; no token)."""
        return {"status": "ok", "instance": api.inst.name}

    @app.get("/api/status", response_model=StatusReport, responses=READ, tags=["status"])
    def status(api: ApiDep, _: Reader) -> dict[str, Any]:
        """Instance and roles with ALERT 0/1/2, as ``redctl --json status``."""
        return api.status()

    @app.get("/api/whoami", response_model=Whoami, responses=READ, tags=["status"])
    def whoami(who: Reader) -> dict[str, Any]:
        """The token's name and role (the status page shows an operator's buttons)."""
        return {"name": who.name, "role": who.role}

    @app.get("/api/version", response_model=Version, responses=READ, tags=["status"])
    def version(api: ApiDep, _: Reader) -> dict[str, Any]:
        """Versions, as ``redctl version``."""
        with api.dictionary() as d:
            return {"redpss": __version__, "dictionary_schema": d.version() or SCHEMA_VERSION,
                    "instance": api.inst.name}  # fmt: skip

    @app.get("/api/show", responses=READ, tags=["status"])
    def show(api: ApiDep, _: Reader) -> dict[str, Any]:
        """Pools, running runs and next runs, as ``redctl show`` (from the running sched)."""
        return jobs.show(api.config)

    @app.get("/metrics", response_class=PlainTextResponse, responses=READ, tags=["status"])
    def prometheus(api: ApiDep, _: Reader) -> PlainTextResponse:
        """Prometheus text format: runs by state, pools, queues, landing files, heartbeats."""
        return PlainTextResponse(
            metrics.render(api.inst, api.config),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )


def _definition_routes(app: FastAPI) -> None:
    @app.get("/api/jobs", responses=READ, tags=["jobs"])
    def list_jobs(
        api: ApiDep,
        _: Reader,
        response: Response,
        limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
        offset: Annotated[int, Query(ge=0, le=MAX_JOB_OFFSET)] = 0,
    ) -> list[dict[str, Any]]:
        """Jobs by name with schedule, last state, next run and ALERT (``list_db_jobs``):
        every job, or ``limit`` of them from ``offset``; while more follow, the header
        ``Link: </api/jobs?limit=L&offset=N>; rel="next"`` names the next page."""
        with api.dictionary() as d:
            rows = jobs.list_jobs(d, limit=None if limit is None else limit + 1, offset=offset)
        if limit is not None and len(rows) > limit:
            del rows[limit:]
            nxt = f"/api/jobs?limit={limit}&offset={offset + limit}"
            response.headers["Link"] = f'<{nxt}>; rel="next"'
        return rows

    @app.get("/api/jobs/{name}", responses=READ_ONE, tags=["jobs"])
    def job(api: ApiDep, _: Reader, name: str) -> dict[str, Any]:
        """One job's definition and its newest runs."""
        with api.dictionary() as d:
            found = jobs.find_job(d, name)
            return {"job": plain(found), "runs": _run_rows(d.runs(name=name, limit=20))}

    @app.get("/api/watchers", responses=READ, tags=["watchers"])
    def list_watchers(api: ApiDep, _: Reader) -> list[dict[str, Any]]:
        """Every watcher with its executor error count (``list_db_watcher``)."""
        with api.dictionary() as d:
            return jobs.list_watchers(d)

    @app.get("/api/watchers/errors", responses=READ_ONE, tags=["watchers"])
    def we_list(api: ApiDep, _: Reader, watcher: str | None = None) -> list[dict[str, Any]]:
        """Watcher executor errors (``we_list_error [WATCHER]``)."""
        with api.dictionary() as d:
            return jobs.exec_error_dicts(jobs.we_list_error(d, watcher))

    @app.get("/api/watchers/{name}", responses=READ_ONE, tags=["watchers"])
    def watcher(api: ApiDep, _: Reader, name: str) -> dict[str, Any]:
        """One watcher's definition, its newest runs and its executor errors."""
        with api.dictionary() as d:
            found = jobs.find_watcher(d, name)
            return {
                "watcher": plain(found),
                "runs": _run_rows(d.runs(name=name, watcher=True, limit=20)),
                "errors": jobs.exec_error_dicts(d.exec_errors(name)),
            }

    @app.get("/api/loaders", responses=READ, tags=["landing"])
    def loaders(api: ApiDep, _: Reader) -> list[dict[str, Any]]:
        """Every loader: file pattern, target, format, and the jobs that load with it."""
        with api.dictionary() as d:
            users: dict[str, list[str]] = {}
            for j in d.jobs(kind="LOAD"):  # not 10 000 definitions of every kind
                users.setdefault(j.action.strip(), []).append(j.name)
            return [
                {"loader": ld.name, "pattern": ld.pattern, "schema": ld.schema,
                 "table": ld.table, "format": ld.format, "active": ld.active,
                 "jobs": users.get(ld.name, [])}
                for ld in d.loaders()
            ]  # fmt: skip


def _run_routes(app: FastAPI) -> None:
    @app.get("/api/runs", responses=READ, tags=["runs"])
    def runs(
        api: ApiDep,
        _: Reader,
        job: str | None = None,
        state: Annotated[list[str] | None, Query(description=f"one of {RUN_STATES}")] = None,
        watcher: bool = False,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    ) -> dict[str, Any]:
        """Run logs, newest first: by job (or watcher), state, time range (queued), paged;
        ``more`` says whether a next page exists."""
        lo, hi = _utc(since), _utc(until)
        with api.dictionary() as d:
            rows = d.runs(
                name=job or None,
                states=tuple(s.upper() for s in state) if state else None,
                watcher=watcher,
                limit=offset + limit + 1,
                since=lo,  # in the query (an index on SQLite): was TIME_SCAN rows read here
                until=hi,
            )
        page = rows[offset : offset + limit]
        return {"offset": offset, "limit": limit, "more": len(rows) > offset + limit,
                "runs": _run_rows(page)}  # fmt: skip

    @app.get("/api/runs/{run_id}", responses=READ_ONE, tags=["runs"])
    def run(api: ApiDep, _: Reader, run_id: int) -> dict[str, Any]:
        """One run (of a job or a watcher): its row, message, and its lines in the role logs."""
        with api.dictionary() as d:
            found = next((r for r in d.runs(limit=TIME_SCAN) if r.run_id == run_id), None)
            if found is None:
                found = next(
                    (r for r in d.runs(watcher=True, limit=TIME_SCAN) if r.run_id == run_id), None
                )
        if found is None:
            raise NotFound(f"no run {run_id} among the newest {TIME_SCAN} runs")
        return {"run": _run_rows([found])[0], "log": views.run_log_lines(api.inst, run_id)}

    @app.get("/api/log_messages", responses=READ_ONE, tags=["runs"])
    def log_messages(
        api: ApiDep,
        _: Reader,
        schema: str | None = None,
        level: Annotated[str | None, Query(pattern="^(ERROR|ALERT)$")] = None,
        since: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        """ERROR and ALERT lines of LOG_MESSAGES over all schemas (ALL_LOG_MESSAGES), newest
        first (``redctl log``); an unknown schema is 404."""
        with api.dictionary() as d:
            known_schema(d, schema)
            found = d.all_log_messages(
                limit, schema=schema, levels=(level,) if level else None, since=_utc(since)
            )
        return [plain(m) for m in found]

    @app.get("/api/charts/{name}", responses=READ_ONE, tags=["runs"])
    def chart(
        api: ApiDep, _: Reader, name: str, hours: Annotated[int, Query(ge=1, le=168)] = 24
    ) -> dict[str, Any]:
        """Data of a chart of the status page: ``runs_per_hour`` (by state),
        ``load_rows_per_hour``, ``durations`` (seconds per ended run, by job)."""
        make = {"runs_per_hour": charts.runs_per_hour,
                "load_rows_per_hour": charts.load_rows_per_hour,
                "durations": charts.durations}.get(name)  # fmt: skip
        if make is None:
            raise NotFound(f"no chart {name!r} (runs_per_hour, load_rows_per_hour, durations)")
        with api.dictionary() as d:
            return make(d, hours=hours)


def _service_routes(app: FastAPI) -> None:
    @app.get("/api/landing", responses=READ, tags=["landing"])
    def landing(api: ApiDep, _: Reader) -> dict[str, int]:
        """Files per landing folder (input, work, error, archive)."""
        return views.landing_counts(api.inst)

    @app.get("/api/landing/errors", responses=READ, tags=["landing"])
    def landing_errors(
        api: ApiDep,
        _: Reader,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[dict[str, Any]]:
        """Files in ``error/`` with the reason from their ``*.error.json`` sidecar."""
        return views.landing_errors(api.inst, limit=limit, offset=offset)

    @app.get("/api/sendmail", responses=READ, tags=["services"])
    def sendmail(api: ApiDep, _: Reader) -> dict[str, int]:
        """Mails per SENDMAIL spool folder (``queue``: waiting for delivery; ``dead``: given up)."""
        return views.sendmail_counts(api.inst)

    @app.get("/api/sendmail/mails", responses=READ, tags=["services"])
    def sendmail_mails(
        api: ApiDep, _: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> list[dict[str, Any]]:
        """Mails waiting (attempts, last error) and given up (the reason), newest first."""
        return views.sendmail_mails(api.inst, limit=limit)
