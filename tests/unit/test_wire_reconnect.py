"""redpss.wire: a reconnecting client backs off and never stays connected to itself."""

from __future__ import annotations

import socket
import time

import pytest

from redpss.errors import ServiceUnavailable
from redpss.wire import WireClient, WireServer
from redpss.wire.client import _refuse_self_connection, open_connection
from tests.conftest import bindable, free_port
from tests.unit.wire_support import HOST, SECRET, Handler


def test_backoff_client_does_not_touch_the_network_until_its_delay_passed() -> None:
    port = free_port()
    client = WireClient(HOST, port, secret=SECRET, backoff=2.0, timeout=1.0)
    with pytest.raises(ServiceUnavailable, match="refused"):
        client.call("ping")
    begun = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="next try in"):
        client.call("ping")
    assert time.monotonic() - begun < 0.05
    # the service comes back: the client reaches it once the (short, first) delay passed
    with WireServer(Handler(), host=HOST, port=port, secret=SECRET):
        deadline = time.monotonic() + 2.0
        while True:
            try:
                assert client.call("ping")["pong"] is True
                break
            except ServiceUnavailable as exc:
                assert "next try in" in str(exc)
                assert time.monotonic() < deadline, "never retried"
                time.sleep(0.01)
    client.close()


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    client = WireClient(HOST, free_port(), backoff=0.4, timeout=1.0)
    delays = []
    for _ in range(8):
        client._retry_at = 0.0  # let the next call try at once and measure the delay it sets
        with pytest.raises(ServiceUnavailable):
            client.call("ping")
        delays.append(client._retry_at - time.monotonic())
    assert 0.04 <= delays[0] <= 0.1
    assert all(d <= 0.4 for d in delays)
    assert max(delays[4:]) >= 0.2  # the cap is reached (jitter takes up to half of it)
    assert len({round(d, 4) for d in delays[4:]}) > 1  # jittered, not one fixed period


def _self_connected(port: int) -> socket.socket:
    # A socket bound to a port and connected to that same address is connected to itself
    # (TCP simultaneous open): what a reconnect loop gets by chance from the ephemeral range.
    sock = socket.socket()
    sock.bind((HOST, port))
    sock.connect((HOST, port))
    assert sock.getsockname() == sock.getpeername()
    return sock


def test_a_plain_close_of_a_self_connection_blocks_the_port() -> None:
    # why the client resets: a plain close leaves TIME-WAIT, and the service cannot bind
    port = free_port()
    _self_connected(port).close()
    assert not bindable(port)


def test_a_connection_to_itself_is_reset_and_reported() -> None:
    port = free_port()
    sock = _self_connected(port)
    with pytest.raises(ServiceUnavailable, match="reached itself"):
        _refuse_self_connection(sock, f"{HOST}:{port}")
    assert sock.fileno() == -1
    assert bindable(port)


def test_a_connection_to_another_socket_is_kept() -> None:
    with WireServer(Handler(), host=HOST, port=0, secret=SECRET) as server:
        sock = open_connection(HOST, server.port, 1.0)
        _refuse_self_connection(sock, "x")
        assert sock.fileno() != -1
        sock.close()


def test_open_connection_refuses_nothing_listening() -> None:
    with pytest.raises(ServiceUnavailable, match="refused"):
        open_connection(HOST, free_port(), 1.0)
