"""The tests' SMTP relay (tests/smtp_relay.py): stopping it closes what it had open."""

from __future__ import annotations

import gc
import smtplib
import ssl
import warnings
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.smtp_relay import Inbox, Relay, tls_context


def test_stopping_the_relay_closes_a_session_after_starttls(tmp_path: Path) -> None:
    """A session still open after STARTTLS left its socket transport unclosed when the relay
    stopped: a ResourceWarning in whichever later test the garbage collector ran in."""
    cafile = tmp_path / "ca.pem"
    relay = Relay(free_port(), Inbox(), tls=tls_context(cafile), cafile=cafile, login=("u", "p"))
    relay.start()
    client = smtplib.SMTP("127.0.0.1", relay.port, timeout=30)
    try:
        client.starttls(context=ssl.create_default_context(cafile=str(cafile)))
        client.ehlo()
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            relay.stop()
            gc.collect()
        assert [str(w.message) for w in seen if w.category is ResourceWarning] == []
        with pytest.raises(smtplib.SMTPServerDisconnected):  # the session is gone, not leaked
            client.noop()
    finally:
        client.close()
