"""What every route of the REST API shares: the instance and its configuration, the token
checks, the audit of actions and the access log.

The access log is ``log/REST/access-YYYY-MM-DD.log``: one line per request — time (UTC), client,
token name, method, path with query, status, latency — written by the worker that answered it
through :class:`redpss.logs.DailyFile` (one ``O_APPEND`` write a line: lines of several workers
never interleave; a file a day, purged after ``log_retention`` days with the other logs).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from redpss import status
from redpss.config import Config
from redpss.dictionary import Dictionary, open_instance_dictionary
from redpss.errors import RedpssError
from redpss.instance import Instance
from redpss.logs import DailyFile
from redpss.rest import audit_path, rest_log_dir, tokens_path
from redpss.rest.audit import write_audit
from redpss.rest.errors import rule_for
from redpss.rest.tokens import OPERATOR, TokenInfo, TokenStore

__all__ = [
    "STATUS_TTL",
    "Api",
    "ApiDep",
    "Operator",
    "Reader",
    "access_line",
    "log_access",
    "operator",
    "reader",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
# /api/status answers from a snapshot at most this old (per worker): a status costs several
# supervisord RPCs and a dictionary read, and a status page polls it from every open screen
STATUS_TTL = 1.0


class Api:
    """What the routes share: the instance, its configuration, the token store."""

    def __init__(self, inst: Instance, config: Config) -> None:
        self.inst = inst
        self.config = config
        self.tokens = TokenStore(tokens_path(inst))
        self.audit = audit_path(inst)
        self.access = _access_logger(rest_log_dir(inst))
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
        from dataclasses import asdict

        report = status.status(self.inst, self.config).report()
        self._status = (time.monotonic(), asdict(report))

    def _refresh_and_release(self) -> None:
        try:
            self._refresh()
        except RedpssError as exc:
            log.warning("status not refreshed: %s", exc)
        finally:
            self._status_lock.release()

    @contextlib.contextmanager
    def dictionary(self) -> Iterator[Dictionary]:
        """The instance's dictionary for one request (its errors: the error table)."""
        with open_instance_dictionary(self.inst, self.config) as d:
            yield d

    def act(self, request: Request, who: TokenInfo, what: str, action: Callable[[], T]) -> T:
        """Run ``action``; audit it with its outcome (the error table's word when it fails)."""
        try:
            result = action()
        except HTTPException as exc:
            self.audit_line(request, who.name, what, f"error {exc.status_code}: {exc.detail}")
            raise
        except RedpssError as exc:
            self.audit_line(request, who.name, what, f"{rule_for(exc).outcome}: {exc}")
            raise
        self._status = None  # an action may change the status: no stale snapshot
        self.audit_line(request, who.name, what, "ok")
        return result

    def audit_line(self, request: Request, who: str, what: str, result: str) -> None:
        """One line in ``log/audit.log`` for this request."""
        client = request.client.host if request.client else None
        try:
            write_audit(self.audit, who=who, what=what, result=result, client=client)
        except OSError as exc:  # the audit must not hide the action's own result
            log.error("audit log %s not written: %s", self.audit, exc)


_bearer = HTTPBearer(auto_error=False, description="a token from `restctl token add`")


def _api(request: Request) -> Api:
    api: Api = request.app.state.api
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
            api.audit_line(request, "-", f"{request.method} {request.url.path}", "denied 401")
        raise HTTPException(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})
    request.state.token = info.name  # for the access log
    return info


def operator(request: Request, who: Annotated[TokenInfo, Depends(reader)]) -> TokenInfo:
    """An operator token; a reader's is 403 (and audited)."""
    if who.role != OPERATOR:
        _api(request).audit_line(request, who.name, f"{request.method} {request.url.path}", "403")
        raise HTTPException(403, f"token {who.name!r} is a {who.role}; this needs an operator")
    return who


Reader = Annotated[TokenInfo, Depends(reader)]
Operator = Annotated[TokenInfo, Depends(operator)]
ApiDep = Annotated[Api, Depends(_api)]


def access_line(
    *, when: float, client: str, token: str, method: str, target: str, status: int, ms: float
) -> str:
    """One line of the access log (fields separated by one space; the target is quoted)."""
    stamp = datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")
    return f'{stamp} {client} token={token} "{method} {target}" {status} {ms:.1f}ms'


def _access_logger(folder: Path) -> logging.Logger:
    """The access log's logger: its own daily file, not gunicorn's error log (set up once per
    worker: the app factory is the worker's entry point)."""
    logger = logging.getLogger("redpss.rest.access")
    if not logger.handlers:
        handler = DailyFile(str(folder), "access")
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


async def log_access(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """HTTP middleware: answer the request, then write its access log line."""
    began = time.time()
    clock = time.perf_counter()
    response = await call_next(request)
    ms = (time.perf_counter() - clock) * 1000
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    line = access_line(
        when=began,
        client=request.client.host if request.client else "-",
        token=getattr(request.state, "token", "-"),
        method=request.method,
        target=target,
        status=response.status_code,
        ms=ms,
    )
    _api(request).access.info("%s", line)
    return response
