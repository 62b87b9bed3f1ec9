"""redpss.wire against real servers on 127.0.0.1: calls, framing, bad input, the secret rule."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest

from redpss import wire
from redpss.errors import RemoteError
from redpss.wire import Peer, WireClient, WireServer, authorize, is_loopback
from tests.unit.wire_support import (
    HOST,
    Raw,
    ServerFactory,
    make_client,
    make_raw,
    make_server,
    server,
)

__all__ = ["make_client", "make_raw", "make_server", "server"]  # fixtures, imported for pytest


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
