"""SENDMAIL: mails from the database, spooled on disk, delivered through the relay.

Wire op ``send`` composes the mail (:mod:`redpss.mail.message`), writes it to the spool and
fsyncs it *before* it replies (:mod:`redpss.mail.spool`). One delivery thread hands queued mails
to the relay (:mod:`redpss.mail.relay`, STARTTLS or plain, SASL auth when
``sendmail_smtp_user`` is set), keeping the connection while there is work.

- The relay is unreachable or answers 4xx: the mail stays queued; the next attempt waits
  ``sendmail_retry_base`` seconds, doubling up to ``sendmail_retry_max``. While the relay
  itself is down the whole queue waits (one connection attempt, not one per mail).
- The relay answers 5xx, or a mail is older than ``sendmail_give_up`` seconds: it goes to
  ``dead/`` with the reason. ``requeue`` sends a dead mail again.
- A mail is moved to ``sent/`` right after the relay accepted it; a crash in between leaves it
  in ``inflight/``, which is dead-lettered at the next start (never delivered twice).
"""

from __future__ import annotations

import errno
import heapq
import logging
import threading
import time
from typing import Any

from redpss.config import attach_dirs
from redpss.diskspace import has_room
from redpss.errors import MailError, RemoteError
from redpss.mail.attach import AttachFolders
from redpss.mail.message import compose
from redpss.mail.relay import Relay
from redpss.mail.spool import Spool
from redpss.roles.base import Role, RoleContext
from redpss.wire import Peer, WireServer
from redpss.wire.ops import MailRequeue, MailSend, MailStatus, NoArgs

__all__ = ["Sendmail"]

log = logging.getLogger(__name__)

_IDLE_CLOSE = 5.0  # seconds a kept relay connection may stay unused


class Sendmail(Role):
    """The mail spooler and relay client."""

    name = "sendmail"

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        cfg = ctx.config.redsys
        self.spool = Spool(ctx.instance.home / "spool" / "sendmail")
        self._spool_refused = False  # the spool's disk refused the last mail
        self.folders = AttachFolders(ctx.instance.home, attach_dirs(cfg.sendmail_attach_dirs))
        self.relay = Relay(
            cfg.sendmail_smtp_host,
            cfg.sendmail_smtp_port,
            encryption=cfg.sendmail_smtp_encr,
            user=cfg.sendmail_smtp_user,
            password=cfg.sendmail_smtp_pass.reveal(),
            cafile=cfg.sendmail_smtp_cafile,
            timeout=cfg.sendmail_smtp_timeout,
        )
        self._cond = threading.Condition()
        self._due: list[tuple[float, float, str]] = []  # (next try, queued at, id)
        self._relay_wait_until = 0.0
        self._relay_failures = 0
        self._relay_error: str | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._sent = 0
        self.server = WireServer(
            self,
            host=cfg.sendmail_host,
            port=cfg.sendmail_port,
            secret=cfg.pss_secret.reveal(),
            max_line=cfg.sendmail_max_size * 2 + (1 << 20),
            name=f"sendmail/{ctx.instance.name}",
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Recover the spool, start delivering, listen; returns when the port accepts."""
        self.folders.prepare()
        for mail_id in self.spool.recover():
            log.error("role=sendmail mail=%s interrupted in delivery: dead-lettered", mail_id)
        for mail_id in self.spool.ids("queue"):
            header = self.spool.header("queue", mail_id)
            tries = self.spool.tries(mail_id)
            self._due.append((float(tries["next_try"]), float(header["queued_at"]), mail_id))
        heapq.heapify(self._due)
        if self._due:
            log.info("role=sendmail %d mails queued from before", len(self._due))
        self._thread = threading.Thread(target=self._deliver_loop, name="sendmail-deliver")
        self._thread.start()
        self.health.watch("delivery", self._thread)
        self.server.start()
        self.health.watch("request server", self.server.thread)

    def stop(self) -> None:
        """Stop listening, finish the mail in delivery, stop; idempotent."""
        self.server.stop()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(self.ctx.config.redsys.stop_grace)
        self.relay.close()

    def tick(self) -> None:
        """Delete sent mails older than ``log_retention`` days; see whether space is back."""
        if self._spool_refused and has_room(self.spool.root):
            self._spool_ok()
        days = self.ctx.config.redsys.log_retention
        if removed := self.spool.purge("sent", time.time() - days * 86400):
            log.info("role=sendmail removed %d sent mails older than %d days", removed, days)

    def info(self) -> str:
        """What the heartbeat row shows."""
        with self._cond:
            queued = len(self._due)
        relay = f", relay down: {self._relay_error}" if self._relay_error else ""
        return f"port {self.server.port}, {queued} queued, {self._sent} sent{relay}"

    # -- wire ops -----------------------------------------------------------------------------

    def op_send(self, req: MailSend, peer: Peer) -> dict[str, Any]:
        """Wire op ``send``: spool a mail durably; reply with its id."""
        cfg = self.ctx.config.redsys
        mail = compose(
            req, folders=self.folders, sender=cfg.sendmail_smtp_from, max_size=cfg.sendmail_max_size
        )
        try:
            mail_id, duplicate = self.spool.put(mail)
        except OSError as exc:
            raise self._not_spooled(exc) from exc
        if self._spool_refused:
            self._spool_ok()
        if duplicate:
            log.info("role=sendmail mail=%s key seen before: not spooled again", mail_id)
            return {"id": mail_id, "duplicate": True, "state": self.spool.where(mail_id)}
        log.info(
            "role=sendmail mail=%s spooled for %d recipients from %s, subject %r",
            mail_id, len(mail.recipients), peer.host, mail.subject,
        )  # fmt: skip
        with self._cond:
            heapq.heappush(self._due, (0.0, time.time(), mail_id))
            self._cond.notify_all()
        return {"id": mail_id, "duplicate": False, "state": "queue"}

    def _not_spooled(self, exc: OSError) -> RemoteError:
        """A mail the spool's disk refused: nothing of it is kept; status shows why (ALERT 1)."""
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        why = "no space left on the device" if exc.errno == errno.ENOSPC else exc.strerror
        text = f"cannot spool mails in {self.spool.root}: {why or exc}"
        self.health.problem("spool", text)
        self._spool_refused = True
        log.error("role=sendmail %s; the mail was refused, not spooled", text)
        return RemoteError(
            "disk_full" if full else "write_failed",
            f"{text}; the mail was not spooled, send it again",
        )

    def _spool_ok(self) -> None:
        self._spool_refused = False
        self.health.clear("spool")
        log.info("role=sendmail the spool takes mails again")

    def op_status(self, req: MailStatus, peer: Peer) -> dict[str, Any]:
        """Wire op ``status``: counts per spool folder and the relay's state (or one mail's)."""
        del peer
        mail_id = req.id
        if mail_id is not None:
            where = self.spool.where(mail_id)
            if where is None:
                raise RemoteError("not_found", f"no mail {mail_id!r} in the spool")
            out: dict[str, Any] = {"id": mail_id, "state": where}
            if where == "dead":
                out["reason"] = self.spool.reason(mail_id)
            if where == "queue":
                out.update(self.spool.tries(mail_id))
            return out
        return {
            "queued": len(self.spool.ids("queue")),
            "inflight": len(self.spool.ids("inflight")),
            "sent": len(self.spool.ids("sent")),
            "dead": len(self.spool.ids("dead")),
            "relay": self.relay.address,
            "relay_error": self._relay_error,
        }

    def op_dead(self, req: NoArgs, peer: Peer) -> list[dict[str, Any]]:
        """Wire op ``dead``: the dead letters (id, subject, recipients, reason), oldest first."""
        del req, peer
        out = []
        for mail_id in self.spool.ids("dead")[:1000]:
            header = self.spool.header("dead", mail_id)
            out.append(
                {
                    "id": mail_id,
                    "subject": header["subject"],
                    "rcpt": header["rcpt"],
                    "reason": self.spool.reason(mail_id),
                }
            )
        return out

    def op_requeue(self, req: MailRequeue, peer: Peer) -> dict[str, Any]:
        """Wire op ``requeue``: send a dead mail again."""
        mail_id = req.id
        if self.spool.where(mail_id) != "dead":
            raise RemoteError("not_found", f"no dead mail {mail_id!r}")
        self.spool.requeue(mail_id)
        log.info("role=sendmail mail=%s requeued by %s", mail_id, peer.host)
        with self._cond:
            heapq.heappush(self._due, (0.0, time.time(), mail_id))
            self._cond.notify_all()
        return {"id": mail_id, "state": "queue"}

    def op_flush(self, req: NoArgs, peer: Peer) -> dict[str, Any]:
        """Wire op ``flush``: try every queued mail now (after the relay was repaired)."""
        del req, peer
        with self._cond:
            self._relay_wait_until = 0.0
            self._due = [(0.0, queued, mail_id) for _, queued, mail_id in self._due]
            heapq.heapify(self._due)
            self._cond.notify_all()
            return {"queued": len(self._due)}

    # -- delivery -----------------------------------------------------------------------------

    def _next(self) -> str | None:
        """Wait for the next due mail; None when stopping."""
        with self._cond:
            while not self._stopping:
                now = time.time()
                wake = self._relay_wait_until
                if self._due:
                    wake = max(wake, self._due[0][0])
                    if wake <= now:
                        return heapq.heappop(self._due)[2]
                timeout = wake - now if self._due else _IDLE_CLOSE
                if self.relay.idle > _IDLE_CLOSE:
                    self.relay.close()
                self._cond.wait(min(max(timeout, 0.01), _IDLE_CLOSE))
            return None

    def _deliver_loop(self) -> None:
        while (mail_id := self._next()) is not None:
            try:
                self._deliver(mail_id)
            except Exception:  # one bad mail must not end delivery
                log.exception("role=sendmail mail=%s delivery failed unexpectedly", mail_id)
                self._retry(mail_id, "internal error (see log)", relay_down=False)
        self.relay.close()

    def _deliver(self, mail_id: str) -> None:
        if self.spool.where(mail_id) != "queue":
            return  # requeued twice, or already handled
        header, data = self.spool.read("queue", mail_id)
        give_up = self.ctx.config.redsys.sendmail_give_up
        if time.time() - float(header["queued_at"]) > give_up:
            reason = self.spool.tries(mail_id).get("last_error") or "no attempt succeeded"
            self.spool.kill(mail_id, "queue", f"not delivered within {give_up} s: {reason}")
            log.error("role=sendmail mail=%s dead: gave up after %d s", mail_id, give_up)
            return
        try:
            self.relay.connect()
        except MailError as exc:
            self._retry(mail_id, str(exc), relay_down=True)
            return
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
        self._sent += 1
        with self._cond:
            self._relay_failures, self._relay_error = 0, None
        if refused:
            log.warning("role=sendmail mail=%s sent; refused recipients: %s", mail_id, refused)
        log.info("role=sendmail mail=%s sent to %s", mail_id, self.relay.address)

    def _retry(self, mail_id: str, error: str, *, relay_down: bool) -> None:
        cfg = self.ctx.config.redsys
        tries = self.spool.tries(mail_id)
        attempts = int(tries.get("attempts", 0)) + 1
        now = time.time()
        with self._cond:
            if relay_down:
                self._relay_failures += 1
                self._relay_error = error
                n = self._relay_failures
            else:
                n = attempts
            delay = min(cfg.sendmail_retry_base * 2 ** min(n - 1, 30), cfg.sendmail_retry_max)
            if relay_down:
                self._relay_wait_until = now + delay
            next_try = now + delay
            if self.spool.where(mail_id) != "queue":
                return
            header = self.spool.header("queue", mail_id)
            heapq.heappush(self._due, (next_try, float(header["queued_at"]), mail_id))
        self.spool.set_tries(
            mail_id, {"attempts": attempts, "next_try": next_try, "last_error": error}
        )
        log.warning(
            "role=sendmail mail=%s attempt %d failed, next in %.1f s: %s",
            mail_id, attempts, delay, error,
        )  # fmt: skip
