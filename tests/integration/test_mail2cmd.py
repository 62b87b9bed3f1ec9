"""MAIL2CMD with smtplib as the client, JEXEC running the commands, all on loopback.

An allowed sender with a known keyword runs its command (attachments saved safely into
data/input when the rule says so); everything else is refused in the SMTP dialogue.
"""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from redpss.roles.base import RoleContext
from redpss.roles.jexec import Jexec
from redpss.roles.mail2cmd import Mail2cmd
from tests.conftest import free_port, wait_for
from tests.integration.role_support import MakeInstance, role_context, running

RECORD = """#!/bin/sh
# writes its arguments and standard input as JSON lines to tmp/ran.jsonl
python3 -c 'import json, sys
print(json.dumps({"args": sys.argv[1:], "stdin": sys.stdin.read()}))' "$@" \
    >> "$REDENV_HOME/tmp/ran.jsonl"
"""


def context(make_instance: MakeInstance) -> RoleContext:
    ctx = role_context(
        make_instance,
        mail2csv_enabled="true",
        mail2csv_port=free_port(),
        mail2cmd_allowed_senders="ops@example.com, @dwh.example.com",
        mail2cmd_commands="RUN:record.sh, upload:record.sh:save",
        mail2cmd_max_size=100000,
        mail2cmd_time_limit=30,
    )
    script = ctx.instance.home / "cmd" / "record.sh"
    script.parent.mkdir(exist_ok=True)
    script.write_text(RECORD)
    script.chmod(0o755)
    return ctx


@pytest.fixture
def services(make_instance: MakeInstance) -> Iterator[RoleContext]:
    ctx = context(make_instance)
    with running(Jexec, ctx), running(Mail2cmd, ctx):
        yield ctx


def mail(
    sender: str = "ops@example.com",
    subject: str = "RUN now",
    body: str = "hello",
    attachments: dict[str, bytes] | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "redsys@example.com"
    msg["Subject"] = subject
    msg.set_content(body)
    for name, data in (attachments or {}).items():
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg


def deliver(ctx: RoleContext, msg: EmailMessage, envelope_from: str | None = None) -> None:
    with smtplib.SMTP("127.0.0.1", ctx.config.redsys.mail2csv_port, timeout=30) as smtp:
        smtp.send_message(msg, from_addr=envelope_from)


def runs(ctx: RoleContext) -> list[dict[str, object]]:
    path = ctx.instance.home / "tmp" / "ran.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_allowed_mail_runs_its_command(services: RoleContext) -> None:
    ctx = services
    deliver(ctx, mail(subject="run please", body="the body\n"))
    done = wait_for(lambda: runs(ctx), timeout=60, what="the command's record")
    assert done == [{"args": [], "stdin": "the body\n"}]


def test_attachments_are_saved_safely_without_overwriting(services: RoleContext) -> None:
    ctx = services
    inbox = ctx.instance.home / "data" / "input"
    (inbox / "report.csv").write_bytes(b"old")
    files = {"report.csv": b"new", "../../cmd/evil.sh": b"#!/bin/sh\n", ".hidden": b"h"}
    deliver(ctx, mail(sender="loader@dwh.example.com", subject="UPLOAD", attachments=files))
    done = wait_for(lambda: runs(ctx), timeout=60, what="the command's record")
    assert done == [
        {
            "args": ["data/input/report-1.csv", "data/input/evil.sh", "data/input/hidden"],
            "stdin": "hello\n",
        }
    ]
    assert (inbox / "report.csv").read_bytes() == b"old"
    assert (inbox / "report-1.csv").read_bytes() == b"new"
    assert not (ctx.instance.home / "cmd" / "evil.sh").exists()
    assert not list(inbox.glob(".*"))  # no temporary file left behind


def test_everything_else_is_refused_in_the_dialogue(services: RoleContext) -> None:
    ctx = services
    with pytest.raises(smtplib.SMTPSenderRefused) as sender:
        deliver(ctx, mail(sender="intruder@evil.example"))
    assert sender.value.smtp_code == 550
    for msg, envelope in (
        (mail(subject="DROP everything"), None),  # no such keyword
        (mail(subject=""), None),
        (mail(sender="intruder@evil.example"), "ops@example.com"),  # forged envelope
    ):
        with pytest.raises(smtplib.SMTPDataError) as data:
            deliver(ctx, msg, envelope)
        assert data.value.smtp_code == 550
    with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPSenderRefused)) as big:
        deliver(ctx, mail(body="x" * 200_000))
    assert big.value.smtp_code == 552
    assert runs(ctx) == []


def test_jexec_down_defers_the_mail(make_instance: MakeInstance) -> None:
    ctx = context(make_instance)
    with running(Mail2cmd, ctx), pytest.raises(smtplib.SMTPDataError) as exc:
        deliver(ctx, mail(subject="UPLOAD", attachments={"a.csv": b"1"}))
    assert exc.value.smtp_code == 451
    assert not (ctx.instance.home / "data" / "input" / "a.csv").exists()
