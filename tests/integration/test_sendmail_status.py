"""Issue 19: a relay that is down or refuses the login shows sendmail at ALERT 1 with the reason
in ``redctl status``, at once; a refused login says "authentication failed".

A real instance (supervisord, the sendmail role) against a real aiosmtpd relay demanding
STARTTLS and AUTH.
"""

from __future__ import annotations

import json
import time
from typing import Any

from redpss import wire
from redpss.instance import Instance
from tests.conftest import MakeRelay, run_cli, wait_for
from tests.integration.role_support import MakeInstance, set_keys

USER, PASSWORD = "redsys", "right-password"


def sendmail_row(inst: Instance) -> dict[str, Any]:
    out = run_cli("redctl", "--json", "status", inst=inst)
    row: dict[str, Any] = next(
        r for r in json.loads(out.stdout)["roles"] if r["role"] == "sendmail"
    )
    return row


def start(inst: Instance) -> None:
    for args in (("db", "init"), ("start",)):
        out = run_cli("redctl", *args, inst=inst)
        assert out.returncode == 0, out.stdout + out.stderr


def send(inst: Instance, subject: str) -> None:
    cfg = inst.load_config().redsys
    secret = cfg.pss_secret.reveal()
    reply = wire.call(
        "127.0.0.1", cfg.sendmail_port, "send", secret=secret, to="ops@example.com", subject=subject
    )
    assert reply["id"]


def test_a_refused_login_is_alert_1_at_once_and_heals(
    make_instance: MakeInstance, make_relay: MakeRelay
) -> None:
    relay = make_relay(tls=True, login=(USER, PASSWORD))
    inst = make_instance("tst1")
    set_keys(
        inst,
        sendmail_smtp_host="127.0.0.1",
        sendmail_smtp_port=relay.port,
        sendmail_smtp_encr="STARTTLS",
        sendmail_smtp_cafile=relay.cafile,
        sendmail_smtp_user=USER,
        sendmail_smtp_pass="wrong-password",
        sendmail_retry_base=1,
        sendmail_retry_max=2,
    )
    start(inst)
    assert sendmail_row(inst)["alert"] == 0
    began = time.monotonic()
    send(inst, "first")
    row = wait_for(
        lambda: (r := sendmail_row(inst))["alert"] == 1 and r,
        timeout=30,
        what="sendmail at ALERT 1",
    )
    assert isinstance(row, dict)
    assert time.monotonic() - began < 10  # not after the 30 s of a read timeout
    reason = str(row["reason"])
    assert "authentication failed for user redsys" in reason and "535" in reason
    assert "timed out" not in reason
    out = run_cli("redctl", "status", inst=inst)
    assert out.returncode == 1 and "authentication failed" in out.stdout  # DEGRADED

    # the operator fixes the password; after a restart of sendmail the mail goes, ALERT 0
    set_keys(inst, sendmail_smtp_pass=PASSWORD)
    assert run_cli("redctl", "restart", inst=inst).returncode == 0
    wait_for(lambda: relay.inbox.subjects == ["first"], timeout=60, what="the mail delivered")
    wait_for(lambda: sendmail_row(inst)["alert"] == 0, timeout=30, what="sendmail ALERT 0")


def test_a_relay_that_is_down_is_alert_1_until_it_is_back(
    make_instance: MakeInstance, make_relay: MakeRelay
) -> None:
    relay = make_relay(start=False)
    inst = make_instance("tst1")
    set_keys(
        inst,
        sendmail_smtp_host="127.0.0.1",
        sendmail_smtp_port=relay.port,
        sendmail_smtp_encr="PLAIN",
        sendmail_retry_base=1,
        sendmail_retry_max=2,
    )
    start(inst)
    send(inst, "while down")
    row = wait_for(lambda: (r := sendmail_row(inst))["alert"] == 1 and r, timeout=30)
    assert isinstance(row, dict)
    assert f"cannot connect to relay 127.0.0.1:{relay.port}" in str(row["reason"])
    relay.start()
    wait_for(lambda: relay.inbox.subjects == ["while down"], timeout=60, what="delivered")
    wait_for(lambda: sendmail_row(inst)["alert"] == 0, timeout=30, what="sendmail ALERT 0")
