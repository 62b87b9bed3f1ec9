"""Finding what is left of an instance in /proc: real processes, no mocks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss import shutdown
from redpss.instance import Instance


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        p.kill()
        p.wait()


def spawn(procs: list[subprocess.Popen[bytes]], argv: list[str], env: dict[str, str],
          *, session: bool = True) -> int:  # fmt: skip
    p = subprocess.Popen(argv, env={**os.environ, **env}, start_new_session=session,
                         stdin=subprocess.DEVNULL)  # fmt: skip
    procs.append(p)
    return p.pid


def test_leftovers_are_found_by_the_instance_environment(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    inst = Instance("lf1", tmp_path)
    other = Instance("lf1", tmp_path / "elsewhere")  # same name, another REDHOME
    home = {"REDENV_HOME": str(inst.home)}
    command = spawn(procs, ["sleep", "60"], {**home, "RED_RUN_ID": "42", "RED_JOB": "nightly"})
    role = spawn(procs, [sys.executable, "-c", "import signal; signal.pause()", "redpss.cli.redpss",
                         "role", "jmon"], home)  # fmt: skip
    started = spawn(procs, ["sleep", "61"], {**home, "REDPSS_ROLE": "rest"})  # e.g. gunicorn
    # the operator's shell and what it runs (a `tail` in a pipeline, without a terminal) have
    # the instance's environment but no mark of the instance
    shell = spawn(procs, ["sleep", "64"], home)
    spawn(procs, ["sleep", "62"], {"REDENV_HOME": str(other.home), "RED_RUN_ID": "1"})
    spawn(procs, ["sleep", "63"], {})
    found = {x.pid: x.what for x in shutdown.leftovers(inst)}
    assert found == {
        command: "command of run 42 (job nightly)",
        role: "role jmon",
        started: "process started by role rest",
    }
    assert shell not in found
    killed, left = shutdown.kill_leftovers(inst)
    assert {x.pid for x in killed} == set(found)
    assert left == []


def test_own_process_chain_is_never_a_leftover(tmp_path: Path) -> None:
    inst = Instance("lf2", tmp_path)
    # a command of a run that calls redctl (a maintenance job): the command and its redctl
    # carry the instance's marks, yet redctl does not find itself nor its parent
    code = (
        "import sys; from pathlib import Path; from redpss import shutdown, instance; "
        f"print(shutdown.leftovers(instance.Instance('lf2', Path({str(tmp_path)!r}))))"
    )
    out = subprocess.run(
        ["sh", "-c", f'{sys.executable} -c "{code}"; true'],
        env={**os.environ, "REDENV_HOME": str(inst.home), "RED_RUN_ID": "7"},
        capture_output=True, text=True,
        start_new_session=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "[]", out.stderr


def test_describe_runs() -> None:
    runs = [shutdown.Run(i, f"j{i}", "default", 1.4) for i in range(7)]
    assert shutdown.describe_runs([]) == "no run"
    assert shutdown.describe_runs(runs[:1]) == "1 run: j0 (run 0, 1 s)"
    assert shutdown.describe_runs(runs).endswith("and 2 more")
