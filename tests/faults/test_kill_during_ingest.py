"""Promises 2 and 4: every file exactly once while sched and jmon are killed again and again.

Files keep arriving in ``data/input`` (a FILE watcher hands each to a LOAD job) while the test
``kill -9``s sched and jmon in turn, each time waiting until supervisord has the role RUNNING
again (what an operator's crash would look like; a kill within ``startsecs`` is a failed start
and is supervisord's FATAL policy, tested elsewhere). Afterwards: every file in the ledger once,
every row once, every file archived, nothing in ``error/``, ``input/`` or ``work/``; no role
FATAL, status exit 0.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from redpss.dictionary import open_dictionary
from redpss.instance import Instance
from redpss.supervisor import Supervisor
from tests.conftest import run_cli, wait_for
from tests.integration.sched_support import FAST, MakeInstance, apply, file_watcher, job

FILES = 150
ROWS = 3
KILLS = 12
COLUMNS = [{"name": "FILE_NO", "type": "DECIMAL(9,0)"}, {"name": "VAL", "type": "DECIMAL(18,0)"}]


def _produce(folder: Path, stop: threading.Event, produced: list[int]) -> None:
    """One file every few ms until FILES are there; each written aside and renamed in."""
    for n in range(FILES):
        if stop.is_set():
            return
        body = "FILE_NO,VAL\n" + "".join(f"{n},{n * 10 + r}\n" for r in range(ROWS))
        tmp = folder / f".ing_{n:05d}.tmp"
        tmp.write_text(body)
        os.rename(tmp, folder / f"ing_{n:05d}.csv")
        produced.append(n)
        stop.wait(0.2)


def _running_pid(sup: Supervisor, role: str, old: int) -> int:
    proc = sup.process(role)
    if proc is not None and proc.state == "RUNNING" and proc.pid not in (0, old):
        return proc.pid
    return 0


@pytest.mark.timeout(360)
def test_kill_9_of_sched_and_jmon_during_ingest_loses_and_doubles_nothing(
    make_instance: MakeInstance,
) -> None:
    inst: Instance = make_instance("tst1", **FAST)
    assert run_cli("redctl", "db", "init", inst=inst).returncode == 0
    apply(
        inst,
        loaders={"ing": {"pattern": r"^ing_\d{5}\.csv$", "target": "DWH.ING", "columns": COLUMNS}},
        # two loads at once into one schema, as the loader pool allows (two per watcher check)
        jobs={"load_ing": job("LOAD", "ing", pool="loader", max_parallel=2)},
        watchers={"ing_files": file_watcher(r"^ing_\d{5}\.csv$", "load_ing")},
    )
    out = run_cli("redctl", "start", inst=inst)
    assert out.returncode == 0, out.stdout + out.stderr
    data = inst.home / "data"
    sup = Supervisor(inst)
    stop = threading.Event()
    produced: list[int] = []
    producer = threading.Thread(target=_produce, args=(data / "input", stop, produced))
    producer.start()
    kills = []
    try:
        for i in range(KILLS):
            role = ("sched", "jmon")[i % 2]
            proc = sup.process(role)
            assert proc is not None and proc.state == "RUNNING", proc
            os.kill(proc.pid, signal.SIGKILL)
            kills.append(role)
            old = proc.pid
            wait_for(
                lambda: _running_pid(sup, role, old),  # noqa: B023 - called in this iteration
                timeout=30,
                what=f"{role} RUNNING again after kill {i + 1}",
            )
            print(f"kill {i + 1}: {role} pid {old}; {len(produced)} files produced", flush=True)
            made = len(produced)  # a moment of work between two kills: a few files more
            wait_for(
                lambda: len(produced) >= min(made + 3, FILES),  # noqa: B023 - this iteration
                timeout=30,
                what="three more files dropped between two kills",
            )
        producer.join(FILES * 0.2 + 60)
    finally:
        stop.set()
        producer.join(10)
    assert len(produced) == FILES and len(kills) == KILLS

    def state() -> str:
        with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
            loaded = len(d.load_ledger(limit=None))
        waiting = sorted(p.name for p in (data / "input").glob("ing_*"))
        working = sorted(p.name for p in (data / "work").iterdir())
        errors = run_cli("redctl", "we_list_error", inst=inst).stdout.strip()
        return f"ledger {loaded}, input {waiting[:5]}, work {working[:5]}, errors {errors[:500]}"

    def drained() -> bool:
        with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
            loaded = len(d.load_ledger(limit=None))
        busy = any((data / "input").glob("ing_*")) or any((data / "work").iterdir())
        return loaded >= FILES and not busy

    began = time.monotonic()
    try:
        wait_for(drained, timeout=180, what="every file loaded, input/ and work/ empty")
    except BaseException:
        print(state(), flush=True)
        raise
    print(f"drained {time.monotonic() - began:.1f} s after the last kill", flush=True)
    with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
        ledger = d.load_ledger(limit=None)
        rows = d.target_row_count("DWH", "ING")
    names = sorted(e.file_name for e in ledger)
    assert names == [f"ing_{n:05d}.csv" for n in range(FILES)]  # each once: 0 lost, 0 doubled
    assert {e.status for e in ledger} == {"LOADED"}
    assert rows == FILES * ROWS
    assert len(list((data / "archive").glob("ing_*"))) == FILES
    assert list((data / "error").iterdir()) == []
    status = run_cli("redctl", "status", inst=inst)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "FATAL" not in (inst.log_dir / "supervisord.log").read_text()
