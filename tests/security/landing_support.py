"""A started instance with one loader and its FILE watcher, for the landing zone's attack tests.

The instance runs under supervisord as ``redctl start`` starts it; its ``data/input`` is
writable for everybody (as an upload folder is for the sFTP users), so that a user without
rights (``nobody``) can play the uploader — and nothing more.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from redpss.dictionary import open_dictionary
from redpss.instance import Instance
from tests.conftest import BIN, run_cli, wait_for

MakeInstance = Callable[..., Instance]

FAST = {
    "sched_definitions_poll": "0.5",
    "sched_file_quiet_period": "0.3",
}

DEFINITIONS = """
    [loader.notes]
    pattern = '^note.*\\.csv$'
    target = "DWH.NOTES"
    header = false
    columns = [ { name = "TEXT", type = "VARCHAR(2000)" } ]
    [job.load_notes]
    schema = "DWH"
    kind = "LOAD"
    action = "notes"
    pool = "loader"
    [watcher.notes_in]
    schema = "DWH"
    kind = "FILE"
    pattern = '^note'
    interval = 1
    executor = "load_notes"
"""


def prepare(make_instance: MakeInstance, **settings: str) -> Instance:
    """A new instance with the notes loader applied; ``input/`` open to every local user."""
    inst = make_instance("tst1", **{**FAST, **settings})
    assert run_cli("redctl", "db", "init", inst=inst).returncode == 0
    defs = inst.tmp / "defs.toml"
    defs.write_text(textwrap.dedent(DEFINITIONS))
    out = run_cli("redctl", "db", "apply", str(defs), inst=inst)
    assert out.returncode == 0, out.stdout + out.stderr
    folder = inst.redhome
    for part in (*(inst.home / "data").relative_to(inst.redhome).parts, ""):
        folder.chmod(folder.stat().st_mode | 0o001)  # others may pass, not list
        folder = folder / part
    (inst.home / "data" / "input").chmod(0o1777)
    return inst


def start(inst: Instance, *, wrapper: Sequence[str] = (), expect: int = 0) -> None:
    """``redctl start`` (under ``wrapper``, e.g. setpriv); fails the test unless it exits
    ``expect`` (1: started, but status is degraded, e.g. a folder cannot be written)."""
    env = dict(os.environ)
    env.update(inst.environment())
    out = subprocess.run(
        [*wrapper, str(BIN / "redctl"), "start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert out.returncode == expect, out.stdout + out.stderr


def as_nobody(script: str, *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a shell script as user ``nobody`` (no rights but the upload folder)."""
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", "sh", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def sidecar(inst: Instance, name: str) -> dict[str, Any]:
    """The error sidecar of ``name`` in ``error/`` (waits for it)."""
    error = inst.home / "data" / "error"

    def found() -> Path | None:
        hits = sorted(error.glob(f"{name}*.error.json"))
        return hits[0] if hits else None

    path = wait_for(found, timeout=30, what=f"error/{name}.error.json")
    assert isinstance(path, Path)
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def loaded_texts(inst: Instance) -> list[str]:
    """Every value of DWH.NOTES.TEXT."""
    import sqlite3

    path = inst.db_dir / "DWH.db"
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        try:
            return [str(r[0]) for r in db.execute("SELECT TEXT FROM NOTES")]
        except sqlite3.OperationalError:  # the table is not made yet
            return []


def archived(inst: Instance, name: str) -> bool:
    """True once ``name`` is in ``archive/``."""
    return (inst.home / "data" / "archive" / name).exists()


def ledger_names(inst: Instance) -> list[str]:
    """The file names of the load ledger."""
    with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
        return [e.file_name for e in d.load_ledger(limit=None)]
