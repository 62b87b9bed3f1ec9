"""The landing zone at size: 100 000 files waiting in input/, and one 10 GB CSV.

**Files.** ``--files`` one-row CSV files wait, complete, in ``data/input`` of a real instance
(temporary ``$REDHOME``, embedded SQLite dictionary, durable commits). *Ours*: the instance,
started with ``redctl start``, loads them as its users set it up — ``--via job``: a LOAD job
started with ``redctl start_db_job`` (one run takes every complete file); ``--via watcher``: a
FILE watcher whose executor is that LOAD job (one run per file), made active by ``redctl db
apply`` once the instance runs. *Direct*: the same number of files, loaded by one in-process
:func:`redpss.landing.run_load` call. For each side: the time from the start (the
``start_db_job`` or ``db apply`` command, the ``run_load`` call) to
the first claim (a file appearing in ``work/`` or ``archive/``, polled every 2 ms), and the
files per second from the start to the last ledger row. Targets: first claim < 2 s; ours at
least 0.8 times direct.

**One big CSV.** A ``--csv-gb`` GB CSV (4 columns, ~60 bytes a row) is generated into
``--tmp`` and removed after. *Bare*: ``csv.reader`` + ``sqlite3.executemany`` into a fresh
SQLite file (WAL), one transaction. *Ours*: ``run_load`` of that file through a loader (hash,
convert and check every value, ledger row, archive). Each side runs in a child process of its
own; its peak RSS is ``ru_maxrss`` from ``os.wait4`` (started through a small launcher: Linux
counts what a process had before ``exec``). Targets: ours at least 0.8 times bare, ours' peak
RSS < 300 MB.

Each measured run is far above 1 s at the default sizes (minutes), so ``--pairs`` defaults to 1
for both parts; with more, the two sides alternate which goes first and the median of the
pairs' ratios is reported. ``--files 20000 --csv-gb 1`` is a quick look. The last line is one
RESULT: the lower of the two ratios, ok only if every target above holds.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from redpss.dictionary import open_dictionary
from redpss.instance import Instance, create_instance

BIN = Path(sys.executable).parent
COLUMNS = [
    {"name": "ID", "type": "DECIMAL(18,0)"},
    {"name": "NAME", "type": "VARCHAR(40)"},
    {"name": "CITY", "type": "VARCHAR(40)"},
    {"name": "NOTE", "type": "VARCHAR(100)"},
]
DEFINITIONS = """
    [loader.scale]
    pattern = '^s_.*\\.csv$'
    target = "BENCH.SCALE"
    columns = [{{ name = "ID", type = "DECIMAL(18,0)" }}, {{ name = "NAME", type = "VARCHAR(40)" }}]
    [loader.direct]
    pattern = '^d_.*\\.csv$'
    target = "BENCH.DIRECT"
    columns = [{{ name = "ID", type = "DECIMAL(18,0)" }}, {{ name = "NAME", type = "VARCHAR(40)" }}]
    [loader.big]
    pattern = '^big.*\\.csv$'
    target = "BIG.T"
    columns = [
      {{ name = "ID", type = "DECIMAL(18,0)" }}, {{ name = "NAME", type = "VARCHAR(40)" }},
      {{ name = "CITY", type = "VARCHAR(40)" }}, {{ name = "NOTE", type = "VARCHAR(100)" }},
    ]
    [job.load_scale]
    schema = "BENCH"
    kind = "LOAD"
    action = "scale"
    pool = "loader"
    max_parallel = {parallel}
    {watcher}
"""
WATCHER = """
    [watcher.scale_in]
    schema = "BENCH"
    kind = "FILE"
    pattern = '^s_'
    interval = 1
    executor = "load_scale"
    active = {active}
"""


# -- an instance -------------------------------------------------------------------------------


def make_instance(root: Path, via: str) -> Instance:
    inst = Instance("scale", root / "rh")
    create_instance(inst)
    text = inst.conf_path.read_text()
    for key, value in {
        "cfi_enabled": "false",
        "sched_file_quiet_period": "0.5",
        "sched_definitions_poll": "0.5",
    }.items():
        lines = [
            f"{key} = {value}" if line.lstrip("#").split("=")[0].strip() == key else line
            for line in text.splitlines()
        ]
        text = "\n".join(lines) + "\n"
    inst.conf_path.write_text(text)
    redctl(inst, "db", "init")
    apply(inst, via, active=False)
    return inst


def apply(inst: Instance, via: str, *, active: bool) -> None:
    """The definitions (with the FILE watcher when ``via`` is watcher, active or not)."""
    defs = inst.redhome.parent / "defs.toml"
    watcher = WATCHER.format(active=str(active).lower()) if via == "watcher" else ""
    defs.write_text(textwrap.dedent(DEFINITIONS.format(parallel=2, watcher=watcher)))
    redctl(inst, "db", "apply", str(defs))


def redctl(inst: Instance, *args: str) -> str:
    env = dict(os.environ)
    env.update(inst.environment())
    done = subprocess.run(
        [str(BIN / "redctl"), *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"redctl {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


# -- files -------------------------------------------------------------------------------------


def stage(inst: Instance, prefix: str, count: int, quiet: float, tag: int) -> None:
    """``count`` one-row CSV files into input/ (written aside, renamed in), complete.

    ``tag`` makes the contents of each run new (the ledger would skip a repeated content)."""
    staging = inst.home / "data" / "staging"
    staging.mkdir(exist_ok=True)
    for i in range(count):
        (staging / f"{prefix}_{i:07d}.csv").write_text(f"ID,NAME\n{i},name {i} of {tag}\n")
    inbox = inst.home / "data" / "input"
    for entry in os.scandir(staging):
        os.rename(entry.path, inbox / entry.name)
    time.sleep(quiet + 0.1)  # the quiet period, so that every file is complete


class FirstClaim:
    """Polls work/ and archive/ every 2 ms; remembers when something first appears."""

    def __init__(self, inst: Instance) -> None:
        self.folders = [inst.home / "data" / "work", inst.home / "data" / "archive"]
        self.at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            for folder in self.folders:
                with os.scandir(folder) as it:
                    if any(True for _ in it):
                        self.at = time.time()
                        return
            time.sleep(0.002)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def ledger_count(inst: Instance, target: str) -> int:
    path = inst.db_dir / "BENCH.db"
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            row = db.execute("SELECT COUNT(*) FROM ADM_LOAD_LOG WHERE TARGET = ?", (target,))
            return int(row.fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def wait_loaded(inst: Instance, target: str, count: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while (have := ledger_count(inst, target)) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {have} of {count} files loaded into {target} in {timeout} s")
        time.sleep(0.25)
    return time.time()


@dataclasses.dataclass
class FilesRun:
    first_claim: float
    seconds: float
    count: int

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def ours_files(inst: Instance, count: int, via: str, tag: int) -> FilesRun:
    stage(inst, "s", count, 0.5, tag)
    watch = FirstClaim(inst)
    redctl(inst, "start")
    try:
        started = time.time()
        if via == "job":
            redctl(inst, "start_db_job", "load_scale")
        else:  # the watcher becomes active: jmon takes it up without a restart
            apply(inst, via, active=True)
        ended = wait_loaded(inst, "BENCH.SCALE", count * (tag + 1), timeout=count * 0.1 + 600)
    finally:
        watch.stop()
        redctl(inst, "stop")
        if via == "watcher":
            apply(inst, via, active=False)
    assert watch.at is not None
    clear(inst)
    return FilesRun(watch.at - started, ended - started, count)


def direct_files(inst: Instance, count: int, run_id: int) -> FilesRun:
    from redpss.landing import run_load

    stage(inst, "d", count, 0.5, run_id)
    config = inst.load_config()
    watch = FirstClaim(inst)
    with open_dictionary("sqlite", db_dir=inst.db_dir) as dic:
        started = time.time()
        result = run_load(instance=inst, config=config, dictionary=dic, loader="direct",
                          key=None, run_id=run_id, schema="BENCH")  # fmt: skip
        ended = time.time()
    watch.stop()
    assert result.files == count, result.message
    assert watch.at is not None
    clear(inst)
    return FilesRun(watch.at - started, ended - started, count)


def clear(inst: Instance) -> None:
    """Empty archive/ for the next run (a fast poll of it must find it empty)."""
    archive = inst.home / "data" / "archive"
    shutil.rmtree(archive)
    archive.mkdir()


def part_files(root: Path, count: int, pairs: int, via: str) -> tuple[float, float]:
    """(worst first claim in s, median ratio ours/direct)."""
    inst = make_instance(root, via)
    ratios: list[float] = []
    firsts: list[float] = []
    for i in range(pairs):
        order = ("ours", "direct") if i % 2 == 0 else ("direct", "ours")
        runs: dict[str, FilesRun] = {}
        for side in order:
            runs[side] = (
                ours_files(inst, count, via, i) if side == "ours" else direct_files(inst, count, i)
            )
        ours, direct = runs["ours"], runs["direct"]
        ratios.append(ours.rate / direct.rate)
        firsts += [ours.first_claim, direct.first_claim]
        print(
            f"files pair {i + 1}: {count} waiting; ours (via {via}) first claim "
            f"{ours.first_claim:.2f} s, {ours.rate:.0f} files/s ({ours.seconds:.0f} s); direct "
            f"run_load first claim {direct.first_claim:.2f} s, {direct.rate:.0f} files/s "
            f"({direct.seconds:.0f} s); ratio {ratios[-1]:.2f}",
            flush=True,
        )
    return max(firsts), statistics.median(ratios)


# -- one big CSV -------------------------------------------------------------------------------


def make_csv(path: Path, size: float) -> int:
    """A CSV of about ``size`` bytes with the 4 columns; returns its rows."""
    rows = 0
    block = 50_000
    with path.open("w", newline="") as f:
        f.write("ID,NAME,CITY,NOTE\n")
        while f.tell() < size:
            f.write(
                "".join(
                    f"{i},name {i},city {i % 97},note number {i} for the bench\n"
                    for i in range(rows, rows + block)
                )
            )
            rows += block
    return rows


BARE = """
import csv, sqlite3, sys
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
"""
OURS = """
import dataclasses, sys
from pathlib import Path
from redpss.dictionary import open_dictionary
from redpss.instance import Instance
from redpss.landing import run_load
inst = Instance("scale", Path(sys.argv[1]))
config = inst.load_config()
with open_dictionary("sqlite", db_dir=inst.db_dir) as dic:
    result = run_load(instance=inst, config=config, dictionary=dic, loader="big",
                      key=sys.argv[2], run_id=int(sys.argv[3]), schema="BIG")
assert result.files == 1 and result.errors == 0, result.message
print(result.rows)
"""
LAUNCHER = """
import os, subprocess, sys, time
begun = time.perf_counter()
proc = subprocess.Popen([sys.executable, "-c", *sys.argv[1:]], stdout=subprocess.DEVNULL)
_pid, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, time.perf_counter() - begun)
"""


def child(code: str, *argv: str) -> tuple[float, float]:
    """Run ``code`` in a child process: (seconds, its own peak RSS in MB)."""
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, code, *argv], capture_output=True, text=True, check=True
    ).stdout.split()
    if out[0] != "0":
        raise SystemExit(f"child failed with exit code {out[0]}")
    return float(out[2]), int(out[1]) / 1024


def part_csv(root: Path, gigabytes: float, pairs: int) -> tuple[float, float]:
    """(median ratio ours/bare in rows per second, ours' worst peak RSS in MB)."""
    size = gigabytes * 1e9
    free = shutil.disk_usage(root).free
    if free < size * 3.3:
        raise SystemExit(
            f"{root}: {free / 1e9:.0f} GB free, the CSV part needs {size * 3.3e-9:.0f}"
        )
    inst = make_instance(root / "csv", "job")
    data = inst.home / "data"
    src = data / "big.csv"  # beside input/: one filesystem, so a run's file is renamed in
    begun = time.perf_counter()
    rows = make_csv(src, size)
    print(f"csv: {src.stat().st_size / 1e9:.2f} GB, {rows} rows, written in "
          f"{time.perf_counter() - begun:.0f} s", flush=True)  # fmt: skip
    ratios: list[float] = []
    peaks: list[float] = []
    try:
        for i in range(pairs):
            order = ("bare", "ours") if i % 2 == 0 else ("ours", "bare")
            took: dict[str, tuple[float, float]] = {}
            for side in order:
                if side == "bare":
                    db = root / "bare.db"
                    took[side] = child(BARE, str(src), str(db))
                    for path in root.glob("bare.db*"):
                        path.unlink()
                else:
                    name = f"big_{i}.csv"
                    os.rename(src, data / "input" / name)
                    took[side] = child(OURS, str(inst.redhome), name, str(i + 1))
                    os.rename(data / "archive" / name, src)
                    for path in inst.db_dir.glob("BIG.db*"):
                        path.unlink()
            (b, b_rss), (o, o_rss) = took["bare"], took["ours"]
            ratios.append(b / o)
            peaks.append(o_rss)
            print(
                f"csv pair {i + 1}: bare csv.reader+executemany {rows / b:,.0f} rows/s "
                f"({b:.0f} s, peak RSS {b_rss:.0f} MB); run_load {rows / o:,.0f} rows/s "
                f"({o:.0f} s, peak RSS {o_rss:.0f} MB); ratio {b / o:.2f}",
                flush=True,
            )
    finally:
        src.unlink(missing_ok=True)
    return statistics.median(ratios), max(peaks)


# -- main --------------------------------------------------------------------------------------


@contextlib.contextmanager
def workdir(base: str) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="bench-scale", dir=base))
    try:
        yield root
    finally:
        with contextlib.suppress(SystemExit):
            for conf in root.glob("**/etc/red_params.conf"):
                inst = Instance(conf.parent.parent.name, conf.parent.parent.parent.parent)
                if inst.supervisor_pidfile.exists():
                    redctl(inst, "stop")
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000, help="files waiting (0: skip)")
    parser.add_argument("--via", choices=("job", "watcher"), default="job")
    parser.add_argument("--csv-gb", type=float, default=10.0, help="CSV size in GB (0: skip)")
    parser.add_argument("--pairs", type=int, default=1, help="ours/direct (bare) pairs")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where the data goes")
    args = parser.parse_args()
    print(f"landing_scale at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()}")
    ok = True
    ratios: list[float] = []
    with workdir(args.tmp) as root:
        if args.files:
            first, ratio = part_files(root, args.files, args.pairs, args.via)
            ratios.append(ratio)
            ok = ok and first < 2.0 and ratio >= 0.8
            print(f"files: first claim (worst) {first:.2f} s (target < 2 s); ratio ours/direct "
                  f"{ratio:.2f} (target >= 0.8)")  # fmt: skip
        if args.csv_gb:
            ratio, peak = part_csv(root, args.csv_gb, args.pairs)
            ratios.append(ratio)
            ok = ok and ratio >= 0.8 and peak < 300
            print(f"csv: ratio run_load/bare {ratio:.2f} (target >= 0.8); peak RSS of run_load "
                  f"{peak:.0f} MB (target < 300 MB)")  # fmt: skip
    if not ratios:
        parser.error("nothing to measure: --files 0 and --csv-gb 0")
    value = min(ratios)
    print(f"RESULT landing_scale value={value:.2f} unit=x_direct target=>=0.8 "
          f"ok={'yes' if ok else 'no'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
