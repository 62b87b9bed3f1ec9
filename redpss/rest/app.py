"""The ASGI app of the REST API: routes, token checks, the audit of every action.

Every route calls :mod:`redpss.control` or :mod:`redpss.sched.control` — the same functions
``redctl`` calls — and only shapes the result as JSON. ``create_app()`` is what gunicorn loads
(``redpss.rest.app:create_app()``); the instance comes from ``$REDENV``/``$REDHOME``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from redpss import __version__, control
from redpss.config import Config
from redpss.dictionary import SCHEMA_VERSION, Dictionary
from redpss.dictionary.jobs import RunRecord
from redpss.errors import DictionaryError, RedpssError, SupervisorError
from redpss.instance import Instance, resolve_instance
from redpss.rest import audit_path, metrics, tokens_path, ui, views
from redpss.rest.audit import write_audit
from redpss.rest.models import ERRORS, Changed, Health, Status, Toggled, Version
from redpss.rest.tokens import OPERATOR, TokenInfo, TokenStore
from redpss.sched import control as jobs

__all__ = ["create_app"]

log = logging.getLogger(__name__)

T = TypeVar("T")
RUN_STATES = ("QUEUED", "RUNNING", "OK", "FAILED", "TIMEOUT", "ABORTED", "SKIPPED", "KILLED")
# a time filter is applied to the newest runs up to this many (the dictionary pages by count)
TIME_SCAN = 10_000
# /api/status answers from a snapshot at most this old (per worker): a status costs several
# supervisord RPCs and a dictionary read, and a status page polls it from every open screen
STATUS_TTL = 1.0
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: ERRORS[401] | {"description": "no such name"}}
CONFLICT: dict[int | str, dict[str, Any]] = {409: ERRORS[401] | {"description": "refused"}}


class _Api:
    """What the routes share: the instance, its configuration, the token store."""

    def __init__(self, inst: Instance, config: Config) -> None:
        self.inst = inst
        self.config = config
        self.tokens = TokenStore(tokens_path(inst))
        self.audit = audit_path(inst)
        self._status: tuple[float, dict[str, Any]] | None = None
        self._status_lock = threading.Lock()

    def status(self) -> dict[str, Any]:
        """The status document; older than :data:`STATUS_TTL`, it is refreshed in the background
        (the request that notices gets the previous one, so no request waits for the refresh)."""
        snap = self._status
        if snap is None:  # first request, or after an action: compute now
            with self._status_lock:
                self._refresh()
            snap = self._status
            assert snap is not None
        elif time.monotonic() - snap[0] > STATUS_TTL and self._status_lock.acquire(blocking=False):
            threading.Thread(target=self._refresh_and_release, daemon=True).start()
        return snap[1]

    def _refresh(self) -> None:
        self._status = (time.monotonic(), _status_doc(self))

    def _refresh_and_release(self) -> None:
        try:
            self._refresh()
        except RedpssError as exc:
            log.warning("status not refreshed: %s", exc)
        finally:
            self._status_lock.release()

    @contextlib.contextmanager
    def dictionary(self) -> Iterator[Dictionary]:
        try:
            with control.open_instance_dictionary(self.inst, self.config) as d:
                yield d
        except DictionaryError as exc:
            raise HTTPException(503, f"dictionary: {exc}") from exc

    def act(self, request: Request, who: TokenInfo, what: str, action: Callable[[], T]) -> T:
        """Run ``action``; audit it with its result; map redpss errors to HTTP errors."""
        try:
            result = action()
        except HTTPException as exc:
            self._audit(request, who.name, what, f"error {exc.status_code}: {exc.detail}")
            raise
        except jobs.NotFound as exc:
            self._audit(request, who.name, what, f"not found: {exc}")
            raise HTTPException(404, str(exc)) from exc
        except (DictionaryError, SupervisorError) as exc:
            self._audit(request, who.name, what, f"unavailable: {exc}")
            raise HTTPException(503, str(exc)) from exc
        except RedpssError as exc:
            self._audit(request, who.name, what, f"refused: {exc}")
            raise HTTPException(409, str(exc)) from exc
        self._status = None  # an action may change the status: no stale snapshot
        self._audit(request, who.name, what, "ok")
        return result

    def _audit(self, request: Request, who: str, what: str, result: str) -> None:
        client = request.client.host if request.client else None
        try:
            write_audit(self.audit, who=who, what=what, result=result, client=client)
        except OSError as exc:  # the audit must not hide the action's own result
            log.error("audit log %s not written: %s", self.audit, exc)


_bearer = HTTPBearer(auto_error=False, description="a token from `restctl token add`")


def _api(request: Request) -> _Api:
    api: _Api = request.app.state.api
    return api


def reader(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenInfo:
    """Any valid token (reader or operator); else 401."""
    api = _api(request)
    info = api.tokens.check(creds.credentials) if creds is not None else None
    if info is None:
        if request.method != "GET":
            api._audit(request, "-", f"{request.method} {request.url.path}", "denied 401")
        raise HTTPException(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})
    return info


def operator(request: Request, who: Annotated[TokenInfo, Depends(reader)]) -> TokenInfo:
    """An operator token; a reader's is 403 (and audited)."""
    if who.role != OPERATOR:
        _api(request)._audit(request, who.name, f"{request.method} {request.url.path}", "403")
        raise HTTPException(403, f"token {who.name!r} is a {who.role}; this needs an operator")
    return who


Reader = Annotated[TokenInfo, Depends(reader)]
Operator = Annotated[TokenInfo, Depends(operator)]
ApiDep = Annotated[_Api, Depends(_api)]


def _iso(value: Any) -> Any:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else value


def _plain(obj: Any) -> dict[str, Any]:
    return {k: _iso(v) for k, v in asdict(obj).items()}


def _run_rows(runs: list[RunRecord]) -> list[dict[str, Any]]:
    return [_plain(r) for r in runs]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _status_doc(api: _Api) -> dict[str, Any]:
    st = control.status(api.inst, api.config)
    return {
        "instance": st.instance,
        "state": st.summary,
        "exit_code": st.exit_code,
        "suspended": st.suspended,
        "version": __version__,
        "roles": [asdict(r) for r in st.roles],
    }


def _add_read_routes(app: FastAPI) -> None:  # noqa: C901 - one small function per route
    @app.get("/health", response_model=Health, tags=["status"])
    def health(api: ApiDep) -> dict[str, Any]:
        """The app answers (for load balancers and container healthchecks; no token)."""
        return {"status": "ok", "instance": api.inst.name}

    @app.get("/api/status", response_model=Status, responses=ERRORS, tags=["status"])
    def status(api: ApiDep, _: Reader) -> dict[str, Any]:
        """Instance and roles with ALERT 0/1/2, as ``redctl status``."""
        try:
            return api.status()
        except SupervisorError as exc:
            raise HTTPException(503, str(exc)) from exc

    @app.get("/api/version", response_model=Version, responses=ERRORS, tags=["status"])
    def version(api: ApiDep, _: Reader) -> dict[str, Any]:
        """Versions, as ``redctl version``."""
        with api.dictionary() as d:
            return {"redpss": __version__, "dictionary_schema": d.version() or SCHEMA_VERSION,
                    "instance": api.inst.name}  # fmt: skip

    @app.get("/api/show", responses=ERRORS, tags=["status"])
    def show(api: ApiDep, _: Reader) -> dict[str, Any]:
        """Pools, running runs and next runs, as ``redctl show`` (from the running sched)."""
        try:
            return jobs.show(api.config)
        except RedpssError as exc:
            raise HTTPException(503, str(exc)) from exc

    @app.get("/api/jobs", responses=ERRORS, tags=["jobs"])
    def list_jobs(api: ApiDep, _: Reader) -> list[dict[str, Any]]:
        """Every job with its schedule and last run (``list_db_jobs``)."""
        with api.dictionary() as d:
            return jobs.list_jobs(d)

    @app.get("/api/jobs/{name}", responses=ERRORS | NOT_FOUND, tags=["jobs"])
    def job(api: ApiDep, _: Reader, name: str) -> dict[str, Any]:
        """One job's definition and its newest runs."""
        with api.dictionary() as d:
            try:
                found = jobs.find_job(d, name)
            except jobs.NotFound as exc:
                raise HTTPException(404, str(exc)) from exc
            return {"job": _plain(found), "runs": _run_rows(d.runs(name=name, limit=20))}

    @app.get("/api/watchers", responses=ERRORS, tags=["watchers"])
    def list_watchers(api: ApiDep, _: Reader) -> list[dict[str, Any]]:
        """Every watcher (``list_db_watcher``)."""
        with api.dictionary() as d:
            return jobs.list_watchers(d)

    @app.get("/api/watchers/errors", responses=ERRORS | NOT_FOUND, tags=["watchers"])
    def we_list(api: ApiDep, _: Reader, watcher: str | None = None) -> list[dict[str, Any]]:
        """Watcher executor errors (``we_list_error [WATCHER]``)."""
        with api.dictionary() as d:
            try:
                return jobs.exec_error_dicts(jobs.we_list_error(d, watcher))
            except jobs.NotFound as exc:
                raise HTTPException(404, str(exc)) from exc

    @app.get("/api/watchers/{name}", responses=ERRORS | NOT_FOUND, tags=["watchers"])
    def watcher(api: ApiDep, _: Reader, name: str) -> dict[str, Any]:
        """One watcher's definition, its newest runs and its executor errors."""
        with api.dictionary() as d:
            try:
                found = jobs.find_watcher(d, name)
            except jobs.NotFound as exc:
                raise HTTPException(404, str(exc)) from exc
            return {
                "watcher": _plain(found),
                "runs": _run_rows(d.runs(name=name, watcher=True, limit=20)),
                "errors": jobs.exec_error_dicts(d.exec_errors(name)),
            }

    @app.get("/api/runs", responses=ERRORS, tags=["runs"])
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
        """Run logs, newest first: by job (or watcher), state, time range (queued), paged."""
        timed = since is not None or until is not None
        lo, hi = _utc(since), _utc(until)
        with api.dictionary() as d:
            rows = d.runs(
                name=job,
                states=tuple(s.upper() for s in state) if state else None,
                watcher=watcher,
                limit=TIME_SCAN if timed else offset + limit,
            )
        if timed:
            rows = [
                r
                for r in rows
                if (lo is None or r.queued_at >= lo) and (hi is None or r.queued_at < hi)
            ]
        return {"offset": offset, "limit": limit, "runs": _run_rows(rows[offset : offset + limit])}

    @app.get("/api/landing", responses=ERRORS, tags=["landing"])
    def landing(api: ApiDep, _: Reader) -> dict[str, int]:
        """Files per landing folder (input, work, error, archive)."""
        return views.landing_counts(api.inst)

    @app.get("/api/landing/errors", responses=ERRORS, tags=["landing"])
    def landing_errors(
        api: ApiDep,
        _: Reader,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[dict[str, Any]]:
        """Files in ``error/`` with the reason from their ``*.error.json`` sidecar."""
        return views.landing_errors(api.inst, limit=limit, offset=offset)

    @app.get("/api/sendmail", responses=ERRORS, tags=["services"])
    def sendmail(api: ApiDep, _: Reader) -> dict[str, int]:
        """Mails per SENDMAIL spool folder (``queue``: waiting for delivery; ``dead``: given up)."""
        return views.sendmail_counts(api.inst)

    @app.get("/metrics", response_class=PlainTextResponse, responses=ERRORS, tags=["status"])
    def prometheus(api: ApiDep, _: Reader) -> PlainTextResponse:
        """Prometheus text format: runs by state, pools, queues, landing files, heartbeats."""
        return PlainTextResponse(
            metrics.render(api.inst, api.config),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    @app.get("/ui", response_class=HTMLResponse, include_in_schema=False)
    def status_page(api: ApiDep) -> HTMLResponse:
        """The status page; it reads the API with the token the operator gives it."""
        return HTMLResponse(ui.page(api.inst.name))


def _add_action_routes(app: FastAPI) -> None:
    acts = ERRORS | NOT_FOUND | CONFLICT

    @app.post("/api/jobs/{name}/toggle", response_model=Toggled, responses=acts, tags=["jobs"])
    def toggle_job(request: Request, api: ApiDep, who: Operator, name: str) -> dict[str, Any]:
        """Flip ACTIVE of a job (``toggle_db_job``)."""
        with api.dictionary() as d:
            active = api.act(
                request, who, f"toggle job {name}", lambda: jobs.toggle(d, "job", name)
            )
        return {"name": name, "active": active}

    @app.post("/api/jobs/{name}/start", responses=acts, tags=["jobs"])
    def start_job(
        request: Request, api: ApiDep, who: Operator, name: str, scheduled_only: bool = False
    ) -> dict[str, Any]:
        """Start a job now (``start_db_job``; ``scheduled_only``: ``start_job``)."""
        with api.dictionary() as d:
            return api.act(
                request,
                who,
                f"start job {name}",
                lambda: jobs.start_job(api.config, d, name, scheduled_only=scheduled_only),
            )

    @app.post(
        "/api/watchers/{name}/toggle", response_model=Toggled, responses=acts, tags=["watchers"]
    )
    def toggle_watcher(request: Request, api: ApiDep, who: Operator, name: str) -> dict[str, Any]:
        """Flip ACTIVE of a watcher (``toggle_db_watcher``)."""
        with api.dictionary() as d:
            active = api.act(
                request, who, f"toggle watcher {name}", lambda: jobs.toggle(d, "watcher", name)
            )
        return {"name": name, "active": active}

    @app.post("/api/watchers/errors/reset", response_model=Changed, responses=acts,
              tags=["watchers"])  # fmt: skip
    def we_reset(
        request: Request,
        api: ApiDep,
        who: Operator,
        watcher: str | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Clear executor errors (``we_reset_error``): of one watcher, one key, or all."""
        with api.dictionary() as d:
            count = api.act(
                request,
                who,
                f"we_reset_error {watcher or '--all'}{f' --key {key}' if key else ''}",
                lambda: jobs.we_reset_error(d, watcher, key),
            )
        return {"action": "we_reset_error", "changed": count > 0, "detail": {"reset": count}}

    @app.post("/api/runs/{run_id}/kill", responses=acts, tags=["jobs"])
    def kill_run(request: Request, api: ApiDep, who: Operator, run_id: int) -> dict[str, Any]:
        """End one run (``redctl kill``): its command's process group, or its statement;
        recorded KILLED with the token's name. 409 when it is not running or is a load."""
        by = f"token {who.name} with the REST API"
        return api.act(
            request, who, f"kill {run_id}", lambda: jobs.kill_run(api.config, run_id, by=by)
        )

    def _instance_action(name: str, fn: Callable[[Instance], bool | None], doc: str) -> None:
        @app.post(f"/api/{name}", response_model=Changed, responses=acts, tags=["instance"],
                  summary=doc, name=name)  # fmt: skip
        def route(request: Request, api: ApiDep, who: Operator) -> dict[str, Any]:
            changed = api.act(request, who, name, lambda: fn(api.inst))
            return {"action": name, "changed": changed is not False}

    _instance_action("suspend", control.suspend, "Suspend: no job or watcher is started")
    _instance_action("resume", control.resume, "End the suspended mode")
    _instance_action("reload", jobs.reload, "Ask jmon to re-read the definitions now")


def create_app(inst: Instance | None = None) -> FastAPI:
    """The app for ``inst`` (default: the instance of ``$REDENV``/``$REDHOME``)."""
    inst = inst if inst is not None else resolve_instance(None).require()
    app = FastAPI(
        title=f"redpss REST API ({inst.name})",
        version=__version__,
        description="Status and control of one RED-PSS instance; see docs/rest.md.",
    )
    app.state.api = _Api(inst, inst.load_config())

    @app.exception_handler(RedpssError)
    def _redpss_error(_request: Request, exc: RedpssError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    _add_read_routes(app)
    _add_action_routes(app)
    return app
