"""What the wire tests share: a handler, server and client factories, a raw socket."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from redpss.errors import RemoteError
from redpss.wire import Peer, WireClient, WireServer

pytestmark = pytest.mark.unit

HOST = "127.0.0.1"
SECRET = "s3cret"
DEADLINE = 5.0


@dataclass(frozen=True)
class Greet:
    """The request of the typed op ``greet``."""

    name: str
    greeting: str = "hello"


class Handler:
    """A role's handler as wire sees it: op_<name>(request, peer) methods (typed, or raw)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def op_echo(self, args: dict[str, Any], peer: Peer) -> Any:
        return args

    def op_greet(self, req: Greet, peer: Peer) -> str:
        return f"{req.greeting}, {req.name}"

    def op_buggy(self, req: Greet, peer: Peer) -> int:
        return len(req) + 1  # type: ignore[arg-type]  # a TypeError of ours, not the caller's

    def op_whoami(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        return {"host": peer.host, "loopback": peer.loopback}

    def op_boom(self, args: dict[str, Any], peer: Peer) -> None:
        raise RuntimeError("database password is hunter2")

    def op_unserialisable(self, args: dict[str, Any], peer: Peer) -> object:
        return object()

    def op_missing(self, args: dict[str, Any], peer: Peer) -> None:
        raise RemoteError("not_found", f"no job named {args.get('job')!r}")

    def op_block(self, args: dict[str, Any], peer: Peer) -> bool:
        return self.release.wait(DEADLINE)


ServerFactory = Callable[..., WireServer]


@pytest.fixture
def make_server() -> Iterator[ServerFactory]:
    """Start WireServers on 127.0.0.1:0; every one is stopped at the end."""
    servers: list[WireServer] = []

    def factory(**kwargs: Any) -> WireServer:
        handler = kwargs.pop("handler", None) or Handler()
        kwargs.setdefault("secret", SECRET)
        server = WireServer(handler, host=HOST, port=kwargs.pop("port", 0), **kwargs)
        servers.append(server)
        server.start()
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: ServerFactory) -> WireServer:
    return make_server(name="test")


@pytest.fixture
def make_client() -> Iterator[Callable[..., WireClient]]:
    clients: list[WireClient] = []

    def factory(port: int, **kwargs: Any) -> WireClient:
        kwargs.setdefault("secret", SECRET)
        client = WireClient(HOST, port, **kwargs)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


class Raw:
    """A bare TCP connection speaking lines, like `nc` or a Lua script would."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=DEADLINE)
        self.rfile = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> dict[str, Any]:
        line = self.rfile.readline()
        assert line.endswith(b"\n"), f"no complete reply line: {line!r}"
        result: dict[str, Any] = json.loads(line)
        return result

    def exchange(self, data: bytes) -> dict[str, Any]:
        self.send(data)
        return self.reply()

    def at_eof(self) -> bool:
        """Wait (at most DEADLINE) for the server to close the connection."""
        return self.rfile.readline() == b""

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()


@pytest.fixture
def make_raw() -> Iterator[Callable[[int], Raw]]:
    raws: list[Raw] = []

    def factory(port: int) -> Raw:
        raw = Raw(port)
        raws.append(raw)
        return raw

    yield factory
    for raw in raws:
        raw.close()


# --- calls -------------------------------------------------------------------------------
