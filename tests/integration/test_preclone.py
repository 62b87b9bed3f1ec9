"""preclone as the guide has it, with the identity stamp: a start restores only after a clone.

A clone of the embedded dictionary is what a restore of another database is for Exasol: the
dictionary files of another instance copied over this one's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from redpss.instance import Instance
from tests.conftest import run_cli, wait_for
from tests.integration.sched_support import (
    MakeInstance,
    apply,
    job,
    redctl,
    runs,
    start,
    states,
)

JOBS = {"a": job(), "b": job(active=False)}


def flags(inst: Instance) -> dict[str, bool]:
    return {r["job"]: r["active"] for r in json.loads(redctl(inst, "--json", "list_db_jobs"))}


def clone(source: Instance, target: Instance) -> None:
    """The database of ``source`` restored into ``target`` (both stopped)."""
    shutil.rmtree(target.db_dir)
    shutil.copytree(source.db_dir, target.db_dir)


def test_start_restores_only_after_a_clone(
    inst: Instance, make_instance: MakeInstance, tmp_path: Path
) -> None:
    apply(inst, jobs=JOBS)
    start(inst)
    redctl(inst, "start_db_job", "a")
    wait_for(lambda: states(inst, "a") == ["OK"], timeout=15)
    redctl(inst, "stop")

    dry = json.loads(redctl(inst, "--json", "preclone", "--dry-run"))
    assert dry["pending"] is None and dry["would_save"]["jobs"] == {"a": True, "b": False}
    assert not (inst.tmp / "preclone" / "preclone.json").exists()
    out = redctl(inst, "preclone")
    assert "identity stamp written" in out

    # a start without a clone in between: nothing restored, the instance's own logs stay
    redctl(inst, "toggle_db_job", "b")  # the operator changes a flag meanwhile
    start(inst)
    redctl(inst, "stop")
    assert states(inst, "a") == ["OK"]
    assert flags(inst) == {"a": True, "b": True}
    assert "no clone seen" in redctl(inst, "preclone", "--dry-run")
    assert (inst.tmp / "preclone" / "preclone.json").exists()
    assert "nothing was restored" in (inst.log_dir / "redctl.log").read_text()

    # the database is restored from another instance: other flags, foreign logs
    other = make_instance("src1")
    redctl(other, "db", "init")
    apply(other, jobs={"a": job(), "b": job()})
    redctl(other, "toggle_db_job", "a")
    start(other)
    redctl(other, "start_db_job", "b")
    wait_for(lambda: states(other, "b") == ["OK"], timeout=15)
    redctl(other, "stop")
    clone(other, inst)
    assert "a clone happened" in redctl(inst, "preclone", "--dry-run")
    start(inst)
    assert flags(inst) == {"a": True, "b": False}  # as saved by the preclone
    assert runs(inst, "b") == []  # the clone's logs are cleaned
    assert list((inst.tmp / "preclone").glob("preclone.json.restored-*"))
    assert not (inst.tmp / "preclone" / "preclone.json").exists()


def test_cancel_and_forced_restore(inst: Instance) -> None:
    apply(inst, jobs=JOBS)
    out = redctl(inst, "preclone", "--cancel", ok=False)
    assert "nothing to cancel" in out
    redctl(inst, "preclone")
    kept = redctl(inst, "preclone", "--cancel")
    assert "cancelled" in kept and not (inst.tmp / "preclone" / "preclone.json").exists()
    assert list((inst.tmp / "preclone").glob("preclone.json.cancelled-*"))

    # a clone of a backup taken after the preclone carries the stamp: --restore does it
    redctl(inst, "preclone")
    redctl(inst, "toggle_db_job", "a")
    start(inst)
    assert "running: stop it" in redctl(inst, "preclone", "--restore", ok=False)
    redctl(inst, "stop")
    restored = run_cli("redctl", "--json", "preclone", "--restore", inst=inst)
    done = json.loads(restored.stdout)
    assert done["flags_restored"] == 2
    assert flags(inst) == {"a": True, "b": False}
    audit = [json.loads(x) for x in (inst.log_dir / "audit.log").read_text().splitlines()]
    pre = [(a["args"][-1], a["exit_code"]) for a in audit if a["command"] == "preclone"]
    assert pre == [("--cancel", 1), ("preclone", 0), ("--cancel", 0), ("preclone", 0),
                   ("--restore", 1), ("--restore", 0)]  # fmt: skip
