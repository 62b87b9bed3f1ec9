"""Promises 2 and 4 (every file once, or in error/ with its reason; every fault heals or
speaks): error/ cannot be written.

A rejected file whose way into ``error/`` is refused must not be lost, stranded in ``work/`` or
half-written into ``error/``: it goes back to ``input/``, its run says file, reason and cause,
and ``redctl status`` names the folder and what to do. A good file next to it loads as usual.
Once ``error/`` is writable again the watcher tries the file again by itself (the failure was
not the file's) and it ends in ``error/`` with its sidecar. ``error/`` is made immutable
(``chattr +i``): refused even for root, as a folder without write permission is for the
instance's user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.dictionary import open_dictionary
from redpss.instance import Instance
from tests.conftest import run_cli, wait_for
from tests.integration.sched_support import FAST, MakeInstance, apply, file_watcher, job, runs

COLUMNS = [{"name": "ID", "type": "DECIMAL(18,0)"}, {"name": "AMOUNT", "type": "DECIMAL(12,2)"}]


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Folders made immutable by the test; made mutable again whatever happens."""
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        pytest.skip("chattr +i needs root and e2fsprogs")
    made: list[Path] = []
    yield made
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def _errors(inst: Instance) -> list[dict[str, object]]:
    out = run_cli("redctl", "--json", "we_list_error", inst=inst)
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, object]] = json.loads(out.stdout)
    return rows


def test_a_rejected_file_that_error_cannot_take_is_kept_and_told(
    make_instance: MakeInstance, immutable: list[Path]
) -> None:
    inst: Instance = make_instance("tst1", **FAST)
    assert run_cli("redctl", "db", "init", inst=inst).returncode == 0
    apply(
        inst,
        loaders={
            "sales": {"pattern": r"^sales_.*\.csv$", "target": "DWH.SALES", "columns": COLUMNS}
        },
        jobs={"load_sales": job("LOAD", "sales", pool="loader", max_parallel=2)},
        watchers={"sales_files": file_watcher("^sales_", "load_sales")},
    )
    data = inst.home / "data"
    error = data / "error"
    probe = subprocess.run(["chattr", "+i", str(error)], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"chattr +i not supported here: {probe.stderr.strip()}")
    immutable.append(error)
    out = run_cli("redctl", "start", inst=inst)
    # started, and degraded from the start: status says which folder and what to do
    assert out.returncode == 1, out.stdout + out.stderr
    assert "data/error/ cannot be written" in out.stdout, out.stdout

    (data / "input" / "sales_bad.csv").write_text("ID,AMOUNT\n1,10.50,extra\n")
    (data / "input" / "sales_good.csv").write_text("ID,AMOUNT\n1,10.50\n2,3.25\n")

    def told() -> str | None:
        out = run_cli("redctl", "--json", "status", inst=inst)
        assert "Traceback" not in out.stderr, out.stderr
        message = str(json.loads(out.stdout)["message"])
        return (
            message if out.returncode == 1 and "data/error/ cannot be written" in message else None
        )

    message = wait_for(told, timeout=30, what="status names error/")
    assert "rejected files cannot go there: they wait in data/input/" in message, message
    wait_for(lambda: (data / "archive" / "sales_good.csv").exists(), timeout=60, what="good loaded")

    def failed_once() -> bool:
        messages = [r.message or "" for r in runs(inst, "load_sales") if r.state == "FAILED"]
        return any("error/ cannot take it" in m and "put back into input/" in m for m in messages)

    wait_for(failed_once, timeout=60, what="the bad file's run says why it is back in input/")
    assert (data / "input" / "sales_bad.csv").exists()  # kept, not lost
    assert list(error.iterdir()) == []  # nothing half-written
    assert list((data / "work").iterdir()) == []  # nothing stranded
    assert _errors(inst) == []  # not the file's fault: no executor error to reset

    # the operator makes error/ writable; nothing else: the watcher tries the file again
    subprocess.run(["chattr", "-i", str(error)], check=True)
    immutable.clear()
    wait_for(
        lambda: (error / "sales_bad.csv").exists() and list(error.glob("*sales_bad.csv*.json")),
        timeout=150,
        what="the bad file in error/ with its sidecar",
    )
    assert not (data / "input" / "sales_bad.csv").exists()
    wait_for(lambda: run_cli("redctl", "status", inst=inst).returncode == 0, what="status 0")
    with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
        assert [e.file_name for e in d.load_ledger(limit=None)] == ["sales_good.csv"]
        assert d.target_row_count("DWH", "SALES") == 2
    assert run_cli("redctl", "stop", inst=inst).returncode == 0
