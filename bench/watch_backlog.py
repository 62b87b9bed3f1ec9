"""A batch behind a FILE watcher: 2 000 small CSV files dropped at once, loaded at loader speed.

    .venv/bin/python bench/watch_backlog.py [--files 2000] [--pairs 5]

Two throw-away instances on the embedded dictionary, the same loader (CSV, two columns, into
BL.ROWS) and ``sched_file_quiet_period = 0.3``:

* **direct**: the files are put into ``data/input`` of an instance that is not started; once
  they are complete, one ``run_load`` over all of them (one run, one process, one connection:
  the landing zone's own fastest way) is timed;
* **ours**: the instance runs in process mode (supervisord, jmon, sched with its loader pool
  of ``sched_loader_pool_size`` workers) with a FILE watcher (interval 1 s) whose executor is a
  LOAD job; the files are renamed into ``data/input`` at once and the time until every row is
  committed (counted in BL.ROWS) is taken — detection (quiet period, check interval) included.

Rounds alternate (direct, ours) and each file holds new rows (the ledger loads content once);
the ratio ours / direct of each pair is printed, and their median ends the run:
``RESULT watch_backlog value=<median ratio> unit=x target=<=1.5 ok=...``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redpss.dictionary import open_dictionary  # noqa: E402
from redpss.instance import Instance  # noqa: E402
from redpss.landing import run_load  # noqa: E402

BIN = Path(sys.executable).parent
TARGET = 1.5
ROWS_PER_FILE = 5
DEFS = """
[loader.bl]
pattern = '^bl_.*\\.csv$'
target = "BL.ROWS"
columns = [
  { name = "ID", type = "DECIMAL(18,0)" },
  { name = "AMOUNT", type = "DECIMAL(12,2)" },
]

[job.load_bl]
schema = "BL"
kind = "LOAD"
action = "bl"
pool = "loader"

[watcher.bl_files]
schema = "BL"
kind = "FILE"
pattern = '^bl_'
interval = 1
executor = "load_bl"
"""


def _cli(home: Path, name: str, *args: str, check: bool = True) -> str:
    env = {**os.environ, "REDHOME": str(home), "REDENV": name}
    out = subprocess.run(
        [str(BIN / "redctl"), *args], env=env, capture_output=True, text=True, check=False
    )
    if check and out.returncode != 0:
        raise SystemExit(f"redctl {' '.join(args)} failed: {out.stdout}{out.stderr}")
    return out.stdout


def make_instance(home: Path, name: str) -> Instance:
    env = {**os.environ, "REDHOME": str(home)}
    subprocess.run(
        [str(BIN / "redsysctl"), "create", name], env=env, check=True, capture_output=True
    )
    inst = Instance(name, home)
    conf = inst.home / "etc" / "red_params.conf"
    text = conf.read_text().replace("log_level = INFO", "log_level = WARN")
    text = text.replace("#sched_file_quiet_period = 2", "sched_file_quiet_period = 0.3")
    conf.write_text(text)
    defs = home / f"{name}.toml"
    defs.write_text(DEFS)
    _cli(home, name, "db", "init")
    _cli(home, name, "db", "apply", str(defs))
    return inst


def write_files(folder: Path, files: int, first_id: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        base = first_id + i * ROWS_PER_FILE
        lines = "".join(f"{base + r},{(base + r) % 1000}.25\n" for r in range(ROWS_PER_FILE))
        (folder / f"bl_{first_id}_{i:05d}.csv").write_text("ID,AMOUNT\n" + lines)


def rows_in(inst: Instance) -> int:
    path = inst.home / "data" / "db" / "BL.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=30) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM ROWS").fetchone()[0])
        except sqlite3.OperationalError:
            return 0  # the table does not exist before the first load


def drop(staging: Path, input_dir: Path) -> None:
    """Rename every staged file into input/ (what an sFTP batch looks like to the watcher)."""
    for path in sorted(staging.iterdir()):
        path.rename(input_dir / path.name)


def direct_round(inst: Instance, files: int, first_id: int) -> float:
    staging = inst.home / "data" / "staging"
    write_files(staging, files, first_id)
    drop(staging, inst.home / "data" / "input")
    time.sleep(0.4)  # the quiet period of the files: run_load takes complete files only
    config = inst.load_config()
    with open_dictionary("sqlite", db_dir=inst.home / "data" / "db") as d:
        t0 = time.perf_counter()
        result = run_load(
            instance=inst, config=config, dictionary=d, loader="bl", key=None, run_id=first_id,
            schema="BL",
        )  # fmt: skip
        took = time.perf_counter() - t0
    if result.files != files:
        raise SystemExit(f"direct run_load took {result.files} of {files} files: {result.message}")
    return took


def our_round(inst: Instance, files: int, first_id: int, before: int) -> float:
    staging = inst.home / "data" / "staging"
    write_files(staging, files, first_id)
    expected = before + files * ROWS_PER_FILE
    t0 = time.perf_counter()
    drop(staging, inst.home / "data" / "input")
    deadline = time.monotonic() + 600
    while rows_in(inst) < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"ours: {rows_in(inst) - before} of {files * ROWS_PER_FILE} rows")
        time.sleep(0.05)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="rw", dir="/tmp"))
    try:
        direct = make_instance(home, "direct")
        ours = make_instance(home, "ours")
        _cli(home, "ours", "start", check=False)
        pool = ours.load_config().redsys.sched_loader_pool_size
        pairs: list[tuple[float, float]] = []
        for i in range(args.pairs):
            first = (i + 1) * 10_000_000
            d = direct_round(direct, args.files, first)
            o = our_round(ours, args.files, first, rows_in(ours))
            pairs.append((d, o))
            print(
                f"pair {i + 1}: direct run_load {d:.2f} s ({args.files / d:.0f} files/s), "
                f"watcher {o:.2f} s ({args.files / o:.0f} files/s), ratio {o / d:.2f}"
            )
        _cli(home, "ours", "stop", check=False)
    finally:
        _cli(home, "ours", "abort", check=False)
        shutil.rmtree(home, ignore_errors=True)
    ratio = statistics.median(o / d for d, o in pairs)
    print(
        f"{args.files} files x {ROWS_PER_FILE} rows, loader pool {pool}, load "
        f"{os.getloadavg()[0]:.1f}: median ratio watcher / direct run_load = {ratio:.2f}"
    )
    ok = ratio <= TARGET
    verdict = "yes" if ok else "no"
    print(f"RESULT watch_backlog value={ratio:.2f} unit=x target=<={TARGET:g} ok={verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
