"""SENDMAIL throughput: mails per second from request to relay acceptance, against smtplib.

A local aiosmtpd relay (plain, no auth) counts what it accepts. The bare side is one smtplib
connection sending small mails in a loop. The SENDMAIL side is the role in this process (one
throw-away instance, the role started once): each mail is requested over the wire protocol
(one connection per run), spooled and fsynced, acknowledged, then delivered by the role; the
clock stops when the relay has accepted the last one. Afterwards every mail the role was asked
for must be at the relay exactly once.

Holding still (issue 20, bench/lib/pairing.py): each side's run is grown (mails doubled from
``--mails``) until it takes at least a second, each its own size (the rates compare); then
``--pairs`` pairs, bare and SENDMAIL alternating which goes first. Reported: the median rate of
each side and the median of the per-pair ratios; the RESULT is SENDMAIL's median rate (target
>= 200 mails/s, and nothing lost or doubled). About half a minute on a quiet 2-core machine.

    .venv/bin/python bench/sendmail.py [--mails 1000] [--pairs 5] [--port-base P]

``--port-base P``: the instance's ports are P..P+19 and the relay listens on P+8 (otherwise the
instance gets a free block and the relay a port the kernel picks).
"""

from __future__ import annotations

import argparse
import collections
import smtplib
import socket
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from itertools import count
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiosmtpd.controller import Controller  # noqa: E402

from bench.lib.pairing import PAIRS, alternate, grow, result, summary  # noqa: E402
from redpss import wire  # noqa: E402
from redpss.config import load_config  # noqa: E402
from redpss.dictionary import open_dictionary  # noqa: E402
from redpss.instance import Instance, create_instance  # noqa: E402
from redpss.roles.base import RoleContext  # noqa: E402
from redpss.roles.sendmail import Sendmail  # noqa: E402

TARGET = 200
RELAY_OFFSET = 8  # a port of the instance's block no service uses


class Counter:
    """An aiosmtpd handler that counts accepted mails by subject (``<run> <i>``) and by run."""

    def __init__(self) -> None:
        self.seen: collections.Counter[str] = collections.Counter()
        self.runs: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        head = envelope.content.split(b"\r\n\r\n", 1)[0].decode()
        subject = next(h[9:] for h in head.split("\r\n") if h.startswith("Subject: "))
        with self.done:
            self.seen[subject] += 1
            self.runs[subject.split(" ", 1)[0]] += 1
            self.done.notify_all()
        return "250 OK"

    def wait(self, run: str, total: int, timeout: float = 300) -> None:
        """Until the relay has accepted ``total`` mails of ``run``."""
        with self.done:
            if not self.done.wait_for(lambda: self.runs[run] >= total, timeout):
                raise SystemExit(f"run {run}: {self.runs[run]} of {total} mails in {timeout} s")


def bare(port: int, mails: int, counter: Counter, run: str) -> float:
    """The bare library: smtplib on one connection; returns seconds."""
    began = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(mails):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "a@example.com", "b@example.com", f"{run} {i}"
            msg.set_content("x" * 200)
            smtp.send_message(msg)
    counter.wait(run, mails)
    return time.perf_counter() - began


def start_role(port: int, home: Path, port_base: int | None) -> tuple[Sendmail, int, str]:
    """SENDMAIL of a new instance at ``home`` relaying to ``port``: the role, its port, secret."""
    inst = Instance("bench", home)
    create_instance(inst, port_base=port_base)
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
    return sendmail, config.redsys.sendmail_port, config.redsys.pss_secret.reveal()


def role(port: int, secret: str, mails: int, counter: Counter, run: str) -> float:
    """SENDMAIL: request → spool → ack → relay; returns seconds until the relay has all."""
    began = time.perf_counter()
    with wire.WireClient("127.0.0.1", port, secret=secret, timeout=60) as client:
        for i in range(mails):
            client.call("send", to="b@example.com", subject=f"{run} {i}", body="x" * 200)
    counter.wait(run, mails)
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    """Size each side to >= 1 s, run the pairs, print the medians and the RESULT line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mails", type=int, default=1000, help="first size tried (grown to 1 s)")
    p.add_argument("--pairs", type=int, default=PAIRS, help="bare/SENDMAIL pairs (>= 5)")
    p.add_argument("--port-base", type=int, help="the instance's ports; the relay's is +8")
    opts = p.parse_args(argv)
    counter = Counter()
    if opts.port_base is None:
        with socket.socket() as probe:  # aiosmtpd's controller cannot listen on port 0
            probe.bind(("127.0.0.1", 0))
            relay_port = probe.getsockname()[1]
    else:
        relay_port = opts.port_base + RELAY_OFFSET
    relay = Controller(counter, hostname="127.0.0.1", port=relay_port, ready_timeout=30)
    relay.start()
    asked: dict[str, int] = {}  # run -> mails the role was asked for
    runs = count(1)
    try:
        with tempfile.TemporaryDirectory(prefix="bsm", dir="/tmp") as tmp:
            sendmail, port, secret = start_role(relay_port, Path(tmp), opts.port_base)
            try:

                def once_bare(n: int) -> float:
                    return bare(relay_port, n, counter, f"bare{next(runs)}")

                def once_role(n: int) -> float:
                    run = f"role{next(runs)}"
                    asked[run] = n
                    return role(port, secret, n, counter, run)

                nb, nr = grow(once_bare, opts.mails), grow(once_role, opts.mails)
                print(f"mails per run: bare {nb}, sendmail {nr} (>= 1 s each), body 200 B, "
                      "relay aiosmtpd on loopback (plain)")  # fmt: skip
                pairs = alternate(
                    lambda: nb / once_bare(nb),
                    lambda: nr / once_role(nr),
                    pairs=opts.pairs,
                    labels=("bare", "sendmail"),
                )
            finally:
                sendmail.stop()
    finally:
        relay.stop()
    subjects = [f"{run} {i}" for run, n in asked.items() for i in range(n)]
    lost = sum(1 for s in subjects if counter.seen[s] == 0)
    twice = sum(1 for s in subjects if counter.seen[s] > 1)
    s = summary(pairs)
    print(f"bare smtplib loop     : {s.bare:10,.0f} mails/s (median)")
    print(f"sendmail (spool+relay): {s.ours:10,.0f} mails/s (median)")
    print(f"ratio sendmail/bare   : {s.ratio:.2f} (median of {len(pairs)} pairs; spread "
          f"{s.spread[0]:.2f}-{s.spread[1]:.2f}); {len(subjects)} mails asked of the role, "
          f"lost {lost}, twice {twice}")  # fmt: skip
    ok = s.ours >= TARGET and lost == 0 and twice == 0
    result("sendmail", s.ours, "mails/s", ">=", TARGET, ok=ok)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
