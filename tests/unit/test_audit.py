"""The audit log: one JSON line per state-changing command, secrets masked, read back."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from redpss import audit
from redpss.cli import redctl, redsysctl, restctl
from redpss.instance import Instance


def lines(inst: Instance) -> list[dict[str, object]]:
    path = audit.audit_path(inst.log_dir)
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize(
    ("args", "masked"),
    [
        (["config", "set", "sendmail_smtp_pass", "hunter2"],
         ["config", "set", "sendmail_smtp_pass", "********"]),
        (["config", "set", "redsys.pss_secret", "s3cr3t"],
         ["config", "set", "redsys.pss_secret", "********"]),
        (["config", "set", "rest.exa_password", "env:EXA_PW"],
         ["config", "set", "rest.exa_password", "env:EXA_PW"]),
        (["x", "--password", "pw", "--token=abc", "exa_password=pw2"],
         ["x", "--password", "********", "--token=********", "exa_password=********"]),
        (["db", "scripts", "--show-secret", "--output", "f"],
         ["db", "scripts", "--show-secret", "--output", "f"]),
        (["config", "set", "log_level", "DEBUG"], ["config", "set", "log_level", "DEBUG"]),
        (["config", "get", "sendmail_smtp_pass"], ["config", "get", "sendmail_smtp_pass"]),
    ],
)  # fmt: skip
def test_secret_values_are_masked(args: list[str], masked: list[str]) -> None:
    assert audit.mask_args(args) == masked


def test_record_fields_and_masking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_USER", "alice")
    monkeypatch.setenv(audit.VIA_ENV, "redsysctl")
    rec = audit.write_record(
        tmp_path, tool="redctl", command="config set",
        args=["config", "set", "exa_password", "pw"], result="ok", exit_code=0,
    )  # fmt: skip
    assert rec is not None
    (row,) = [json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]
    assert row == rec
    assert {"time", "user", "host", "tool", "command", "args", "result", "exit_code"} <= set(row)
    assert row["sudo_user"] == "alice" and row["via"] == "redsysctl"
    assert "pw" not in row["args"] and row["args"][-1] == "********"
    assert (tmp_path / "audit.log").stat().st_mode & 0o777 == 0o640


def test_an_unwritable_audit_log_does_not_change_the_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "audit.log").mkdir()  # cannot be opened as a file, even by root
    code = audit.audited(tmp_path, tool="t", command="c", args=[], action=lambda: 0)
    assert code == 0
    assert "audit line not written" in capsys.readouterr().err


def _append_many(path: str, worker: int) -> None:
    for i in range(200):
        audit.write_record(
            Path(path), tool="t", command="c", args=[str(worker), "x" * 3000, str(i)],
            result="ok", exit_code=0,
        )  # fmt: skip


def test_lines_of_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    found = audit.read_records([tmp_path / "audit.log"])
    assert found.skipped == 0
    assert len(found.records) == 800


def test_read_filters_and_skips_torn_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    now = datetime.now(UTC)
    old = {"time": (now - timedelta(days=3)).isoformat(), "user": "bob", "command": "stop"}
    new = {"time": now.isoformat(), "user": "redsys", "sudo_user": "alice",
           "command": "config set"}  # fmt: skip
    path.write_text(json.dumps(old) + "\n" + json.dumps(new) + "\n" + '{"time": "20')
    assert audit.read_records([path]).skipped == 1
    assert audit.read_records([path], since=audit.parse_since("1d")).records == [new]
    assert audit.read_records([path], user="alice").records == [new]
    assert audit.read_records([path], command="config").records == [new]
    assert audit.read_records([tmp_path / "missing.log"]).records == []


def test_parse_since() -> None:
    now = datetime(2025, 3, 1, 12, tzinfo=UTC)
    assert audit.parse_since("30m", now=now) == now - timedelta(minutes=30)
    assert audit.parse_since("1w", now=now) == now - timedelta(days=7)
    assert audit.parse_since("2025-02-01", now=now) == datetime(2025, 2, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="give an age"):
        audit.parse_since("yesterday")


def test_redctl_audits_changes_not_reads(
    make_instance: Callable[..., Instance],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inst = make_instance("au1")
    monkeypatch.setenv("REDHOME", str(inst.redhome))
    assert redctl.main(["--instance", "au1", "db", "init"]) == 0
    assert redctl.main(["--instance", "au1", "suspend"]) == 0
    assert redctl.main(["--instance", "au1", "status"]) == 3  # read-only: no line
    assert redctl.main(["--instance", "au1", "list_db_jobs"]) == 0
    assert redctl.main(["--instance", "au1", "toggle_db_job", "nosuchjob"]) == 2
    rows = lines(inst)
    assert [(r["command"], r["exit_code"]) for r in rows] == [
        ("db init", 0), ("suspend", 0), ("toggle_db_job", 2),
    ]  # fmt: skip
    assert rows[1]["args"] == ["--instance", "au1", "suspend"] and rows[1]["result"] == "ok"
    assert "no job named 'nosuchjob'" in str(rows[2]["result"])
    capsys.readouterr()
    assert redctl.main(["--instance", "au1", "--json", "audit", "--since", "1h"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [r["command"] for r in shown["records"]] == ["db init", "suspend", "toggle_db_job"]
    assert redctl.main(["--instance", "au1", "audit", "--tail", "1"]) == 0
    out = capsys.readouterr().out
    assert "toggle_db_job nosuchjob" in out and "suspend" not in out
    assert redctl.main(["--instance", "au1", "audit", "--since", "soon"]) == 2
    assert "give an age" in capsys.readouterr().err


def test_restctl_and_redsysctl_create_are_audited(
    redhome: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDHOME", str(redhome))
    assert redsysctl.main(["create", "au2", "--port-base", "14800"]) == 0
    assert restctl.main(["--instance", "au2", "token", "add", "ci", "--role", "reader"]) == 0
    assert restctl.main(["--instance", "au2", "token", "list"]) == 0
    assert redsysctl.main(["create", "au2"]) == 1  # exists: the attempt is audited too
    inst = Instance("au2", redhome)
    rows = lines(inst)
    assert [(r["tool"], r["command"], r["exit_code"]) for r in rows] == [
        ("redsysctl", "create", 0), ("restctl", "token add", 0), ("redsysctl", "create", 1),
    ]  # fmt: skip
    assert "already exists" in str(rows[2]["result"])
    printed = capsys.readouterr().out
    token = next(x for x in printed.splitlines() if len(x) > 30)
    assert token not in inst.log_dir.joinpath("audit.log").read_text()
