"""SENDMAIL throughput: mails per second from request to relay acceptance, against smtplib.

A local aiosmtpd relay (plain, no auth) counts what it accepts. The bare side is one smtplib
connection sending ``--mails`` small mails in a loop. The SENDMAIL side is the role in this
process: each mail is requested over the wire protocol (one connection), spooled and fsynced,
acknowledged, then delivered by the role; the clock stops when the relay has accepted the last
one. Afterwards every mail must be at the relay exactly once.

    .venv/bin/python bench/sendmail.py [--mails 1000]
"""

from __future__ import annotations

import argparse
import collections
import smtplib
import socket
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from redpss import wire
from redpss.config import load_config
from redpss.dictionary import open_dictionary
from redpss.instance import Instance, create_instance
from redpss.roles.base import RoleContext
from redpss.roles.sendmail import Sendmail

TARGET = 200


class Counter:
    """An aiosmtpd handler that counts accepted mails by subject."""

    def __init__(self) -> None:
        self.seen: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        head = envelope.content.split(b"\r\n\r\n", 1)[0].decode()
        subject = next(h[9:] for h in head.split("\r\n") if h.startswith("Subject: "))
        with self.done:
            self.seen[subject] += 1
            self.done.notify_all()
        return "250 OK"

    def wait(self, total: int, timeout: float = 300) -> None:
        with self.done:
            self.done.wait_for(lambda: sum(self.seen.values()) >= total, timeout)


def bare(port: int, mails: int, counter: Counter) -> float:
    """The bare library: smtplib on one connection; returns seconds."""
    began = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(mails):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "a@example.com", "b@example.com", f"bare {i}"
            msg.set_content("x" * 200)
            smtp.send_message(msg)
    counter.wait(mails)
    return time.perf_counter() - began


def role(port: int, mails: int, counter: Counter, home: Path) -> float:
    """SENDMAIL: request → spool → ack → relay; returns seconds until the relay has all."""
    inst = Instance("bench", home)
    create_instance(inst)
    text = inst.conf_path.read_text().replace(
        "sendmail_smtp_port = 25",
        f"sendmail_smtp_port = {port}\nsendmail_smtp_host = 127.0.0.1",
    )
    text = text.replace("sendmail_smtp_host = localhost\n", "")
    inst.conf_path.write_text(
        text.replace("sendmail_smtp_encr = STARTTLS", "sendmail_smtp_encr = PLAIN")
    )
    config = load_config(inst.conf_path)
    dictionary = open_dictionary("sqlite", db_dir=inst.db_dir)
    dictionary.init()
    sendmail = Sendmail(RoleContext(inst, config, dictionary))
    sendmail.start()
    try:
        began = time.perf_counter()
        with wire.WireClient(
            "127.0.0.1",
            config.redsys.sendmail_port,
            secret=config.redsys.pss_secret.reveal(),
            timeout=60,
        ) as client:
            for i in range(mails):
                client.call("send", to="b@example.com", subject=f"role {i}", body="x" * 200)
        counter.wait(2 * mails)
        return time.perf_counter() - began
    finally:
        sendmail.stop()


def main(argv: list[str] | None = None) -> int:
    """Run both, print the ratio and the RESULT line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mails", type=int, default=1000)
    opts = p.parse_args(argv)
    counter = Counter()
    with socket.socket() as probe:  # aiosmtpd's controller cannot listen on port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    relay = Controller(counter, hostname="127.0.0.1", port=port, ready_timeout=30)
    relay.start()
    try:
        t_bare = bare(port, opts.mails, counter)
        with tempfile.TemporaryDirectory(prefix="bsm", dir="/tmp") as tmp:
            t_role = role(port, opts.mails, counter, Path(tmp))
    finally:
        relay.stop()
    got = {s: n for s, n in counter.seen.items() if s.startswith("role ")}
    lost = sum(1 for i in range(opts.mails) if got.get(f"role {i}", 0) == 0)
    twice = sum(1 for n in got.values() if n > 1)
    rate_bare, rate_role = opts.mails / t_bare, opts.mails / t_role
    print(f"mails={opts.mails} body=200 B, relay aiosmtpd on loopback (plain)")
    print(f"bare smtplib loop     : {rate_bare:10,.0f} mails/s ({t_bare:.2f} s)")
    print(f"sendmail (spool+relay): {rate_role:10,.0f} mails/s ({t_role:.2f} s)")
    print(f"ratio sendmail/bare   : {rate_role / rate_bare:.2f}; lost {lost}, twice {twice}")
    ok = rate_role >= TARGET and lost == 0 and twice == 0
    print(
        f"RESULT sendmail value={rate_role:.0f} unit=mails/s target=>={TARGET} "
        f"ok={'yes' if ok else 'no'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
