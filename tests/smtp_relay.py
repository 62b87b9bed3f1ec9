"""A real SMTP relay on loopback for the tests (aiosmtpd), and what it received.

``make_relay`` in ``tests/conftest.py`` builds these; a test never starts its own
``Controller``. The relay refuses a recipient ``nobody@…`` with 550 (a permanent refusal), can
demand STARTTLS (a trustme certificate; ``cafile`` is what a client must trust) and AUTH LOGIN /
PLAIN with one user, and can be stopped and started again on the same port (a relay that goes
down and comes back). ``stop()`` drops the sessions still open first: aiosmtpd's controller
only closes the listening socket, and a session after STARTTLS (its TLS shutdown never runs once
the loop stops) left its socket transport unclosed, a ResourceWarning in some later test.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Inbox:
    """What the relay accepted, and who logged in (read it from the test's thread)."""

    mails: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    tls: list[bool] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.mails)

    @property
    def subjects(self) -> list[str]:
        """The Subject of every mail, in the order they arrived."""
        with self.lock:
            return [str(m["Subject"]) for m in self.mails]

    @property
    def rcpts(self) -> list[list[str]]:
        """The envelope recipients of every mail (Bcc included), in the order they arrived."""
        with self.lock:
            return [list(rcpts) for _, rcpts in self.envelopes]


class _Handler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self.inbox.lock:
            self.inbox.mails.append(msg)
            self.inbox.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
            self.inbox.tls.append(session.ssl is not None)
        return "250 Message accepted"


class _Session(SMTP):
    """aiosmtpd's session, remembering its socket transport (STARTTLS later wraps it)."""

    def __init__(self, transports: set[asyncio.Transport], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._transports = transports

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # the socket's, not the TLS layer's after STARTTLS
            self._transports.add(cast(asyncio.Transport, transport))
        super().connection_made(transport)


class _Controller(Controller):
    """A controller whose ``stop()`` first closes every session that is still open."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transports: set[asyncio.Transport] = set()

    def factory(self) -> SMTP:
        return _Session(self.transports, self.handler, **self.SMTP_kwargs)

    def stop(self, no_assert: bool = False) -> None:
        if self._thread is not None:
            done = asyncio.run_coroutine_threadsafe(self._drop_sessions(), self.loop)
            done.result(timeout=30)
        super().stop(no_assert)

    async def _drop_sessions(self) -> None:
        """Abort every session's socket; return once each socket is closed (connection_lost
        runs on a later turn of the loop)."""
        for transport in self.transports:
            transport.abort()
        deadline = time.monotonic() + 10
        while any(t.get_extra_info("socket").fileno() != -1 for t in self.transports):
            if time.monotonic() > deadline:
                raise TimeoutError("the relay's sessions did not close in 10 s")
            await asyncio.sleep(0.01)
        self.transports.clear()


@dataclass
class Relay:
    """One relay on ``port``; ``start()`` and ``stop()`` may be called again and again."""

    port: int
    inbox: Inbox
    tls: ssl.SSLContext | None = None
    cafile: Path | None = None
    login: tuple[str, str] | None = None
    _running: list[_Controller] = field(default_factory=list)

    def start(self) -> None:
        """Listen on ``port``; returns once the relay answers (aiosmtpd's controller checks)."""
        if self._running:
            return
        kwargs: dict[str, Any] = {}
        if self.tls is not None:
            kwargs.update(tls_context=self.tls, require_starttls=True)
        if self.login is not None:
            kwargs.update(auth_required=True, authenticator=self._authenticate)
            # without TLS, aiosmtpd offers AUTH only when told it may go in clear text
            kwargs.update(auth_require_tls=self.tls is not None)
        controller = _Controller(
            _Handler(self.inbox), hostname="127.0.0.1", port=self.port, ready_timeout=30, **kwargs
        )
        controller.start()
        self._running.append(controller)

    def stop(self) -> None:
        """Stop listening (idempotent); what was received stays in ``inbox``."""
        while self._running:
            self._running.pop().stop()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self.login is not None
        user, password = self.login
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            user.encode(),
            password.encode(),
        )
        if ok:
            with self.inbox.lock:
                self.inbox.logins.append(user)
        # handled=False: aiosmtpd answers a refused login with 535 as a real relay does (with
        # its default, handled=True, it says nothing and the client waits for its timeout)
        return AuthResult(success=ok, handled=False)


def tls_context(cafile: Path) -> ssl.SSLContext:
    """A server context with a trustme certificate for 127.0.0.1 and localhost; the CA a client
    must trust is written to ``cafile``."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    ca.cert_pem.write_to_path(str(cafile))
    return ctx
