"""CSV → SQLite rows/s through a loader (run_load) vs bare csv.reader + sqlite3.executemany.

Both sides read the same CSV file and insert into a table of the same shape in a fresh SQLite
file (WAL). The loader side also hashes the file, converts and checks every value, writes the
ledger row and moves the file to archive/. Prints both rates and their ratio; target >= 0.8.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from redpss.dictionary import open_dictionary
from redpss.instance import Instance, create_instance
from redpss.landing import parse_loader, run_load

COLUMNS = [
    {"name": "ID", "type": "DECIMAL(18,0)"},
    {"name": "NAME", "type": "VARCHAR(40)"},
    {"name": "CITY", "type": "VARCHAR(40)"},
    {"name": "NOTE", "type": "VARCHAR(100)"},
]


def make_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([c["name"] for c in COLUMNS])
        for i in range(rows):
            w.writerow([i, f"name {i}", f"city {i % 97}", f"note number {i} for the bench"])


def bare(path: Path, db: Path) -> float:
    begun = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE T (ID INTEGER, NAME TEXT, CITY TEXT, NOTE TEXT)")
    conn.execute("BEGIN IMMEDIATE")
    with path.open(newline="") as f:
        reader = csv.reader(f)
        next(reader)
        conn.executemany("INSERT INTO T VALUES (?, ?, ?, ?)", reader)
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - begun


def ours(path: Path, home: Path, run: int) -> float:
    inst = Instance("bench", home)
    if not inst.exists():
        create_instance(inst)
    config = inst.load_config()
    config = dataclasses.replace(
        config, redsys=dataclasses.replace(config.redsys, sched_file_quiet_period=0.0)
    )
    with open_dictionary("sqlite", db_dir=inst.db_dir) as dic:
        dic.init()
        table = {"pattern": r"^bench_", "target": f"BENCH.T{run}", "columns": COLUMNS}
        dic.upsert_loader(parse_loader("bench", table))
        target = inst.home / "data" / "input" / f"bench_{run}.csv"
        target.write_bytes(path.read_bytes())
        begun = time.perf_counter()
        result = run_load(instance=inst, config=config, dictionary=dic, loader="bench",
                          key=target.name, run_id=run, schema="BENCH")  # fmt: skip
        took = time.perf_counter() - begun
        assert result.files == 1, result.message
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-load") as tmp:
        root = Path(tmp)
        src = root / "data.csv"
        make_csv(src, args.rows)
        size_mb = src.stat().st_size / 1e6
        b = min(bare(src, root / f"bare{i}.db") for i in range(args.repeat))
        o = min(ours(src, root / "home", i) for i in range(args.repeat))
    ratio = b / o
    print(f"rows={args.rows} file={size_mb:.1f} MB")
    print(f"bare csv.reader+executemany: {args.rows / b:,.0f} rows/s ({b:.2f} s)")
    print(f"run_load (hash, convert, ledger, archive): {args.rows / o:,.0f} rows/s ({o:.2f} s)")
    print(f"ratio run_load/bare = {ratio:.2f}")
    ok = "yes" if ratio >= 0.8 else "no"
    print(f"RESULT load value={ratio:.2f} unit=x_bare target=>=0.8 ok={ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
