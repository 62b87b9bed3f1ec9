"""redpss.wire against real servers on 127.0.0.1: calls, framing, bad input, the secret rule."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redpss import wire
from redpss.errors import RemoteError
from redpss.wire import PREAUTH_LIMIT, Peer, WireClient, WireServer, authorize, is_loopback
from redpss.wire.frames import find_secret
from tests.unit.wire_support import (
    DEADLINE,
    HOST,
    SECRET,
    Greet,
    Raw,
    ServerFactory,
    make_client,
    make_raw,
    make_server,
    server,
)

__all__ = ["make_client", "make_raw", "make_server", "server"]  # fixtures, imported for pytest

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63) + 1, 2**63 - 1)
    | st.text(max_size=10)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


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
    assert wire.call(HOST, server.port, "ping", secret=SECRET) == "mine"


def test_module_call_is_one_shot(server: WireServer) -> None:
    assert (
        wire.call(HOST, server.port, "greet", secret=SECRET, name="Bob", greeting="hi") == "hi, Bob"
    )


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


def test_a_type_error_inside_an_op_is_ours_not_the_callers(
    server: WireServer, make_client: Callable[..., WireClient], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="redpss.wire"), pytest.raises(RemoteError) as info:
        make_client(server.port).call("buggy", name="x")
    assert info.value.code == "internal"
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.levelno == logging.ERROR and "TypeError" in record.exc_text  # type: ignore[operator]


def test_typed_ops_are_known_with_their_requests(server: WireServer) -> None:
    assert server.requests["greet"] is Greet
    assert "echo" not in server.requests  # a raw op (dict args) has none


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
    reply = raw.exchange(b'{"secret": "s3cret", "id": 1, "op": \n')
    assert reply["id"] is None and reply["ok"] is False
    assert reply["error"]["code"] == "bad_json"
    assert "JSON" in reply["error"]["message"]
    assert raw.exchange(b"\xff\xfe\n")["error"]["code"] == "bad_json"
    assert raw.exchange(b'{"secret": "s3cret", "id": 2, "op": "echo", "args": {"a": 1}}\n') == {
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
    assert raw.exchange(b'{"secret": "s3cret", "id": "a", "op": "ping"}\n')["ok"] is True


@pytest.mark.parametrize(
    ("request_line", "reply_id", "needle"),
    [
        (b'{"secret": "s3cret", "id": 7}', 7, "'op'"),
        (b'{"secret": "s3cret", "id": 7, "op": ""}', 7, "'op'"),
        (b'{"secret": "s3cret", "id": 7, "op": 3}', 7, "'op'"),
        (b'{"secret": "s3cret", "op": "ping"}', None, "'id'"),
        (b'{"secret": "s3cret", "id": true, "op": "ping"}', None, "'id'"),
        (b'{"secret": "s3cret", "id": 1.5, "op": "ping"}', None, "'id'"),
        (b'{"secret": "s3cret", "id": 7, "op": "echo", "args": [1]}', 7, "'args'"),
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
    reply = raw.exchange(
        b'{"secret": "s3cret", "id": "x", "op": "echo", "args": {}, "trace": "abc"}\r\n'
    )
    assert reply == {"id": "x", "ok": True, "result": {}}


def test_replies_come_in_request_order(server: WireServer, make_raw: Callable[[int], Raw]) -> None:
    raw = make_raw(server.port)
    raw.send(
        b"".join(
            b'{"secret": "s3cret", "id": %d, "op": "echo", "args": {"n": %d}}\n' % (i, i)
            for i in range(50)
        )
    )
    assert [raw.reply()["result"]["n"] for _ in range(50)] == list(range(50))


def test_oversized_line_then_good_request_on_same_connection(
    make_server: ServerFactory, make_raw: Callable[[int], Raw]
) -> None:
    server = make_server(max_line=1024)
    raw = make_raw(server.port)
    padding = "x" * 300_000
    raw.send(
        b'{"secret": "s3cret", "id": 1, "op": "echo", "args": {"pad": "%s"}}\n' % padding.encode()
    )
    reply = raw.reply()
    assert reply["id"] is None
    assert reply["error"]["code"] == "line_too_long"
    assert "1024" in reply["error"]["message"]
    assert raw.exchange(b'{"secret": "s3cret", "id": 2, "op": "echo", "args": {"a": 1}}\n')[
        "result"
    ] == {"a": 1}
    frame = b'{"secret": "s3cret", "id":3,"op":"echo","args":{"p":"%s"}}'
    exact = frame % (b"y" * (1024 - len(frame) + 2))
    assert len(exact) == 1024  # the limit counts the line without its newline
    assert raw.exchange(exact + b"\n")["id"] == 3
    assert raw.exchange(exact + b"y\n")["error"]["code"] == "line_too_long"


def test_client_closing_mid_line_is_quiet(
    server: WireServer, make_client: Callable[..., WireClient], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="redpss.wire"):
        with socket.create_connection((HOST, server.port)) as sock:
            sock.sendall(b'{"secret": "s3cret", "id": 1, "op": "ec')
        assert make_client(server.port).call("ping")["pong"] is True
    assert caplog.records == []


# --- security ----------------------------------------------------------------------------


def test_secret_enforced_on_loopback(
    make_server: ServerFactory,
    make_client: Callable[..., WireClient],
    make_raw: Callable[[int], Raw],
) -> None:
    server = make_server(secret="s3cret")
    for secret in (None, "wrong", "", "s3cret\u0000", "S3CRET"):
        with pytest.raises(RemoteError) as info:
            make_client(server.port, secret=secret).call("nonexistent")
        assert info.value.code == "unauthorized"
        assert "nonexistent" not in info.value.message  # nothing is revealed before auth
    assert make_client(server.port, secret="s3cret").call("greet", name="ops") == "hello, ops"
    raw = make_raw(server.port)
    reply = raw.exchange(b'{"id": 1, "op": "ping", "secret": 42}\n')
    assert (reply["id"], reply["error"]["code"]) == (1, "unauthorized")
    assert raw.at_eof(), "an unauthorized request ends its connection"


def test_a_server_without_secret_is_refused() -> None:
    for secret in ("", None):
        with pytest.raises(ValueError, match="secret"):
            WireServer(object(), host=HOST, port=0, secret=secret)  # type: ignore[arg-type]


def test_authorize_whoever_the_peer() -> None:
    assert authorize("s3cret", "s3cret")
    assert not authorize("s3cre", "s3cret")
    assert not authorize("s3crett", "s3cret")
    assert not authorize(None, "s3cret")
    assert not authorize(12345, "s3cret")
    assert not authorize("\ud800", "s3cret")
    assert not authorize("", "")
    assert not authorize("anything", None)


def test_long_request_is_refused_from_its_head_without_the_secret_first(
    make_server: ServerFactory, make_raw: Callable[[int], Raw]
) -> None:
    server = make_server(max_line=8 << 20)
    raw = make_raw(server.port)
    pad = b"x" * (PREAUTH_LIMIT * 4)
    # the secret after the big args: not within the first 64 KiB, refused before the rest is read
    line = b'{"id": 1, "op": "echo", "args": {"pad": "%s"}, "secret": "s3cret"}\n' % pad
    raw.sock.sendall(line[: PREAUTH_LIMIT + 1])  # no more: unread data would reset
    reply = raw.reply()
    assert reply["id"] is None
    assert reply["error"]["code"] == "unauthorized"
    assert str(PREAUTH_LIMIT) in reply["error"]["message"]
    assert raw.at_eof()
    raw = make_raw(server.port)
    line = b'{"secret": "s3cret", "id": 2, "op": "echo", "args": {"pad": "%s"}}\n' % pad
    assert raw.exchange(line)["result"] == {"pad": pad.decode()}


def test_long_request_with_a_wrong_secret_first_is_refused(
    server: WireServer, make_raw: Callable[[int], Raw]
) -> None:
    raw = make_raw(server.port)
    pad = b"x" * (PREAUTH_LIMIT + 10)
    line = b'{"secret": "guess", "id": 1, "op": "echo", "args": {"p": "%s"}}\n' % pad
    raw.sock.sendall(line[: PREAUTH_LIMIT + 1])
    assert raw.reply()["error"]["code"] == "unauthorized"
    assert raw.at_eof()


def test_long_line_of_an_authorized_caller_over_the_limit(
    make_server: ServerFactory, make_raw: Callable[[int], Raw]
) -> None:
    server = make_server(max_line=PREAUTH_LIMIT * 2)
    raw = make_raw(server.port)
    pad = b"y" * (PREAUTH_LIMIT * 3)
    reply = raw.exchange(
        b'{"secret": "s3cret", "id": 1, "op": "echo", "args": {"p": "%s"}}\n' % pad
    )
    assert reply["error"]["code"] == "line_too_long"
    assert raw.exchange(b'{"secret": "s3cret", "id": 2, "op": "echo"}\n')["result"] == {}


@given(
    before=st.dictionaries(
        st.text(max_size=8).filter(lambda k: k != "secret"), JSON_VALUES, max_size=4
    ),
    secret=JSON_VALUES,
    after=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4),
    data=st.data(),
)
def test_find_secret_agrees_with_json(
    before: dict[str, Any], secret: Any, after: dict[str, Any], data: st.DataObject
) -> None:
    """What find_secret reads from the first part of a line is what json reads from the whole."""
    after = {k: v for k, v in after.items() if k != "secret" and k not in before}
    head = json.dumps({**before, "secret": secret}, ensure_ascii=False).encode()[:-1]
    line = json.dumps({**before, "secret": secret, **after}, ensure_ascii=False).encode()
    assert line.startswith(head)
    cut = data.draw(st.integers(len(head), len(line)), label="cut")
    assert find_secret(line[:cut]) == json.loads(line)["secret"]
    if isinstance(secret, str):  # a secret cut short is no secret
        early = data.draw(st.integers(0, len(head) - 1), label="early")
        assert find_secret(line[:early]) is None


def test_find_secret_refuses_what_is_not_an_object() -> None:
    for head in (b"", b"[", b'"secret"', b'{"secret" "x"}', b"{'secret': 'x'}", b"\xff{"):
        assert find_secret(head) is None
    assert find_secret(b' \t{ "secret" : "x" , "id"') == "x"
    assert find_secret('{"secret": "\u00e9"'.encode() + "é".encode()[:1]) == "\u00e9"


def test_too_many_unauthenticated_connections_are_refused(
    make_server: ServerFactory,
    make_raw: Callable[[int], Raw],
    make_client: Callable[..., WireClient],
) -> None:
    server = make_server(max_unauthenticated=3)
    waiting: list[Raw] = []
    for _ in range(5):
        raw = make_raw(server.port)
        reply = raw.exchange(b"junk\n")  # each connection is served: it answers a bad line
        if reply["error"]["code"] == "busy":
            assert raw.at_eof()
            break
        assert reply["error"]["code"] == "bad_json"
        waiting.append(raw)
    # three, or two while the probe connection of start() was still being served
    assert len(waiting) in (2, 3)
    # an authenticated connection no longer counts
    assert waiting[0].exchange(b'{"secret": "s3cret", "id": 1, "op": "ping"}\n')["ok"] is True
    assert make_client(server.port).call("ping")["pong"] is True


def test_unauthenticated_connection_is_closed_after_preauth_timeout(
    make_server: ServerFactory, make_raw: Callable[[int], Raw]
) -> None:
    server = make_server(preauth_timeout=0.3, idle_timeout=60)
    quiet = make_raw(server.port)
    chatty = make_raw(server.port)
    started = time.monotonic()
    assert chatty.exchange(b"junk\n")["error"]["code"] == "bad_json"
    assert quiet.at_eof() and chatty.at_eof()
    assert time.monotonic() - started < DEADLINE
    authenticated = make_raw(server.port)
    assert authenticated.exchange(b'{"secret": "s3cret", "id": 1, "op": "ping"}\n')["ok"] is True
    # a connection opened after it is reaped for its silence: the pre-auth timeout has passed
    # for the authenticated one too, and it stays
    assert make_raw(server.port).at_eof()
    assert authenticated.exchange(b'{"secret": "s3cret", "id": 2, "op": "ping"}\n')["ok"] is True


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (b'{"secret": "s3cret", "id": 1, "op": "echo", "args": {"t": NaN}}', "NaN"),
        (b'{"secret": "s3cret", "id": 1, "op": "echo", "args": {"t": Infinity}}', "Infinity"),
        (b'{"secret": "s3cret", "id": 1, "op": "echo", "args": {"t": -Infinity}}', "Infinity"),
        (b'{"secret": "s3cret", "id": 1, "op": "echo", "args": {"t": 1e999}}', "1e999"),
        (
            b'{"secret": "s3cret", "id": 1, "op": "echo", "args": {"t": 9223372036854775808}}',
            "range",
        ),
        (b'{"secret": "s3cret", "id": %s, "op": "ping"}' % (b"9" * 4301), "range"),
        (b'{"secret": "s3cret", "id": "\\ud800", "op": "ping"}', "surrogate"),
        (b'{"secret": "s3cret", "id": 1, "op": "echo", "args": {"\\udfff": 1}}', "surrogate"),
        (b'{"secret": "s3cret", "id": 1, "op": "echo", "args": ["\\udc00\\ud800"]}', "surrogate"),
    ],
)
def test_numbers_and_strings_json_allows_and_we_do_not(
    server: WireServer, make_raw: Callable[[int], Raw], line: bytes, needle: str
) -> None:
    raw = make_raw(server.port)
    reply = raw.exchange(line + b"\n")
    assert reply["id"] is None
    assert reply["error"]["code"] == "bad_json"
    assert needle in reply["error"]["message"]
    ok = raw.exchange(
        b'{"secret": "s3cret", "id": 2, "op": "echo", "args": {"t": -9223372036854775807}}\n'
    )
    assert ok["result"] == {"t": -9223372036854775807}


def test_valid_surrogate_pairs_and_big_floats_pass(
    server: WireServer, make_raw: Callable[[int], Raw]
) -> None:
    raw = make_raw(server.port)
    line = b'{"secret": "s3cret", "id": 1, "op": "echo", "args": {"e": "\\ud83d\\ude00", '
    line += b'"f": 1.5e308}}\n'
    assert raw.exchange(line)["result"] == {"e": "\U0001f600", "f": 1.5e308}


def test_reply_with_a_lone_surrogate_is_still_sent(
    make_server: ServerFactory, make_client: Callable[..., WireClient]
) -> None:
    class Files:
        def op_names(self, args: dict[str, Any], peer: Peer) -> list[str]:
            return [b"caf\xe9".decode("utf-8", "surrogateescape")]  # a Latin-1 file name

    server = make_server(handler=Files())
    assert make_client(server.port).call("names") == ["caf\udce9"]


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
