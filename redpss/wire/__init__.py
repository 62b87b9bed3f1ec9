"""The internal protocol that roles speak: one JSON object per line over TCP.

A request is ``{"secret": "…", "id": …, "op": "<name>", "args": {…}}``, a reply is
``{"id": …, "ok": true, "result": …}`` or ``{"id": …, "ok": false, "error": {"code": …,
"message": …}}``. The full contract, written for client authors (a Lua script inside Exasol
included), is ``docs/protocol.md``; keep the two in step.

This package is protocol only. :class:`WireServer` frames, authenticates and dispatches to a
handler object whose methods ``op_<name>(self, request, peer)`` are the policy; what a role
offers is entirely in its handler. ``request`` is the op's frozen dataclass
(:mod:`redpss.wire.ops`), built and checked from the request's ``args`` by
:mod:`redpss.wire.args` before the handler runs. :class:`WireClient` and :func:`call` are the
Python side.

A handler reports the caller's mistake with :class:`~redpss.errors.BadArgs` (reply code
``bad_args``) and a condition of its domain with :class:`~redpss.errors.RemoteError` and a code
of its own; anything else it raises is an ``internal`` error, logged with its traceback.

The code is split by side: :mod:`redpss.wire.frames` (framing, encoding, :class:`Peer`,
authorisation, default limits), :mod:`redpss.wire.server` (:class:`WireServer`),
:mod:`redpss.wire.client` (:class:`WireClient`, :func:`call`), and by what a request says:
:mod:`redpss.wire.args` (checking typed arguments) and :mod:`redpss.wire.ops` (every op's
request). Import from ``redpss.wire``;
the names below are its public interface.
"""

from __future__ import annotations

from redpss.wire.client import WireClient, call, open_connection
from redpss.wire.client import _closed_by_peer as _closed_by_peer  # used by the tests
from redpss.wire.frames import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_LINE,
    DEFAULT_MAX_UNAUTHENTICATED,
    DEFAULT_PREAUTH_TIMEOUT,
    DEFAULT_TIMEOUT,
    PREAUTH_LIMIT,
    Peer,
    authorize,
    encode,
    is_loopback,
    local_address,
)
from redpss.wire.server import Op, WireServer

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_LINE",
    "DEFAULT_MAX_UNAUTHENTICATED",
    "DEFAULT_PREAUTH_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "PREAUTH_LIMIT",
    "Op",
    "Peer",
    "WireClient",
    "WireServer",
    "authorize",
    "call",
    "encode",
    "is_loopback",
    "local_address",
    "open_connection",
]
