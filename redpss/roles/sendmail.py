"""SENDMAIL: mails from the database, spooled on disk, delivered through the relay.

Wire op ``send`` composes the mail (:mod:`redpss.mail.message`), writes it to the spool and
fsyncs it *before* it replies (:mod:`redpss.mail.spool`). One delivery thread
(:mod:`redpss.mail.delivery`) hands queued mails to the relay (:mod:`redpss.mail.relay`,
STARTTLS or plain, SASL auth when ``sendmail_smtp_user`` is set): retries, dead letters and
the relay's state are its business, this role only joins the parts to the wire and to its
health. A relay that is down or refuses the session (a failed login: ``authentication
failed``) is a problem of the role's health, so ``redctl status`` shows sendmail at ALERT 1
with the reason until a session works again. ``requeue`` sends a dead mail again.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from typing import Any

from redpss.config.checks import attach_dirs
from redpss.diskspace import has_room
from redpss.errors import RemoteError
from redpss.mail.attach import AttachFolders
from redpss.mail.delivery import Delivery, Retries
from redpss.mail.message import compose
from redpss.mail.relay import Relay
from redpss.mail.spool import Spool
from redpss.roles.base import Role, RoleContext
from redpss.wire import Peer, WireServer
from redpss.wire.ops import MailRequeue, MailSend, MailStatus, NoArgs

__all__ = ["Sendmail"]

log = logging.getLogger(__name__)


class Sendmail(Role):
    """The mail spooler and relay client."""

    name = "sendmail"

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        cfg = ctx.config.redsys
        self.spool = Spool(ctx.instance.home / "spool" / "sendmail")
        self._spool_refused = False  # the spool's disk refused the last mail
        self._spool_need = 0  # bytes that mail needed
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
        retries = Retries(cfg.sendmail_retry_base, cfg.sendmail_retry_max, cfg.sendmail_give_up)
        self.delivery = Delivery(self.spool, self.relay, retries, on_relay=self._relay_state)
        self._thread: threading.Thread | None = None
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
        if queued := self.delivery.load():
            log.info("role=sendmail %d mails queued from before", queued)
        self._thread = threading.Thread(target=self.delivery.run, name="sendmail-deliver")
        self._thread.start()
        self.health.watch("delivery", self._thread)
        self.server.start()
        self.health.watch("request server", self.server.thread)

    def stop(self) -> None:
        """Stop listening, finish the mail in delivery, stop; idempotent."""
        self.server.stop()
        self.delivery.stop()
        if self._thread is not None:
            self._thread.join(self.ctx.config.redsys.stop_grace)
        self.relay.close()

    def tick(self) -> None:
        """Delete sent mails older than ``log_retention`` days; see whether space is back."""
        if self._spool_refused and has_room(self.spool.root, need=self._spool_need):
            self._spool_ok()
        days = self.ctx.config.redsys.log_retention
        if removed := self.spool.purge("sent", time.time() - days * 86400):
            log.info("role=sendmail removed %d sent mails older than %d days", removed, days)

    def info(self) -> str:
        """What the heartbeat row shows (the relay's trouble is a problem: see health)."""
        d = self.delivery
        return f"port {self.server.port}, {d.queued} queued, {d.sent} sent"

    def _relay_state(self, problem: str | None) -> None:
        """Called by delivery: the relay is down or refusing (the reason), or works again."""
        if problem is None:
            self.health.clear("relay")
        else:
            self.health.problem("relay", problem)

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
            self._spool_need = len(mail.data) + 4096  # room for it and its header
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
        self.delivery.add(mail_id)
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
            "relay_error": self.delivery.relay_problem,
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
        self.delivery.add(mail_id)
        return {"id": mail_id, "state": "queue"}

    def op_flush(self, req: NoArgs, peer: Peer) -> dict[str, Any]:
        """Wire op ``flush``: try every queued mail now (after the relay was repaired)."""
        del req, peer
        return {"queued": self.delivery.flush()}
