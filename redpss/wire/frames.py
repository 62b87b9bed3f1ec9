"""Framing of the wire protocol: what a line is, how messages are encoded, who the peer is.

Shared by :mod:`redpss.wire.server` and :mod:`redpss.wire.client`: the default limits, the
encoding of one message as one line, reading a request line (with its size limit), parsing a
request into its ``id``, ``op`` and ``args``, error replies, :class:`Peer` and the
authorisation rule (:func:`authorize`). The error codes a server itself produces are
``bad_json``, ``bad_request``, ``line_too_long``, ``unauthorized``, ``unknown_op``,
``bad_args`` and ``internal``, each raised as :class:`~redpss.errors.RemoteError`; see
``docs/protocol.md``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from redpss.errors import RemoteError

DEFAULT_MAX_LINE = 1 << 20
"""Longest request line a server accepts, in bytes, without the newline."""
DEFAULT_IDLE_TIMEOUT = 300.0
"""Seconds a server waits for the next request before it closes the connection."""
DEFAULT_TIMEOUT = 10.0
"""Seconds a client waits to connect and for each reply."""
_DISCARD_CHUNK = 64 << 10


@dataclass(frozen=True)
class Peer:
    """The other end of a connection, as the server saw it."""

    host: str
    port: int
    loopback: bool

    @classmethod
    def from_address(cls, address: tuple[Any, ...]) -> Peer:
        """Build a peer from a socket address (IPv4 pair or IPv6 quadruple)."""
        host, port = str(address[0]), int(address[1])
        return cls(host, port, is_loopback(host))

    def __str__(self) -> str:
        return _hostport(self.host, self.port)


def local_address(host: str) -> str:
    """Where to reach a service that listens on ``host``: all interfaces means loopback."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def is_loopback(host: str) -> bool:
    """Tell whether ``host`` is a loopback address (127.0.0.0/8, ::1, ::ffff:127.x.y.z)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def authorize(
    peer: Peer, given: object, secret: str | None, *, require_on_loopback: bool = False
) -> bool:
    """Decide whether a request carrying secret ``given`` from ``peer`` may be served.

    Loopback peers need no secret unless ``require_on_loopback``; everyone else must present
    the instance secret. Without a configured secret only (unenforced) loopback passes.
    """
    if peer.loopback and not require_on_loopback:
        return True
    if not secret or not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode(), secret.encode())


def encode(message: Mapping[str, Any]) -> bytes:
    """Serialise one message as a protocol line (compact UTF-8 JSON plus ``\\n``)."""
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode() + b"\n"


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _error_reply(req_id: object, code: str, message: str) -> dict[str, Any]:
    return {"id": req_id, "ok": False, "error": {"code": code, "message": message}}


def _decode_request(line: bytes) -> dict[str, Any]:
    """Parse a request line into an object, or raise RemoteError(bad_json|bad_request)."""
    try:
        request = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RemoteError("bad_json", f"request is not valid UTF-8: {exc.reason}") from exc
    except json.JSONDecodeError as exc:
        raise RemoteError("bad_json", f"request is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise RemoteError("bad_json", "request is nested too deeply") from exc
    if not isinstance(request, dict):
        kind = type(request).__name__
        raise RemoteError("bad_request", f"request must be a JSON object, not {kind}")
    return request


def _request_id(request: dict[str, Any]) -> str | int:
    req_id = request.get("id")
    if isinstance(req_id, str) or (isinstance(req_id, int) and not isinstance(req_id, bool)):
        return req_id
    if "id" not in request:
        raise RemoteError("bad_request", "request has no 'id'")
    raise RemoteError("bad_request", "'id' must be a string or an integer")


def _request_args(request: dict[str, Any]) -> dict[str, Any]:
    args = request.get("args")
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise RemoteError("bad_request", f"'args' must be a JSON object, not {type(args).__name__}")
    return args


def _read_line(rfile: BinaryIO, max_line: int) -> bytes | None:
    """Read one line without its terminator; None at EOF (a partial last line is dropped).

    A line longer than ``max_line`` is consumed up to its newline and reported by raising
    RemoteError(line_too_long), so that the connection can go on with the next line.
    """
    line = rfile.readline(max_line + 1)
    if line.endswith(b"\n"):
        return line[:-1].rstrip(b"\r")
    if len(line) <= max_line:
        return None
    while True:
        chunk = rfile.readline(_DISCARD_CHUNK)
        if not chunk or chunk.endswith(b"\n"):
            break
    raise RemoteError("line_too_long", f"request line exceeds {max_line} bytes; it was discarded")
