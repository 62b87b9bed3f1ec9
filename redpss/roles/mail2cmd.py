"""MAIL2CMD: an inbound SMTP server (aiosmtpd) that turns an allowed mail into an allowed command.

Runs only with ``mail2csv_enabled = true`` and listens on ``mail2csv_host:mail2csv_port`` (the
guide's key names). Two allow-lists in ``red_params.conf`` decide:

- ``mail2cmd_allowed_senders``: comma-separated addresses, or ``@domain`` for a whole domain.
  The envelope sender (MAIL FROM) *and* the ``From:`` header must be on it.
- ``mail2cmd_commands``: comma-separated ``KEYWORD:script[:save]``. The first word of the
  subject picks the rule (case-insensitive); the script (relative to ``cmd/``) runs through
  JEXEC's ``run`` op over the wire protocol, so JEXEC's rules apply (only ``cmd/``, no shell,
  its time limit). With ``save`` the mail's attachments are first saved into ``data/input``.

Everything else is refused *in the SMTP dialogue* and logged: a sender not on the list with
``550`` at MAIL FROM, a mail without a known keyword or with a foreign ``From:`` with ``550``
after DATA, a mail above ``mail2cmd_max_size`` with ``552``. When JEXEC does not answer the
mail is refused with ``451`` (the sending server tries again later), before anything is saved.

An accepted mail (``250``) has its attachments on disk; its command then runs in the
background: arguments are the saved files (paths relative to ``$REDENV_HOME``), standard input
is the mail's text. The rest of the subject is *not* passed on: a mail chooses a command,
never its arguments.

``log/mail2cmd.log`` has **one line per mail**, of one shape: ``mail=<id> from=<sender>
keyword=<KEYWORD> decision=<accepted|refused|deferred>``, then the reason of a refusal, or the
command, the files saved, its exit code and time (written when the command ended). aiosmtpd's
own per-command lines (``mail.log`` at INFO: connections, EHLO, MAIL, …) are left out unless
the role logs at DEBUG or TRACE.

Attachment names are reduced to a safe base name (letters, digits, ``.``, ``_``, ``-``; no
path, no leading dot); a name that exists in ``data/input`` gets a suffix (``x-1.csv``), it is
never overwritten. A file is written under a hidden name and linked into place when complete,
so the landing zone never sees half a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import logging
import os
import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from pathlib import Path, PurePosixPath
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from redpss import wire
from redpss.config import ServerSection
from redpss.errors import ConfigError, RoleError, WireError
from redpss.roles.base import Role, RoleContext

__all__ = ["Mail2cmd", "Rule", "Senders", "parse_commands", "safe_filename", "save_file"]

log = logging.getLogger(__name__)

_KEYWORD = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-]+")
_MAX_ATTACHMENTS = 100
_STDIN_LIMIT = 1 << 20


@dataclass(frozen=True)
class Rule:
    """What a subject keyword runs."""

    keyword: str
    command: str
    save: bool


@dataclass(frozen=True)
class Senders:
    """The allowed senders: whole addresses and whole domains (lower case)."""

    addresses: frozenset[str]
    domains: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Senders:
        """Read ``mail2cmd_allowed_senders``; ConfigError on an entry that is no address."""
        addresses, domains = set(), set()
        for item in (i.strip().lower() for i in text.split(",")):
            if not item:
                continue
            if item.startswith("@") and "@" not in item[1:] and len(item) > 1:
                domains.add(item[1:])
            elif item.count("@") == 1 and all(item.split("@")) and " " not in item:
                addresses.add(item)
            else:
                raise ConfigError(f"mail2cmd_allowed_senders: {item!r} is no address or @domain")
        return cls(frozenset(addresses), frozenset(domains))

    def allows(self, address: str) -> bool:
        """True when ``address`` is on the list."""
        address = address.strip().lower()
        return address in self.addresses or address.rpartition("@")[2] in self.domains


def parse_commands(text: str) -> dict[str, Rule]:
    """Read ``mail2cmd_commands`` (``KEYWORD:script[:save], …``) into rules by upper keyword."""
    rules: dict[str, Rule] = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        keyword, _, rest = item.partition(":")
        command, _, flag = rest.strip().partition(":")
        keyword, command, flag = keyword.strip(), command.strip(), flag.strip()
        problem = None
        if not _KEYWORD.fullmatch(keyword):
            problem = "the keyword must be letters, digits, '_' or '-'"
        elif not command or command.startswith("/") or ".." in PurePosixPath(command).parts:
            problem = "the script must be a path relative to cmd/ without '..'"
        elif flag not in ("", "save"):
            problem = "the only flag is ':save'"
        elif keyword.upper() in rules:
            problem = "the keyword appears twice"
        if problem:
            raise ConfigError(f"mail2cmd_commands: {item!r}: {problem}")
        rules[keyword.upper()] = Rule(keyword.upper(), command, flag == "save")
    return rules


def safe_filename(name: str | None) -> str:
    """A base name that is safe in ``data/input``: no path, no leading dot, no odd characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).lstrip(".-_")[:200]
    return base or "attachment"


def save_file(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` as ``folder/name``, or ``name-1`` … when taken; never overwrite."""
    stem, dot, ext = name.rpartition(".")
    if not stem:
        stem, dot, ext = name, "", ""
    tmp = folder / f".mail2cmd-{secrets.token_hex(8)}.part"
    with tmp.open("xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        for n in range(10_000):
            candidate = folder / (name if n == 0 else f"{stem}-{n}{dot}{ext}")
            try:
                os.link(tmp, candidate)  # atomic, and refuses an existing name
            except FileExistsError:
                continue
            return candidate
        raise FileExistsError(f"no free name for {name} in {folder}")
    finally:
        tmp.unlink(missing_ok=True)


def _sender(msg: EmailMessage) -> str | None:
    found = getaddresses(msg.get_all("From", []))
    return found[0][1] if len(found) == 1 and found[0][1] else None


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    with contextlib.suppress(LookupError, ValueError, AttributeError):
        content = part.get_content()
        if isinstance(content, str):
            return content.replace("\r\n", "\n")[:_STDIN_LIMIT]  # SMTP lines end in CRLF
    return ""


class _Handler:
    """The aiosmtpd handler: the checks of the SMTP dialogue."""

    def __init__(self, role: Mail2cmd) -> None:
        self.role = role

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if not self.role.senders.allows(address):
            self.role.refused(session, address, "sender not allowed")
            return "550 5.7.1 sender not allowed"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or envelope.content
        assert isinstance(data, bytes)
        msg = BytesParser(policy=email.policy.default).parsebytes(data)
        assert isinstance(msg, EmailMessage)
        mail_from = str(envelope.mail_from)
        header_from = _sender(msg)
        subject = str(msg.get("Subject", "")).strip()
        word = subject.split(maxsplit=1)[0].upper() if subject else ""
        keyword = repr(word[:64]) if not _KEYWORD.fullmatch(word) else word
        if header_from is None or not self.role.senders.allows(header_from):
            reason = f"From: {header_from!r} not allowed"
            self.role.refused(session, mail_from, reason, keyword)
            return "550 5.7.1 From: header not allowed"
        rule = self.role.rules.get(word)
        if rule is None:
            reason = f"no command for subject {subject[:80]!r}"
            self.role.refused(session, mail_from, reason, keyword)
            return "550 5.7.1 no such command"
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.role.accept, rule, msg, mail_from)


class Mail2cmd(Role):
    """The inbound mail-to-command server."""

    name = "mail2cmd"

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        cfg: ServerSection = ctx.config.redsys
        self.senders = Senders.parse(cfg.mail2cmd_allowed_senders)
        self.rules = parse_commands(cfg.mail2cmd_commands)
        self.input = ctx.instance.home / "data" / "input"
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mail2cmd-run")
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self._accepted = self._refused = 0

    def start(self) -> None:
        """Listen on ``mail2csv_port``; returns when the SMTP server answers."""
        cfg = self.ctx.config.redsys
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            # aiosmtpd says every SMTP command at INFO (nine lines a mail): the role's one line
            # per mail says what matters; at DEBUG and TRACE the dialogue is kept
            logging.getLogger("mail.log").setLevel(logging.WARNING)
        if not (self.senders.addresses or self.senders.domains) or not self.rules:
            log.warning("role=mail2cmd no allowed senders or no commands: every mail is refused")
        self.input.mkdir(parents=True, exist_ok=True)
        controller = Controller(
            _Handler(self),
            hostname=cfg.mail2csv_host,
            port=cfg.mail2csv_port,
            ready_timeout=10,
            data_size_limit=cfg.mail2cmd_max_size,
            ident="redpss mail2cmd",
        )
        try:
            controller.start()
        except (OSError, RuntimeError, TimeoutError) as exc:
            raise RoleError(
                f"mail2cmd cannot listen on {cfg.mail2csv_host}:{cfg.mail2csv_port}: {exc}"
            ) from exc
        self._controller = controller
        # aiosmtpd serves on a thread of its own: if it ends, no mail is received while the
        # role looks up; the heartbeat says so
        self.health.watch("SMTP server", controller._thread)
        log.info("role=mail2cmd listening on %s:%d", cfg.mail2csv_host, cfg.mail2csv_port)

    def stop(self) -> None:
        """Stop listening; let commands in hand finish (JEXEC's time limit bounds them)."""
        controller, self._controller = self._controller, None
        if controller is not None:
            try:
                controller.stop()
            except RuntimeError as exc:  # its thread ended before: the loop is closed
                log.warning("role=mail2cmd SMTP server was not running at stop: %s", exc)
        self._pool.shutdown(wait=True, cancel_futures=False)

    def info(self) -> str:
        """What the heartbeat row shows."""
        return f"port {self.ctx.config.redsys.mail2csv_port}, {self._accepted} accepted, " + (
            f"{self._refused} refused"
        )

    def refused(self, session: Session, sender: str, reason: str, keyword: str = "-") -> None:
        """Log a refused mail (its one line)."""
        with self._lock:
            self._refused += 1
        peer = session.peer[0] if isinstance(session.peer, tuple) else session.peer
        log.warning(
            "role=mail2cmd mail=- from=%s keyword=%s decision=refused reason=%s peer=%s",
            sender, keyword, reason, peer,
        )  # fmt: skip

    def _jexec(self, op: str, timeout: float, **args: Any) -> Any:
        cfg = self.ctx.config.redsys
        return wire.call(
            wire.local_address(cfg.jexec_host),
            cfg.jexec_port,
            op,
            secret=cfg.pss_secret.reveal(),
            timeout=timeout,
            **args,
        )

    def accept(self, rule: Rule, msg: EmailMessage, sender: str) -> str:
        """Save the attachments, queue the command; the SMTP reply (runs in a thread)."""
        mail_id = f"m{secrets.token_hex(6)}"
        line = f"role=mail2cmd mail={mail_id} from={sender} keyword={rule.keyword}"
        try:
            self._jexec("ping", 5)
        except WireError as exc:
            log.error("%s decision=deferred reason=jexec does not answer: %s", line, exc)
            return "451 4.3.0 command service unavailable, try again later"
        saved: list[str] = []
        if rule.save:
            home = self.ctx.instance.home
            try:
                for n, part in enumerate(msg.iter_attachments()):
                    if n >= _MAX_ATTACHMENTS:
                        break
                    data = part.get_payload(decode=True)
                    if not isinstance(data, bytes):
                        continue
                    path = save_file(self.input, safe_filename(part.get_filename()), data)
                    saved.append(str(path.relative_to(home)))
            except OSError as exc:
                log.error("%s decision=deferred reason=attachments not saved: %s", line, exc)
                return "451 4.3.0 cannot store the attachments now"
        with self._lock:
            self._accepted += 1
        self._pool.submit(self._run, line, mail_id, rule, saved, _text(msg))
        return f"250 OK accepted as {mail_id}"

    def _run(self, line: str, mail_id: str, rule: Rule, saved: list[str], stdin: str) -> None:
        """Run the command; write the mail's one line (decision accepted) when it ended."""
        limit = self.ctx.config.redsys.mail2cmd_time_limit
        line += f" decision=accepted command={rule.command} saved={len(saved)}"
        try:
            res = self._jexec(
                "run",
                limit + 30,
                command=rule.command,
                args=saved,
                stdin=stdin,
                time_limit=limit,
                job=f"mail2cmd:{rule.keyword}",
                run_id=mail_id,
            )
        except WireError as exc:
            log.error("%s exit=- error=%s", line, exc)
            return
        level = logging.INFO if res.get("exit_code") == 0 else logging.ERROR
        log.log(
            level,
            "%s exit=%s timed_out=%s seconds=%s",
            line, res.get("exit_code"), res.get("timed_out"), res.get("seconds"),
        )  # fmt: skip
