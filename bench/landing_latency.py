"""Landing latency: a CSV file dropped into input/ → its rows committed, p50/p95 per run of files.

A real instance (temporary $REDHOME, embedded SQLite dictionary, durable commits) with one CSV
loader. A dropper thread publishes small CSV files into ``data/input`` at a steady rate, each by
an atomic rename (as a finished sFTP upload appears); the main thread plays the scheduler's FILE
watcher: a loop of :func:`redpss.landing.complete_files` and, when something is complete,
:func:`redpss.landing.run_load` (claim, hash, rows + ledger in one ``synchronous = FULL``
transaction, archive), with a short quiet period and poll interval. The jmon → sched hand-over
of a real FILE watcher is not part of this measurement.

A file's latency is from its rename into ``input/`` to its arrival in ``archive/`` (its ctime
there), which happens only after its transaction committed: an upper bound of "rows committed".

Bare: the same dropper and the same watcher loop with the raw libraries only: ``os.scandir``
with the same completeness rule (unchanged for the quiet period), ``csv.reader`` +
``sqlite3.executemany`` into a fresh SQLite file (WAL, ``synchronous = FULL``), one transaction
per poll, then ``os.rename`` into ``archive/``; no claim, hash, ledger or value checks.

Holding still (issue 20, bench/lib/pairing.py): a measured run is ``--files`` files at
``--rate`` files/s (default 500 at 50/s: 10 s, already >= 1 s, nothing to grow), each run on a
fresh instance (or fresh bare folder); ``--pairs`` (default 5) pairs, bare and ours alternating
which goes first. Per pair the p95 of each run; the RESULT is the median of our p95s, and the
median of the per-pair p95 ratios ours/bare and their spread are printed (as
bench/sched_latency.py does). About two minutes on a quiet 2-core machine.

Peers, for comparison: Airflow's FileSensor pokes every 60 s by default (``poke_interval``), and
Dagster's sensors are evaluated every 30 s by default (``minimum_interval_seconds``): on average
a file waits half of that before anything even looks at it. Target: p95 < 1 s.

    .venv/bin/python bench/landing_latency.py [--files 500] [--rate 50] [--pairs 5]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import re
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.lib.pairing import PAIRS, alternate, result, summary  # noqa: E402
from redpss.dictionary import open_dictionary  # noqa: E402
from redpss.instance import Instance, create_instance  # noqa: E402
from redpss.landing import complete_files, parse_loader, run_load  # noqa: E402

LOADER: dict[str, object] = {
    "pattern": r"^lat_\d+\.csv$",
    "target": "BENCH.LATENCY",
    "columns": [
        {"name": "ID", "type": "DECIMAL(18,0)"},
        {"name": "FILE_NO", "type": "DECIMAL(9,0)"},
        {"name": "NAME", "type": "VARCHAR(40)"},
    ],
}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def drop_files(
    input_dir: Path, count: int, rows: int, rate: float, dropped: dict[str, float]
) -> None:
    """Publish ``count`` CSV files of ``rows`` rows at ``rate`` files/s; note each drop time."""
    staging = input_dir.parent / "bench-staging"
    staging.mkdir(exist_ok=True)
    begun = time.monotonic()
    for i in range(count):
        name = f"lat_{i:05d}.csv"
        body = "ID,FILE_NO,NAME\n" + "".join(f"{i * rows + r},{i},name {r}\n" for r in range(rows))
        (staging / name).write_text(body)
        delay = begun + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing the producer, not synchronising with the loader
        dropped[name] = time.time()
        os.rename(staging / name, input_dir / name)


@dataclasses.dataclass(frozen=True)
class Run:
    """What one measured run found."""

    latencies: list[float]
    loaded: int
    rows: int
    runs: int
    took: float

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        return _percentile(self.latencies, 0.95)


def _watch(
    data: Path, args: argparse.Namespace, load: Callable[[int], int], ready: Callable[[], bool]
) -> tuple[dict[str, float], int, int, float]:
    """Drop ``--files`` files into ``data/input`` while a watcher loop calls ``load(run)`` when
    ``ready()``; returns the drop times, files loaded, watcher runs and seconds."""
    dropped: dict[str, float] = {}
    dropper = threading.Thread(
        target=drop_files,
        args=(data / "input", args.files, args.rows, args.rate, dropped),
        daemon=True,
    )
    begun = time.monotonic()
    dropper.start()
    runs = loaded = 0
    deadline = begun + args.files / args.rate + 120
    while loaded < args.files and time.monotonic() < deadline:
        if ready():
            runs += 1
            loaded += load(runs)
        else:
            time.sleep(args.poll)  # the watcher's poll interval
    took = time.monotonic() - begun
    dropper.join()
    return dropped, loaded, runs, took


def _latencies(data: Path, dropped: dict[str, float]) -> list[float]:
    return [(data / "archive" / name).stat().st_ctime - at for name, at in dropped.items()]


def run_ours(args: argparse.Namespace, home: Path) -> Run:
    """One run through redpss.landing on a fresh instance at ``home``."""
    inst = Instance("bench", home)
    create_instance(inst)
    config = inst.load_config()
    config = dataclasses.replace(
        config,
        redsys=dataclasses.replace(config.redsys, sched_file_quiet_period=args.quiet),
    )
    with open_dictionary("sqlite", db_dir=inst.db_dir) as dic:
        dic.init()
        loader = parse_loader("lat", LOADER)
        dic.upsert_loader(loader)
        data = inst.home / "data"
        due: list[Path] = []

        def ready() -> bool:
            due[:] = complete_files(
                data / "input", loader.regex, quiet_period=args.quiet, marker=False
            )
            return bool(due)

        def load(run: int) -> int:
            found = run_load(instance=inst, config=config, dictionary=dic, loader="lat",
                             key=None, run_id=run, schema="BENCH")  # fmt: skip
            assert found.errors == 0, found.message
            return found.files

        dropped, loaded, runs, took = _watch(data, args, load, ready)
        rows = dic.target_row_count("BENCH", "LATENCY")
        return Run(_latencies(data, dropped), loaded, rows, runs, took)


def run_bare(args: argparse.Namespace, home: Path) -> Run:
    """One run with the raw libraries: scandir, csv.reader, sqlite3, rename."""
    data = home / "data"
    for sub in ("input", "archive"):
        (data / sub).mkdir(parents=True)
    conn = sqlite3.connect(home / "bare.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE LATENCY (ID INTEGER, FILE_NO INTEGER, NAME TEXT)")
    pattern = re.compile(str(LOADER["pattern"]))
    due: list[str] = []

    def ready() -> bool:
        now = time.time()
        found = []
        for entry in os.scandir(data / "input"):
            if pattern.search(entry.name):
                st = entry.stat(follow_symlinks=False)
                changed = max(st.st_mtime, st.st_ctime)
                if now - changed >= args.quiet:
                    found.append((changed, entry.name))
        due[:] = [name for _, name in sorted(found)]
        return bool(due)

    def load(run: int) -> int:
        conn.execute("BEGIN IMMEDIATE")
        for name in due:
            with (data / "input" / name).open(newline="") as f:
                reader = csv.reader(f)
                next(reader)
                conn.executemany("INSERT INTO LATENCY VALUES (?, ?, ?)", reader)
        conn.execute("COMMIT")
        for name in due:
            os.rename(data / "input" / name, data / "archive" / name)
        return len(due)

    try:
        dropped, loaded, runs, took = _watch(data, args, load, ready)
        rows = conn.execute("SELECT COUNT(*) FROM LATENCY").fetchone()[0]
    finally:
        conn.close()
    return Run(_latencies(data, dropped), loaded, rows, runs, took)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500, help="files per measured run")
    parser.add_argument("--rows", type=int, default=20, help="rows per file")
    parser.add_argument("--rate", type=float, default=50.0, help="files dropped per second")
    parser.add_argument("--quiet", type=float, default=0.1, help="quiet period, seconds")
    parser.add_argument("--poll", type=float, default=0.05, help="watcher poll interval, s")
    parser.add_argument("--pairs", type=int, default=PAIRS, help="bare/ours pairs (>= 5)")
    args = parser.parse_args()
    print(
        f"files={args.files} rows/file={args.rows} drop rate={args.rate:g}/s "
        f"quiet period={args.quiet:g} s poll={args.poll:g} s"
    )
    print(
        "driver: redpss.landing.complete_files + run_load in a loop, as a FILE watcher would "
        "(no jmon/sched hand-over); SQLite dictionary, synchronous = FULL commits"
    )
    found: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-lat", dir="/tmp") as tmp:
        homes = iter(Path(tmp) / f"r{i}" for i in range(1_000_000))

        def once(side: str) -> float:
            run = (run_ours if side == "ours" else run_bare)(args, next(homes))
            assert run.loaded == args.files and run.rows == args.files * args.rows, (
                side, run.loaded, run.rows,
            )  # fmt: skip
            found.append(run)
            print(
                f"  {side}: {run.loaded} files, {run.rows} rows in {run.runs} runs, "
                f"{run.took:.1f} s; p50 {run.p50:.3f} s p95 {run.p95:.3f} s "
                f"max {max(run.latencies):.3f} s",
                flush=True,
            )
            return run.p95

        pairs = alternate(
            lambda: once("bare"), lambda: once("ours"), pairs=args.pairs,
            labels=("bare p95 s", "ours p95 s"),
        )  # fmt: skip
    s = summary(pairs)
    print(f"latency dropped -> committed, p95: ours {s.ours:.3f} s, bare {s.bare:.3f} s "
          f"(medians of {len(pairs)} runs); ratio ours/bare {s.ratio:.2f} (median of pairs; "
          f"spread {s.spread[0]:.2f}-{s.spread[1]:.2f})")  # fmt: skip
    print(
        f"(the quiet period is part of the latency: the default sched_file_quiet_period = 2 s "
        f"adds about {2 - args.quiet:g} s; senders that need less use a .done marker)"
    )
    print("peers: Airflow FileSensor poke_interval 60 s (mean wait ~30 s), "
          "Dagster sensor interval 30 s (mean wait ~15 s)")  # fmt: skip
    result("landing_latency", s.ours, "s", "<", 1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
