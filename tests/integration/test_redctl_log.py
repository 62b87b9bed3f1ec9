"""``redctl log`` as an operator runs it: the ERROR/ALERT lines of every schema's LOG_MESSAGES
(ALL_LOG_MESSAGES), filtered by schema, level and time, in JSON, and followed with ``-f``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redpss.dictionary import open_instance_dictionary
from redpss.instance import Instance
from tests.conftest import BIN, run_cli, wait_for

MakeInstance = Callable[..., Instance]
DEMO = Path(__file__).resolve().parents[2] / "conf" / "demo-definitions.toml"


def _log(inst: Instance, schema: str, level: str, message: str, ago: timedelta) -> None:
    with open_instance_dictionary(inst, inst.load_config()) as d:
        d.ensure_schema(schema)
        d.log_message(schema, level=level, message=message, source="job_x",
                      ts=datetime.now(UTC) - ago)  # fmt: skip


def test_redctl_log_filters_and_follows(make_instance: MakeInstance, tmp_path: Path) -> None:
    inst = make_instance("log1")
    assert run_cli("redctl", "db", "init", inst=inst).returncode == 0
    assert run_cli("redctl", "log", inst=inst).stdout.strip() == "no log messages"
    _log(inst, "DEMO", "ERROR", "old error", timedelta(days=3))
    _log(inst, "DEMO", "ALERT", "load stuck", timedelta(hours=1))
    _log(inst, "STAGE", "ERROR", "bad row", timedelta(minutes=5))

    out = run_cli("redctl", "log", inst=inst)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [ln.split(" job_x: ")[1] for ln in lines] == ["old error", "load stuck", "bad row"]
    assert " ALERT DEMO job_x: load stuck" in lines[1]

    def msgs(*argv: str) -> list[str]:
        done = run_cli("redctl", "--json", "log", *argv, inst=inst)
        assert done.returncode == 0, done.stdout + done.stderr
        return [r["message"] for r in json.loads(done.stdout)]

    assert msgs("--schema", "DEMO") == ["old error", "load stuck"]
    assert msgs("--level", "alert") == ["load stuck"]
    assert msgs("--since", "2h") == ["load stuck", "bad row"]
    assert msgs("--since", "2h", "--level", "ERROR") == ["bad row"]
    assert msgs("-n", "1") == ["bad row"]
    bad = run_cli("redctl", "--json", "log", "--since", "yesterday", inst=inst)
    assert bad.returncode == 2 and json.loads(bad.stdout)["exit"] == 2
    unknown = run_cli("redctl", "log", "--schema", "NOPE", inst=inst)
    assert unknown.returncode == 2 and "no target schema 'NOPE'; schemas: DEMO, STAGE" in (
        unknown.stderr
    )

    target = tmp_path / "follow.txt"
    with target.open("w") as fh:
        proc = subprocess.Popen(
            [str(BIN / "redctl"), "log", "-f", "-n", "1"],
            stdout=fh, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            env={**os.environ, **inst.environment()}, text=True,
        )  # fmt: skip
        try:
            wait_for(lambda: "bad row" in target.read_text(), timeout=30, what="the last line")
            _log(inst, "STAGE", "ALERT", "new alert", timedelta(0))
            wait_for(lambda: "new alert" in target.read_text(), timeout=30, what="a new line")
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert target.read_text().count("new alert") == 1
