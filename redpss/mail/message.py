"""A mail request of the database, checked and composed into an RFC 5322 message.

Attachments are named by path inside an attachment folder of ``$REDENV_HOME`` (relative to it,
or absolute below it; :mod:`redpss.mail.attach`) and are read *now*, so the spooled mail no
longer depends on the file.
"""

from __future__ import annotations

import mimetypes
import re
import socket
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from typing import Any

from redpss.mail.attach import AttachFolders, Attachment

__all__ = ["MAX_RECIPIENTS", "Composed", "check_address", "compose"]

MAX_RECIPIENTS = 100
_ARGS = {"to", "cc", "bcc", "subject", "body", "html", "attachments", "key", "reply_to"}
_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9.\-\[\]:]+$")


@dataclass(frozen=True)
class Composed:
    """A mail ready for the spool: envelope and message bytes (CRLF line ends)."""

    sender: str
    recipients: list[str]
    subject: str
    data: bytes
    key: str | None


def check_address(value: object, field: str) -> str:
    """Return ``value`` if it is a plain mail address ``local@domain``; else ValueError."""
    if not isinstance(value, str) or len(value) > 320 or not _ADDRESS.match(value):
        raise ValueError(f"{field} must be a mail address like name@example.com, not {value!r}")
    return value


def _addresses(args: dict[str, Any], field: str, *, required: bool = False) -> list[str]:
    value = args.get(field)
    if value is None or value == [] or value == "":
        if required:
            raise ValueError(f"'{field}' is missing: give an address or a list of addresses")
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError(f"'{field}' must be an address or a list of addresses")
    return [check_address(a, f"'{field}[{i}]'") for i, a in enumerate(items)]


def _text(args: dict[str, Any], field: str, default: str | None = None, limit: int = 0) -> str:
    value = args.get(field, default)
    if not isinstance(value, str):
        raise ValueError(f"'{field}' must be a string")
    if limit and len(value) > limit:
        raise ValueError(f"'{field}' is longer than {limit} characters")
    return value


def _attachments(args: dict[str, Any], folders: AttachFolders, room: int) -> list[Attachment]:
    files = args.get("attachments", [])
    if not isinstance(files, list):
        raise ValueError("'attachments' must be a list of paths")
    attached = []
    for i, f in enumerate(files):
        attached.append(folders.read(f, f"'attachments[{i}]'", limit=max(room, 0)))
        room -= len(attached[-1].data)
    return attached


def compose(
    args: dict[str, Any], *, folders: AttachFolders, sender: str, max_size: int
) -> Composed:
    """Check the arguments of ``send`` and compose the message; ValueError names the field."""
    unknown = set(args) - _ARGS
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(sorted(unknown))}")
    to = _addresses(args, "to", required=True)
    cc, bcc = _addresses(args, "cc"), _addresses(args, "bcc")
    if len(to) + len(cc) + len(bcc) > MAX_RECIPIENTS:
        raise ValueError(f"more than {MAX_RECIPIENTS} recipients in 'to', 'cc' and 'bcc'")
    subject = _text(args, "subject", limit=998)
    if "\n" in subject or "\r" in subject:
        raise ValueError("'subject' must be one line")
    body = _text(args, "body", "")
    html = args.get("html", False)
    if not isinstance(html, bool):
        raise ValueError("'html' must be true or false")
    key = args.get("key")
    if key is not None and (not isinstance(key, str) or not key or len(key) > 200):
        raise ValueError("'key' must be a non-empty string of at most 200 characters")
    attached = _attachments(args, folders, max_size - len(body))
    if sum(len(a.data) for a in attached) + len(body) > max_size:
        raise ValueError(f"the mail would exceed sendmail_max_size ({max_size} bytes)")

    sender = sender or f"redsys@{socket.getfqdn()}"
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    if "reply_to" in args:
        msg["Reply-To"] = check_address(args["reply_to"], "'reply_to'")
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg.set_content(body, subtype="html" if html else "plain")
    for item in attached:
        kind, encoding = mimetypes.guess_type(item.name)
        if kind is None or encoding is not None:
            kind = "application/octet-stream"
        main, sub = kind.split("/", 1)
        msg.add_attachment(item.data, maintype=main, subtype=sub, filename=item.name)
    return Composed(sender, to + cc + bcc, subject, msg.as_bytes(policy=SMTP), key)
