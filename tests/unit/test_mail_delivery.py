"""Mail delivery without a relay: a scripted transport, the real spool, a clock we move."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from redpss.errors import MailError
from redpss.mail.delivery import Delivery, Retries
from redpss.mail.message import Composed
from redpss.mail.spool import Spool
from tests.conftest import wait_for

pytestmark = pytest.mark.unit

Outcome = MailError | dict[str, str] | None


@dataclass
class Script:
    """A relay whose answers the test writes: what connect() and send() do, in turn."""

    connects: list[MailError | None] = field(default_factory=list)
    sends: list[Outcome] = field(default_factory=list)
    sent: list[tuple[str, list[str]]] = field(default_factory=list)
    closed: int = 0
    address: str = "mx.example.com:25"
    idle: float = 0.0

    def connect(self) -> None:
        if self.connects and (error := self.connects.pop(0)) is not None:
            raise error

    def send(self, sender: str, recipients: list[str], data: bytes) -> dict[str, str]:
        outcome = self.sends.pop(0) if self.sends else None
        if isinstance(outcome, MailError):
            raise outcome
        self.sent.append((sender, recipients))
        return outcome or {}

    def close(self) -> None:
        self.closed += 1


class Clock:
    """Epoch seconds that move only when the test says (from now: the spool stamps real time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Spool, Script, Clock, list[str | None], Delivery]:
    spool, relay, clock = Spool(tmp_path / "spool"), Script(), Clock()
    reported: list[str | None] = []
    delivery = Delivery(
        spool, relay, Retries(base=5, most=40, give_up=3600), on_relay=reported.append, clock=clock
    )
    return spool, relay, clock, reported, delivery


Parts = tuple[Spool, Script, Clock, list[str | None], Delivery]


def spool_mail(spool: Spool, subject: str = "s", key: str | None = None) -> str:
    mail = Composed("redsys@x.y", ["ops@x.y"], subject, b"Subject: s\r\n\r\nbody\r\n", key)
    mail_id, _ = spool.put(mail)
    return mail_id


def run_due(delivery: Delivery) -> list[str]:
    """Deliver every mail due now (as the thread would), without waiting."""
    done = []
    while (mail_id := delivery.next_due(block=False)) is not None:
        delivery.deliver(mail_id)
        done.append(mail_id)
    return done


def test_a_mail_goes_to_sent(parts: Parts) -> None:
    spool, relay, _, reported, delivery = parts
    mail_id = spool_mail(spool)
    delivery.add(mail_id)
    assert run_due(delivery) == [mail_id]
    assert spool.where(mail_id) == "sent" and relay.sent == [("redsys@x.y", ["ops@x.y"])]
    assert delivery.sent == 1 and delivery.queued == 0 and reported == []


def test_a_5xx_is_dead_with_the_answer(parts: Parts) -> None:
    spool, relay, _, _, delivery = parts
    relay.sends = [MailError("relay answered 550 no such user", permanent=True)]
    mail_id = spool_mail(spool)
    delivery.add(mail_id)
    run_due(delivery)
    assert spool.where(mail_id) == "dead" and "550" in spool.reason(mail_id)


def test_a_4xx_is_retried_with_doubling_delays(parts: Parts) -> None:
    spool, relay, clock, reported, delivery = parts
    relay.sends = [MailError("relay answered 451 later")] * 3
    mail_id = spool_mail(spool)
    delivery.add(mail_id)
    waits = []
    for _ in range(3):
        run_due(delivery)
        tries = spool.tries(mail_id)
        waits.append(tries["next_try"] - clock.now)
        assert run_due(delivery) == []  # not before its time
        clock.now = tries["next_try"]
    assert waits == [5, 10, 20] and tries["attempts"] == 3 and "451" in tries["last_error"]
    run_due(delivery)
    assert spool.where(mail_id) == "sent"
    assert reported == []  # a 4xx for one mail is not the relay's trouble


def test_a_relay_that_refuses_the_login_holds_the_whole_queue_and_says_why(
    parts: Parts,
) -> None:
    spool, relay, clock, reported, delivery = parts
    refused = MailError("relay mx.example.com:25: authentication failed for user u (535 …)")
    relay.connects = [refused, refused]
    ids = [spool_mail(spool, f"m{i}") for i in range(3)]
    for mail_id in ids:
        delivery.add(mail_id)
    assert run_due(delivery) == ids[:1]  # one attempt, then the queue waits
    assert delivery.relay_problem is not None
    assert "authentication failed" in delivery.relay_problem
    assert "1 attempt; next in 5 s" in delivery.relay_problem
    assert reported[-1] == delivery.relay_problem
    clock.now += 5
    assert len(run_due(delivery)) == 1
    assert "2 attempts; next in 10 s" in (delivery.relay_problem or "")
    clock.now += 10
    assert len(run_due(delivery)) == 3  # the relay works again: everything goes
    assert delivery.relay_problem is None and reported[-1] is None
    assert all(spool.where(m) == "sent" for m in ids)


def test_a_mail_queued_longer_than_give_up_is_dead_with_the_last_error(parts: Parts) -> None:
    spool, relay, clock, _, delivery = parts
    relay.connects = [MailError("cannot connect to relay mx.example.com:25: refused")] * 200
    mail_id = spool_mail(spool)
    delivery.add(mail_id)
    for _ in range(200):
        run_due(delivery)
        if spool.where(mail_id) == "dead":
            break
        clock.now += 40
    assert spool.where(mail_id) == "dead"
    reason = spool.reason(mail_id)
    assert reason.startswith("not delivered within 3600 s") and "refused" in reason


def test_flush_tries_now_and_load_takes_what_was_queued(parts: Parts, tmp_path: Path) -> None:
    spool, relay, clock, _, delivery = parts
    relay.connects = [MailError("cannot connect")]
    mail_id = spool_mail(spool)
    delivery.add(mail_id)
    run_due(delivery)
    assert run_due(delivery) == []
    assert delivery.flush() == 1
    assert run_due(delivery) == [mail_id] and spool.where(mail_id) == "sent"
    # a restart: what was queued (with its retry time) is taken again
    waiting = spool_mail(spool, "later")
    spool.set_tries(waiting, {"attempts": 2, "next_try": clock.now + 30, "last_error": "x"})
    again = Delivery(spool, relay, Retries(), clock=clock)
    assert again.load() == 1 and again.next_due(block=False) is None
    clock.now += 30
    assert again.next_due(block=False) == waiting


def test_an_unexpected_error_keeps_delivery_going(
    parts: Parts, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool, relay, _, _, delivery = parts
    first, second = spool_mail(spool, "a"), spool_mail(spool, "b")
    real: Callable[[str, list[str], bytes], dict[str, str]] = relay.send
    calls = []

    def flaky(sender: str, rcpt: list[str], data: bytes) -> dict[str, str]:
        calls.append(sender)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real(sender, rcpt, data)

    monkeypatch.setattr(relay, "send", flaky)
    for m in (first, second):
        delivery.add(m)
    thread = threading.Thread(target=delivery.run, daemon=True)
    thread.start()
    wait_for(lambda: spool.where(second) == "sent", timeout=10, what="the second mail sent")
    delivery.stop()
    thread.join(10)
    assert not thread.is_alive() and relay.closed >= 1
    assert spool.where(first) in ("queue", "inflight")
