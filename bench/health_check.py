"""The health check of one role: CPU of ``redpss role X --check`` against a bare Python read.

A throw-away instance (temporary $REDHOME, embedded dictionary) runs one real role process
(jexec) that writes its heartbeat. Then, alternating, in runs of CHECKS processes each:

- ours: the installed console script ``redpss role jexec --check`` (what the container
  HEALTHCHECK runs), which reads the role's local heartbeat record and judges it;
- bare: ``python -c`` that imports json and reads the same record (the least any check in
  Python costs: an interpreter start and one read).

Reported: CPU (user + system, from wait4) per check, median over PAIRS pairs; the target
(issue 18) is < 30 ms CPU for one check. Also printed, for scale: a bare ``python -c`` reading
the role's STA_PSS_STATUS row with sqlite3.

    .venv/bin/python bench/health_check.py      ends with RESULT health_check_cpu
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redpss.dictionary import open_dictionary  # noqa: E402
from redpss.health import check, heartbeat_path  # noqa: E402
from redpss.instance import Instance, create_instance  # noqa: E402

TARGET_MS = 30.0
CHECKS = 25  # one run: about 1 s of wall time
PAIRS = 5
BIN = Path(sys.executable).parent
ROLE = "jexec"


def cpu_of(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """CPU seconds (user + system) of one child process, and its exit status."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, proc.returncode


def run(argv: list[str], env: dict[str, str]) -> float:
    """Median CPU ms of CHECKS runs of ``argv``; every one must exit 0."""
    samples = []
    for _ in range(CHECKS):
        cpu, code = cpu_of(argv, env)
        if code != 0:
            raise SystemExit(f"{argv[:3]} exited {code}")
        samples.append(cpu * 1000)
    return statistics.median(samples)


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="rhbench", dir="/tmp"))
    inst = Instance("bh1", home)
    role = None
    try:
        create_instance(inst)
        with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
            d.init()
        env = {**os.environ, **inst.environment()}
        role = subprocess.Popen(
            [str(BIN / "redpss"), "role", ROLE], env=env, stdin=subprocess.DEVNULL
        )
        record = heartbeat_path(inst.home, ROLE)
        deadline = time.monotonic() + 60
        while not check(record).healthy:
            if role.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{ROLE} did not become healthy: {check(record).reason}")
            time.sleep(0.1)
        ours = [str(BIN / "redpss"), "role", ROLE, "--check"]
        bare = [sys.executable, "-c", f"import json; json.load(open({str(record)!r}))"]
        db = inst.db_dir / "REDSYS.db"
        row = (
            f"import sqlite3; c = sqlite3.connect({str(db)!r}); c.execute("
            f"\"SELECT STATE, ALERT FROM STA_PSS_STATUS WHERE ROLE = '{ROLE}'\").fetchone()"
        )
        sqlite_bare = [sys.executable, "-c", row]
        pairs = []
        for _ in range(PAIRS):
            pairs.append((run(ours, env), run(bare, env)))
        sqlite_ms = run(sqlite_bare, env)
    finally:
        if role is not None:
            role.send_signal(signal.SIGTERM)
            role.wait(30)
        shutil.rmtree(home, ignore_errors=True)
    ours_ms = statistics.median(p[0] for p in pairs)
    bare_ms = statistics.median(p[1] for p in pairs)
    ratio = statistics.median(p[0] / p[1] for p in pairs)
    for i, (o, b) in enumerate(pairs, 1):
        print(f"pair {i}: redpss role {ROLE} --check {o:.1f} ms CPU, bare json read {b:.1f} ms")
    print(f"bare python reading the STA_PSS_STATUS row with sqlite3: {sqlite_ms:.1f} ms CPU")
    print(f"median: ours {ours_ms:.1f} ms, bare {bare_ms:.1f} ms, ours/bare {ratio:.2f}")
    print(f"load: {os.getloadavg()[0]:.2f}")
    ok = "yes" if ours_ms < TARGET_MS else "no"
    print(f"RESULT health_check_cpu value={ours_ms:.1f} unit=ms target=<{TARGET_MS:g} ok={ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
