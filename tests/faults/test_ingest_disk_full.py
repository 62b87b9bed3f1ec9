"""Promises 2 and 4: a full disk during ingest loses no file, loads none twice, and heals.

``data/`` of the instance (landing zone and embedded dictionary) is a small tmpfs. Files are
loaded by a FILE watcher; in the middle the disk is filled by a ballast file: loads fail for a
reason that is not the files' fault. The operator must be told (status, ALERT 1, the cause);
no file may go to ``error/`` for it or need ``we_reset_error``. Once the ballast is removed the
instance goes on by itself: every file in the ledger once, every row once, all archived.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from redpss.dictionary import open_dictionary
from redpss.errors import DictionaryError
from redpss.instance import SUBDIRS, Instance
from tests.conftest import run_cli, wait_for
from tests.faults.disk import fill, tmpfs
from tests.integration.sched_support import FAST, MakeInstance, apply, file_watcher, job

FILES = 60
FULL_FOR = 15.0
ROWS = 200
COLUMNS = [{"name": "FILE_NO", "type": "DECIMAL(9,0)"}, {"name": "VAL", "type": "DECIMAL(18,0)"}]


def _produce(folder: Path, first: int, count: int) -> None:
    for n in range(first, first + count):
        body = "FILE_NO,VAL\n" + "".join(f"{n},{n * 1000 + r}\n" for r in range(ROWS))
        tmp = folder / f".ing_{n:05d}.tmp"
        tmp.write_text(body)
        os.rename(tmp, folder / f"ing_{n:05d}.csv")


def _ledger(inst: Instance) -> list[str]:
    with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
        return sorted(e.file_name for e in d.load_ledger(limit=None))


def _loaded(inst: Instance) -> int:
    """Files in the ledger; -1 while the dictionary cannot be read (on a full disk SQLite
    cannot even open its shared-memory file)."""
    try:
        return len(_ledger(inst))
    except DictionaryError:
        return -1


def _status(inst: Instance) -> tuple[int, dict[str, dict[str, Any]]]:
    out = run_cli("redctl", "--json", "status", inst=inst)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, {r["role"]: r for r in json.loads(out.stdout)["roles"]}


@pytest.mark.timeout(300)
def test_a_full_disk_during_ingest_is_told_and_heals_with_every_file_once(
    make_instance: MakeInstance,
) -> None:
    inst: Instance = make_instance("tst1", **FAST)
    data = inst.home / "data"
    with tmpfs(data, "24m"):
        for sub in SUBDIRS:
            if sub.startswith("data/"):
                (inst.home / sub).mkdir(parents=True, exist_ok=True)
        assert run_cli("redctl", "db", "init", inst=inst).returncode == 0
        apply(
            inst,
            loaders={
                "ing": {"pattern": r"^ing_\d{5}\.csv$", "target": "DWH.ING", "columns": COLUMNS}
            },
            jobs={"load_ing": job("LOAD", "ing", pool="loader", max_parallel=2)},
            watchers={"ing_files": file_watcher(r"^ing_\d{5}\.csv$", "load_ing")},
        )
        out = run_cli("redctl", "start", inst=inst)
        assert out.returncode == 0, out.stdout + out.stderr
        _produce(data / "input", 0, FILES)
        wait_for(lambda: len(_ledger(inst)) >= 5, timeout=60, what="the first loads")

        ballast = data / "ballast"
        filled = fill(ballast)
        full_at = time.monotonic()
        print(f"disk full ({filled} bytes of ballast), {_loaded(inst)} files loaded")

        def told() -> str | None:
            out = run_cli("redctl", "--json", "status", inst=inst)
            assert "Traceback" not in out.stderr, out.stderr
            message = str(json.loads(out.stdout)["message"])
            return message if out.returncode == 1 and "no space left for data/" in message else None

        message = wait_for(told, timeout=60, what="status names the full disk")
        print(f"told after {time.monotonic() - full_at:.1f} s: {message}")
        assert "fail until space is freed" in message
        # the fault lasts: several watcher checks and loads meet the full disk
        time.sleep(max(0.0, FULL_FOR - (time.monotonic() - full_at)))
        code, rows = _status(inst)
        assert code == 1, rows
        loaded_while_full = _loaded(inst)

        ballast.unlink()  # the operator makes room; nothing else
        wait_for(
            lambda: _loaded(inst) == FILES and not any((data / "input").glob("ing_*")),
            timeout=180,
            what="every file loaded after the space came back",
        )
        print(f"{loaded_while_full} loaded before the space came back")
        assert _ledger(inst) == [f"ing_{n:05d}.csv" for n in range(FILES)]
        with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
            assert d.target_row_count("DWH", "ING") == FILES * ROWS
        assert list((data / "work").iterdir()) == []
        assert list((data / "error").iterdir()) == []
        assert len(list((data / "archive").glob("ing_*"))) == FILES
        errors = run_cli("redctl", "--json", "we_list_error", inst=inst)
        assert json.loads(errors.stdout) == [], errors.stdout
        wait_for(lambda: _status(inst)[0] == 0, timeout=60, what="status back to 0")
        assert run_cli("redctl", "stop", inst=inst).returncode == 0
