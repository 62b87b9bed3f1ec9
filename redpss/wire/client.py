"""The client side of the wire protocol: :class:`WireClient` and the one-shot :func:`call`.

Two faults of a reconnecting client are handled here, once for every caller:

- **connecting to itself**: a connect to a local port nobody listens on may be given that very
  port as its source (when the port lies in the kernel's ephemeral range); TCP then connects the
  socket to itself, and the TIME-WAIT it leaves keeps the real service from binding its port.
  :func:`open_connection` notices it (local address = peer address), resets the socket (no
  TIME-WAIT) and reports the service as unreachable.
- **hammering a service that is down**: a :class:`WireClient` made with ``backoff`` waits a
  growing, jittered delay (capped at ``backoff`` seconds) after a failed connect before it tries
  again; calls in between fail at once without touching the network.
"""

from __future__ import annotations

import json
import random
import select
import socket
import struct
import threading
import time
from collections.abc import Mapping
from typing import Any, BinaryIO, Self, cast

from redpss.errors import ProtocolError, RemoteError, ServiceUnavailable
from redpss.wire.frames import DEFAULT_TIMEOUT, _hostport, encode

_CLIENT_MAX_REPLY = 64 << 20
_BACKOFF_FIRST = 0.1
"""Seconds a backing-off client waits after its first failed connect (doubling up to the cap)."""


def open_connection(host: str, port: int, timeout: float) -> socket.socket:
    """Connect to ``host:port``; raise :class:`ServiceUnavailable` naming the cause.

    A socket that got connected to itself (nothing listens on a port of the ephemeral range) is
    reset, so it leaves no TIME-WAIT that would block the service's own bind.
    """
    address = _hostport(host, port)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError as exc:
        raise ServiceUnavailable(
            f"cannot connect to {address}: timed out after {timeout:g} s"
        ) from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ServiceUnavailable(f"cannot connect to {address}: {reason}") from exc
    _refuse_self_connection(sock, address)
    return sock


def _refuse_self_connection(sock: socket.socket, address: str) -> None:
    """Reset and close ``sock`` and raise if it is connected to itself; else do nothing."""
    try:
        self_connected = sock.getsockname() == sock.getpeername()
    except OSError:
        self_connected = False
    if self_connected:
        # linger 0: the close sends a reset, and the port is free at once (no TIME-WAIT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        raise ServiceUnavailable(
            f"cannot connect to {address}: nothing listens there (the connection reached "
            "itself; the port lies in the kernel's ephemeral range)"
        )


class WireClient:
    """A client keeping one connection; safe to share between threads (calls serialise)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        secret: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        backoff: float | None = None,
    ) -> None:
        """Remember where to connect; the connection is made by the first call.

        With ``backoff`` (seconds), a failed connect is not retried before a jittered delay
        that doubles from 0.1 s up to ``backoff``; calls until then fail at once.
        """
        self.host = host
        self.port = port
        self.secret = secret
        self.timeout = timeout
        self.backoff = backoff
        self._failures = 0
        self._retry_at = 0.0
        self._last_failure = ""
        self._sock: socket.socket | None = None
        self._rfile: BinaryIO | None = None
        self._next_id = 1
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        """``host:port`` as used in messages."""
        return _hostport(self.host, self.port)

    def call(self, op: str, /, **args: Any) -> Any:
        """Call ``op`` with keyword ``args`` and return its result.

        Raises RemoteError for an error reply, ServiceUnavailable when the server cannot be
        reached or does not answer in time, ProtocolError for a reply that is not one.
        """
        return self.request(op, args)

    def request(self, op: str, args: Mapping[str, Any] | None = None) -> Any:
        """Like :meth:`call`, with the arguments as a mapping (any names allowed)."""
        with self._lock:
            req_id = self._next_id
            self._next_id += 1
            # the secret first: a server reads a request's first 64 KiB before it trusts it
            message: dict[str, Any] = {"secret": self.secret} if self.secret else {}
            message.update(id=req_id, op=op, args=dict(args or {}))
            self._send(encode(message), op)
            line = self._receive(op)
            try:
                return _reply_result(line, req_id, self.address)
            except ProtocolError:
                self._disconnect()
                raise

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        with self._lock:
            self._disconnect()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connect(self) -> socket.socket:
        if self.backoff is not None:
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                raise ServiceUnavailable(f"{self._last_failure} (next try in {wait:.1f} s)")
        try:
            sock = open_connection(self.host, self.port, self.timeout)
        except ServiceUnavailable as exc:
            if self.backoff is not None:
                delay = min(self.backoff, _BACKOFF_FIRST * 2**self._failures)
                self._failures = min(self._failures + 1, 30)
                self._retry_at = time.monotonic() + delay * random.uniform(0.5, 1.0)
                self._last_failure = str(exc)
            raise
        self._failures = 0
        self._sock = sock
        self._rfile = cast(BinaryIO, sock.makefile("rb"))
        return sock

    def _disconnect(self) -> None:
        if self._rfile is not None:
            self._rfile.close()
            self._rfile = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send(self, data: bytes, op: str) -> None:
        if self._sock is not None and _closed_by_peer(self._sock):
            self._disconnect()
        reused = self._sock is not None
        try:
            (self._sock or self._connect()).sendall(data)
        except OSError as exc:
            self._disconnect()
            if not reused:
                raise ServiceUnavailable(f"cannot send {op!r} to {self.address}: {exc}") from exc
            # The kept connection died unnoticed and the request never left: retry once, fresh.
            self._send(data, op)

    def _receive(self, op: str) -> bytes:
        assert self._rfile is not None
        try:
            line = self._rfile.readline(_CLIENT_MAX_REPLY + 1)
        except TimeoutError as exc:
            self._disconnect()
            raise ServiceUnavailable(
                f"{self.address} did not answer {op!r} within {self.timeout:g} s"
            ) from exc
        except OSError as exc:
            self._disconnect()
            raise ServiceUnavailable(f"connection to {self.address} failed: {exc}") from exc
        if not line.endswith(b"\n"):
            self._disconnect()
            if not line:
                raise ServiceUnavailable(f"{self.address} closed the connection during {op!r}")
            raise ProtocolError(f"reply from {self.address} to {op!r} is truncated or too long")
        return line


def _closed_by_peer(sock: socket.socket) -> bool:
    """True when the peer has closed a kept connection (readable, but nothing to read)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _reply_result(line: bytes, req_id: int, address: str) -> Any:
    """Check a reply line against the request id; return its result or raise its error."""
    try:
        reply = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"reply from {address} is not valid JSON: {exc}") from exc
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ProtocolError(f"reply from {address} is not a reply object: {line[:200]!r}")
    ok = reply["ok"]
    # A server that could not read the request at all (bad_json, line_too_long) has no id.
    if reply.get("id") != req_id and (ok or reply.get("id") is not None):
        raise ProtocolError(f"reply from {address} has id {reply.get('id')!r}, expected {req_id}")
    if ok:
        return reply.get("result")
    error = reply.get("error")
    if not isinstance(error, dict):
        raise ProtocolError(f"error reply from {address} has no 'error' object")
    raise RemoteError(str(error.get("code") or "unknown"), str(error.get("message") or ""))


def call(
    host: str,
    port: int,
    op: str,
    /,
    *,
    secret: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    **args: Any,
) -> Any:
    """Open a connection, call ``op`` once with keyword ``args``, close, return the result."""
    with WireClient(host, port, secret=secret, timeout=timeout) as client:
        return client.request(op, args)
