"""Promise 4 (every fault heals): a client retrying a stopped port never connects to itself.

Issue #14, item 1: sched was down, jmon reconnected several times a second, one connect got
sched's port as its own source port and connected to itself; the TIME-WAIT it left kept sched
from binding its port for a minute. Here the same loop runs against a stopped port inside the
kernel's ephemeral range: every attempt must end as "service unavailable", never as a garbled
reply from itself, and the port must stay free for the service to bind.
"""

from __future__ import annotations

import random
import time

from redpss.errors import ServiceUnavailable, WireError
from redpss.ports import ephemeral_range
from redpss.wire import call
from tests.conftest import bindable

HOST = "127.0.0.1"
ATTEMPTS = 30000
DEADLINE = 60.0


def _stopped_ephemeral_port() -> int:
    low, high = ephemeral_range()
    rng = random.Random()
    for _ in range(500):
        # connect() takes even source ports on current kernels: an even port is hit soonest
        port = rng.randrange(low + 1000, high - 1000) & ~1
        if bindable(port):
            return port
    raise RuntimeError("no free port in the ephemeral range")


def test_reconnect_loop_to_a_stopped_port_never_connects_to_itself() -> None:
    port = _stopped_ephemeral_port()
    seen_self = 0
    wrong: list[str] = []
    begun = time.monotonic()
    for _ in range(ATTEMPTS):
        try:
            call(HOST, port, "ping", timeout=1.0)
        except ServiceUnavailable as exc:
            if "itself" in str(exc):
                seen_self += 1
                break
        except WireError as exc:  # before the fix: its own request read back as the reply
            wrong.append(f"{type(exc).__name__}: {exc}")
            break
        else:
            wrong.append("a call to a stopped port succeeded")
            break
        if time.monotonic() - begun > DEADLINE:
            break
    assert wrong == []
    assert seen_self, f"no self-connection in {ATTEMPTS} attempts (kernel chose other ports)"
    # what the self-connection must not leave behind: a TIME-WAIT that blocks the service's bind
    assert bindable(port), f"port {port} cannot be bound after the self-connection"
