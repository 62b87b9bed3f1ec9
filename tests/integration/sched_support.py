"""What the scheduling tests share: scripts, definitions, redctl, run logs (the ``inst``
fixture is in ``tests/integration/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import tomli_w

from redpss.dictionary import open_dictionary
from redpss.dictionary.jobs import RunRecord
from redpss.instance import Instance
from tests.conftest import run_cli

MakeInstance = Callable[..., Instance]
MakeSchedInstance = Callable[..., Instance]  # the make_sched_instance fixture

FAST = {
    "sched_definitions_poll": "0.5",
    "sched_file_quiet_period": "0.3",
    "sched_action_pool_size": "2",
}


def script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def redctl(inst: Instance, *args: str, ok: bool = True) -> str:
    out = run_cli("redctl", *args, inst=inst)
    if ok:
        assert out.returncode == 0, f"redctl {' '.join(args)}: {out.stdout}{out.stderr}"
    return out.stdout + out.stderr


def job(kind: str = "SQL", action: str = "SELECT 1", **fields: object) -> dict[str, object]:
    """One job definition in schema DWH (``SELECT 1`` unless told)."""
    return {"schema": "DWH", "kind": kind, "action": action, **fields}


def file_watcher(pattern: str, executor: str, **fields: object) -> dict[str, object]:
    """One FILE watcher in schema DWH, checking every second unless told."""
    watcher = {"schema": "DWH", "kind": "FILE", "pattern": pattern, "executor": executor}
    return {**watcher, "interval": 1, **fields}


Tables = dict[str, dict[str, object]]


def apply(
    inst: Instance,
    *,
    jobs: Tables | None = None,
    watchers: Tables | None = None,
    loaders: Tables | None = None,
) -> None:
    """``redctl db apply`` of these definitions (written as TOML, as an operator would)."""
    tables = {"job": jobs, "watcher": watchers, "loader": loaders}
    path = inst.tmp / "defs.toml"
    path.write_text(tomli_w.dumps({k: v for k, v in tables.items() if v}))
    redctl(inst, "db", "apply", str(path))


def runs(inst: Instance, job: str, *, watcher: bool = False) -> list[RunRecord]:
    with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
        return d.runs(name=job, watcher=watcher, limit=1000)


def states(inst: Instance, job: str) -> list[str]:
    return [r.state for r in reversed(runs(inst, job))]


def start(inst: Instance, *args: str) -> None:
    redctl(inst, "start", *args)
