"""Delivery of spooled mails through the relay: one thread, retries, and what the relay is up to.

:class:`Delivery` hands the mails of the spool's ``queue/`` to the relay one after the other,
oldest due first, keeping the relay connection while there is work (closed after
:data:`IDLE_CLOSE` seconds without). Every outcome moves the mail in the spool:

- accepted by the relay: ``sent/`` (moved right after the relay's 250; a crash in between
  leaves it in ``inflight/``, dead-lettered at the next start, never delivered twice);
- refused for good (5xx for the mail): ``dead/`` with the relay's answer;
- refused for now (4xx, a broken connection): back to the queue, next try after ``retry_base``
  seconds doubling up to ``retry_max`` per mail;
- the relay itself down or refusing the session (connection, TLS, login): the mail stays
  queued and the *whole queue* waits (one connection attempt per interval, not one per mail);
  :attr:`Delivery.relay_problem` says why (``authentication failed`` for a refused login), and
  ``on_relay`` is called with it, and with None once a session works again;
- queued longer than ``give_up`` seconds: ``dead/`` with the last error.

The role (:mod:`redpss.roles.sendmail`) starts and stops the thread, adds what its ops spool
and reports ``on_relay`` as a problem of its health (ALERT 1 in ``redctl status``).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from redpss.errors import MailError
from redpss.mail.spool import Spool

__all__ = ["IDLE_CLOSE", "Delivery", "Retries", "Transport"]

log = logging.getLogger(__name__)

IDLE_CLOSE = 5.0
"""Seconds a kept relay connection may stay unused before it is closed."""


class Transport(Protocol):
    """What delivery needs of the relay (:class:`redpss.mail.relay.Relay`)."""

    @property
    def address(self) -> str:
        """``host:port`` for messages."""

    @property
    def idle(self) -> float:
        """Seconds since the kept connection was last used (0 when none is kept)."""

    def connect(self) -> None:
        """Open, secure and authenticate a session unless one is open (MailError)."""

    def send(self, sender: str, recipients: list[str], data: bytes) -> dict[str, str]:
        """Hand one mail over; the refused recipients (MailError when none accepted it)."""

    def close(self) -> None:
        """End the session; idempotent."""


@dataclass(frozen=True)
class Retries:
    """When to try again: ``base`` seconds doubling up to ``most``; dead after ``give_up``."""

    base: float = 5.0
    most: float = 600.0
    give_up: float = 259200.0

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure in a row (1, 2 …)."""
        return float(min(self.base * 2 ** min(failures - 1, 30), self.most))


class Delivery:
    """The delivery thread's work and state; the methods are safe from any thread."""

    def __init__(
        self,
        spool: Spool,
        relay: Transport,
        retries: Retries,
        *,
        on_relay: Callable[[str | None], None] = lambda problem: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Deliver the mails of ``spool`` through ``relay``; ``clock`` is epoch seconds."""
        self.spool, self.relay, self.retries = spool, relay, retries
        self.on_relay = on_relay
        self.clock = clock
        self.sent = 0
        self._cond = threading.Condition()
        self._due: list[tuple[float, float, str]] = []  # (next try, queued at, id)
        self._relay_wait_until = 0.0
        self._relay_failures = 0
        self._relay_problem: str | None = None
        self._relay_down_since = ""
        self._stopping = False

    # -- what the role asks ------------------------------------------------------------------

    def load(self) -> int:
        """Take the mails queued before a (re)start, with their retry times; how many."""
        due = []
        for mail_id in self.spool.ids("queue"):
            header = self.spool.header("queue", mail_id)
            tries = self.spool.tries(mail_id)
            due.append((float(tries["next_try"]), float(header["queued_at"]), mail_id))
        with self._cond:
            self._due.extend(due)
            heapq.heapify(self._due)
            self._cond.notify_all()
        return len(due)

    def add(self, mail_id: str) -> None:
        """A mail just spooled (or requeued): try it as soon as the relay may be tried."""
        with self._cond:
            heapq.heappush(self._due, (0.0, self.clock(), mail_id))
            self._cond.notify_all()

    def flush(self) -> int:
        """Try every queued mail now (the relay was repaired); how many are queued."""
        with self._cond:
            self._relay_wait_until = 0.0
            self._due = [(0.0, queued, mail_id) for _, queued, mail_id in self._due]
            heapq.heapify(self._due)
            self._cond.notify_all()
            return len(self._due)

    @property
    def queued(self) -> int:
        """Mails waiting for delivery."""
        with self._cond:
            return len(self._due)

    @property
    def relay_problem(self) -> str | None:
        """Why the relay is considered down or refusing (None: it worked the last time)."""
        with self._cond:
            return self._relay_problem

    def stop(self) -> None:
        """Make :meth:`run` return after the mail in hand; idempotent."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    # -- the thread ----------------------------------------------------------------------------

    def run(self) -> None:
        """Deliver until :meth:`stop`; one bad mail never ends delivery."""
        while (mail_id := self.next_due()) is not None:
            try:
                self.deliver(mail_id)
            except Exception:
                log.exception("role=sendmail mail=%s delivery failed unexpectedly", mail_id)
                self._retry(mail_id, "internal error (see log)", relay_down=False)
        self.relay.close()

    def next_due(self, *, block: bool = True) -> str | None:
        """The next mail whose time has come; waits for it unless ``block`` is False (then
        None when none is due). None when stopping."""
        with self._cond:
            while not self._stopping:
                now = self.clock()
                wake = self._relay_wait_until
                if self._due:
                    wake = max(wake, self._due[0][0])
                    if wake <= now:
                        return heapq.heappop(self._due)[2]
                if not block:
                    return None
                timeout = wake - now if self._due else IDLE_CLOSE
                if self.relay.idle > IDLE_CLOSE:
                    self.relay.close()
                self._cond.wait(min(max(timeout, 0.01), IDLE_CLOSE))
            return None

    def deliver(self, mail_id: str) -> None:
        """Try one queued mail once; the spool and the retry schedule say what happened."""
        if self.spool.where(mail_id) != "queue":
            return  # requeued twice, or already handled
        header, data = self.spool.read("queue", mail_id)
        give_up = self.retries.give_up
        if self.clock() - float(header["queued_at"]) > give_up:
            reason = self.spool.tries(mail_id).get("last_error") or "no attempt succeeded"
            self.spool.kill(mail_id, "queue", f"not delivered within {give_up:g} s: {reason}")
            log.error("role=sendmail mail=%s dead: gave up after %g s", mail_id, give_up)
            return
        try:
            self.relay.connect()
        except MailError as exc:
            self._retry(mail_id, str(exc), relay_down=True)
            return
        self._relay_works()
        self.spool.move(mail_id, "queue", "inflight")
        try:
            refused = self.relay.send(header["from"], header["rcpt"], data)
        except MailError as exc:
            if exc.permanent:
                self.spool.kill(mail_id, "inflight", str(exc))
                log.error("role=sendmail mail=%s dead: %s", mail_id, exc)
            else:
                self.spool.move(mail_id, "inflight", "queue")
                self._retry(mail_id, str(exc), relay_down=False)
            return
        self.spool.move(mail_id, "inflight", "sent")
        with self._cond:
            self.sent += 1
        if refused:
            log.warning("role=sendmail mail=%s sent; refused recipients: %s", mail_id, refused)
        log.info("role=sendmail mail=%s sent to %s", mail_id, self.relay.address)

    def _relay_works(self) -> None:
        with self._cond:
            was, self._relay_problem, self._relay_failures = self._relay_problem, None, 0
        if was is not None:
            log.info("role=sendmail relay %s works again", self.relay.address)
            self.on_relay(None)

    def _retry(self, mail_id: str, error: str, *, relay_down: bool) -> None:
        tries = self.spool.tries(mail_id)
        attempts = int(tries.get("attempts", 0)) + 1
        now = self.clock()
        problem = None
        with self._cond:
            if relay_down:
                self._relay_failures += 1
                delay = self.retries.delay(self._relay_failures)
                self._relay_wait_until = now + delay
                if self._relay_failures == 1:
                    stamp = datetime.fromtimestamp(now, UTC)
                    self._relay_down_since = stamp.strftime("%Y-%m-%d %H:%M UTC")
                problem = (
                    f"{error} (since {self._relay_down_since}, {self._relay_failures} "
                    f"attempt{'s' if self._relay_failures > 1 else ''}; next in {delay:.0f} s)"
                )
                self._relay_problem = problem
            else:
                delay = self.retries.delay(attempts)
            next_try = now + delay
            if self.spool.where(mail_id) != "queue":
                return
            header = self.spool.header("queue", mail_id)
            heapq.heappush(self._due, (next_try, float(header["queued_at"]), mail_id))
        self.spool.set_tries(
            mail_id, {"attempts": attempts, "next_try": next_try, "last_error": error}
        )
        if problem is not None:
            self.on_relay(problem)
        log.warning(
            "role=sendmail mail=%s attempt %d failed, next in %.1f s: %s",
            mail_id, attempts, delay, error,
        )  # fmt: skip
