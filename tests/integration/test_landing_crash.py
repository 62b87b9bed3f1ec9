"""Crash test: kill -9 the loading process again and again while 2 000 files arrive.

The loading process here is a stand-in for sched's loader pool: it runs ``recover`` at start
(as sched does) and then ``run_load`` for every complete file, in a loop. Afterwards every file
must have been loaded exactly once: rows and ledger match, ``input/`` and ``work/`` are empty.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from redpss.dictionary import open_dictionary
from redpss.dictionary.loaders import parse_loader
from redpss.instance import Instance
from tests.conftest import wait_for

FILES = 2000
ROWS_PER_FILE = 3

LOADER = r"""
import dataclasses, sys, time
from redpss.dictionary import open_dictionary
from redpss.instance import Instance
from redpss.landing import recover, run_load

inst = Instance("tst1", __import__("pathlib").Path(sys.argv[1]))
config = inst.load_config()
config = dataclasses.replace(
    config, redsys=dataclasses.replace(config.redsys, sched_file_quiet_period=0.0)
)
run = int(sys.argv[2]) * 1_000_000
with open_dictionary("sqlite", db_dir=inst.db_dir) as dic:
    done = recover(inst, dic)
    print(sum(d.startswith("archived") for d in done), sum(d.startswith("requeued") for d in done),
          flush=True)
    while True:
        run += 1
        result = run_load(instance=inst, config=config, dictionary=dic, loader="crash",
                          key=None, run_id=run, schema="DWH")
        if not result.files:
            time.sleep(0.01)  # idle: do not spin on a shared machine
"""


def _start(inst: Instance, generation: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", LOADER, str(inst.redhome), str(generation)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def _kill(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def _produce(folder: Path, first: int, count: int) -> None:
    for n in range(first, first + count):
        rows = "".join(f"{n},{n * 10 + r}\n" for r in range(ROWS_PER_FILE))
        tmp = folder / f".f{n:05d}.csv.tmp"
        tmp.write_text("FILE_NO,VAL\n" + rows)
        os.rename(tmp, folder / f"f {n:05d}.csv")  # a space in every name


def test_kill_9_while_files_arrive_loads_every_file_once(
    make_instance: Callable[..., Instance],
) -> None:
    inst = make_instance("tst1")
    data = inst.home / "data"
    with open_dictionary("sqlite", db_dir=inst.db_dir) as dic:
        dic.init()
        dic.upsert_loader(
            parse_loader(
                "crash",
                {
                    "pattern": r"^f \d{5}\.csv$",
                    "target": "DWH.CRASH",
                    "columns": [
                        {"name": "FILE_NO", "type": "DECIMAL(9,0)"},
                        {"name": "VAL", "type": "DECIMAL(18,0)"},
                    ],
                },
            )
        )
        rng = random.Random(5)
        produced = kills = finished = requeued = 0
        generation = 0
        proc = _start(inst, generation)
        try:
            while produced < FILES:
                batch = min(FILES - produced, rng.randint(20, 120))
                _produce(data / "input", produced, batch)
                produced += batch
                assert proc.stdout is not None
                recovered = proc.stdout.readline().split()  # it recovered and loads now
                finished += int(recovered[0])
                requeued += int(recovered[1])
                time.sleep(rng.uniform(0.01, 0.25))  # let it load for a random moment
                _kill(proc)
                kills += 1
                generation += 1
                proc = _start(inst, generation)

            def drained() -> bool:
                busy = any(data.joinpath("input").iterdir()) or any(data.joinpath("work").iterdir())
                return not busy

            wait_for(drained, timeout=90, what="input/ and work/ empty")
        finally:
            _kill(proc)

        ledger = dic.load_ledger(limit=None)
        assert kills >= 10
        print(f"kills={kills} archived-by-recover={finished} requeued-by-recover={requeued}")
        assert requeued > 0  # some kills hit a load in flight
        assert sorted(e.file_name for e in ledger) == [f"f {n:05d}.csv" for n in range(FILES)]
        assert {e.status for e in ledger} == {"LOADED"}
        assert sum(e.row_count for e in ledger) == FILES * ROWS_PER_FILE
        assert dic.target_row_count("DWH", "CRASH") == FILES * ROWS_PER_FILE
        assert len(list(data.joinpath("archive").iterdir())) == FILES
        assert list(data.joinpath("error").iterdir()) == []
