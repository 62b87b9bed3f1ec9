"""A request with the right secret may take longer than the time allowed to authenticate:
jexec's ``run`` of a command lasts as long as the command (a CMD job of 20 s failed after 10 s
with "closed the connection during 'run'" while its command ended well)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from redpss.wire import Peer, WireClient, WireServer

pytestmark = pytest.mark.unit

SECRET = "s3cret"


class Slow:
    def op_sleep(self, args: dict[str, Any], peer: Peer) -> str:
        time.sleep(float(args["seconds"]))
        return "done"


def test_an_authenticated_request_outlives_the_preauth_timeout() -> None:
    server = WireServer(Slow(), host="127.0.0.1", port=0, secret=SECRET, preauth_timeout=0.3)
    server.start()
    try:
        with WireClient("127.0.0.1", server.port, secret=SECRET, timeout=10) as client:
            assert client.call("sleep", seconds=1.2) == "done"
        assert server.unauthenticated == 0
    finally:
        server.stop()
