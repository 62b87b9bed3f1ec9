"""redftp_useradd / redftp_userdel leave their line in the instance's log/audit.log (#16: every
state-changing command of the tools), refusals included.

The sftp container itself is the container tier's (tests/container/test_compose.py); here
``$REDPSS_COMPOSE`` is a stand-in that answers ``ps`` with "no containers", so that only the
tool's own bookkeeping and its audit line are under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redpss import compose
from redpss.cli import redftp, redsysctl
from redpss.instance import Instance
from tests.conftest import run_cli

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq8X0y0b7B1FfZk5x2v8cXH4d1bF0m3QG3xY9b2 a@h\n"


def _records(inst: Instance) -> list[dict[str, object]]:
    path = inst.log_dir / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def inst(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Instance:
    monkeypatch.setenv("REDHOME", str(tmp_path))
    assert redsysctl.main(["create", "tst1", "--port-base", "23100"]) == 0
    return Instance("tst1", tmp_path)


def test_a_refused_useradd_is_audited(
    inst: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "alice.pub").write_text(KEY)
    before = len(_records(inst))
    assert redftp.useradd_main(["tst1", "alice", str(tmp_path / "alice.pub")]) == 1
    assert "not in container mode" in capsys.readouterr().err
    records = _records(inst)
    assert len(records) == before + 1
    last = records[-1]
    assert last["tool"] == "redftp_useradd" and last["exit_code"] == 1
    assert str(last["result"]).startswith("error: instance tst1 is not in container mode")
    assert last["args"] == ["tst1", "alice", str(tmp_path / "alice.pub")]


def test_useradd_and_userdel_are_audited(
    inst: Instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in = tmp_path / "compose"
    stand_in.write_text("#!/bin/sh\necho '[]'\n")  # ps: no container of the project
    stand_in.chmod(0o755)
    monkeypatch.setenv("REDPSS_COMPOSE", str(stand_in))
    compose.enable(inst)  # container mode
    (tmp_path / "alice.pub").write_text(KEY)
    assert redftp.useradd_main(["tst1", "alice", str(tmp_path / "alice.pub")]) == 0
    assert compose.read_users(inst) == {"alice": 1200}
    assert redftp.useradd_main(["tst1", "alice", str(tmp_path / "alice.pub")]) == 1  # twice
    assert redftp.userdel_main(["tst1", "alice"]) == 0
    lines = [(r["tool"], r["result"], r["exit_code"]) for r in _records(inst)[-3:]]
    assert lines == [
        ("redftp_useradd", "ok", 0),
        ("redftp_useradd", "failed", 1),
        ("redftp_userdel", "ok", 0),
    ]
    shown = run_cli("redctl", "--instance", "tst1", "audit", "--tail", "3", home=tmp_path)
    assert "redftp_userdel tst1 alice" in shown.stdout, shown.stdout + shown.stderr
