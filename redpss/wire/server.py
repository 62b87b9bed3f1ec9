"""The server side of the wire protocol: :class:`WireServer`, one thread per connection.

:class:`WireServer` frames, authenticates and dispatches to a handler object whose methods
``op_<name>(self, request, peer)`` are the policy; what a role offers is entirely in its
handler. ``request`` is the op's frozen dataclass (:mod:`redpss.wire.ops`), built from the
request's ``args`` by :func:`redpss.wire.args.parse` before the handler runs; a handler whose
first parameter is annotated ``dict[str, Any]`` gets the raw object instead.

A handler reports the caller's mistake by raising :class:`~redpss.errors.BadArgs` (reply code
``bad_args``) and a condition of its domain by :class:`~redpss.errors.RemoteError` with a code
of its own; anything else it raises — a TypeError or ValueError included — is a bug of ours:
an ``internal`` reply, and its traceback logged at ERROR here.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import logging
import selectors
import socket
import socketserver
import threading
import time
import typing
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Self

from redpss.errors import BadArgs, RemoteError, ServiceUnavailable, WireError
from redpss.wire.args import is_request, parse
from redpss.wire.connection import Connection
from redpss.wire.frames import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_LINE,
    DEFAULT_MAX_UNAUTHENTICATED,
    DEFAULT_PREAUTH_TIMEOUT,
    Peer,
    _decode_request,
    _error_reply,
    _request_args,
    _request_id,
    authorize,
    encode,
    local_address,
)

# The package's name, not __name__: log lines keep saying "redpss.wire" as before the split.
logger = logging.getLogger("redpss.wire")

_START_DEADLINE = 5.0
_JOIN_TIMEOUT = 5.0
_PROBE_INTERVAL = 0.1

Op = Callable[[dict[str, Any], Peer], Any]


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class WireServer(socketserver.ThreadingTCPServer):
    """A threaded line-JSON server dispatching ``op_<name>`` methods of ``handler``.

    Nothing is bound until :meth:`start`; :meth:`stop` is idempotent. One thread serves each
    connection, so handlers may block.
    """

    daemon_threads = True
    allow_reuse_address = True
    # stop() shuts connections down and joins their threads itself, with a deadline.
    block_on_close = False
    # The listen backlog: socketserver's 5 drops the SYN of the 7th connect of a burst while
    # the accept loop is busy (a loaded host), and the client waits 1, 3, 7 … s to retry; the
    # cap on unauthenticated connections, not the kernel, is what limits a burst here.
    request_queue_size = 128

    def __init__(
        self,
        handler: object,
        *,
        host: str,
        port: int,
        secret: str,
        max_line: int = DEFAULT_MAX_LINE,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        preauth_timeout: float = DEFAULT_PREAUTH_TIMEOUT,
        max_unauthenticated: int = DEFAULT_MAX_UNAUTHENTICATED,
        name: str = "wire",
    ) -> None:
        """Prepare a server; bind and serve with :meth:`start`.

        Every request must carry ``secret`` (loopback included); an empty one is refused here.
        """
        if not secret:
            raise ValueError("a wire server needs the instance secret (pss_secret)")
        if preauth_timeout <= 0 or max_unauthenticated < 1:
            raise ValueError("preauth_timeout and max_unauthenticated must be positive")
        if max_line < 1:
            raise ValueError(f"max_line must be positive, not {max_line}")
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, not {idle_timeout}")
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # BaseServer, not TCPServer: TCPServer would create the socket now, and an unstarted
        # server must own nothing that needs closing.
        socketserver.BaseServer.__init__(self, (host, port), Connection)
        self.host = host
        self.secret = secret
        self.max_line = max_line
        self.idle_timeout = idle_timeout
        self.preauth_timeout = preauth_timeout
        self.max_unauthenticated = max_unauthenticated
        self.name = name
        self.ops: dict[str, Op] = self._dispatch_table(handler)
        self._lock = threading.Lock()
        self._state = "new"
        self._thread: threading.Thread | None = None
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._unauthenticated: dict[socket.socket, float] = {}  # connection -> deadline
        self._stopping = threading.Event()
        self._loop_done = threading.Event()
        self._wake: tuple[socket.socket, socket.socket] | None = None

    def _dispatch_table(self, handler: object) -> dict[str, Op]:
        ops: dict[str, Op] = {"ping": self._ping}
        self.requests: dict[str, type[Any]] = {}
        for attr in dir(handler):
            if attr.startswith("op_") and len(attr) > 3:
                method = getattr(handler, attr)
                if callable(method):
                    request = _request_type(method)
                    if request is not None:
                        self.requests[attr[3:]] = request
                        method = _typed(method, request)
                    ops[attr[3:]] = method
        return ops

    def _ping(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        return {"pong": True, "server": self.name, "time": _utc_now()}

    @property
    def thread(self) -> threading.Thread | None:
        """The thread that accepts connections (None before :meth:`start`); role health
        watches it (a dead accept loop makes the role unhealthy)."""
        return self._thread

    @property
    def port(self) -> int:
        """The port the server is bound to (the requested one before :meth:`start`)."""
        return int(self.server_address[1])

    def start(self) -> None:
        """Bind, serve in a background thread, and return once the port accepts connections.

        Raises ServiceUnavailable naming the real cause (port in use, address not local …).
        """
        with self._lock:
            if self._state == "running":
                return
            if self._state == "stopped":
                raise WireError(f"{self.name} server was stopped; create a new one")
            self._bind()
            self._wake = socket.socketpair()
            self._state = "running"
            self._thread = threading.Thread(
                target=self._accept_loop,
                name=f"{self.name}-accept",
                daemon=True,
            )
            self._thread.start()
        try:
            self._wait_until_accepting()
        except BaseException:
            self.stop()
            raise
        logger.info("%s: listening on %s:%d", self.name, self.host, self.port)

    def _bind(self) -> None:
        host, port = self.host, self.port
        self.socket = socket.socket(self.address_family, self.socket_type)
        try:
            self.server_bind()
            self.server_activate()
        except OSError as exc:
            self.socket.close()
            raise ServiceUnavailable(_bind_problem(host, port, exc)) from exc

    def _wait_until_accepting(self) -> None:
        probe = local_address(self.host)
        deadline = time.monotonic() + _START_DEADLINE
        while True:
            try:
                with socket.create_connection((probe, self.port), timeout=_PROBE_INTERVAL):
                    return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise ServiceUnavailable(
                        f"{self.name} server on {self.host}:{self.port} does not accept "
                        f"connections after {_START_DEADLINE:g} s: {exc}"
                    ) from exc
            time.sleep(_PROBE_INTERVAL / 10)

    def stop(self) -> None:
        """Stop accepting, close open connections and join the threads; safe to repeat."""
        with self._lock:
            previous, self._state = self._state, "stopped"
            connections = dict(self._connections)
        if previous != "running":
            return
        self.shutdown()
        for sock in connections:
            with contextlib.suppress(OSError):  # already gone
                sock.shutdown(socket.SHUT_RDWR)
        current = threading.current_thread()
        for thread in [*connections.values(), self._thread]:
            if thread is not None and thread is not current:
                thread.join(_JOIN_TIMEOUT)
        self.server_close()
        logger.info("%s: stopped", self.name)

    def _accept_loop(self) -> None:
        """Accept connections until :meth:`shutdown`, and reap late unauthenticated ones.

        socketserver's ``serve_forever`` wakes every poll interval to look for a shutdown
        request; an idle role then spends CPU ten times a second for nothing. This loop sleeps
        until a connection arrives, the earliest pre-auth deadline passes, or shutdown writes
        to the wake-up socket.
        """
        assert self._wake is not None
        wake = self._wake[0]
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self.socket, selectors.EVENT_READ)
                selector.register(wake, selectors.EVENT_READ)
                timeout: float | None = None
                while not self._stopping.is_set():
                    accepted = False
                    for key, _ in selector.select(timeout):
                        if key.fileobj is wake:
                            with contextlib.suppress(OSError):
                                wake.recv(64)
                        elif not self._stopping.is_set():
                            self._accept_one()
                            accepted = True
                    self.service_actions()
                    timeout = self._until_next_deadline()
                    if accepted:  # its handler thread counts it as unauthenticated soon
                        timeout = (
                            self.preauth_timeout if timeout is None
                            else min(timeout, self.preauth_timeout)
                        )  # fmt: skip
        finally:
            self._loop_done.set()

    def _accept_one(self) -> None:
        """Accept one connection and hand it to its thread (socketserver's per-request path)."""
        try:
            request, client_address = self.get_request()
        except OSError:  # the client gave up between readiness and accept
            return
        try:
            self.process_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)

    def _until_next_deadline(self) -> float | None:
        """Seconds until the earliest pre-auth deadline (None: no connection waits)."""
        with self._lock:
            if not self._unauthenticated:
                return None
            earliest = min(self._unauthenticated.values())
        return max(0.0, earliest - time.monotonic()) + 0.001

    def shutdown(self) -> None:
        """Stop the accept loop and wait until it has ended (it may have died before)."""
        self._stopping.set()
        if self._wake is not None:
            with contextlib.suppress(OSError):
                self._wake[1].send(b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._loop_done.wait(_JOIN_TIMEOUT)

    def server_close(self) -> None:
        super().server_close()
        if self._wake is not None:
            for end in self._wake:
                end.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _register(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._state != "running":
                return False
            self._connections[sock] = threading.current_thread()
            return True

    def _unregister(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.pop(sock, None)
            self._unauthenticated.pop(sock, None)

    @property
    def unauthenticated(self) -> int:
        """How many connections have not yet sent a request with the right secret."""
        with self._lock:
            return len(self._unauthenticated)

    def _enter_preauth(self, sock: socket.socket) -> bool:
        """Count a new connection as unauthenticated; False when too many are already."""
        with self._lock:
            if len(self._unauthenticated) >= self.max_unauthenticated:
                return False
            self._unauthenticated[sock] = time.monotonic() + self.preauth_timeout
            return True

    def _leave_preauth(self, sock: socket.socket) -> None:
        with self._lock:
            self._unauthenticated.pop(sock, None)

    def service_actions(self) -> None:
        """Close connections that did not authenticate in time (the accept loop calls this)."""
        now = time.monotonic()
        with self._lock:
            late = [sock for sock, deadline in self._unauthenticated.items() if deadline < now]
            for sock in late:
                del self._unauthenticated[sock]
        for sock in late:
            logger.info(
                "%s: closing a connection without a request with the secret in %g s",
                self.name, self.preauth_timeout,
            )  # fmt: skip
            with contextlib.suppress(OSError):  # already gone
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log what escaped a connection thread (socketserver would print to stderr)."""
        logger.exception("%s: unexpected error serving %s", self.name, client_address)

    def _handle_line(self, line: bytes, peer: Peer) -> tuple[bytes, bool | None]:
        """Turn one request line into one encoded reply line.

        Also says whether the request proved the secret: True, False (``unauthorized``), or
        None when it was refused before the secret was looked at (not JSON, no ``id``).
        """
        req_id: str | int | None = None
        op = "?"
        verdict: bool | None = None
        try:
            request = _decode_request(line)
            req_id = _request_id(request)
            verdict = authorize(request.get("secret"), self.secret)
            if not verdict:
                raise RemoteError("unauthorized", "missing or wrong secret")
            op, fn = self._resolve(request)
            args = _request_args(request)
        except RemoteError as exc:
            self._log_rejected(peer, op, req_id, exc)
            return encode(_error_reply(req_id, exc.code, exc.message)), verdict
        except Exception:  # a bug here must cost one reply, never the connection
            return self._internal(req_id, op, peer, "request handling failed"), verdict
        return self._invoke(req_id, op, fn, args, peer), verdict

    def _resolve(self, request: dict[str, Any]) -> tuple[str, Op]:
        op = request.get("op")
        if not isinstance(op, str) or not op:
            raise RemoteError("bad_request", "request needs 'op', a non-empty string")
        fn = self.ops.get(op)
        if fn is None:
            known = ", ".join(sorted(self.ops))
            raise RemoteError("unknown_op", f"unknown op {op!r}; available ops: {known}")
        return op, fn

    def _invoke(
        self, req_id: str | int, op: str, fn: Op, args: dict[str, Any], peer: Peer
    ) -> bytes:
        started = time.monotonic()
        try:
            result = fn(args, peer)
        except BadArgs as exc:  # the caller's mistake, named
            rejected = BadArgs(f"bad arguments for {op!r}: {exc.message}")
            self._log_rejected(peer, op, req_id, rejected)
            return encode(_error_reply(req_id, rejected.code, rejected.message))
        except RemoteError as exc:
            self._log_rejected(peer, op, req_id, exc)
            return encode(_error_reply(req_id, exc.code, exc.message))
        except Exception:  # ours: a TypeError or ValueError here is a bug, not bad arguments
            return self._internal(req_id, op, peer, "handler failed")
        try:
            data = encode({"id": req_id, "ok": True, "result": result})
        except (TypeError, ValueError):
            return self._internal(req_id, op, peer, "result is not JSON-serialisable")
        elapsed = (time.monotonic() - started) * 1000
        logger.debug("%s: %s op=%s id=%r ok %.1f ms", self.name, peer, op, req_id, elapsed)
        return data

    def _log_rejected(self, peer: Peer, op: str, req_id: object, exc: RemoteError) -> None:
        level = logging.WARNING if exc.code == "unauthorized" else logging.INFO
        logger.log(
            level, "%s: %s op=%s id=%r %s: %s", self.name, peer, op, req_id, exc.code, exc.message
        )

    def _internal(self, req_id: str | int | None, op: str, peer: Peer, what: str) -> bytes:
        logger.exception("%s: %s op=%s id=%r internal: %s", self.name, peer, op, req_id, what)
        message = f"op {op!r} failed on the server; see the {self.name} log"
        return encode(_error_reply(req_id, "internal", message))


def _request_type(method: Callable[..., Any]) -> type[Any] | None:
    """The request dataclass of a typed op (its first parameter's annotation), else None."""
    try:
        params = list(inspect.signature(method).parameters.values())
        hints = typing.get_type_hints(method)
    except (TypeError, ValueError, NameError):
        return None
    if not params:
        return None
    kind = hints.get(params[0].name)
    return kind if is_request(kind) else None


def _typed(method: Callable[..., Any], request: type[Any]) -> Op:
    """An op that parses its args into ``request`` (BadArgs) before ``method`` runs."""

    @functools.wraps(method)
    def op(args: dict[str, Any], peer: Peer) -> Any:
        return method(parse(request, args), peer)

    return op


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"address {host} is not an address of this host (port {port})"
    if exc.errno == errno.EACCES:
        return f"permission denied to listen on port {port} on {host}"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
