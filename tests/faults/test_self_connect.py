"""Promise 4 (every fault heals): a client retrying a stopped port never connects to itself.

Issue #14, item 1: sched was down, jmon reconnected several times a second, one connect got
sched's port as its own source port and connected to itself; the TIME-WAIT it left kept sched
from binding its port for a minute. Here the same loop runs against a stopped port inside the
kernel's ephemeral range: every attempt must end as "service unavailable", never as a garbled
reply from itself, and the port must stay free for the service to bind.

On the host's range (28 000 ports) a self-connection came after ~1 500 attempts when the host was
quiet and not at all in 60 s when it was busy (other connections move the kernel's port choice
on), so the loop runs in a network namespace of its own whose range is just the stopped port and
its neighbour: the kernel's first choice of a source port is the stopped port itself, every time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PORT = 40000  # inside the namespace only: nothing else listens or connects there
ATTEMPTS = 200

LOOP = """
import json, sys
from redpss.errors import ServiceUnavailable, WireError
from redpss.ports import ephemeral_range
from redpss.wire import call
from tests.conftest import bindable

port, attempts = int(sys.argv[1]), int(sys.argv[2])
seen_self, wrong = 0, []
for _ in range(attempts):
    try:
        call("127.0.0.1", port, "ping", timeout=1.0)
    except ServiceUnavailable as exc:
        seen_self += "itself" in str(exc)
    except WireError as exc:  # before the fix: its own request read back as the reply
        wrong.append(f"{type(exc).__name__}: {exc}")
    else:
        wrong.append("a call to a stopped port succeeded")
print(json.dumps({"range": ephemeral_range(), "self": seen_self, "wrong": wrong,
                  "bindable": bindable(port)}))
"""


def test_reconnect_loop_to_a_stopped_port_never_connects_to_itself() -> None:
    setup = (
        f"ip link set lo up && echo '{PORT} {PORT + 1}' > /proc/sys/net/ipv4/ip_local_port_range"
        ' && exec "$0" -c "$1" "$2" "$3"'
    )
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", setup, sys.executable, LOOP, str(PORT), str(ATTEMPTS)],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["range"] == [PORT, PORT + 1], seen  # the namespace's range, not the host's
    assert seen["wrong"] == []
    assert seen["self"] > 0, f"no self-connection in {ATTEMPTS} attempts: {seen}"
    # what the self-connection must not leave behind: a TIME-WAIT that blocks the service's bind
    assert seen["bindable"], f"port {PORT} cannot be bound after the self-connections: {seen}"
