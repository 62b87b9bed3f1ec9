"""DBLS on loopback: log buffers into files and LOG_MESSAGES; bad requests; slow dictionary."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from redpss import wire
from redpss.errors import RemoteError
from redpss.roles.dbls import Dbls
from tests.conftest import wait_for
from tests.integration.role_support import (
    MakeInstance,
    log_messages,
    outside_address,
    role_context,
    running,
)


def raw(port: int, *lines: bytes) -> list[dict[str, Any]]:
    """Send raw request lines on one connection; return the replies."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"".join(lines))
        f = s.makefile("rb")
        return [json.loads(f.readline()) for _ in lines]


def test_buffer_goes_to_the_day_file_and_errors_to_log_messages(
    make_instance: MakeInstance,
) -> None:
    ctx = role_context(make_instance)
    port, secret = ctx.config.redsys.dbls_port, ctx.config.redsys.pss_secret.reveal()
    with running(Dbls, ctx):
        result = wire.call(
            "127.0.0.1",
            port,
            "log",
            secret=secret,
            schema="stage",
            source="LOAD_SALES",
            lines=[
                "12:00:00 INFO started",
                "12:00:01 ERROR no file",
                {"level": "ALERT", "message": "x"},
            ],
        )
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        assert result == {"written": 3, "file": f"log/DB/STAGE/{day}.log", "messages": 2}
        text = (ctx.instance.home / result["file"]).read_text().splitlines()
        assert text[:2] == ["12:00:00 INFO started", "12:00:01 ERROR no file"]
        assert text[2].endswith("ALERT LOAD_SALES: x")
        msgs = wait_for(
            lambda: log_messages(ctx, 10) if len(log_messages(ctx, 10)) == 2 else None,
            timeout=30,
            what="LOG_MESSAGES",
        )
        assert isinstance(msgs, list)
        assert {(m.schema, m.level, m.source, m.message) for m in msgs} == {
            ("STAGE", "ERROR", "LOAD_SALES", "12:00:01 ERROR no file"),
            ("STAGE", "ALERT", "LOAD_SALES", "x"),
        }
        # a second buffer appends
        wire.call("127.0.0.1", port, "log", secret=secret, schema="STAGE", lines=["more"])
        assert (ctx.instance.home / result["file"]).read_text().splitlines()[-1] == "more"


def test_bad_requests_get_error_replies_and_the_server_keeps_serving(
    make_instance: MakeInstance,
) -> None:
    ctx = role_context(make_instance, dbls_max_line=50)
    port = ctx.config.redsys.dbls_port
    s = b'"secret":"%s",' % ctx.config.redsys.pss_secret.reveal().encode()
    with running(Dbls, ctx):
        replies = raw(
            port,
            b'{%s"id":1,"op":"nope"}\n' % s,
            b'{%s"id":2,"op":"log","args":{"lines":["x"]}}\n' % s,
            b'{%s"id":3,"op":"log","args":{"schema":"S","lines":["%s"]}}\n' % (s, b"x" * 51),
            b"not json\n",
            b'{%s"id":4,"op":"log","args":{"schema":"S","lines":["fine"]}}\n' % s,
        )
        assert [r["ok"] for r in replies] == [False, False, False, False, True]
        assert replies[0]["error"]["code"] == "unknown_op"
        assert "log" in replies[0]["error"]["message"]
        assert replies[1]["error"]["code"] == "bad_args"
        assert "'schema'" in replies[1]["error"]["message"]
        assert "'lines[0]' is longer than 50 bytes" in replies[2]["error"]["message"]
        assert replies[3]["error"]["code"] == "bad_json"
        # nothing of the rejected buffer was written
        files = list((ctx.instance.log_dir / "DB" / "S").glob("*.log"))
        assert [f.read_text() for f in files] == ["fine\n"]


def test_wrong_secret_from_another_address_is_refused(make_instance: MakeInstance) -> None:
    addr = outside_address()
    if addr is None:
        pytest.skip("this host has no non-loopback address")
    ctx = role_context(make_instance, dbls_host="0.0.0.0")
    port = ctx.config.redsys.dbls_port
    secret = ctx.config.redsys.pss_secret.reveal()
    with running(Dbls, ctx):
        with pytest.raises(RemoteError) as info:
            wire.call(addr, port, "log", secret="wrong", schema="S", lines=["x"])
        assert info.value.code == "unauthorized"
        ok = wire.call(addr, port, "log", secret=secret, schema="S", lines=["x"])
        assert ok["written"] == 1


def test_a_slow_dictionary_never_delays_the_file(make_instance: MakeInstance) -> None:
    ctx = role_context(make_instance)
    release = threading.Event()
    real = ctx.dictionary.log_message

    def slow(*args: Any, **kwargs: Any) -> int:
        release.wait(60)
        return real(*args, **kwargs)

    ctx.dictionary.log_message = slow  # type: ignore[method-assign]
    port, secret = ctx.config.redsys.dbls_port, ctx.config.redsys.pss_secret.reveal()
    with running(Dbls, ctx):
        for i in range(5):
            r = wire.call(
                "127.0.0.1", port, "log", secret=secret, schema="S", lines=[f"ERROR {i}"], timeout=5
            )
            assert r["written"] == 1
        release.set()
        wait_for(lambda: len(log_messages(ctx, 10)) == 5, timeout=30, what="5 messages")
