"""CSV → SQLite rows/s through a loader (run_load) vs bare csv.reader + sqlite3.executemany.

Both sides read the same CSV file and insert into a table of the same shape in a fresh SQLite
file (WAL). The loader side also hashes the file, converts and checks every value, writes the
ledger row and moves the file to archive/.

Holding still (issue 20, bench/lib/pairing.py): the file is grown (its rows doubled, starting
at ``--rows``) until one bare run — the faster side — takes at least a second, so both sides'
runs do; then ``--pairs`` pairs on that same file, bare and run_load alternating which goes
first. Reported: the median rate of each side and the median of the per-pair ratios
run_load/bare (and their spread); target >= 0.8. About a minute on a quiet 2-core machine.

    .venv/bin/python bench/load.py [--rows 300000] [--pairs 5]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sqlite3
import sys
import tempfile
import time
from itertools import count
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.lib.pairing import PAIRS, alternate, grow, result, summary  # noqa: E402
from redpss.dictionary import open_dictionary  # noqa: E402
from redpss.instance import Instance, create_instance  # noqa: E402
from redpss.landing import parse_loader, run_load  # noqa: E402

TARGET = 0.8
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
    """One run_load of ``path`` into a fresh instance at ``home`` (table and file per run)."""
    inst = Instance("bench", home)
    if not inst.exists():
        create_instance(inst)
    config = inst.load_config()
    config = dataclasses.replace(
        config, redsys=dataclasses.replace(config.redsys, sched_file_quiet_period=0.0)
    )
    with open_dictionary("sqlite", db_dir=inst.db_dir) as dic:
        dic.init()
        table = {"pattern": rf"^bench_{run}\.csv$", "target": f"BENCH.T{run}", "columns": COLUMNS}
        dic.upsert_loader(parse_loader(f"bench{run}", table))
        target = inst.home / "data" / "input" / f"bench_{run}.csv"
        target.write_bytes(path.read_bytes())
        begun = time.perf_counter()
        result = run_load(instance=inst, config=config, dictionary=dic, loader=f"bench{run}",
                          key=target.name, run_id=run, schema="BENCH")  # fmt: skip
        took = time.perf_counter() - begun
        assert result.files == 1, result.message
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000, help="first size (grown to 1 s)")
    parser.add_argument(
        "--pairs", "--repeat", type=int, default=PAIRS, help="bare/run_load pairs (>= 5)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-load") as tmp:
        root = Path(tmp)
        runs = count(1)
        src = root / "data.csv"

        def sized(rows: int) -> float:
            make_csv(src, rows)
            took = bare(src, root / f"bare{next(runs)}.db")
            print(f"  sizing: {rows} rows, bare {took:.2f} s", flush=True)
            return took

        rows = grow(sized, args.rows)  # the file stays at the size found
        size_mb = src.stat().st_size / 1e6

        def once_bare() -> float:
            db = root / f"bare{next(runs)}.db"
            took = bare(src, db)
            db.unlink()
            return rows / took

        def once_ours() -> float:
            return rows / ours(src, root / "home", next(runs))

        print(f"rows={rows} file={size_mb:.1f} MB (grown until a bare run took >= 1 s)")
        pairs = alternate(once_bare, once_ours, pairs=args.pairs, labels=("bare", "run_load"))
    s = summary(pairs)
    print(f"bare csv.reader+executemany: {s.bare:,.0f} rows/s ({rows / s.bare:.2f} s, median)")
    print(f"run_load (hash, convert, ledger, archive): {s.ours:,.0f} rows/s "
          f"({rows / s.ours:.2f} s, median)")  # fmt: skip
    print(f"ratio run_load/bare = {s.ratio:.2f} (median of {len(pairs)} pairs; spread "
          f"{s.spread[0]:.2f}-{s.spread[1]:.2f})")  # fmt: skip
    result("load", s.ratio, "x_bare", ">=", TARGET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
