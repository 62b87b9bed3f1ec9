"""SENDMAIL against a real aiosmtpd relay on loopback: STARTTLS (trustme) and AUTH.

Spool before ack, relay down → queued → relay up → delivered once, a restart between spool and
delivery → still once, 5xx → dead letter, an interrupted delivery is never repeated.
"""

from __future__ import annotations

from typing import Any

import pytest

from redpss import wire
from redpss.errors import RemoteError
from redpss.roles.base import RoleContext
from redpss.roles.sendmail import Sendmail
from tests.conftest import MakeRelay, wait_for
from tests.integration.role_support import MakeInstance, role_context, running
from tests.smtp_relay import Relay

USER, PASSWORD = "redsys", "s3cret"


@pytest.fixture
def relay(make_relay: MakeRelay) -> Relay:
    """A relay demanding STARTTLS and AUTH; down until the test calls ``start()``."""
    return make_relay(tls=True, login=(USER, PASSWORD), start=False)


def context(make_instance: MakeInstance, relay: Relay, **extra: Any) -> RoleContext:
    settings: dict[str, Any] = {
        "sendmail_smtp_host": "127.0.0.1",
        "sendmail_smtp_port": relay.port,
        "sendmail_smtp_encr": "STARTTLS",
        "sendmail_smtp_user": USER,
        "sendmail_smtp_pass": PASSWORD,
        "sendmail_smtp_from": "redsys@example.com",
        "sendmail_smtp_cafile": relay.cafile,
        "sendmail_retry_base": 0.2,
        "sendmail_retry_max": 1,
        "sendmail_smtp_timeout": 10,
    }
    settings.update(extra)
    return role_context(make_instance, **settings)


def send(ctx: RoleContext, **args: Any) -> Any:
    return wire.call(
        "127.0.0.1",
        ctx.config.redsys.sendmail_port,
        "send",
        secret=ctx.config.redsys.pss_secret.reveal(),
        timeout=30,
        **args,
    )


def status(ctx: RoleContext, **args: Any) -> Any:
    return wire.call(
        "127.0.0.1",
        ctx.config.redsys.sendmail_port,
        "status",
        secret=ctx.config.redsys.pss_secret.reveal(),
        **args,
    )


def test_mail_with_attachment_over_starttls_and_auth(
    make_instance: MakeInstance, relay: Relay
) -> None:
    relay.start()
    ctx = context(make_instance, relay)
    report = ctx.instance.home / "data" / "export" / "report.csv"
    report.parent.mkdir(exist_ok=True)
    report.write_text("a;b\n1;2\n")
    with running(Sendmail, ctx):
        r = send(
            ctx,
            to=["ops@example.com"],
            cc="boss@example.com",
            bcc=["audit@example.com"],
            subject="Load done ✓",
            body="Rows: 2",
            attachments=["data/export/report.csv"],
        )
        assert r["state"] == "queue" and r["duplicate"] is False
        wait_for(lambda: relay.inbox.count() == 1, timeout=60, what="mail at the relay")
        wait_for(lambda: status(ctx, id=r["id"])["state"] == "sent", timeout=30, what="sent")
    msg = relay.inbox.mails[0]
    assert msg["Subject"] == "Load done ✓"
    assert msg["From"] == "redsys@example.com"
    assert msg["To"] == "ops@example.com" and msg["Cc"] == "boss@example.com"
    assert msg["Bcc"] is None
    assert relay.inbox.envelopes[0] == (
        "redsys@example.com",
        ["ops@example.com", "boss@example.com", "audit@example.com"],
    )
    assert relay.inbox.tls == [True] and relay.inbox.logins == [USER]
    body = msg.get_body(("plain",))
    assert body is not None and body.get_content().strip() == "Rows: 2"
    (att,) = list(msg.iter_attachments())
    assert att.get_filename() == "report.csv"
    assert att.get_content() in ("a;b\n1;2\n", b"a;b\n1;2\n")


def test_relay_down_then_up_and_a_restart_between_delivers_each_once(
    make_instance: MakeInstance, relay: Relay
) -> None:
    ctx = context(make_instance, relay)
    with running(Sendmail, ctx):
        ids = [send(ctx, to="ops@example.com", subject=f"m{i}")["id"] for i in range(3)]
        wait_for(lambda: status(ctx)["relay_error"], timeout=30, what="the relay to be seen down")
        assert status(ctx)["queued"] == 3
    # restarted while the mails wait: the new process finds them in the spool
    with running(Sendmail, ctx):
        assert status(ctx)["queued"] == 3
        relay.start()
        wire.call(
            "127.0.0.1",
            ctx.config.redsys.sendmail_port,
            "flush",
            secret=ctx.config.redsys.pss_secret.reveal(),
        )
        wait_for(lambda: status(ctx)["sent"] == 3, timeout=60, what="3 mails sent")
    with running(Sendmail, ctx):  # and a further restart sends nothing again
        assert status(ctx)["sent"] == 3 and status(ctx)["queued"] == 0
        # a request repeated with the same key is spooled once
        first = send(ctx, to="ops@example.com", subject="keyed", key="LOAD_42/run/7")
        again = send(ctx, to="ops@example.com", subject="keyed", key="LOAD_42/run/7")
        assert again == {"id": first["id"], "duplicate": True, "state": again["state"]}
        wait_for(lambda: status(ctx)["sent"] == 4, timeout=60, what="keyed mail sent")
    subjects = sorted(str(m["Subject"]) for m in relay.inbox.mails)
    assert subjects == ["keyed", "m0", "m1", "m2"]
    assert len({m["Message-ID"] for m in relay.inbox.mails}) == 4
    assert len(ids) == 3


def test_refused_mail_goes_to_dead_letters_and_can_be_requeued(
    make_instance: MakeInstance, relay: Relay
) -> None:
    relay.start()
    ctx = context(make_instance, relay)
    with running(Sendmail, ctx):
        r = send(ctx, to="nobody@example.com", subject="lost")
        wait_for(lambda: status(ctx)["dead"] == 1, timeout=60, what="dead letter")
        (dead,) = wire.call(
            "127.0.0.1",
            ctx.config.redsys.sendmail_port,
            "dead",
            secret=ctx.config.redsys.pss_secret.reveal(),
        )
        assert dead["id"] == r["id"] and "550" in dead["reason"]
        assert status(ctx, id=r["id"])["state"] == "dead"
        ok = send(ctx, to="ops@example.com", subject="fine")
        wait_for(lambda: status(ctx, id=ok["id"])["state"] == "sent", timeout=60, what="sent")
        wire.call(
            "127.0.0.1",
            ctx.config.redsys.sendmail_port,
            "requeue",
            secret=ctx.config.redsys.pss_secret.reveal(),
            id=r["id"],
        )
        wait_for(lambda: status(ctx)["dead"] == 1 and status(ctx)["queued"] == 0, timeout=60)


def test_interrupted_delivery_is_dead_lettered_not_repeated(
    make_instance: MakeInstance, relay: Relay
) -> None:
    relay.start()
    ctx = context(make_instance, relay)
    spool = ctx.instance.home / "spool" / "sendmail"
    (spool / "inflight").mkdir(parents=True)
    (spool / "inflight" / "1-abc.mail").write_bytes(
        b'{"id":"1-abc","from":"a@b.c","rcpt":["ops@example.com"],"subject":"x",'
        b'"queued_at":1,"key":null}\nSubject: x\r\n\r\nx\r\n'
    )
    (spool / "tmp").mkdir()
    (spool / "tmp" / "2-def.mail").write_bytes(b"half")
    with running(Sendmail, ctx):
        st = status(ctx, id="1-abc")
        assert st["state"] == "dead" and "interrupted" in st["reason"]
        assert not (spool / "tmp" / "2-def.mail").exists()
    assert relay.inbox.count() == 0


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"subject": "x"}, "'to'"),
        ({"to": "not an address", "subject": "x"}, "'to' must be a mail address"),
        ({"to": ["a@b.c", "x"], "subject": "x"}, "'to[1]' must be a mail address"),
        ({"to": [], "subject": "x"}, "'to' is missing"),
        ({"to": "a@b.c\r\nBcc: evil@x.y", "subject": "x"}, "'to'"),
        ({"to": "a@b.c"}, "'subject'"),
        ({"to": "a@b.c", "subject": "a\nb"}, "'subject'"),
        ({"to": "a@b.c", "subject": "x", "attachments": ["../../etc/passwd"]}, "outside"),
        ({"to": "a@b.c", "subject": "x", "attachments": ["/etc/passwd"]}, "outside"),
        ({"to": "a@b.c", "subject": "x", "attachments": ["nope.csv"]}, "not in a folder"),
        ({"to": "a@b.c", "subject": "x", "attachments": ["etc/secret"]}, "not in a folder"),
        ({"to": "a@b.c", "subject": "x", "attachments": ["data/archive/x.csv"]}, "not in a folder"),
        ({"to": "a@b.c", "subject": "x", "attachments": ["data/export/nope.csv"]}, "not exist"),
        ({"to": "a@b.c", "subject": "x", "attachments": ["data/export/../db/REDSYS.db"]}, "not in"),
        ({"to": "a@b.c", "subject": "x", "html": "yes"}, "'html'"),
        ({"to": "a@b.c", "subject": "x", "priority": 1}, "priority"),
    ],
)
def test_bad_requests_name_the_field(
    make_instance: MakeInstance, relay: Relay, args: dict[str, Any], field: str
) -> None:
    ctx = context(make_instance, relay)
    with running(Sendmail, ctx):
        with pytest.raises(RemoteError) as info:
            send(ctx, **args)
        assert info.value.code == "bad_args" and field in info.value.message
        assert status(ctx)["queued"] == 0
