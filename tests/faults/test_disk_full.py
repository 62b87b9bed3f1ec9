"""Promise 4 (every fault heals or speaks; nothing written twice or torn): a full disk.

Each test mounts a small tmpfs over one folder of a running instance, fills it, checks what the
operator is told (``redctl status``: the role at ALERT 1 naming the cause), gives the space back
and checks that the instance resumed by itself with nothing lost, doubled or torn.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from redpss.errors import RemoteError
from redpss.instance import Instance
from redpss.wire import call
from tests.conftest import MakeRelay, run_cli, wait_for
from tests.faults.disk import remount, tmpfs

MakeInstance = Callable[..., Instance]


def _status(inst: Instance) -> tuple[int, dict[str, dict[str, Any]]]:
    out = run_cli("redctl", "--json", "status", inst=inst)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, {r["role"]: r for r in json.loads(out.stdout)["roles"]}


def test_dbls_on_a_full_disk_refuses_whole_buffers_and_resumes(make_instance: MakeInstance) -> None:
    """A buffer is refused whole (``disk_full``), status says so at ALERT 1; once there is
    space again every buffer sent again is in the file exactly once, no line torn."""
    inst = make_instance("tst1")
    cfg = inst.load_config().redsys
    with tmpfs(inst.log_dir / "DB", "256k") as folder:
        out = run_cli("redctl", "start", inst=inst)
        assert out.returncode == 0, out.stdout + out.stderr

        def send(n: int) -> dict[str, Any]:
            lines = [f"INFO buffer {n:03d} line {i:03d} " + "x" * 60 for i in range(400)]
            reply: dict[str, Any] = call(
                "127.0.0.1", cfg.dbls_port, "log", secret=cfg.pss_secret.reveal(),
                schema="OPS", lines=lines, timeout=30,
            )  # fmt: skip
            return reply

        refused: list[int] = []
        for n in range(40):  # ~38 KB a buffer: the disk is full after about 6
            try:
                send(n)
            except RemoteError as exc:
                assert exc.code == "disk_full", exc
                assert "no space left on the device" in exc.message
                assert "none of the 400 lines was written" in exc.message
                refused.append(n)
        assert refused, "the disk never filled"
        day = next(folder.glob("OPS/*.log"))
        text = day.read_text()
        assert text.endswith("\n")
        assert {line.split(" line ")[0] for line in text.splitlines()} == {
            f"INFO buffer {n:03d}" for n in range(40) if n not in refused
        }

        def told() -> dict[str, Any] | None:
            code, rows = _status(inst)
            row = rows["dbls"]
            return row if code == 1 and row["alert"] == 1 else None

        row = wait_for(told, timeout=20, what="dbls at ALERT 1 in status")
        assert "no space left on the device" in str(row["reason"]), row

        remount(folder, "4m")  # the operator makes room: nothing else is needed
        for n in refused:
            send(n)  # the client's retry
        wait_for(lambda: _status(inst)[0] == 0, timeout=20, what="status back to 0")
        lines = day.read_text().splitlines()
        assert len(lines) == len(set(lines)) == 40 * 400
        assert all(line.endswith("x" * 60) for line in lines)
        assert run_cli("redctl", "stop", inst=inst).returncode == 0


def test_sendmail_on_a_full_spool_refuses_clearly_and_delivers_each_mail_once(
    make_instance: MakeInstance, make_relay: MakeRelay
) -> None:
    """A mail that cannot be spooled is refused whole (nothing half-spooled, nothing sent), with
    the cause; status names the full spool; after room is made, every mail sent again reaches
    the relay exactly once."""
    relay = make_relay()
    inst = make_instance(
        "tst1",
        sendmail_smtp_host="127.0.0.1",
        sendmail_smtp_port=str(relay.port),
        sendmail_smtp_encr="PLAIN",
        sendmail_smtp_from="redsys@example.com",
        sendmail_retry_base="0.2",
        sendmail_retry_max="1",
    )
    cfg = inst.load_config().redsys
    spool = inst.home / "spool"
    with tmpfs(spool, "512k"):
        out = run_cli("redctl", "start", inst=inst)
        assert out.returncode == 0, out.stdout + out.stderr

        def send(n: int) -> None:
            call(
                "127.0.0.1", cfg.sendmail_port, "send", secret=cfg.pss_secret.reveal(),
                to=["ops@example.com"], subject=f"mail {n:03d}", body="x" * 30000, timeout=30,
            )  # fmt: skip

        refused: list[int] = []
        failures: list[str] = []
        for n in range(40):  # ~30 KB a mail, kept in sent/: the spool is full after ~16
            try:
                send(n)
            except RemoteError as exc:
                refused.append(n)
                failures.append(f"{exc.code}: {exc.message}")
        assert refused, "the spool never filled"
        assert all("no space left" in f for f in failures), failures[:3]
        out = run_cli("redctl", "--json", "status", inst=inst)
        assert out.returncode == 1
        assert "no space left for spool/" in json.loads(out.stdout)["message"]

        def told() -> dict[str, Any] | None:
            row = _status(inst)[1]["sendmail"]
            return row if row["alert"] == 1 and "no space left" in str(row["reason"]) else None

        wait_for(told, timeout=20, what="sendmail at ALERT 1 naming the full spool")
        assert list((spool / "sendmail" / "tmp").iterdir()) == []  # nothing half-spooled

        remount(spool, "8m")
        for n in refused:
            send(n)
        wait_for(lambda: relay.inbox.count() >= 40, timeout=60, what="every mail delivered")
        assert sorted(relay.inbox.subjects) == [f"mail {n:03d}" for n in range(40)]
        wait_for(lambda: _status(inst)[0] == 0, timeout=20, what="status back to 0")
        assert run_cli("redctl", "stop", inst=inst).returncode == 0


def test_sendfile_on_a_full_disk_answers_disk_full_and_exports_once_there_is_room(
    make_instance: MakeInstance, make_relay: MakeRelay
) -> None:
    """An export its disk refuses is ``disk_full`` (it was ``internal``), leaves no part behind,
    and status names it at ALERT 1; once there is room the same request is written and mailed,
    and the alert is over."""
    import os
    import sqlite3

    from redpss.dictionary import open_dictionary

    relay = make_relay()
    inst = make_instance(
        "tst1",
        sendmail_smtp_host="127.0.0.1",
        sendmail_smtp_port=str(relay.port),
        sendmail_smtp_encr="PLAIN",
        sendmail_smtp_from="redsys@example.com",
    )
    cfg = inst.load_config().redsys
    dictionary = open_dictionary("sqlite", db_dir=inst.db_dir)
    dictionary.init()
    dictionary.ensure_schema("STAGE")
    with sqlite3.connect(inst.db_dir / "STAGE.db") as conn:
        conn.execute("CREATE TABLE SALES (A INTEGER, B TEXT)")
        rows = [(i, os.urandom(50).hex()) for i in range(5000)]  # ~530 KB as CSV
        conn.executemany("INSERT INTO SALES VALUES (?, ?)", rows)
    conn.close()
    out = run_cli("redctl", "start", inst=inst)
    assert out.returncode == 0, out.stdout + out.stderr

    def send() -> dict[str, Any]:
        reply: dict[str, Any] = call(
            "127.0.0.1", cfg.sendfile_port, "send", secret=cfg.pss_secret.reveal(), timeout=60,
            schema="STAGE", object="SALES", format="csv", mail={"to": ["ops@example.com"]},
        )  # fmt: skip
        return reply

    with tmpfs(inst.home / "tmp" / "sendfile", "256k") as folder:
        try:
            send()
        except RemoteError as exc:
            assert exc.code == "disk_full", exc
            assert "no space left on the device" in exc.message and str(folder) in exc.message
        else:
            raise AssertionError("a 530 KB export was written to a 256 KB disk")
        assert list(folder.iterdir()) == []  # the torn export is gone

        def told() -> dict[str, Any] | None:
            row = _status(inst)[1]["sendfile"]
            return row if row["alert"] == 1 and "no space left" in str(row["reason"]) else None

        wait_for(told, timeout=20, what="sendfile at ALERT 1 naming the full disk")
        remount(folder, "8m")
        reply = send()  # the caller's retry
        assert reply["rows"] == 5000 and reply["via"] == "mail"
        wait_for(lambda: relay.inbox.count() >= 1, timeout=60, what="the export mailed")
        wait_for(lambda: _status(inst)[0] == 0, timeout=20, what="status back to 0")
        assert run_cli("redctl", "stop", inst=inst).returncode == 0
