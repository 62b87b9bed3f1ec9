"""The action routes of the REST API (operator tokens): each one is a redctl command, audited
with the token's name and the outcome of the error table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel

from redpss import control
from redpss.instance import Instance
from redpss.rest.api import ApiDep, Operator
from redpss.rest.errors import responses
from redpss.sched import control as jobs

__all__ = ["Changed", "Toggled", "add_action_routes", "by_token"]

ACTS = responses(401, 403, 404, 409, 503)


class Toggled(BaseModel):
    """A job or watcher after ``toggle``."""

    name: str
    active: bool


class Changed(BaseModel):
    """An action that may have had nothing to do (suspend while suspended)."""

    action: str
    changed: bool
    detail: dict[str, Any] = {}


def by_token(name: str) -> str:
    """Who a run's message names when a token starts or kills it."""
    return f"token {name} with the REST API"


def add_action_routes(app: FastAPI) -> None:
    """Add the action routes to ``app``."""

    @app.post("/api/jobs/{name}/toggle", response_model=Toggled, responses=ACTS, tags=["jobs"])
    def toggle_job(request: Request, api: ApiDep, who: Operator, name: str) -> dict[str, Any]:
        """Flip ACTIVE of a job (``toggle_db_job``)."""
        with api.dictionary() as d:
            active = api.act(
                request, who, f"toggle job {name}", lambda: jobs.toggle(d, "job", name)
            )
        return {"name": name, "active": active}

    @app.post("/api/jobs/{name}/start", responses=ACTS, tags=["jobs"])
    def start_job(
        request: Request, api: ApiDep, who: Operator, name: str, scheduled_only: bool = False
    ) -> dict[str, Any]:
        """Start a job now (``start_db_job``; ``scheduled_only``: ``start_job``); the run's
        message names the token."""
        with api.dictionary() as d:
            return api.act(
                request,
                who,
                f"start job {name}",
                lambda: jobs.start_job(
                    api.config, d, name, scheduled_only=scheduled_only, by=by_token(who.name)
                ),
            )

    @app.post(
        "/api/watchers/{name}/toggle", response_model=Toggled, responses=ACTS, tags=["watchers"]
    )
    def toggle_watcher(request: Request, api: ApiDep, who: Operator, name: str) -> dict[str, Any]:
        """Flip ACTIVE of a watcher (``toggle_db_watcher``)."""
        with api.dictionary() as d:
            active = api.act(
                request, who, f"toggle watcher {name}", lambda: jobs.toggle(d, "watcher", name)
            )
        return {"name": name, "active": active}

    @app.post("/api/watchers/errors/reset", response_model=Changed, responses=ACTS,
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

    @app.post("/api/runs/{run_id}/kill", responses=ACTS, tags=["runs"])
    def kill_run(request: Request, api: ApiDep, who: Operator, run_id: int) -> dict[str, Any]:
        """End one run (``redctl kill``): its command's process group, or its statement;
        recorded KILLED with the token's name. 409 when it is not running or is a load."""
        by = by_token(who.name)
        return api.act(
            request, who, f"kill {run_id}", lambda: jobs.kill_run(api.config, run_id, by=by)
        )

    def _instance_action(name: str, fn: Callable[[Instance], bool | None], doc: str) -> None:
        @app.post(f"/api/{name}", response_model=Changed, responses=ACTS, tags=["instance"],
                  summary=doc, name=name)  # fmt: skip
        def route(request: Request, api: ApiDep, who: Operator) -> dict[str, Any]:
            changed = api.act(request, who, name, lambda: fn(api.inst))
            return {"action": name, "changed": changed is not False}

    _instance_action("suspend", control.suspend, "Suspend: no job or watcher is started")
    _instance_action("resume", control.resume, "End the suspended mode")
    _instance_action("reload", jobs.reload, "Ask jmon to re-read the definitions now")
