"""What the scheduling tests share: a started-instance fixture, scripts, redctl, run logs."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from redpss.dictionary import open_dictionary
from redpss.dictionary.jobs import RunRecord
from redpss.instance import Instance
from tests.conftest import run_cli

MakeInstance = Callable[..., Instance]

FAST = {
    "sched_definitions_poll": "0.5",
    "sched_file_quiet_period": "0.3",
    "sched_action_pool_size": "2",
}


@pytest.fixture
def inst(make_instance: MakeInstance) -> Iterator[Instance]:
    """A started instance with fast polling and a cmd/ folder with test scripts."""
    inst = make_instance("tst1", **FAST)
    cmd = inst.home / "cmd"
    script(cmd / "ok.sh", 'echo "ok $RED_JOB $RED_WATCH_KEY"')
    script(cmd / "sleep.sh", 'sleep "$1"')
    script(
        cmd / "fail_on_bad.sh",
        '[ "${RED_WATCH_KEY#bad}" = "$RED_WATCH_KEY" ] || '
        '{ echo "cannot load $RED_WATCH_KEY"; exit 3; }\n'
        'mv "$REDENV_HOME/data/input/$RED_WATCH_KEY" "$REDENV_HOME/data/archive/"',
    )
    assert run_cli("redctl", "db", "init", inst=inst).returncode == 0
    yield inst
    run_cli("redctl", "stop", inst=inst)


def script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def redctl(inst: Instance, *args: str, ok: bool = True) -> str:
    out = run_cli("redctl", *args, inst=inst)
    if ok:
        assert out.returncode == 0, f"redctl {' '.join(args)}: {out.stdout}{out.stderr}"
    return out.stdout + out.stderr


def apply(inst: Instance, text: str) -> None:
    path = inst.tmp / "defs.toml"
    path.write_text(textwrap.dedent(text))
    redctl(inst, "db", "apply", str(path))


def runs(inst: Instance, job: str, *, watcher: bool = False) -> list[RunRecord]:
    with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
        return d.runs(name=job, watcher=watcher, limit=1000)


def states(inst: Instance, job: str) -> list[str]:
    return [r.state for r in reversed(runs(inst, job))]


def start(inst: Instance, *args: str) -> None:
    redctl(inst, "start", *args)
