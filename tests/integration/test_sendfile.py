"""SENDFILE against real servers on loopback: Debian's OpenSSH (sFTP, key only, own host key)
and, for the mail path, SENDMAIL with an aiosmtpd relay.

The export must arrive intact (rows compared), a host key that is not the known one is refused
with a clear error, an existing file is not replaced unless asked.
"""

from __future__ import annotations

import csv
import getpass
import io
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from redpss import wire
from redpss.errors import RemoteError
from redpss.roles.base import RoleContext
from redpss.roles.sendfile import Sendfile
from tests.conftest import free_port, wait_for
from tests.integration.role_support import (
    MakeInstance,
    Stack,
    role_context,
    running,
)

SSHD = Path("/usr/sbin/sshd")
ROWS = [(i, f"item {i}", i * 1.5 if i % 7 else None, 'ä, "quoted"\nline') for i in range(1, 1001)]


def keygen(path: Path) -> str:
    """Make an ed25519 key pair at ``path``; return the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path.with_suffix(".pub").read_text().strip()


@dataclass
class Sshd:
    port: int
    target: Path
    client_key: Path
    known_hosts: Path
    wrong_known_hosts: Path


def _wait_banner(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while True:
        if proc.poll() is not None:
            assert proc.stderr is not None
            pytest.fail(f"sshd exited: {proc.stderr.read().decode(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("sshd did not answer within 30 s")
        time.sleep(0.05)


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    """OpenSSH on a free loopback port: own host key, key auth only, sFTP into ``target``."""
    if not SSHD.exists():
        pytest.skip("openssh-server is not installed (make sysdeps)")
    d = tmp_path / "sshd"
    d.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    host_pub = keygen(d / "host_key")
    other_pub = keygen(d / "other_host_key")
    client_pub = keygen(d / "client_key")
    (d / "authorized_keys").write_text(client_pub + "\n")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
        f"PidFile {d / 'sshd.pid'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        f"PermitRootLogin prohibit-password\nAllowUsers {getpass.getuser()}\nUsePAM no\n"
        # /tmp is world-writable: neither a chroot below it nor StrictModes can be had here
        "StrictModes no\nSubsystem sftp internal-sftp\n"
        f"ForceCommand internal-sftp -d {target}\nAllowTcpForwarding no\nX11Forwarding no\n"
    )
    known = d / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    wrong = d / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{port} {other_pub}\n")
    proc = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(d / "sshd_config")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_banner(port, proc, time.monotonic() + 30)
        yield Sshd(port, target, d / "client_key", known, wrong)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def fill(ctx: RoleContext) -> None:
    """Target schema STAGE with a table SALES of ROWS and a view on it."""
    ctx.dictionary.ensure_schema("STAGE")
    with sqlite3.connect(ctx.instance.db_dir / "STAGE.db") as conn:
        conn.execute("CREATE TABLE SALES (ID INTEGER, NAME VARCHAR(50), AMOUNT DOUBLE, NOTE TEXT)")
        conn.executemany("INSERT INTO SALES VALUES (?, ?, ?, ?)", ROWS)
        conn.execute("CREATE VIEW V_SALES AS SELECT ID, NAME FROM SALES WHERE ID <= 10")
    conn.close()


def sftp_context(make_instance: MakeInstance, server: Sshd, known: Path) -> RoleContext:
    ctx = role_context(
        make_instance,
        sendfile_sftp_host="127.0.0.1",
        sendfile_sftp_port=server.port,
        sendfile_sftp_user=getpass.getuser(),
        sendfile_sftp_key_file=server.client_key,
        sendfile_sftp_known_hosts=known,
        sendfile_sftp_dir="exports",
        sendfile_batch_size=64,
    )
    (server.target / "exports").mkdir(exist_ok=True)
    fill(ctx)
    return ctx


def send(ctx: RoleContext, **args: Any) -> Any:
    cfg = ctx.config.redsys
    return wire.call(
        "127.0.0.1", cfg.sendfile_port, "send", secret=cfg.pss_secret.reveal(), timeout=60, **args
    )


def csv_rows(data: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data, newline="")))


def expected_csv(rows: list[tuple[Any, ...]]) -> list[list[str]]:
    return [["" if v is None else str(v) for v in row] for row in rows]


def test_csv_and_parquet_arrive_intact_by_sftp(make_instance: MakeInstance, sshd: Sshd) -> None:
    ctx = sftp_context(make_instance, sshd, sshd.known_hosts)
    with running(Sendfile, ctx):
        res = send(ctx, schema="STAGE", object="sales", sftp={}, file_name="sales.csv")
        assert res["rows"] == len(ROWS) and res["via"] == "sftp"
        assert res["remote_path"] == "exports/sales.csv"
        got = csv_rows((sshd.target / "exports" / "sales.csv").read_text(encoding="utf-8"))
        assert got[0] == ["ID", "NAME", "AMOUNT", "NOTE"]
        assert got[1:] == expected_csv(ROWS)

        res = send(ctx, schema="STAGE", object="SALES", format="parquet", sftp={"dir": "pq/x"})
        path = sshd.target / "exports" / res["remote_path"].removeprefix("exports/")
        assert path.parent == sshd.target / "exports" / "pq" / "x"
        table = pq.read_table(path)
        assert [tuple(r.values()) for r in table.to_pylist()] == ROWS
        assert str(table.schema.field("ID").type) == "int64"

        # a chosen column list, a filter, a view; the same name again is not replaced
        res = send(
            ctx,
            schema="STAGE",
            object="V_SALES",
            columns=["name", "ID"],
            where={"ID": 3},
            delimiter=";",
            sftp={},
            file_name="v.csv",
        )
        assert (sshd.target / "exports" / "v.csv").read_text() == "NAME;ID\nitem 3;3\n"
        with pytest.raises(RemoteError) as exc:
            send(ctx, schema="STAGE", object="V_SALES", sftp={}, file_name="v.csv")
        assert exc.value.code == "exists"
        send(ctx, schema="STAGE", object="V_SALES", sftp={"overwrite": True}, file_name="v.csv")
        assert len(csv_rows((sshd.target / "exports" / "v.csv").read_text())) == 11
    assert not any((sshd.target / "exports").rglob(".*.part"))
    assert not any((ctx.instance.home / "tmp" / "sendfile").iterdir())


def test_names_are_checked_not_interpolated(make_instance: MakeInstance, sshd: Sshd) -> None:
    ctx = sftp_context(make_instance, sshd, sshd.known_hosts)
    with running(Sendfile, ctx):
        for bad in (
            {"object": "SALES; DROP TABLE SALES"},
            {"object": "SALES", "columns": ["ID", "1); DROP TABLE SALES --"]},
            {"object": "SALES", "where": {"ID = ID OR 1": 1}},
            {"object": "ADM_NOPE"},
            {"object": "SALES", "file_name": "../../etc/passwd"},
            {"object": "SALES", "sftp": {"dir": "../up"}},
        ):
            args: dict[str, Any] = {"schema": "STAGE", "sftp": {}, **bad}
            with pytest.raises(RemoteError) as exc:
                send(ctx, **args)
            assert exc.value.code == "bad_args", bad
        with pytest.raises(RemoteError) as exc:
            send(ctx, schema="NOPE", object="SALES", sftp={})
        assert exc.value.code == "bad_args" and "does not exist" in exc.value.message
    with sqlite3.connect(ctx.instance.db_dir / "STAGE.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM SALES").fetchone() == (len(ROWS),)
    conn.close()
    assert not (sshd.target / "up").exists()


def test_a_wrong_host_key_is_refused(make_instance: MakeInstance, sshd: Sshd) -> None:
    ctx = sftp_context(make_instance, sshd, sshd.wrong_known_hosts)
    with running(Sendfile, ctx), pytest.raises(RemoteError) as exc:
        send(ctx, schema="STAGE", object="SALES", sftp={})
    assert exc.value.code == "host_key"
    assert "does not match" in exc.value.message
    assert not any((sshd.target / "exports").iterdir())


def test_an_unknown_host_is_refused(make_instance: MakeInstance, sshd: Sshd) -> None:
    empty = sshd.known_hosts.with_name("empty_known_hosts")
    empty.write_text("")
    ctx = sftp_context(make_instance, sshd, empty)
    with running(Sendfile, ctx), pytest.raises(RemoteError) as exc:
        send(ctx, schema="STAGE", object="SALES", sftp={})
    assert exc.value.code == "host_key" and "known_hosts" in exc.value.message


@pytest.fixture
def mail_stack(make_stack: Callable[..., Stack]) -> Stack:
    """The service roles with SALES filled into STAGE, sendmail relaying to a relay."""
    stack = make_stack(sendfile_batch_size=100)
    fill(stack.ctx)
    return stack


def test_an_export_goes_by_mail_as_an_attachment(mail_stack: Stack) -> None:
    ctx, inbox = mail_stack.ctx, mail_stack.relay.inbox
    res = send(
        ctx,
        schema="STAGE",
        object="SALES",
        mail={"to": ["ops@example.com"], "subject": "sales export", "body": "attached"},
        file_name="sales.csv",
    )
    assert res["via"] == "mail" and res["rows"] == len(ROWS) and res["mail_id"]
    wait_for(lambda: inbox.mails, timeout=60, what="the mail at the relay")
    msg = inbox.mails[0]
    assert msg["Subject"] == "sales export"
    parts = [p for p in msg.iter_attachments() if p.get_filename() == "sales.csv"]
    assert len(parts) == 1
    payload = parts[0].get_payload(decode=True)
    assert isinstance(payload, bytes)
    text = payload.decode("utf-8")
    assert csv_rows(text)[1:] == expected_csv(ROWS)
    # the export file was removed once sendmail had spooled it
    assert not any((ctx.instance.home / "tmp" / "sendfile").iterdir())


def test_sendmail_down_is_reported(make_instance: MakeInstance) -> None:
    ctx = role_context(make_instance)
    fill(ctx)
    with running(Sendfile, ctx):
        with pytest.raises(RemoteError) as exc:
            send(ctx, schema="STAGE", object="SALES", mail={"to": "ops@example.com"})
        assert exc.value.code == "mail_failed"
        with pytest.raises(RemoteError) as exc:
            send(ctx, schema="STAGE", object="SALES", sftp={})
        assert exc.value.code == "not_configured"
    assert not any((ctx.instance.home / "tmp" / "sendfile").iterdir())
