"""redpss.wire: many clients, timeouts, reconnects, start/stop, garbage replies."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from redpss import wire
from redpss.errors import ProtocolError, RemoteError, ServiceUnavailable, WireError
from redpss.wire import WireClient, WireServer
from tests.conftest import free_port, wait_for
from tests.unit.wire_support import (
    DEADLINE,
    HOST,
    SECRET,
    Handler,
    Raw,
    ServerFactory,
    make_client,
    make_raw,
    make_server,
    server,
)

__all__ = ["make_client", "make_raw", "make_server", "server"]  # fixtures, imported for pytest


def test_many_concurrent_clients(server: WireServer) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            with WireClient(HOST, server.port, secret=SECRET) as client:
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
    assert raw.exchange(b'{"secret": "s3cret", "id": 1, "op": "ping"}\n')["ok"] is True
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
    wait_for(
        lambda: wire._closed_by_peer(sock),
        timeout=DEADLINE,
        every=0.01,
        what="the server to close the idle connection",
    )
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
        wire.call(HOST, port, "ping", secret=SECRET, timeout=1.0)


def test_start_on_port_in_use(make_server: ServerFactory) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServiceUnavailable, match=rf"port {port} on {HOST} is already in use"):
            make_server(port=port)


def test_stop_twice_and_before_start() -> None:
    never_started = WireServer(Handler(), host=HOST, port=0, secret=SECRET)
    never_started.stop()
    never_started.stop()
    server = WireServer(Handler(), host=HOST, port=0, secret=SECRET)
    try:
        server.start()
        server.start()  # already running: no-op
        port = server.port
    finally:
        server.stop()
    server.stop()
    with pytest.raises(ServiceUnavailable):
        wire.call(HOST, port, "ping", secret=SECRET, timeout=1.0)
    with pytest.raises(WireError, match="stopped"):
        server.start()


def test_stop_closes_open_connections(make_raw: Callable[[int], Raw]) -> None:
    with WireServer(Handler(), host=HOST, port=0, secret=SECRET) as server:
        raw = make_raw(server.port)
        assert raw.exchange(b'{"secret": "s3cret", "id": 1, "op": "ping"}\n')["ok"] is True
    assert raw.at_eof()


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    try:
        server = WireServer(Handler(), host="::1", port=0, secret=SECRET)
        server.start()
    except ServiceUnavailable as exc:
        pytest.skip(f"IPv6 loopback unusable here: {exc}")
    try:
        assert wire.call("::1", server.port, "whoami", secret=SECRET) == {
            "host": "::1",
            "loopback": True,
        }
    finally:
        server.stop()


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_line"):
        WireServer(Handler(), host=HOST, port=0, secret=SECRET, max_line=0)
    with pytest.raises(ValueError, match="idle_timeout"):
        WireServer(Handler(), host=HOST, port=0, secret=SECRET, idle_timeout=0)


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


def test_a_burst_of_connections_waits_in_the_kernel_while_the_accept_loop_is_busy(
    server: WireServer,
) -> None:
    """40 connects while the accept loop is held all complete at once (the listen backlog is
    not socketserver's 5): a dropped SYN would stall a client 1, 3, 7 … s, and under load
    the last ones of a burst reached the server only after the first had hit their timeout."""
    held: list[socket.socket] = []
    try:
        with server._lock:  # the accept loop waits in service_actions; nothing is accepted
            for _ in range(40):
                held.append(socket.create_connection((HOST, server.port), timeout=0.5))
        good = f'{{"secret":"{SECRET}","id":1,"op":"ping"}}\n'.encode()
        for sock in held:
            sock.settimeout(DEADLINE)
            sock.sendall(good)
        for sock in held:  # and every one of them is then served
            assert json.loads(sock.makefile("rb").readline())["ok"] is True
    finally:
        for sock in held:
            sock.close()


class _SleepRecordingServer(WireServer):
    """Records how long the accept loop means to sleep after each pass (None: until woken)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sleeps: list[float | None] = []

    def _until_next_deadline(self) -> float | None:
        seconds = super()._until_next_deadline()
        self.sleeps.append(seconds)
        return seconds


def test_an_idle_server_sleeps_until_woken_and_still_stops_at_once() -> None:
    # socketserver's serve_forever woke every 0.1 s to look for a shutdown request: ten
    # wake-ups a second in every role of an idle instance
    server = _SleepRecordingServer(Handler(), host=HOST, port=0, secret=SECRET, preauth_timeout=0.2)
    server.start()
    try:
        with WireClient(HOST, server.port, secret=SECRET) as client:
            assert client.call("ping")["pong"] is True
        # after the accept the loop wakes once more (at most the pre-auth timeout later) and,
        # with no connection waiting to authenticate, goes to sleep without a deadline
        wait_for(lambda: server.sleeps and server.sleeps[-1] is None, timeout=DEADLINE, every=0.01)
        assert server.thread is not None and server.thread.is_alive()
    finally:
        started = time.monotonic()
        server.stop()
    assert time.monotonic() - started < 1.0
    assert server.thread is not None and not server.thread.is_alive()


def test_a_silent_connection_is_reaped_while_the_loop_sleeps(
    make_server: ServerFactory, make_raw: Callable[[int], Raw]
) -> None:
    server = make_server(preauth_timeout=0.3, idle_timeout=60)
    wait_for(
        lambda: server.unauthenticated == 0, timeout=DEADLINE, every=0.01
    )  # start()'s own probe is gone
    started = time.monotonic()
    assert make_raw(server.port).at_eof()
    assert 0.25 < time.monotonic() - started < DEADLINE
