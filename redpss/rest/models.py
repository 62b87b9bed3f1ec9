"""The response bodies of the API that have a fixed shape (pydantic models → OpenAPI)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = [
    "ERRORS",
    "Changed",
    "ErrorBody",
    "Health",
    "RoleRow",
    "Status",
    "Toggled",
    "Version",
]


class ErrorBody(BaseModel):
    """Every error: 401, 403, 404, 409, 503."""

    detail: str


class Health(BaseModel):
    """``/health``: the app answers (no token needed)."""

    status: str
    instance: str


class Version(BaseModel):
    """Versions of redpss and of the dictionary schema."""

    redpss: str
    dictionary_schema: int
    instance: str


class RoleRow(BaseModel):
    """One role, as ``redctl status`` shows it."""

    role: str
    state: str
    pid: int
    uptime: float | None
    heartbeat_age: float | None
    restarts: int
    alert: int
    reason: str
    healthy: bool


class Status(BaseModel):
    """The instance, as ``redctl status`` shows it; ``exit_code`` is redctl's."""

    instance: str
    state: str
    exit_code: int
    suspended: bool
    version: str
    roles: list[RoleRow]


class Toggled(BaseModel):
    """A job or watcher after ``toggle``."""

    name: str
    active: bool


class Changed(BaseModel):
    """An action that may have had nothing to do (suspend while suspended)."""

    action: str
    changed: bool
    detail: dict[str, Any] = {}


def _err(text: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": text}


# documented on every route that needs a token
ERRORS: dict[int | str, dict[str, Any]] = {
    401: _err("no token, or an unknown one"),
    403: _err("the token's role may not do this"),
    503: _err("the dictionary or the scheduler does not answer"),
}
