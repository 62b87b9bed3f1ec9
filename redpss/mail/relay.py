"""One connection to the SMTP relay (smtplib), with STARTTLS or plain and SASL auth.

smtplib's errors are translated here, once, into :class:`~redpss.errors.MailError` whose
``permanent`` flag says whether retrying can help: a 5xx reply to the mail is permanent; a 4xx
reply, a refused or broken connection, a timeout, a failed TLS handshake or login are not (the
relay or our configuration may be fixed). A refused login says ``authentication failed`` with
the relay's answer and the keys to check.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import time

from redpss.config.sections import Encryption
from redpss.errors import MailError

__all__ = ["Relay"]


class Relay:
    """A kept connection to the relay; not thread-safe (one delivery thread uses it)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        encryption: Encryption,
        user: str = "",
        password: str = "",
        cafile: str = "",
        timeout: float = 30.0,
    ) -> None:
        """Remember the relay; :meth:`send` connects when needed."""
        self.host, self.port = host, port
        self.encryption = encryption
        self.user, self.password = user, password
        self.cafile = cafile or None
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None
        self._used = 0.0

    @property
    def address(self) -> str:
        """``host:port`` for messages."""
        return f"{self.host}:{self.port}"

    def connect(self) -> None:
        """Open, secure and authenticate a connection unless one is open and alive."""
        if self._smtp is not None:
            if time.monotonic() - self._used < 1.0:
                return
            try:  # kept for a while: make sure the relay still listens before we claim a mail
                if self._smtp.noop()[0] == 250:
                    return
            except (smtplib.SMTPException, OSError):
                pass
            self.close()
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"cannot connect to relay {self.address}: {exc}") from exc
        phase = "greeting"
        try:
            smtp.ehlo()
            if self.encryption is Encryption.STARTTLS:
                phase = "STARTTLS"
                context = ssl.create_default_context(cafile=self.cafile)
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.user:
                phase = f"login of user {self.user}"
                smtp.login(self.user, self.password)
        except smtplib.SMTPAuthenticationError as exc:
            _close_quietly(smtp)
            raise MailError(
                f"relay {self.address}: authentication failed for user {self.user} "
                f"({exc.smtp_code} {_text(exc.smtp_error)}); check sendmail_smtp_user and "
                "sendmail_smtp_pass"
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            _close_quietly(smtp)
            raise MailError(
                f"relay {self.address} offers no login (AUTH) on this connection: {exc}; "
                "sendmail_smtp_encr = STARTTLS may be needed, or no sendmail_smtp_user"
            ) from exc
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            _close_quietly(smtp)
            raise MailError(f"relay {self.address} failed at the {phase}: {exc}") from exc
        self._smtp = smtp
        self._used = time.monotonic()

    def send(self, sender: str, recipients: list[str], data: bytes) -> dict[str, str]:
        """Hand one mail to the relay; return the refused recipients (address → reason).

        Raises MailError when the relay accepted it for nobody.
        """
        self.connect()
        assert self._smtp is not None
        try:
            refused = self._smtp.sendmail(sender, recipients, data)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            self._reset()
            raise MailError(
                f"relay refused every recipient: {_reasons(exc.recipients)}",
                permanent=all(c >= 500 for c in codes),
            ) from exc
        except smtplib.SMTPResponseException as exc:
            self._reset()
            raise MailError(
                f"relay answered {exc.smtp_code} {_text(exc.smtp_error)}",
                permanent=exc.smtp_code >= 500,
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise MailError(f"delivery to relay {self.address} broke off: {exc}") from exc
        self._used = time.monotonic()
        return {
            rcpt: f"{code} {msg.decode('utf-8', 'replace')}"
            for rcpt, (code, msg) in refused.items()
        }

    def _reset(self) -> None:
        try:
            assert self._smtp is not None
            self._smtp.rset()
            self._used = time.monotonic()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        """Say QUIT and close; idempotent."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            smtp.close()

    @property
    def idle(self) -> float:
        """Seconds since the kept connection was last used (0 when none is kept)."""
        return time.monotonic() - self._used if self._smtp is not None else 0.0


def _text(error: bytes | str) -> str:
    return error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)


def _close_quietly(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError, smtplib.SMTPException):
        smtp.close()


def _reasons(recipients: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(
        f"{rcpt}: {code} {msg.decode('utf-8', 'replace')}"
        for rcpt, (code, msg) in recipients.items()
    )
