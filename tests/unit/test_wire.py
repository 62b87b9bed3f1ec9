"""Tests of redpss.wire against real servers on 127.0.0.1 (port 0), real sockets, no mocks."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from redpss import wire
from redpss.errors import ProtocolError, RemoteError, ServiceUnavailable, WireError
from redpss.wire import Peer, WireClient, WireServer, authorize, is_loopback

pytestmark = pytest.mark.unit

HOST = "127.0.0.1"
DEADLINE = 5.0


def greet(name: str, greeting: str = "hello") -> str:
    if not isinstance(name, str):
        raise TypeError(f"'name' must be a string, not {type(name).__name__}")
    return f"{greeting}, {name}"


class Handler:
    """A role's handler as wire sees it: op_<name>(args, peer) methods."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def op_echo(self, args: dict[str, Any], peer: Peer) -> Any:
        return args

    def op_greet(self, args: dict[str, Any], peer: Peer) -> str:
        return greet(**args)

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
        kwargs.setdefault("secret", "s3cret")
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# --- calls -------------------------------------------------------------------------------


def test_call_returns_result(server: WireServer, make_client: Callable[..., WireClient]) -> None:
    client = make_client(server.port)
    assert client.call("echo", job="load_sales", n=3) == {"job": "load_sales", "n": 3}
    assert client.call("greet", name="Ada") == "hello, Ada"
    assert client.call("whoami") == {"host": HOST, "loopback": True}


def test_port_zero_binds_a_real_port(server: WireServer) -> None:
    assert server.port > 0


def test_builtin_ping(server: WireServer, make_client: Callable[..., WireClient]) -> None:
    result = make_client(server.port).call("ping")
    assert result["pong"] is True
    assert result["server"] == "test"
    assert result["time"].endswith("+00:00")


def test_handler_may_override_ping(make_server: ServerFactory) -> None:
    class Pinger:
        def op_ping(self, args: dict[str, Any], peer: Peer) -> str:
            return "mine"

    server = make_server(handler=Pinger())
    assert wire.call(HOST, server.port, "ping") == "mine"


def test_module_call_is_one_shot(server: WireServer) -> None:
    assert wire.call(HOST, server.port, "greet", name="Bob", greeting="hi") == "hi, Bob"


def test_request_allows_any_argument_name(
    server: WireServer, make_client: Callable[..., WireClient]
) -> None:
    args = {"op": "x", "secret": "y", "timeout": 1}
    assert make_client(server.port).request("echo", args) == args


# --- errors ------------------------------------------------------------------------------


def test_unknown_op_lists_available_ops(
    server: WireServer, make_client: Callable[..., WireClient]
) -> None:
    with pytest.raises(RemoteError) as info:
        make_client(server.port).call("launch_rockets")
    assert info.value.code == "unknown_op"
    assert "'launch_rockets'" in info.value.message
    for op in ("echo", "greet", "ping", "boom"):
        assert op in info.value.message


def test_handler_exception_is_internal_and_server_keeps_serving(
    server: WireServer, make_client: Callable[..., WireClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(server.port)
    with caplog.at_level(logging.ERROR, logger="redpss.wire"), pytest.raises(RemoteError) as info:
        client.call("boom")
    assert info.value.code == "internal"
    assert "hunter2" not in info.value.message
    assert "'boom'" in info.value.message
    logged = [r for r in caplog.records if r.exc_info]
    assert logged, "the traceback must be logged"
    assert "hunter2" in str(logged[0].exc_info[1])  # type: ignore[index]
    assert client.call("echo", still="alive") == {"still": "alive"}


def test_unserialisable_result_is_internal(
    server: WireServer, make_client: Callable[..., WireClient]
) -> None:
    client = make_client(server.port)
    with pytest.raises(RemoteError) as info:
        client.call("unserialisable")
    assert info.value.code == "internal"
    assert client.call("ping")["pong"] is True


def test_bad_args(server: WireServer, make_client: Callable[..., WireClient]) -> None:
    client = make_client(server.port)
    with pytest.raises(RemoteError) as info:
        client.call("greet", nme="typo")
    assert info.value.code == "bad_args"
    assert "'greet'" in info.value.message and "nme" in info.value.message
    with pytest.raises(RemoteError) as info:
        client.call("greet", name=42)
    assert info.value.code == "bad_args"
    assert "must be a string" in info.value.message


def test_handler_error_code_passes_through(
    server: WireServer, make_client: Callable[..., WireClient]
) -> None:
    with pytest.raises(RemoteError) as info:
        make_client(server.port).call("missing", job="nightly")
    assert (info.value.code, info.value.message) == ("not_found", "no job named 'nightly'")


def test_bad_json_then_good_request_on_same_connection(
    server: WireServer, make_raw: Callable[[int], Raw]
) -> None:
    raw = make_raw(server.port)
    reply = raw.exchange(b'{"id": 1, "op": \n')
    assert reply["id"] is None and reply["ok"] is False
    assert reply["error"]["code"] == "bad_json"
    assert "JSON" in reply["error"]["message"]
    assert raw.exchange(b"\xff\xfe\n")["error"]["code"] == "bad_json"
    assert raw.exchange(b'{"id": 2, "op": "echo", "args": {"a": 1}}\n') == {
        "id": 2,
        "ok": True,
        "result": {"a": 1},
    }


@pytest.mark.parametrize("line", [b"[1, 2]", b'"echo"', b"42", b"null"])
def test_non_object_json_is_bad_request(
    server: WireServer, make_raw: Callable[[int], Raw], line: bytes
) -> None:
    raw = make_raw(server.port)
    reply = raw.exchange(line + b"\n")
    assert reply["error"]["code"] == "bad_request"
    assert "JSON object" in reply["error"]["message"]
    assert raw.exchange(b'{"id": "a", "op": "ping"}\n')["ok"] is True


@pytest.mark.parametrize(
    ("request_line", "reply_id", "needle"),
    [
        (b'{"id": 7}', 7, "'op'"),
        (b'{"id": 7, "op": ""}', 7, "'op'"),
        (b'{"id": 7, "op": 3}', 7, "'op'"),
        (b'{"op": "ping"}', None, "'id'"),
        (b'{"id": true, "op": "ping"}', None, "'id'"),
        (b'{"id": 1.5, "op": "ping"}', None, "'id'"),
        (b'{"id": 7, "op": "echo", "args": [1]}', 7, "'args'"),
    ],
)
def test_malformed_request_is_bad_request(
    server: WireServer,
    make_raw: Callable[[int], Raw],
    request_line: bytes,
    reply_id: Any,
    needle: str,
) -> None:
    raw = make_raw(server.port)
    reply = raw.exchange(request_line + b"\n")
    assert reply["id"] == reply_id
    assert reply["error"]["code"] == "bad_request"
    assert needle in reply["error"]["message"]


def test_crlf_blank_lines_and_unknown_fields_are_tolerated(
    server: WireServer, make_raw: Callable[[int], Raw]
) -> None:
    raw = make_raw(server.port)
    raw.send(b"\n  \r\n")
    reply = raw.exchange(b'{"id": "x", "op": "echo", "args": {}, "trace": "abc"}\r\n')
    assert reply == {"id": "x", "ok": True, "result": {}}


def test_replies_come_in_request_order(server: WireServer, make_raw: Callable[[int], Raw]) -> None:
    raw = make_raw(server.port)
    raw.send(b"".join(b'{"id": %d, "op": "echo", "args": {"n": %d}}\n' % (i, i) for i in range(50)))
    assert [raw.reply()["result"]["n"] for _ in range(50)] == list(range(50))


def test_oversized_line_then_good_request_on_same_connection(
    make_server: ServerFactory, make_raw: Callable[[int], Raw]
) -> None:
    server = make_server(max_line=1024)
    raw = make_raw(server.port)
    padding = "x" * 300_000
    raw.send(b'{"id": 1, "op": "echo", "args": {"pad": "%s"}}\n' % padding.encode())
    reply = raw.reply()
    assert reply["id"] is None
    assert reply["error"]["code"] == "line_too_long"
    assert "1024" in reply["error"]["message"]
    assert raw.exchange(b'{"id": 2, "op": "echo", "args": {"a": 1}}\n')["result"] == {"a": 1}
    frame = b'{"id":3,"op":"echo","args":{"p":"%s"}}'
    exact = frame % (b"y" * (1024 - len(frame) + 2))
    assert len(exact) == 1024  # the limit counts the line without its newline
    assert raw.exchange(exact + b"\n")["id"] == 3
    assert raw.exchange(exact + b"y\n")["error"]["code"] == "line_too_long"


def test_client_closing_mid_line_is_quiet(
    server: WireServer, make_client: Callable[..., WireClient], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="redpss.wire"):
        with socket.create_connection((HOST, server.port)) as sock:
            sock.sendall(b'{"id": 1, "op": "ec')
        assert make_client(server.port).call("ping")["pong"] is True
    assert caplog.records == []


# --- security ----------------------------------------------------------------------------


def test_secret_enforced_on_loopback_when_required(
    make_server: ServerFactory, make_client: Callable[..., WireClient]
) -> None:
    server = make_server(secret="s3cret", require_secret_on_loopback=True)
    for secret in (None, "wrong", ""):
        with pytest.raises(RemoteError) as info:
            make_client(server.port, secret=secret).call("nonexistent")
        assert info.value.code == "unauthorized"
        assert "nonexistent" not in info.value.message  # nothing is revealed before auth
    assert make_client(server.port, secret="s3cret").call("greet", name="ops") == "hello, ops"


def test_loopback_needs_no_secret_by_default(
    server: WireServer, make_client: Callable[..., WireClient]
) -> None:
    assert make_client(server.port, secret="whatever").call("ping")["pong"] is True


@pytest.mark.parametrize("host", ["10.1.2.3", "192.168.0.7", "2001:db8::1", "::ffff:10.0.0.1"])
def test_authorize_non_loopback_peers(host: str) -> None:
    peer = Peer(host, 40000, is_loopback(host))
    assert not peer.loopback
    assert authorize(peer, "s3cret", "s3cret")
    assert not authorize(peer, "s3cre", "s3cret")
    assert not authorize(peer, None, "s3cret")
    assert not authorize(peer, 12345, "s3cret")
    assert not authorize(peer, "", "")
    assert not authorize(peer, "anything", None)


def test_authorize_loopback_peers() -> None:
    peer = Peer.from_address(("127.0.0.1", 5000))
    assert authorize(peer, None, None)
    assert authorize(peer, "wrong", "s3cret")
    assert not authorize(peer, "wrong", "s3cret", require_on_loopback=True)
    assert not authorize(peer, None, None, require_on_loopback=True)
    assert authorize(peer, "s3cret", "s3cret", require_on_loopback=True)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.200.3.4", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("128.0.0.1", False),
        ("10.0.0.1", False),
        ("fe80::1%eth0", False),
        ("0.0.0.0", False),
        ("localhost", False),  # peers are addresses, never names
        ("", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_peer_str() -> None:
    assert str(Peer("10.0.0.1", 80, False)) == "10.0.0.1:80"
    assert str(Peer.from_address(("::1", 80, 0, 0))) == "[::1]:80"


# --- concurrency and limits --------------------------------------------------------------


def test_many_concurrent_clients(server: WireServer) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            with WireClient(HOST, server.port) as client:
                for n in range(50):
                    assert client.call("echo", w=worker, n=n) == {"w": worker, "n": n}
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []


def test_shared_client_serialises_calls(
    server: WireServer, make_client: Callable[..., WireClient]
) -> None:
    client = make_client(server.port)
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(client.call("echo", i=i)))
        for i in range(10)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert sorted(r["i"] for r in results) == list(range(10))


def test_idle_timeout_closes_connection(
    make_server: ServerFactory, make_raw: Callable[[int], Raw]
) -> None:
    server = make_server(idle_timeout=0.2)
    raw = make_raw(server.port)
    assert raw.exchange(b'{"id": 1, "op": "ping"}\n')["ok"] is True
    started = time.monotonic()
    assert raw.at_eof()
    assert time.monotonic() - started < DEADLINE


def test_client_reconnects_after_server_closed_idle_connection(
    make_server: ServerFactory, make_client: Callable[..., WireClient]
) -> None:
    server = make_server(idle_timeout=0.2)
    client = make_client(server.port)
    assert client.call("echo", n=1) == {"n": 1}
    sock = client._sock
    assert sock is not None
    wait_for(lambda: wire._closed_by_peer(sock), "the server to close the idle connection")
    assert client.call("echo", n=2) == {"n": 2}


def test_client_timeout_is_service_unavailable(
    make_server: ServerFactory, make_client: Callable[..., WireClient]
) -> None:
    handler = Handler()
    server = make_server(handler=handler)
    client = make_client(server.port, timeout=0.2)
    try:
        with pytest.raises(ServiceUnavailable, match=rf"{HOST}:{server.port} did not answer"):
            client.call("block")
    finally:
        handler.release.set()
    assert client.call("ping")["pong"] is True


# --- lifecycle ---------------------------------------------------------------------------


def test_client_against_closed_port(make_client: Callable[..., WireClient]) -> None:
    port = free_port()
    with pytest.raises(ServiceUnavailable, match=rf"{HOST}:{port}"):
        make_client(port, timeout=1.0).call("ping")
    with pytest.raises(ServiceUnavailable, match=rf"{HOST}:{port}"):
        wire.call(HOST, port, "ping", timeout=1.0)


def test_start_on_port_in_use(make_server: ServerFactory) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServiceUnavailable, match=rf"port {port} on {HOST} is already in use"):
            make_server(port=port)


def test_stop_twice_and_before_start() -> None:
    never_started = WireServer(Handler(), host=HOST, port=0, secret=None)
    never_started.stop()
    never_started.stop()
    server = WireServer(Handler(), host=HOST, port=0, secret=None)
    try:
        server.start()
        server.start()  # already running: no-op
        port = server.port
    finally:
        server.stop()
    server.stop()
    with pytest.raises(ServiceUnavailable):
        wire.call(HOST, port, "ping", timeout=1.0)
    with pytest.raises(WireError, match="stopped"):
        server.start()


def test_stop_closes_open_connections(make_raw: Callable[[int], Raw]) -> None:
    with WireServer(Handler(), host=HOST, port=0, secret=None) as server:
        raw = make_raw(server.port)
        assert raw.exchange(b'{"id": 1, "op": "ping"}\n')["ok"] is True
    assert raw.at_eof()


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    try:
        server = WireServer(Handler(), host="::1", port=0, secret=None)
        server.start()
    except ServiceUnavailable as exc:
        pytest.skip(f"IPv6 loopback unusable here: {exc}")
    try:
        assert wire.call("::1", server.port, "whoami") == {"host": "::1", "loopback": True}
    finally:
        server.stop()


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_line"):
        WireServer(Handler(), host=HOST, port=0, secret=None, max_line=0)
    with pytest.raises(ValueError, match="idle_timeout"):
        WireServer(Handler(), host=HOST, port=0, secret=None, idle_timeout=0)


# --- client against a misbehaving server -------------------------------------------------


@pytest.fixture
def fake_server() -> Iterator[Callable[[bytes], int]]:
    """A one-connection server that answers every line with a fixed reply."""
    listeners: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def factory(reply: bytes) -> int:
        listener = socket.create_server((HOST, 0))
        listeners.append(listener)

        def serve() -> None:
            conn, _ = listener.accept()
            with conn, conn.makefile("rb") as rfile:
                while rfile.readline():
                    conn.sendall(reply)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        port: int = listener.getsockname()[1]
        return port

    yield factory
    for thread in threads:
        thread.join(DEADLINE)
    for listener in listeners:
        listener.close()


@pytest.mark.parametrize(
    "reply",
    [
        b"garbage\n",
        b"[1]\n",
        b'{"id": 99, "ok": true, "result": 1}\n',
        b'{"id": 1, "ok": "yes"}\n',
        b'{"id": 1, "ok": false}\n',
    ],
)
def test_garbage_reply_is_protocol_error(
    fake_server: Callable[[bytes], int], make_client: Callable[..., WireClient], reply: bytes
) -> None:
    client = make_client(fake_server(reply))
    with pytest.raises(ProtocolError):
        client.call("ping")
    client.close()


def test_error_reply_without_id_is_remote_error(
    fake_server: Callable[[bytes], int], make_client: Callable[..., WireClient]
) -> None:
    line = b'{"id": null, "ok": false, "error": {"code": "line_too_long", "message": "big"}}\n'
    client = make_client(fake_server(line))
    with pytest.raises(RemoteError) as info:
        client.call("ping")
    assert info.value.code == "line_too_long"
    client.close()
