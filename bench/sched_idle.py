"""Idle scheduling: CPU of jmon + sched holding 1 000 cron jobs and 200 watchers with nothing due.

    .venv/bin/python bench/sched_idle.py [--windows 5] [--seconds 12] [--watch-interval 300]

A throw-away instance in process mode (real supervisord, embedded dictionary) gets 1 000 cron
jobs that are not due within the next minutes (each at a minute 30 minutes ahead, once a day)
and 200 watchers (100 FILE watchers whose pattern matches nothing, 100 SQL watchers on a small
table) checking every ``--watch-interval`` seconds. After the first checks and a settling
period, N windows of S seconds are measured (5 x 12 s: the minute with nothing due).

Next to each window, in turn, bare APScheduler 3 (a BackgroundScheduler in its own process with
the same 1 000 cron triggers and 200 interval triggers, no-op jobs) is measured the same way:
what the reference library spends to hold the same timetable idle.

What counts is utime + stime (/proc) of the jmon and sched processes over the window. With
``--watch-interval 30`` the watchers do check during the windows (not "nothing due"): the cost
of 200 checks every 30 s, printed for information.

The last line: ``RESULT sched_idle value=<median % of one core> unit=% target=<1 ok=...``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")
TARGET_PERCENT = 1.0
SETTLE_SECONDS = 20.0

BARE = """
import sys, time
from datetime import UTC, datetime, timedelta
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

def noop():
    pass

minute, watchers, interval = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = BackgroundScheduler(timezone=UTC)
for i in range(1000):
    s.add_job(noop, CronTrigger(minute=minute, hour=(i % 24), timezone=UTC), id=f"c{i}")
for i in range(watchers):
    s.add_job(noop, IntervalTrigger(seconds=interval, timezone=UTC), id=f"w{i}")
s.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _cli(home: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, "REDHOME": str(home), "REDENV": "idle"}
    out = subprocess.run(
        [str(BIN / "redctl"), *args], env=env, capture_output=True, text=True, check=False
    )
    if check and out.returncode != 0:
        raise SystemExit(f"redctl {' '.join(args)} failed: {out.stdout}{out.stderr}")
    return out.stdout


def definitions(minute: int, watchers: int, interval: int) -> str:
    """1 000 daily cron jobs at ``minute`` (hours spread) and the watchers, as TOML."""
    parts = [
        f'[job.c{i}]\nschema = "IDLE"\nkind = "SQL"\naction = "SELECT 1"\n'
        f'cron = "{minute} {i % 24} * * *"\n\n'
        for i in range(1000)
    ]
    parts.append('[job.exe]\nschema = "IDLE"\nkind = "SQL"\naction = "SELECT 1"\n\n')
    for i in range(watchers):
        if i % 2:
            parts.append(
                f'[watcher.f{i}]\nschema = "IDLE"\nkind = "FILE"\npattern = "^nothing_{i}_"\n'
                f'interval = {interval}\nexecutor = "exe"\n\n'
            )
        else:
            parts.append(
                f'[watcher.s{i}]\nschema = "IDLE"\nkind = "SQL"\n'
                f"query = \"SELECT COUNT(*) FROM ADM_JOB_LOG WHERE JOB_NAME = 'none'\"\n"
                f'interval = {interval}\nexecutor = "exe"\n\n'
            )
    return "".join(parts)


def start_instance(home: Path, minute: int, watchers: int, interval: int) -> dict[str, int]:
    """Create and start the instance; the pids of jmon and sched."""
    env = {**os.environ, "REDHOME": str(home)}
    subprocess.run(
        [str(BIN / "redsysctl"), "create", "idle"], env=env, check=True, capture_output=True
    )
    conf = home / "env" / "idle" / "etc" / "red_params.conf"
    conf.write_text(conf.read_text().replace("log_level = INFO", "log_level = WARN"))
    defs = home / "defs.toml"
    defs.write_text(definitions(minute, watchers, interval))
    _cli(home, "db", "init")
    _cli(home, "db", "apply", str(defs))
    _cli(home, "start", check=False)
    roles = json.loads(_cli(home, "--json", "status", check=False))["roles"]
    return {r["role"]: int(r["pid"]) for r in roles if r["role"] in ("jmon", "sched")}


def window(pids: list[int], seconds: float) -> float:
    """% of one core the processes used over ``seconds``."""
    before = sum(cpu_seconds(p) for p in pids)
    t0 = time.monotonic()
    time.sleep(seconds)
    used = sum(cpu_seconds(p) for p in pids) - before
    return 100.0 * used / (time.monotonic() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--watch-interval", type=int, default=300)
    args = parser.parse_args()
    minute = (datetime.now(UTC) + timedelta(minutes=30)).minute
    home = Path(tempfile.mkdtemp(prefix="ri", dir="/tmp"))
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE, str(minute), str(args.watchers), str(args.watch_interval)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert bare.stdout is not None and bare.stdout.readline().strip() == "ready"
        pids = start_instance(home, minute, args.watchers, args.watch_interval)
        print(f"jmon pid {pids['jmon']}, sched pid {pids['sched']}, bare APScheduler {bare.pid}")
        time.sleep(SETTLE_SECONDS)  # the first checks of every watcher, then nothing is due
        ours, ref = [], []
        for i in range(args.windows):
            ours.append(window(list(pids.values()), args.seconds))
            ref.append(window([bare.pid], args.seconds))
            print(f"window {i + 1}: jmon+sched {ours[-1]:.2f} %  bare APScheduler {ref[-1]:.2f} %")
        jmon = window([pids["jmon"]], args.seconds)
        sched = window([pids["sched"]], args.seconds)
        print(f"apart: jmon {jmon:.2f} %, sched {sched:.2f} %")
        _cli(home, "stop", check=False)
    finally:
        bare.kill()
        bare.wait()
        _cli(home, "abort", check=False)
        shutil.rmtree(home, ignore_errors=True)
    value, base = statistics.median(ours), statistics.median(ref)
    print(
        f"1 000 cron jobs + {args.watchers} watchers (checks every {args.watch_interval} s), "
        f"{args.windows} windows of {args.seconds:.0f} s, load {os.getloadavg()[0]:.1f}: "
        f"jmon+sched median {value:.2f} % of one core, bare APScheduler {base:.2f} %"
    )
    ok = value < TARGET_PERCENT
    print(
        f"RESULT sched_idle value={value:.2f} unit=% target=<{TARGET_PERCENT:g} "
        f"ok={'yes' if ok else 'no'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
