"""A mail request of the database (:class:`~redpss.wire.ops.MailSend`), composed into an
RFC 5322 message.

Attachments are named by path inside an attachment folder of ``$REDENV_HOME`` (relative to it,
or absolute below it; :mod:`redpss.mail.attach`) and are read *now*, so the spooled mail no
longer depends on the file.
"""

from __future__ import annotations

import mimetypes
import socket
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid

from redpss.errors import BadArgs
from redpss.mail.attach import AttachFolders, Attachment
from redpss.wire.ops import MailSend

__all__ = ["MAX_RECIPIENTS", "Composed", "compose"]

MAX_RECIPIENTS = 100


@dataclass(frozen=True)
class Composed:
    """A mail ready for the spool: envelope and message bytes (CRLF line ends)."""

    sender: str
    recipients: list[str]
    subject: str
    data: bytes
    key: str | None


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _attachments(req: MailSend, folders: AttachFolders, room: int) -> list[Attachment]:
    attached = []
    for i, f in enumerate(req.attachments):
        attached.append(folders.read(f, f"'attachments[{i}]'", limit=max(room, 0)))
        room -= len(attached[-1].data)
    return attached


def compose(req: MailSend, *, folders: AttachFolders, sender: str, max_size: int) -> Composed:
    """Compose the message of a ``send`` request (its fields were checked when it was parsed);
    BadArgs for what only now shows: no recipient, too many, an attachment, the size."""
    to, cc, bcc = _listed(req.to), _listed(req.cc), _listed(req.bcc)
    if not to:
        raise BadArgs("'to' is missing: give an address or a list of addresses")
    if len(to) + len(cc) + len(bcc) > MAX_RECIPIENTS:
        raise BadArgs(f"more than {MAX_RECIPIENTS} recipients in 'to', 'cc' and 'bcc'")
    attached = _attachments(req, folders, max_size - len(req.body))
    if sum(len(a.data) for a in attached) + len(req.body) > max_size:
        raise BadArgs(f"the mail would exceed sendmail_max_size ({max_size} bytes)")

    sender = sender or f"redsys@{socket.getfqdn()}"
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    if req.reply_to is not None:
        msg["Reply-To"] = req.reply_to
    msg["Subject"] = req.subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg.set_content(req.body, subtype="html" if req.html else "plain")
    for item in attached:
        kind, encoding = mimetypes.guess_type(item.name)
        if kind is None or encoding is not None:
            kind = "application/octet-stream"
        main, sub = kind.split("/", 1)
        msg.add_attachment(item.data, maintype=main, subtype=sub, filename=item.name)
    return Composed(sender, to + cc + bcc, req.subject, msg.as_bytes(policy=SMTP), req.key)
