"""One big CSV and the two processes that load it (``bench/landing_scale.py``'s CSV part).

The file is written as ``csv.writer`` writes it (line feeds, quoting only where a value needs
it); *bare* (``csv.reader`` + ``sqlite3.executemany``) and *ours*
(:func:`redpss.landing.run_load`) each run in a child process that times its own work (not the
interpreter's start or imports); the child's peak RSS comes from ``os.wait4`` through a small
launcher (Linux counts what a process had before ``exec``, so the bench's own memory must not be
counted in).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

from redpss.instance import Instance

__all__ = ["BigCsv", "make_csv"]


def make_csv(path: Path, size: float, shape: str) -> int:
    """A CSV of about ``size`` bytes with the 4 columns, as ``csv.writer`` writes it (with
    ``lineterminator="\n"``); returns its rows. ``quoted``: every 100th note holds a comma, so
    it is quoted."""
    rows = 0
    block = 50_000

    def note(i: int) -> str:
        if shape == "quoted" and i % 100 == 0:
            return f'"note number {i}, for the bench"'
        return f"note number {i} for the bench"

    with path.open("w", newline="") as f:
        f.write("ID,NAME,CITY,NOTE\n")
        while f.tell() < size:
            f.write(
                "".join(
                    f"{i},name {i},city {i % 97},{note(i)}\n" for i in range(rows, rows + block)
                )
            )
            rows += block
    return rows


BARE = """
import csv, sqlite3, sys, time
begun = time.perf_counter()
conn = sqlite3.connect(sys.argv[2], isolation_level=None)
conn.execute("PRAGMA journal_mode = WAL")
conn.execute("CREATE TABLE T (ID INTEGER, NAME TEXT, CITY TEXT, NOTE TEXT)")
conn.execute("BEGIN IMMEDIATE")
with open(sys.argv[1], newline="") as f:
    reader = csv.reader(f)
    next(reader)
    conn.executemany("INSERT INTO T VALUES (?, ?, ?, ?)", reader)
conn.execute("COMMIT")
conn.close()
print(time.perf_counter() - begun)
"""
OURS = """
import sys, time
from pathlib import Path
from redpss.dictionary import open_dictionary
from redpss.instance import Instance
from redpss.landing import run_load
inst = Instance("scale", Path(sys.argv[1]))
begun = time.perf_counter()
config = inst.load_config()
with open_dictionary("sqlite", db_dir=inst.db_dir) as dic:
    result = run_load(instance=inst, config=config, dictionary=dic, loader="big",
                      key=sys.argv[2], run_id=int(sys.argv[3]), schema="BIG")
assert result.files == 1 and result.errors == 0, result.message
print(time.perf_counter() - begun)
"""
LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen([sys.executable, "-c", *sys.argv[1:]], stdout=subprocess.PIPE, text=True)
out = proc.stdout.read().split() or ["nan"]
_pid, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, out[-1])
"""


def child(code: str, *argv: str) -> tuple[float, float]:
    """Run ``code`` in a child process: (the seconds of its work, its own peak RSS in MB)."""
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, code, *argv], capture_output=True, text=True, check=True
    ).stdout.split()
    if out[0] != "0":
        raise SystemExit(f"child failed with exit code {out[0]}")
    return float(out[2]), int(out[1]) / 1024


class BigCsv:
    """One file beside input/ (one filesystem: a run's file is renamed in and back)."""

    def __init__(self, root: Path, inst: Instance) -> None:
        self.root = root
        self.inst = inst
        self.data = self.inst.home / "data"
        self.src = self.data / "big.csv"
        self.rows = 0
        self.runs = itertools.count(1)

    def write(self, size: float, shape: str) -> None:
        begun = time.perf_counter()
        self.rows = make_csv(self.src, size, shape)
        print(f"  csv ({shape}): {self.src.stat().st_size / 1e6:,.0f} MB, {self.rows:,} rows, "
              f"written in {time.perf_counter() - begun:.0f} s", flush=True)  # fmt: skip

    def bare(self) -> tuple[float, float]:
        took = child(BARE, str(self.src), str(self.root / "bare.db"))
        for path in self.root.glob("bare.db*"):
            path.unlink()
        return took

    def ours(self) -> tuple[float, float]:
        i = next(self.runs)
        name = f"big_{i}.csv"
        os.rename(self.src, self.data / "input" / name)
        took = child(OURS, str(self.inst.redhome), name, str(i))
        os.rename(self.data / "archive" / name, self.src)
        for path in self.inst.db_dir.glob("BIG.db*"):
            path.unlink()
        return took
