"""The REST API's one error table: which redpss error is which HTTP status.

Routes raise what :mod:`redpss.control` and :mod:`redpss.sched.control` raise; one exception
handler (:func:`install`) turns it into ``{"detail": "..."}`` with the status of the first row of
:data:`TABLE` whose error class matches, and the OpenAPI schema documents the same rows
(:func:`responses`). An action's audit line names the row's ``outcome``. Token checks (401,
403) and bad parameters (422, FastAPI's) are the only statuses raised elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from redpss.errors import (
    DictionaryError,
    NotFound,
    RedpssError,
    RemoteError,
    SupervisorError,
    WireError,
)

__all__ = ["TABLE", "ErrorBody", "ErrorRule", "install", "responses", "rule_for"]


class ErrorBody(BaseModel):
    """The body of every error answer."""

    detail: str


@dataclass(frozen=True)
class ErrorRule:
    """One row: errors of class ``error`` (and its subclasses) answer ``status``."""

    error: type[RedpssError]
    status: int
    outcome: str
    description: str


TABLE: tuple[ErrorRule, ...] = (
    ErrorRule(NotFound, 404, "not found", "no such job, watcher or run (the nearest names given)"),
    ErrorRule(DictionaryError, 503, "unavailable", "the dictionary does not answer"),
    ErrorRule(SupervisorError, 503, "unavailable", "the instance's supervisord does not answer"),
    ErrorRule(RemoteError, 409, "refused", "refused by the role that would do it (the reason)"),
    ErrorRule(WireError, 503, "unavailable", "sched or jexec does not answer"),
    ErrorRule(RedpssError, 409, "refused", "refused (the reason)"),
)
"""First match wins: a subclass's row stands before its base class's."""

AUTH: dict[int, str] = {
    401: "no token, or an unknown one",
    403: "the token's role may not do this (a reader calling an action)",
}


def rule_for(exc: RedpssError) -> ErrorRule:
    """The row of :data:`TABLE` for ``exc`` (its last row matches every redpss error)."""
    return next(rule for rule in TABLE if isinstance(exc, rule.error))


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a route that may answer ``statuses`` (from the table and
    :data:`AUTH`), each with the rows that give it."""
    doc: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        why = [r.description for r in TABLE if r.status == status]
        text = AUTH.get(status) or "; ".join(dict.fromkeys(why))
        doc[status] = {"model": ErrorBody, "description": text}
    return doc


def _answer(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RedpssError)
    return JSONResponse({"detail": str(exc)}, status_code=rule_for(exc).status)


def install(app: FastAPI) -> None:
    """Answer every redpss error a route raises by :data:`TABLE`."""
    app.add_exception_handler(RedpssError, _answer)
