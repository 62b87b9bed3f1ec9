"""Scheduling latency with a mixed timetable: due -> running, redpss against bare APScheduler.

    .venv/bin/python bench/sched_latency.py [--pairs 5] [--pool 10] [--window 10]

The timetable, the same for both:

* 1 000 interval jobs, every second (a no-op: ``SELECT 1`` in redpss, an empty function in
  APScheduler);
* 1 000 cron jobs, ``* * * * *``: all due at second 0 of every minute, together with the
  interval jobs;
* 200 watchers checking every 5 s (100 FILE on an empty pattern, 100 SQL on a small table; in
  APScheduler 200 more no-op interval jobs), whose checks are not counted.

Latency: the job function's start minus its due time (APScheduler 3: BackgroundScheduler, a
ThreadPoolExecutor of ``--pool`` threads, misfire grace 30 s, no coalescing), and for redpss
(process mode: real supervisord, jmon and sched, SQLite dictionary, a default pool of
``--pool`` workers) ``STARTED_AT`` of each run in ``ADM_JOB_LOG`` minus its due time.

Holding still: only one of the two schedules at a time (redpss is suspended while APScheduler
runs; APScheduler runs in its own process, started before and ended after its window), and
the measured runs alternate, bare then ours, one per minute. Each measured run is a window of
``--window`` seconds around second 0 of a minute (the cron burst inside), so it holds
1 000 x window + 1 000 runs. Per pair the p99 of each is printed; the RESULT is the median of
our p99 over the pairs, ok when that is < 100 ms and the median of the per-pair ratios is
<= 1.5.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redpss.dictionary import open_dictionary  # noqa: E402

BIN = Path(sys.executable).parent
JOBS = 1000
WATCHERS = 200

BARE = r"""
import json, sys, threading, time
from datetime import UTC, datetime, timedelta
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

pool, start_at, end_at = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
grid = datetime.fromtimestamp(start_at, UTC).replace(microsecond=0) - timedelta(seconds=30)
lat = []
lock = threading.Lock()

def interval_job():
    now = datetime.now(UTC)
    off = (now - grid).total_seconds()
    with lock:
        lat.append(off - int(off))

def cron_job():
    now = datetime.now(UTC)
    with lock:
        lat.append(now.second + now.microsecond / 1e6 if now.second < 30 else 0.0)

def noop():
    pass

s = BackgroundScheduler(
    executors={"default": ThreadPoolExecutor(pool)},
    job_defaults={"misfire_grace_time": 30, "coalesce": False, "max_instances": 1},
    timezone=UTC,
)
every = IntervalTrigger(seconds=1, start_date=grid, timezone=UTC)
for i in range(1000):
    s.add_job(interval_job, every, id=f"i{i}")
    s.add_job(cron_job, CronTrigger.from_crontab("* * * * *", timezone=UTC), id=f"c{i}")
for i in range(200):
    s.add_job(noop, IntervalTrigger(seconds=5, start_date=grid, timezone=UTC), id=f"w{i}")
s.start()
while time.time() < start_at:
    time.sleep(0.05)
with lock:
    lat.clear()
while time.time() < end_at:
    time.sleep(0.05)
with lock:
    print(json.dumps(lat))
s.shutdown(wait=False)
"""


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _cli(home: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, "REDHOME": str(home), "REDENV": "bench"}
    out = subprocess.run(
        [str(BIN / "redctl"), *args], env=env, capture_output=True, text=True, check=False
    )
    if check and out.returncode != 0:
        raise SystemExit(f"redctl {' '.join(args)} failed: {out.stdout}{out.stderr}")
    return out.stdout


def _definitions() -> str:
    parts = []
    for i in range(JOBS):
        parts.append(
            f'[job.i{i}]\nschema = "BENCH"\nkind = "SQL"\naction = "SELECT 1"\ninterval = 1\n\n'
        )
        parts.append(
            f'[job.c{i}]\nschema = "BENCH"\nkind = "SQL"\naction = "SELECT 1"\n'
            'cron = "* * * * *"\n\n'
        )
    parts.append('[job.exe]\nschema = "BENCH"\nkind = "SQL"\naction = "SELECT 1"\n\n')
    for i in range(WATCHERS):
        if i % 2:
            parts.append(
                f'[watcher.f{i}]\nschema = "BENCH"\nkind = "FILE"\npattern = "^none_{i}_"\n'
                'interval = 5\nexecutor = "exe"\n\n'
            )
        else:
            parts.append(
                f'[watcher.s{i}]\nschema = "BENCH"\nkind = "SQL"\n'
                "query = \"SELECT COUNT(*) FROM ADM_JOB_LOG WHERE JOB_NAME = 'exe'\"\n"
                'interval = 5\nexecutor = "exe"\n\n'
            )
    return "".join(parts)


def make_instance(home: Path, pool: int) -> Path:
    env = {**os.environ, "REDHOME": str(home)}
    subprocess.run(
        [str(BIN / "redsysctl"), "create", "bench"], env=env, check=True, capture_output=True
    )
    conf = home / "env" / "bench" / "etc" / "red_params.conf"
    text = conf.read_text().replace(
        "sched_default_pool_size = 4", f"sched_default_pool_size = {pool}"
    )
    conf.write_text(text.replace("log_level = INFO", "log_level = WARN"))
    defs = home / "defs.toml"
    defs.write_text(_definitions())
    _cli(home, "db", "init")
    _cli(home, "db", "apply", str(defs))
    return home / "env" / "bench"


def next_window(window: float, lead: float) -> tuple[float, float]:
    """(start, end) epoch seconds of the next window around a minute boundary at least
    ``lead`` seconds away."""
    now = time.time()
    minute = math.ceil((now + lead + window / 2) / 60) * 60
    return minute - window / 2 + 0.5, minute + window / 2 + 0.5


def bare_round(pool: int, window: float) -> list[float]:
    start, end = next_window(window, 8)
    out = subprocess.run(
        [sys.executable, "-c", BARE, str(pool), str(start), str(end)],
        capture_output=True,
        text=True,
        check=True,
    )
    values: list[float] = json.loads(out.stdout)
    return values


def grid_of(home: Path) -> datetime:
    """The sub-second phase of the interval jobs' grid (from the next runs sched shows)."""
    while True:
        shown = json.loads(_cli(home, "--json", "show"))
        found = [datetime.fromisoformat(n["next"]) for n in shown["next"] if n["name"][0] == "i"]
        if found:
            return found[0]
        time.sleep(0.2)


def our_round(home: Path, inst: Path, window: float, grid: datetime) -> list[float]:
    start, end = next_window(window, 8)
    while time.time() < start - 5:
        time.sleep(0.1)
    _cli(home, "resume")
    while time.time() < end + 2:
        time.sleep(0.1)
    _cli(home, "suspend")
    lo, hi = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    time.sleep(2)  # the run log writer's last batch
    with open_dictionary("sqlite", db_dir=inst / "data" / "db") as d:
        runs = d.runs(schema="BENCH", limit=JOBS * 2 * int(window + 10))
    out = []
    for r in runs:
        if r.started_at is None or r.name == "exe":
            continue
        if r.name[0] == "c":
            due = r.queued_at.replace(second=0, microsecond=0)
            if r.queued_at.second >= 30:
                due += timedelta(minutes=1)
        else:
            offset = (r.started_at - grid).total_seconds()
            due = grid + timedelta(seconds=math.floor(offset))
        if lo <= due < hi:
            out.append((r.started_at - due).total_seconds())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--window", type=float, default=10.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="rb", dir="/tmp"))
    pairs: list[tuple[float, float]] = []
    try:
        inst = make_instance(home, args.pool)
        _cli(home, "start", check=False)
        grid = grid_of(home)
        _cli(home, "suspend")
        for i in range(args.pairs):
            bare = bare_round(args.pool, args.window)
            ours = our_round(home, inst, args.window, grid)
            if not ours or not bare:
                raise SystemExit(
                    f"pair {i + 1}: no runs measured (ours {len(ours)}, bare {len(bare)})"
                )
            b99, o99 = percentile(bare, 0.99) * 1000, percentile(ours, 0.99) * 1000
            pairs.append((b99, o99))
            b50, o50 = percentile(bare, 0.5) * 1000, percentile(ours, 0.5) * 1000
            print(
                f"pair {i + 1}: bare APScheduler {len(bare)} runs p50 {b50:.1f} ms p99 "
                f"{b99:.1f} ms | redpss {len(ours)} runs p50 {o50:.1f} ms p99 {o99:.1f} ms | "
                f"ratio {o99 / b99:.2f}"
            )
        _cli(home, "stop", check=False)
    finally:
        _cli(home, "abort", check=False)
        shutil.rmtree(home, ignore_errors=True)
    ours99 = statistics.median(o for _, o in pairs)
    ratio = statistics.median(o / b for b, o in pairs)
    print(
        f"{JOBS} interval (1 s) + {JOBS} cron (* * * * *) jobs + {WATCHERS} watchers, pool "
        f"{args.pool}, {args.pairs} pairs of {args.window:.0f}-s windows around a minute, load "
        f"{os.getloadavg()[0]:.1f}: median p99 redpss {ours99:.1f} ms, median ratio {ratio:.2f} "
        "(target <= 1.5 and < 100 ms)"
    )
    ok = ratio <= 1.5 and ours99 < 100
    print(f"RESULT sched_latency value={ours99:.1f} unit=ms target=<100 ok={'yes' if ok else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
