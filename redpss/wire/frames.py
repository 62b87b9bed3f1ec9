"""Framing of the wire protocol: what a line is, how messages are encoded, who the peer is.

Shared by :mod:`redpss.wire.server` and :mod:`redpss.wire.client`: the default limits, the
encoding of one message as one line, reading a request line (with its size limit), parsing a
request into its ``id``, ``op`` and ``args``, error replies, :class:`Peer` and the
authorisation rule (:func:`authorize`, :func:`find_secret`). The error codes a server itself
produces are ``bad_json``, ``bad_request``, ``line_too_long``, ``unauthorized``, ``busy``,
``unknown_op``, ``bad_args`` and ``internal``, each raised as
:class:`~redpss.errors.RemoteError`; see ``docs/protocol.md``.

Every request must carry the instance secret, loopback included: on a shared host loopback is
every local user. A request is read in two steps so that a caller without the secret costs at
most :data:`PREAUTH_LIMIT` bytes of memory: the first part of the line, then (only when the
secret in that first part is right) the rest.

JSON is decoded strictly: no ``NaN``/``Infinity``, integers of at most 64 bits, finite floats,
no lone surrogates in strings. Python's json module accepts all of them, and each one has
caused harm further in (a NaN time limit that never expires, a reply that cannot be encoded).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import re
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
PREAUTH_LIMIT = 64 << 10
"""Bytes of a request line read before its secret is checked (the secret must be in them)."""
DEFAULT_MAX_UNAUTHENTICATED = 64
"""Connections a server holds at once that have not yet sent a request with the right secret."""
DEFAULT_PREAUTH_TIMEOUT = 10.0
"""Seconds a new connection has to send its first request with the right secret."""
INT_LIMIT = (1 << 63) - 1
"""Largest magnitude of an integer in a message (64-bit signed, what Exasol and SQLite hold)."""
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


def authorize(given: object, secret: str | None) -> bool:
    """Decide whether a request carrying ``given`` as its secret may be served.

    Whoever the peer is (loopback included), ``given`` must equal the instance secret; the
    comparison takes the same time wherever the first difference is. Without a configured
    secret nothing passes.
    """
    if not secret or not isinstance(given, str):
        return False
    try:
        return hmac.compare_digest(given.encode(), secret.encode())
    except UnicodeEncodeError:  # a lone surrogate: cannot be the secret
        return False


_WS = re.compile(r"[ \t\n\r]*")


def _skip(text: str, i: int) -> int:
    """The index of the first character at or after ``i`` that is not JSON whitespace."""
    match = _WS.match(text, i)
    return match.end() if match else i


def find_secret(head: bytes) -> object:
    """The value of the ``secret`` member in the first part of a request line, or None.

    ``head`` is the start of a line too long to parse whole before the caller is known. Its
    top-level members are read in order until ``secret``; anything before it must be complete
    in ``head`` (clients put ``secret`` first). Never raises.
    """
    text = _decode_head(head)
    if text is None:
        return None
    i = _skip(text, 0)
    if text[i : i + 1] != "{":
        return None
    i += 1
    while True:
        i = _skip(text, i)
        if text[i : i + 1] != '"':
            return None
        try:
            key, i = json.decoder.scanstring(text, i + 1, True)  # type: ignore[attr-defined]
            i = _skip(text, i)
            if text[i : i + 1] != ":":
                return None
            i = _skip(text, i + 1)
            value, i = _DECODER.raw_decode(text, i)
        except (ValueError, RecursionError):
            return None
        if key == "secret":
            return value
        i = _skip(text, i)
        if text[i : i + 1] != ",":
            return None
        i += 1


def _decode_head(head: bytes) -> str | None:
    """``head`` as text; a character cut at its end is dropped, any other bad byte is None."""
    for cut in range(4):
        try:
            return head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:
                return None
    return None


def encode(message: Mapping[str, Any]) -> bytes:
    """Serialise one message as a protocol line (compact UTF-8 JSON plus ``\\n``).

    A lone surrogate (a file name read with ``surrogateescape``, say) cannot be UTF-8: such a
    message is sent with ``\\u`` escapes instead of failing.
    """
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        return text.encode() + b"\n"
    except UnicodeEncodeError:
        return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"


class _Refused(ValueError):
    """A value JSON allows and the protocol does not (NaN, a huge integer, a lone surrogate)."""


def _parse_constant(name: str) -> float:
    raise _Refused(f"{name} is not a number the protocol accepts (give a finite number)")


def _parse_int(text: str) -> int:
    # checked on the digits, before int() would spend time on a 4 300-digit string
    if len(text.lstrip("-")) > 19 or abs(value := int(text)) > INT_LIMIT:
        raise _Refused(
            f"integer {text[:30]}{'…' if len(text) > 30 else ''} is out of range "
            f"(at most {INT_LIMIT} in magnitude)"
        )
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"number {text[:30]} is out of range (not a finite double)")
    return value


_DECODER = json.JSONDecoder(
    parse_constant=_parse_constant, parse_int=_parse_int, parse_float=_parse_float
)
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: object) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def loads(data: bytes | str) -> Any:
    """Decode one JSON document strictly (see the module docstring); ValueError says why."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    value = _DECODER.decode(text)
    raw = data if isinstance(data, bytes) else text.encode("utf-8", "surrogatepass")
    if _MAYBE_SURROGATE.search(raw) and _has_lone_surrogate(value):
        raise _Refused("a string holds a lone surrogate (\\ud800-\\udfff): not Unicode text")
    return value


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _error_reply(req_id: object, code: str, message: str) -> dict[str, Any]:
    return {"id": req_id, "ok": False, "error": {"code": code, "message": message}}


def _decode_request(line: bytes) -> dict[str, Any]:
    """Parse a request line into an object, or raise RemoteError(bad_json|bad_request)."""
    try:
        request = loads(line)
    except UnicodeDecodeError as exc:
        raise RemoteError("bad_json", f"request is not valid UTF-8: {exc.reason}") from exc
    except json.JSONDecodeError as exc:
        raise RemoteError("bad_json", f"request is not valid JSON: {exc}") from exc
    except _Refused as exc:
        raise RemoteError("bad_json", f"request is not accepted: {exc}") from exc
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


def _read_head(rfile: BinaryIO, max_line: int) -> tuple[bytes, bool] | None:
    """Read the first part of a line: at most ``min(PREAUTH_LIMIT, max_line)`` bytes.

    Returns ``(line, True)`` for a whole line (without its terminator), ``(head, False)`` when
    the line goes on (``head`` is then one byte longer than that limit), None at EOF (a partial
    last line is dropped).
    """
    limit = min(PREAUTH_LIMIT, max_line)
    head = rfile.readline(limit + 1)
    if head.endswith(b"\n"):
        return head[:-1].rstrip(b"\r"), True
    if len(head) <= limit:
        return None
    return head, False


def _read_rest(rfile: BinaryIO, head: bytes, max_line: int) -> bytes | None:
    """Read the rest of the line ``head`` began; None at EOF.

    A line longer than ``max_line`` is consumed up to its newline and reported by raising
    RemoteError(line_too_long), so that the connection can go on with the next line.
    """
    room = max_line - len(head)
    if room >= 0:
        rest = rfile.readline(room + 1)
        if rest.endswith(b"\n"):
            return (head + rest[:-1]).rstrip(b"\r")
        if len(rest) <= room:
            return None
    while True:
        chunk = rfile.readline(_DISCARD_CHUNK)
        if not chunk:
            return None
        if chunk.endswith(b"\n"):
            break
    raise RemoteError("line_too_long", f"request line exceeds {max_line} bytes; it was discarded")
