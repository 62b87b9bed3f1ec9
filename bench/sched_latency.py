"""Scheduling latency: due -> RUNNING for 1 000 one-second interval jobs all due at once.

Measures, in the same run and on the same schedule:

* bare APScheduler 3 (BackgroundScheduler, a ThreadPoolExecutor of the same size as sched's
  default pool, no-op jobs): job function start minus its due time;
* redpss in process mode (real supervisord, jmon and sched as processes, SQLite dictionary,
  no-op ``SELECT 1`` SQL jobs in the default pool): ``STARTED_AT`` of each run in
  ``ADM_JOB_LOG`` minus its due time;
* idle CPU of jmon + sched holding 1 000 jobs with a one-hour interval.

Prints p50/p99 of both, their ratio, and ends with one RESULT line (target: p99 <= 1.5x bare
APScheduler and < 100 ms).

    .venv/bin/python bench/sched_latency.py [--jobs 1000] [--rounds 10] [--pool 10]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BIN = Path(sys.executable).parent


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def bare_apscheduler(jobs: int, rounds: int, pool: int) -> list[float]:
    """Latencies (s) of no-op jobs under bare APScheduler on the same schedule."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    latencies: list[float] = []
    lock = threading.Lock()

    def job() -> None:
        now = datetime.now(UTC)
        due = start + timedelta(seconds=int((now - start).total_seconds()))
        with lock:
            latencies.append((now - due).total_seconds())

    sched = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(pool)},
        job_defaults={"misfire_grace_time": 30, "coalesce": False, "max_instances": 1},
        timezone=UTC,
    )
    trigger = IntervalTrigger(seconds=1, start_date=start, timezone=UTC)
    for i in range(jobs):
        sched.add_job(job, trigger, id=f"j{i}")
    sched.start()
    end = start + timedelta(seconds=rounds, milliseconds=900)
    while datetime.now(UTC) < end:
        time.sleep(0.05)
    sched.shutdown(wait=True)
    return latencies


def _cli(home: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, "REDHOME": str(home), "REDENV": "bench"}
    out = subprocess.run(
        [str(BIN / "redctl"), *args], env=env, capture_output=True, text=True, check=False
    )
    if check and out.returncode != 0:
        raise SystemExit(f"redctl {' '.join(args)} failed: {out.stdout}{out.stderr}")
    return out.stdout


def _instance(home: Path, pool: int, jobs: int, interval: int) -> Path:
    env = {**os.environ, "REDHOME": str(home)}
    subprocess.run(
        [str(BIN / "redsysctl"), "create", "bench"], env=env, check=True, capture_output=True
    )
    conf = home / "env" / "bench" / "etc" / "red_params.conf"
    text = conf.read_text().replace(
        "sched_default_pool_size = 4", f"sched_default_pool_size = {pool}"
    )
    text = text.replace("log_level = INFO", "log_level = WARN")
    conf.write_text(text)
    defs = home / "defs.toml"
    defs.write_text(
        "".join(
            f'[job.j{i}]\nschema = "BENCH"\nkind = "SQL"\naction = "SELECT 1"\n'
            f"interval = {interval}\n\n"
            for i in range(jobs)
        )
    )
    _cli(home, "db", "init")
    _cli(home, "db", "apply", str(defs))
    return home / "env" / "bench"


def redpss_latency(jobs: int, rounds: int, pool: int) -> list[float]:
    """Latencies (s) due -> RUNNING of no-op SQL jobs under redpss."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from redpss.dictionary import open_dictionary

    home = Path(tempfile.mkdtemp(prefix="rb", dir="/tmp"))
    try:
        inst = _instance(home, pool, jobs, 1)
        _cli(home, "start")
        import json

        grid = None
        while grid is None:  # the next due time of a job tells the grid of all (one load)
            shown = json.loads(_cli(home, "--json", "show"))
            grid = next(
                (datetime.fromisoformat(n["next"]) for n in shown["next"] if n["kind"] == "job"),
                None,
            )
            time.sleep(0.2)
        time.sleep(rounds + 1.5)
        _cli(home, "stop")
        with open_dictionary("sqlite", db_dir=inst / "data" / "db") as d:
            runs = d.runs(schema="BENCH", limit=jobs * (rounds + 5))
    finally:
        _cli(home, "abort", check=False)
        shutil.rmtree(home, ignore_errors=True)
    started = [r.started_at for r in runs if r.started_at and r.state == "OK"]
    if not started:
        raise SystemExit("no runs were recorded")
    out = []
    for s in started:
        offset = (s - grid).total_seconds()
        out.append(offset - math.floor(offset))  # seconds after the last due time
    return out


def idle_cpu(jobs: int, seconds: float) -> float:
    """CPU (% of one core) of jmon + sched holding ``jobs`` one-hour jobs."""
    home = Path(tempfile.mkdtemp(prefix="rb", dir="/tmp"))
    try:
        _instance(home, 4, jobs, 3600)
        _cli(home, "start")
        status = _cli(home, "--json", "status")
        import json

        pids = [r["pid"] for r in json.loads(status)["roles"] if r["role"] in ("jmon", "sched")]
        time.sleep(3)
        before = sum(_cpu(p) for p in pids)
        t0 = time.monotonic()
        time.sleep(seconds)
        used = sum(_cpu(p) for p in pids) - before
        elapsed = time.monotonic() - t0
        _cli(home, "stop")
    finally:
        _cli(home, "abort", check=False)
        shutil.rmtree(home, ignore_errors=True)
    return 100.0 * used / elapsed


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()

    bare = bare_apscheduler(args.jobs, args.rounds, args.pool)
    ours = redpss_latency(args.jobs, args.rounds, args.pool)
    cpu = idle_cpu(args.jobs, args.idle_seconds)
    b50, b99 = percentile(bare, 0.5) * 1000, percentile(bare, 0.99) * 1000
    o50, o99 = percentile(ours, 0.5) * 1000, percentile(ours, 0.99) * 1000
    print(
        f"jobs={args.jobs} rounds={args.rounds} pool={args.pool} log_level=WARN "
        "(no INFO line per run in sched.log)"
    )
    print(
        f"bare APScheduler: {len(bare)} runs  p50={b50:.1f} ms  p99={b99:.1f} ms  "
        f"mean={statistics.mean(bare) * 1000:.1f} ms"
    )
    print(
        f"redpss (due -> RUNNING): {len(ours)} runs  p50={o50:.1f} ms  p99={o99:.1f} ms  "
        f"mean={statistics.mean(ours) * 1000:.1f} ms"
    )
    ratio = o99 / b99 if b99 > 0 else float("inf")
    print(f"p99 ratio redpss/bare = {ratio:.2f} (target <= 1.5)")
    print(
        f"idle CPU of jmon+sched with {args.jobs} one-hour jobs: {cpu:.2f} % of one core "
        f"(target < 2 %)"
    )
    ok = ratio <= 1.5 and o99 < 100 and cpu < 2.0
    print(f"RESULT sched_latency value={o99:.1f} unit=ms target=<100 ok={'yes' if ok else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
