"""Issue 19: ``log/mail2cmd.log`` says one line per mail (from, keyword, decision, command,
exit), not aiosmtpd's dialogue. A real instance (supervisord, mail2cmd and jexec) and smtplib."""

from __future__ import annotations

import re
import smtplib
from email.message import EmailMessage

import pytest

from tests.conftest import run_cli, wait_for
from tests.integration.role_support import MakeInstance


def mail(sender: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "redsys@example.com", subject
    msg.set_content("hello")
    return msg


def test_one_line_per_mail(make_instance: MakeInstance) -> None:
    inst = make_instance(
        "tst1",
        mail2csv_enabled="true",
        mail2cmd_allowed_senders="ops@example.com",
        mail2cmd_commands="RELOAD:reload.sh",
    )
    script = inst.home / "cmd" / "reload.sh"
    script.write_text("#!/bin/sh\necho reloaded\n")
    script.chmod(0o755)
    for args in (("db", "init"), ("start",)):
        out = run_cli("redctl", *args, inst=inst)
        assert out.returncode == 0, out.stdout + out.stderr
    port = inst.load_config().redsys.mail2csv_port
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.send_message(mail("ops@example.com", "RELOAD please"))
        with pytest.raises(smtplib.SMTPSenderRefused):
            smtp.send_message(mail("evil@example.com", "RELOAD"))
        with pytest.raises(smtplib.SMTPDataError):
            smtp.send_message(mail("ops@example.com", "rm -rf"))
    log = inst.log_dir / "mail2cmd.log"
    wait_for(lambda: "exit=0" in log.read_text(), timeout=60, what="the command's line")
    lines = log.read_text().splitlines()
    per_mail = [ln for ln in lines if "decision=" in ln]
    assert len(per_mail) == 3, per_mail
    accepted, evil, unknown = sorted(per_mail, key=lambda ln: ln.count("accepted"), reverse=True)
    assert re.search(
        r"mail=m\w+ from=ops@example.com keyword=RELOAD decision=accepted command=reload.sh "
        r"saved=0 exit=0 timed_out=False seconds=[\d.]+$",
        accepted,
    ), accepted
    assert "from=evil@example.com keyword=- decision=refused reason=sender not allowed" in evil
    assert "from=ops@example.com keyword=RM decision=refused reason=no command" in unknown
    # nothing of aiosmtpd's dialogue (mail.log: connections, EHLO, MAIL FROM …)
    assert [ln for ln in lines if " mail.log: " in ln] == []
    assert len(lines) < 12, lines  # start-up, the three mails, nothing per SMTP command
