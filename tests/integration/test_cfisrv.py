"""cfisrv over real FTPS on loopback: ftplib.FTP_TLS reads the data tree, writes only in export/."""

from __future__ import annotations

import ftplib
import io
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from redpss.dictionary import open_dictionary
from redpss.instance import Instance
from redpss.roles.base import RoleContext
from redpss.roles.cfisrv import Cfisrv
from tests.conftest import BIN, wait_for
from tests.integration.role_support import MakeInstance, role_context, running, set_keys


@pytest.fixture
def server(make_instance: MakeInstance) -> Iterator[tuple[RoleContext, Cfisrv]]:
    ctx = role_context(make_instance)
    with running(Cfisrv, ctx) as role:
        assert isinstance(role, Cfisrv)
        yield ctx, role


def _tls(ctx: RoleContext) -> ssl.SSLContext:
    """A client context that trusts the certificate cfisrv made at its first start."""
    return ssl.create_default_context(cafile=str(ctx.instance.etc / "ssl" / "cfisrv.crt"))


def _login(ctx: RoleContext, role: Cfisrv) -> ftplib.FTP_TLS:
    cfg = ctx.config.redsys
    ftp = ftplib.FTP_TLS(context=_tls(ctx), timeout=20)
    ftp.connect(cfg.cfi_host, role.port or cfg.cfi_port)
    ftp.login(cfg.cfi_user, cfg.cfi_password.reveal())  # AUTH TLS first, then USER/PASS
    ftp.prot_p()
    return ftp


def _get(ftp: ftplib.FTP, path: str) -> bytes:
    out = io.BytesIO()
    ftp.retrbinary(f"RETR {path}", out.write)
    return out.getvalue()


def test_reads_input_and_writes_only_below_export(server: tuple[RoleContext, Cfisrv]) -> None:
    ctx, role = server
    data = ctx.instance.home / "data"
    (data / "input" / "sales 2024.csv").write_bytes(b"ID,NAME\n1,Bonn\n")
    with _login(ctx, role) as ftp:
        assert sorted(ftp.nlst()) == ["archive", "error", "export", "input", "work"]  # no db/
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            ftp.nlst("db")
        # what IMPORT ... FROM CSV AT 'ftps://...' FILE 'input/sales 2024.csv' does
        assert _get(ftp, "input/sales 2024.csv") == b"ID,NAME\n1,Bonn\n"
        # below export/: store, read back, rename, make a folder, delete
        ftp.storbinary("STOR export/export.csv", io.BytesIO(b"x,y\n"))
        assert (data / "export" / "export.csv").read_bytes() == b"x,y\n"
        ftp.rename("export/export.csv", "export/export2.csv")
        ftp.mkd("export/sub")
        ftp.storbinary("STOR export/sub/a.csv", io.BytesIO(b"1\n"))
        ftp.delete("export/sub/a.csv")
        ftp.rmd("export/sub")
        assert _get(ftp, "/export/export2.csv") == b"x,y\n"
        ftp.delete("export/export2.csv")
        assert list((data / "export").iterdir()) == []
        # everywhere else: refused with 550, nothing changed
        refused: list[Callable[[], object]] = [
            lambda: ftp.storbinary("STOR input/new.csv", io.BytesIO(b"1\n")),
            lambda: ftp.storbinary("STOR /top.csv", io.BytesIO(b"1\n")),
            lambda: ftp.storbinary("APPE input/sales 2024.csv", io.BytesIO(b"2,Ulm\n")),
            lambda: ftp.delete("input/sales 2024.csv"),
            lambda: ftp.rename("input/sales 2024.csv", "work/stolen.csv"),
            lambda: ftp.mkd("archive/x"),
            lambda: ftp.rmd("export"),
            lambda: ftp.rename("export", "export2"),
            lambda: ftp.storbinary("STOR work/x.csv", io.BytesIO(b"1\n")),
        ]
        for attempt in refused:
            with pytest.raises(ftplib.error_perm, match=r"^550"):
                attempt()
        ftp.storbinary("STOR export/moved.csv", io.BytesIO(b"1\n"))
        for into in ("input/moved.csv", "work/moved.csv"):
            with pytest.raises(ftplib.error_perm, match=r"^550"):
                ftp.rename("export/moved.csv", into)
    assert sorted(p.name for p in (data / "input").iterdir()) == ["sales 2024.csv"]
    assert (data / "input" / "sales 2024.csv").read_bytes() == b"ID,NAME\n1,Bonn\n"
    assert [p.name for p in (data / "export").iterdir()] == ["moved.csv"]
    assert not any((data / "work").iterdir())
    assert sorted(p.name for p in data.iterdir()) == [
        "archive", "db", "error", "export", "input", "work"
    ]  # fmt: skip


def test_nothing_outside_the_tree(server: tuple[RoleContext, Cfisrv]) -> None:
    ctx, role = server
    data = ctx.instance.home / "data"
    etc = ctx.instance.etc
    # links pointing out of the tree, and one from export/ into input/
    (data / "input" / "etc").symlink_to(etc, target_is_directory=True)
    (data / "input" / "secret.csv").symlink_to(etc / "secret")
    (data / "export" / "tunnel").symlink_to(data / "input", target_is_directory=True)
    (data / "input" / "ok.csv").write_bytes(b"1\n")
    with _login(ctx, role) as ftp:
        for path in (
            "../etc/secret",
            "/../../etc/cfi_password",
            "input/../../etc/secret",
            "input/etc/secret",
            "input/secret.csv",
            "../../../../../../etc/passwd",
            "db/REDSYS.db",
            "/input/../db/REDSYS.db",
        ):
            with pytest.raises(ftplib.error_perm, match=r"^550"):
                _get(ftp, path)
        ftp.cwd("..")
        assert ftp.pwd() == "/"
        ftp.cwd("/input/../..")
        assert ftp.pwd() == "/"
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            ftp.cwd("input/etc")
        # a link below export/ does not carry the write permission to where it points
        assert _get(ftp, "export/tunnel/ok.csv") == b"1\n"
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            ftp.storbinary("STOR export/tunnel/new.csv", io.BytesIO(b"1\n"))
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            ftp.delete("export/tunnel/ok.csv")
    assert sorted(p.name for p in (data / "input").iterdir()) == ["etc", "ok.csv", "secret.csv"]


def test_tls_is_required_on_control_and_data(server: tuple[RoleContext, Cfisrv]) -> None:
    ctx, role = server
    cfg = ctx.config.redsys
    with ftplib.FTP(timeout=20) as plain:
        plain.connect(cfg.cfi_host, role.port or cfg.cfi_port)
        with pytest.raises(ftplib.error_perm, match=r"^550 SSL/TLS required"):
            plain.login(cfg.cfi_user, cfg.cfi_password.reveal())
    (ctx.instance.home / "data" / "input" / "a.csv").write_bytes(b"1\n")
    with ftplib.FTP_TLS(context=_tls(ctx), timeout=20) as ftp:
        ftp.connect(cfg.cfi_host, role.port or cfg.cfi_port)
        ftp.login(cfg.cfi_user, cfg.cfi_password.reveal())
        # no PROT P: the data channel would be clear
        with pytest.raises(ftplib.error_perm, match=r"^550 SSL/TLS required on the data channel"):
            _get(ftp, "input/a.csv")


def test_anonymous_and_wrong_password_refused(server: tuple[RoleContext, Cfisrv]) -> None:
    ctx, role = server
    cfg = ctx.config.redsys
    for user, password in (
        ("anonymous", "guest@example.com"),
        (cfg.cfi_user, cfg.cfi_password.reveal() + "x"),
        ("root", cfg.cfi_password.reveal()),
    ):
        with ftplib.FTP_TLS(context=_tls(ctx), timeout=20) as ftp:
            ftp.connect(cfg.cfi_host, role.port or cfg.cfi_port)
            with pytest.raises(ftplib.error_perm, match=r"^530"):
                ftp.login(user, password)


def test_stop_is_idempotent_and_frees_the_port(make_instance: MakeInstance) -> None:
    ctx = role_context(make_instance)
    role = Cfisrv(ctx)
    role.start()
    role.stop()
    role.stop()
    again = Cfisrv(ctx)  # the port is free again, the certificate is reused
    again.start()
    try:
        with _login(ctx, again) as ftp:
            assert ftp.pwd() == "/"
    finally:
        again.stop()


def test_an_idle_serve_loop_sleeps_and_stop_still_ends_it_at_once(
    make_instance: MakeInstance,
) -> None:
    # the loop polled every 0.1 s to look at its stop flag: ten wake-ups a second, idle
    ctx = role_context(make_instance)
    role = Cfisrv(ctx)
    role.start()
    try:
        ioloop = role._server.ioloop
        waits: list[float | None] = []
        serve_once = ioloop.loop

        def recording(timeout: float | None, blocking: bool = True) -> object:
            waits.append(timeout)
            return serve_once(timeout, blocking)

        ioloop.loop = recording
        with _login(ctx, role) as ftp:  # the loop wakes for the session, then sleeps again
            assert ftp.pwd() == "/"
        wait_for(lambda: len(waits) > 1 and (waits[-1] or 0) >= 1.0, timeout=20, every=0.05)
        assert role._thread is not None and role._thread.is_alive()
    finally:
        started = time.monotonic()
        role.stop()
    assert time.monotonic() - started < 2.0  # woken, not the end of a long sleep


def _role(inst: Instance) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(inst.environment())
    return subprocess.Popen(
        [str(BIN / "redpss"), "role", "cfisrv"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_role_process_serves_and_stops(make_instance: MakeInstance) -> None:
    inst = make_instance("tst1")
    cfg = inst.load_config().redsys
    assert cfg.cfi_password, "redsysctl create writes etc/cfi_password"
    assert (inst.etc / "cfi_password").stat().st_mode & 0o777 == 0o600
    with open_dictionary("sqlite", db_dir=inst.db_dir) as dic:
        dic.init()
    proc = _role(inst)
    try:
        log_file = inst.home / "log" / "cfisrv.log"
        # the status row says RUNNING before start(); the log line comes after it
        wait_for(
            lambda: log_file.exists() and "started pid" in log_file.read_text(),
            timeout=60,
            what="cfisrv started",
        )
        key = inst.etc / "ssl" / "cfisrv.key"
        assert key.stat().st_mode & 0o777 == 0o600
        ctx = ssl.create_default_context(cafile=str(inst.etc / "ssl" / "cfisrv.crt"))
        with ftplib.FTP_TLS(context=ctx, timeout=20) as ftp:
            ftp.connect(cfg.cfi_host, cfg.cfi_port)
            ftp.login(cfg.cfi_user, cfg.cfi_password.reveal())
            ftp.prot_p()
            assert sorted(ftp.nlst()) == ["archive", "error", "export", "input", "work"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    log = (inst.home / "log" / "cfisrv.log").read_text()
    assert "made a self-signed certificate" in log and "listening on" in log
    assert "logged in" in log, log


def test_role_refuses_to_start_without_password(make_instance: MakeInstance) -> None:
    inst = make_instance("tst1")
    set_keys(inst, cfi_password="")
    with open_dictionary("sqlite", db_dir=inst.db_dir) as dic:
        dic.init()
    proc = _role(inst)
    assert proc.wait(timeout=60) == 1
    log = (inst.home / "log" / "cfisrv.log").read_text()
    assert "cfi_password is empty" in log
    assert not Path(inst.etc / "ssl" / "cfisrv.key").exists()
