"""Issue 15, items 1, 4, 5: every wire request proves the instance secret, loopback included;
a caller without it costs the server at most a bounded first part of its request; malformed
numbers and strings get an error reply, never a dropped connection or a bypassed limit.

Each attempt is made against a running instance (supervisord, real roles), by the local user
nobody where rights matter.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.security.conftest import Running, as_nobody, nobody_sends, running

__all__ = ["running"]  # the fixture, imported for pytest

SERVICE_PORTS = ("sched_service_port", "dbls_port", "jexec_port", "sendmail_port", "sendfile_port")


def port(run: Running, key: str) -> int:
    port: int = getattr(run.config.redsys, key)
    return port


def test_nobody_cannot_read_the_secret_it_would_need(running: Running) -> None:
    done = as_nobody("cat", str(running.home / "etc" / "secret"))
    assert done.returncode != 0 and "Permission denied" in done.stderr


@pytest.mark.parametrize("key", SERVICE_PORTS)
def test_every_service_refuses_loopback_callers_without_the_secret(
    running: Running, key: str
) -> None:
    seen = nobody_sends(port(running, key), b'{"id":1,"op":"ping"}\n')
    assert [r["error"]["code"] for r in seen.replies] == ["unauthorized"]
    assert seen.closed, "an unauthorized connection is closed"
    seen = nobody_sends(port(running, key), b'{"secret":"guess","id":1,"op":"ping"}\n')
    assert [r["error"]["code"] for r in seen.replies] == ["unauthorized"]


def test_nobody_cannot_mail_the_secrets_out(running: Running) -> None:
    """The request of issue 15 item 1, as written, from nobody on loopback."""
    request = {
        "id": 1,
        "op": "send",
        "args": {
            "to": "x@example.com",
            "subject": "leak",
            "attachments": ["etc/secret", "etc/ssl/REST/key.pem", "etc/cfi_password"],
        },
    }
    seen = nobody_sends(port(running, "sendmail_port"), json.dumps(request).encode() + b"\n")
    assert seen.replies[0]["error"]["code"] == "unauthorized"
    spool = running.home / "spool" / "sendmail"
    assert [p for d in ("queue", "inflight", "sent", "dead") for p in (spool / d).glob("*")] == []


def test_nobody_cannot_run_a_command_through_jexec(running: Running) -> None:
    marker = running.home / "tmp" / "ran-as-instance-user"
    script = running.home / "cmd" / "touch.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    request = b'{"id":1,"op":"run","args":{"command":"touch.sh"}}\n'
    seen = nobody_sends(port(running, "jexec_port"), request)
    assert seen.replies[0]["error"]["code"] == "unauthorized"
    assert not marker.exists()


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _current_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_big_requests_without_the_secret_cost_no_memory(running: Running) -> None:
    """Eight concurrent 28 MiB requests without the secret (issue 15 item 4: 845 MB of RSS)."""
    pid = running.role_pid("dbls")
    log = running.home / "log" / "dbls.log"
    refusal = "unauthorized: missing or wrong secret in the first 65536 bytes"
    logged_before = log.read_text().count(refusal)
    before = _current_rss_kib(pid)
    body = b"a" * (28 << 20)
    line = b'{"id":1,"op":"log","args":{"schema":"X","lines":["' + body + b'"]},"secret":"x"}\n'
    replies: list[bytes] = []

    def attack() -> None:
        with socket.create_connection(("127.0.0.1", port(running, "dbls_port")), timeout=60) as s:
            # the server answers and closes after 64 KiB; the rest of the send then fails, and
            # the reply may be lost to the reset that closing with unread data causes
            with contextlib.suppress(OSError):
                s.sendall(line)
            with contextlib.suppress(OSError):
                replies.append(s.makefile("rb").readline())

    threads = [threading.Thread(target=attack) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    for reply in replies:
        assert reply == b"" or json.loads(reply)["error"]["code"] == "unauthorized"
    grown = _peak_rss_kib(pid) - before
    assert grown < 32 << 10, f"dbls grew by {grown} KiB for requests it refused"
    assert log.read_text().count(refusal) - logged_before == 8  # each one is logged


def test_idle_unauthenticated_connections_are_capped_and_time_out(running: Running) -> None:
    """Holding connections open without a request costs a bounded number of slots, for 10 s."""
    p = port(running, "sendmail_port")
    began = time.monotonic()
    held = [socket.create_connection(("127.0.0.1", p), timeout=30) for _ in range(70)]
    try:
        deadline = time.monotonic() + 10
        while len(busy := select.select(held, [], [], 0.2)[0]) < 70 - 64:
            assert time.monotonic() < deadline, f"only {len(busy)} connections were refused"
        for s in busy:
            assert json.loads(s.makefile("rb").readline())["error"]["code"] == "busy"
        waiting = [s for s in held if s not in busy]
        assert len(waiting) <= 64
        for s in waiting:
            assert s.makefile("rb").read() == b""  # closed by the server, without a word
        assert 9 < time.monotonic() - began < 20
    finally:
        for s in held:
            s.close()
    good = f'{{"secret":"{running.secret}","id":1,"op":"ping"}}\n'.encode()
    assert nobody_sends(p, good).replies[0]["ok"] is True  # knowing the secret is all it takes


def test_nan_time_limit_is_refused_and_jexec_timeout_holds(running: Running) -> None:
    """jexec "time_limit": NaN ran a sleep past jexec_timeout (issue 15 item 5)."""
    assert running.config.redsys.jexec_timeout == 3
    script = running.home / "cmd" / "slow.sh"
    script.write_text("#!/bin/sh\nsleep 6\necho done\n")
    script.chmod(0o755)
    p = port(running, "jexec_port")
    ping = b'{"secret":"%s","id":2,"op":"ping"}\n' % running.secret.encode()

    def run(limit: str) -> bytes:
        head = f'{{"secret":"{running.secret}","id":1,"op":"run",'
        return f'{head}"args":{{"command":"slow.sh","time_limit":{limit}}}}}\n'.encode()

    for bad in ("NaN", "Infinity", "-Infinity", "1e999"):
        seen = nobody_sends(p, run(bad), ping)
        assert seen.replies[0]["error"]["code"] == "bad_json", seen
        assert seen.replies[1]["ok"] is True and not seen.closed
    for bad in ("0", "-1", "true", '"5"'):
        seen = nobody_sends(p, run(bad), ping)
        assert seen.replies[0]["error"]["code"] == "bad_args", seen
        assert "time_limit" in seen.replies[0]["error"]["message"]
    began = time.monotonic()
    seen = nobody_sends(p, run("1e308"))  # more than allowed: jexec_timeout is the limit
    result = seen.replies[0]["result"]
    assert result["timed_out"] is True and result["stdout"] == ""
    assert 2.5 < result["seconds"] < 5.5 and time.monotonic() - began < 10


@pytest.mark.parametrize("key", SERVICE_PORTS)
def test_malformed_ids_get_a_reply_and_the_connection_lives(running: Running, key: str) -> None:
    s = running.secret.encode()
    lines = [
        b'{"secret":"%s","id":"\\ud800","op":"ping"}\n' % s,
        b'{"secret":"%s","id":%s,"op":"ping"}\n' % (s, b"9" * 4301),
        b'{"secret":"%s","id":1,"op":"ping","args":{"x":-%s}}\n' % (s, b"1" * 40),
        b"{not json\n",
        b'{"secret":"%s","id":2,"op":"ping"}\n' % s,
    ]
    seen = nobody_sends(port(running, key), *lines)
    codes = [r["ok"] or r["error"]["code"] for r in seen.replies]
    assert codes == ["bad_json", "bad_json", "bad_json", "bad_json", True]
    assert not seen.closed
