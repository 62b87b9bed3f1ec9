"""Issue 15, item 1: sendmail attaches only from its attachment folders, following no link.

The caller here holds the secret, as a Lua script in the database does through its CONNECTION,
and still runs as nobody: what it must not get is the instance's own files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.security.conftest import Running, as_nobody, nobody_sends, running

__all__ = ["running"]  # the fixture, imported for pytest


def send(run: Running, *paths: str) -> dict[str, object]:
    request = {
        "secret": run.secret,
        "id": 1,
        "op": "send",
        "args": {"to": "x@example.com", "subject": "leak", "attachments": list(paths)},
    }
    seen = nobody_sends(run.config.redsys.sendmail_port, json.dumps(request).encode() + b"\n")
    (reply,) = seen.replies
    return reply


def spooled(run: Running) -> list[Path]:
    spool = run.home / "spool" / "sendmail"
    return [p for d in ("queue", "inflight", "sent", "dead") for p in (spool / d).glob("*.mail")]


@pytest.mark.parametrize(
    "path",
    [
        "etc/secret",
        "etc/cfi_password",
        "etc/red_params.conf",
        "data/db/REDSYS.db",
        "log/sendmail.log",
        "tmp/supervisord.conf",
        "data/export/../../etc/secret",
        "{home}/etc/secret",
        "/etc/shadow",
    ],
)
def test_the_instances_own_files_are_never_attached(running: Running, path: str) -> None:
    reply = send(running, path.format(home=running.home))
    assert reply["ok"] is False and reply["error"]["code"] == "bad_args", reply  # type: ignore[index]
    assert spooled(running) == []


def test_links_planted_in_the_export_folder_are_not_followed(running: Running) -> None:
    export = running.home / "data" / "export"
    (export / "leak.txt").symlink_to("../../etc/secret")
    (export / "conf").symlink_to(running.home / "etc")
    os.link(running.home / "etc" / "secret", export / "hard.txt")
    try:
        for path in ("data/export/leak.txt", "data/export/conf/secret", "data/export/hard.txt"):
            reply = send(running, path)
            assert reply["error"]["code"] == "bad_args", reply  # type: ignore[index]
    finally:
        for name in ("leak.txt", "conf", "hard.txt"):
            (export / name).unlink()
    assert spooled(running) == []


def test_a_file_of_the_export_folder_goes(running: Running) -> None:
    (running.home / "data" / "export" / "report.csv").write_text("a,b\n1,2\n")
    reply = send(running, "data/export/report.csv")
    assert reply["ok"] is True, reply
    (mail,) = spooled(running)
    assert b"report.csv" in mail.read_bytes()
    # the mail in the spool is the instance user's alone
    assert mail.stat().st_mode & 0o777 == 0o600
    assert mail.parent.stat().st_mode & 0o777 == 0o700
    assert as_nobody("cat", str(mail)).returncode != 0
    mail.unlink()
